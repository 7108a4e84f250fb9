#include <raftkv/kv_command.hpp>
#include <raftkv/kv_sessions.hpp>

#define BOOST_TEST_MODULE kv_command
#include <boost/test/unit_test.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

BOOST_AUTO_TEST_CASE(put_and_delete_round_trip_with_binary_keys_and_values)
{
    const std::string key("k\0ey", 4);
    const std::string value("v\0\xff", 3);
    const std::string put = raftkv::encode_put(key, value);
    auto c = raftkv::decode_kv_command(put);
    BOOST_REQUIRE(c);
    BOOST_TEST((c->op == raftkv::kv_command_op::put));
    BOOST_TEST(c->key == key);
    BOOST_TEST(c->value == value);
    const std::string del = raftkv::encode_del(key);
    c = raftkv::decode_kv_command(del);
    BOOST_REQUIRE(c);
    BOOST_TEST((c->op == raftkv::kv_command_op::del));
    BOOST_TEST(c->key == key);
    BOOST_TEST(c->value.empty());
}

BOOST_AUTO_TEST_CASE(empty_value_is_a_valid_put)
{
    auto c = raftkv::decode_kv_command(raftkv::encode_put("k", ""));
    BOOST_REQUIRE(c);
    BOOST_TEST(c->value.empty());
}

BOOST_AUTO_TEST_CASE(meta_round_trips_with_its_own_op)
{
    const std::string meta = raftkv::encode_meta("node.2.http", "127.0.0.1:8082");
    BOOST_TEST(meta[0] == 'M');
    auto c = raftkv::decode_kv_command(meta);
    BOOST_REQUIRE(c);
    BOOST_TEST((c->op == raftkv::kv_command_op::meta));
    BOOST_TEST(c->key == "node.2.http");
    BOOST_TEST(c->value == "127.0.0.1:8082");
}

BOOST_AUTO_TEST_CASE(meta_with_empty_value_is_valid)
{
    auto c = raftkv::decode_kv_command(raftkv::encode_meta("name", ""));
    BOOST_REQUIRE(c);
    BOOST_TEST((c->op == raftkv::kv_command_op::meta));
    BOOST_TEST(c->value.empty());
}

BOOST_AUTO_TEST_CASE(meta_and_put_of_same_key_differ_only_in_op)
{
    const std::string put = raftkv::encode_put("k", "v");
    const std::string meta = raftkv::encode_meta("k", "v");
    BOOST_TEST(put.substr(1) == meta.substr(1));
    BOOST_TEST(put[0] != meta[0]);
}

BOOST_AUTO_TEST_CASE(malformed_commands_are_rejected)
{
    BOOST_TEST(!raftkv::decode_kv_command(""));
    BOOST_TEST(!raftkv::decode_kv_command("P\0\0"));
    BOOST_TEST(!raftkv::decode_kv_command(std::string("X\0\0\0\1k", 6)));
    BOOST_TEST(!raftkv::decode_kv_command(std::string("P\0\0\0\x09k", 6))); // key longer than data
    BOOST_TEST(!raftkv::decode_kv_command(std::string("D\0\0\0\1kv", 7)));  // delete with a value
    BOOST_TEST(!raftkv::decode_kv_command(std::string("M\0\0\0\x09k", 6))); // name longer than data
    BOOST_TEST(!raftkv::decode_kv_command(std::string("m\0\0\0\1k", 6)));   // ops are case-sensitive
}

// The bytes of plain commands are fixed: entries in users' logs hold them.
BOOST_AUTO_TEST_CASE(plain_commands_keep_their_bytes_and_decode_without_precondition)
{
    BOOST_TEST(raftkv::encode_put("k", "v") == std::string("P\0\0\0\1kv", 7));
    BOOST_TEST(raftkv::encode_del("k") == std::string("D\0\0\0\1k", 6));
    BOOST_TEST(raftkv::encode_meta("k", "v") == std::string("M\0\0\0\1kv", 7));
    for (const std::string& bytes :
         {std::string("P\0\0\0\1kv", 7), std::string("D\0\0\0\1k", 6), std::string("M\0\0\0\1kv", 7)}) {
        const auto c = raftkv::decode_kv_command(bytes);
        BOOST_REQUIRE(c);
        BOOST_TEST(c->precondition.empty());
    }
    // An empty precondition encodes the plain command.
    BOOST_TEST(raftkv::encode_put("k", "v", raftkv::kv_precondition{}) == raftkv::encode_put("k", "v"));
    BOOST_TEST(raftkv::encode_del("k", raftkv::kv_precondition{}) == raftkv::encode_del("k"));
}

BOOST_AUTO_TEST_CASE(preconditions_round_trip)
{
    const raftkv::kv_precondition version{0x0102030405060708ull, false};
    const std::string put = raftkv::encode_put(std::string("k\0", 2), "v", version);
    BOOST_TEST(put == std::string("X\1\1\1\2\3\4\5\6\7\x08P\0\0\0\2k\0v", 19));
    auto c = raftkv::decode_kv_command(put);
    BOOST_REQUIRE(c);
    BOOST_TEST((c->op == raftkv::kv_command_op::put));
    BOOST_TEST(c->key == std::string("k\0", 2));
    BOOST_TEST(c->value == "v");
    BOOST_TEST((c->precondition == version));

    const raftkv::kv_precondition absent{std::nullopt, true};
    c = raftkv::decode_kv_command(raftkv::encode_put("k", "", absent));
    BOOST_REQUIRE(c);
    BOOST_TEST((c->precondition == absent));
    BOOST_TEST(c->value.empty());

    c = raftkv::decode_kv_command(raftkv::encode_del("k", raftkv::kv_precondition{0, false}));
    BOOST_REQUIRE(c);
    BOOST_TEST((c->op == raftkv::kv_command_op::del));
    BOOST_TEST((c->precondition.expect_version == 0u));
}

BOOST_AUTO_TEST_CASE(malformed_envelopes_are_rejected)
{
    using raftkv::decode_kv_command;
    BOOST_TEST(!decode_kv_command("X"));
    BOOST_TEST(!decode_kv_command(std::string("X\1", 2)));
    BOOST_TEST(!decode_kv_command(std::string("X\2\2P\0\0\0\1k", 9)));            // unknown version
    BOOST_TEST(!decode_kv_command(std::string("X\1\0P\0\0\0\1k", 9)));            // no flag
    BOOST_TEST(!decode_kv_command(std::string("X\1\3P\0\0\0\1k", 9)));            // both flags
    BOOST_TEST(!decode_kv_command(std::string("X\1\4P\0\0\0\1k", 9)));            // unknown flag
    BOOST_TEST(!decode_kv_command(std::string("X\1\1\0\0\0\0\0\0\0", 10)));       // version cut short
    BOOST_TEST(!decode_kv_command(std::string("X\1\1\0\0\0\0\0\0\0\1", 11)));     // nothing inside
    BOOST_TEST(!decode_kv_command(std::string("X\1\2M\0\0\0\1kv", 10)));          // around a meta record
    BOOST_TEST(!decode_kv_command(std::string("X\1\2X\1\2P\0\0\0\1k", 12)));      // nested
    BOOST_TEST(!decode_kv_command(std::string("X\1\2D\0\0\0\1kv", 10)));          // delete with a value
    BOOST_TEST(!decode_kv_command(std::string("X\1\2P\0\0\0\x09k", 9)));          // key longer than data
    BOOST_TEST(decode_kv_command(std::string("X\1\2P\0\0\0\1k", 9)).has_value()); // the well-formed one
}

BOOST_AUTO_TEST_CASE(every_prefix_and_every_byte_flip_of_a_command_decodes_or_is_rejected_safely)
{
    // Cut short or damaged anywhere, a command decodes to views inside its data, or to
    // nothing; never past its end.
    const std::vector<std::string> commands = {
        raftkv::encode_put("key", "value", raftkv::kv_precondition{42, false}),
        raftkv::encode_del("key", raftkv::kv_precondition{std::nullopt, true}),
        raftkv::encode_put("key", "value"),
    };
    std::size_t decoded = 0;
    for (const std::string& command : commands) {
        for (std::size_t n = 0; n <= command.size(); ++n) {
            const std::string cut = command.substr(0, n);
            if (const auto c = raftkv::decode_kv_command(cut)) {
                ++decoded;
                // As offsets: Boost.Test compares char pointers as C strings.
                BOOST_TEST(c->key.data() - cut.data() >= 0);
                BOOST_TEST(c->value.data() + c->value.size() - cut.data() <=
                           static_cast<std::ptrdiff_t>(cut.size()));
            }
        }
        for (std::size_t at = 0; at < command.size(); ++at) {
            for (int bit = 0; bit < 8; ++bit) {
                std::string flipped = command;
                flipped[at] = static_cast<char>(flipped[at] ^ (1 << bit));
                if (const auto c = raftkv::decode_kv_command(flipped)) {
                    BOOST_TEST(c->key.size() + c->value.size() <= flipped.size());
                    BOOST_TEST((c->op != raftkv::kv_command_op::meta || c->precondition.empty()));
                }
            }
        }
    }
    BOOST_TEST(decoded > 0u);
}

// Client sessions.

namespace {

raftkv::kv_client_session session_of(std::uint64_t client, std::uint64_t sequence)
{
    return raftkv::kv_client_session{client, sequence, 12345, 678};
}

} // namespace

BOOST_AUTO_TEST_CASE(a_session_round_trips_with_and_without_a_precondition)
{
    const raftkv::kv_client_session s{0x0102030405060708u, 0xfffffffffffffffeu, 1,
                                      raftkv::kv_session_max_sessions_limit};
    const std::vector<raftkv::kv_precondition> preconditions{
        {}, {std::uint64_t{7}, false}, {std::nullopt, true}, {std::uint64_t{0}, false}};
    for (const raftkv::kv_precondition& pre : preconditions) {
        const std::string put = raftkv::encode_put("key", "value", pre, s);
        BOOST_TEST(put[0] == 'X');
        auto c = raftkv::decode_kv_command(put);
        BOOST_REQUIRE(c);
        BOOST_TEST((c->op == raftkv::kv_command_op::put));
        BOOST_TEST(c->key == "key");
        BOOST_TEST(c->value == "value");
        BOOST_TEST((c->precondition == pre));
        BOOST_TEST((c->session == s));
        c = raftkv::decode_kv_command(raftkv::encode_del("key", pre, s));
        BOOST_REQUIRE(c);
        BOOST_TEST((c->op == raftkv::kv_command_op::del));
        BOOST_TEST((c->precondition == pre));
        BOOST_TEST((c->session == s));
    }
}

BOOST_AUTO_TEST_CASE(the_session_layout_is_as_documented)
{
    const std::string put = raftkv::encode_put("k", "v", {std::uint64_t{9}, false}, session_of(1, 2));
    const std::string expected = std::string("X\x01\x05", 3) + std::string(7, '\0') +
                                 "\x09" +                            // expect version 9
                                 std::string(7, '\0') + "\x01" +     // client 1
                                 std::string(7, '\0') + "\x02" +     // sequence 2
                                 std::string(6, '\0') + "\x30\x39" + // expiry 12345
                                 std::string(2, '\0') + "\x02\xa6" + // 678 sessions
                                 raftkv::encode_put("k", "v");
    BOOST_TEST(put == expected);
}

BOOST_AUTO_TEST_CASE(commands_without_a_session_decode_with_none)
{
    BOOST_TEST(!raftkv::decode_kv_command(raftkv::encode_put("k", "v"))->session.has_value());
    BOOST_TEST(!raftkv::decode_kv_command(raftkv::encode_put("k", "v", {std::uint64_t{1}, false}))->session);
    BOOST_TEST(!raftkv::decode_kv_command(raftkv::encode_meta("m", "v"))->session);
}

BOOST_AUTO_TEST_CASE(every_truncation_of_a_session_envelope_is_malformed)
{
    const std::string put = raftkv::encode_put("key", "", {std::uint64_t{3}, false}, session_of(1, 2));
    const std::size_t plain = raftkv::encode_put("key", "").size();
    // Cut anywhere before the plain command is whole: nothing decodes (a put's value may be
    // cut short, so its last bytes are left out).
    for (std::size_t n = 0; n < put.size() - plain + 5 + 3; ++n)
        BOOST_TEST(!raftkv::decode_kv_command(std::string_view(put).substr(0, n)), "cut at " << n);
    const std::string del = raftkv::encode_del("key", {}, session_of(1, 2));
    for (std::size_t n = 0; n < del.size(); ++n)
        BOOST_TEST(!raftkv::decode_kv_command(std::string_view(del).substr(0, n)), "cut at " << n);
}

BOOST_AUTO_TEST_CASE(a_session_envelope_breaking_a_rule_is_malformed)
{
    const auto with_session = [](std::uint64_t client, std::uint64_t seq, std::uint64_t expiry,
                                 std::uint32_t max) {
        return raftkv::encode_put("k", "v", {}, raftkv::kv_client_session{client, seq, expiry, max});
    };
    BOOST_TEST(raftkv::decode_kv_command(with_session(1, 1, 1, 1)).has_value());
    BOOST_TEST(!raftkv::decode_kv_command(with_session(0, 1, 1, 1)), "client 0");
    BOOST_TEST(!raftkv::decode_kv_command(with_session(1, 0, 1, 1)), "sequence 0");
    BOOST_TEST(!raftkv::decode_kv_command(with_session(1, 1, 0, 1)), "expiry 0");
    BOOST_TEST(!raftkv::decode_kv_command(with_session(1, 1, 1, 0)), "no sessions kept");
    BOOST_TEST(!raftkv::decode_kv_command(with_session(1, 1, 1, raftkv::kv_session_max_sessions_limit + 1)));

    std::string bad = with_session(1, 1, 1, 1);
    for (const unsigned char flags : {0x00, 0x03, 0x07, 0x08, 0x0c, 0x80}) {
        bad[2] = static_cast<char>(flags);
        BOOST_TEST(!raftkv::decode_kv_command(bad), "flags " << int(flags));
    }
    // A session around a meta record.
    std::string meta =
        std::string("X\x01\x04", 3) + with_session(1, 1, 1, 1).substr(3, 28) + raftkv::encode_meta("m", "v");
    BOOST_TEST(!raftkv::decode_kv_command(meta));
}

BOOST_AUTO_TEST_CASE(the_session_codec_round_trips_and_rejects_garbage)
{
    raftkv::kv_session s;
    s.last_index = std::uint64_t{1} << 40;
    s.forgotten = 3;
    s.results = {{4, {true, raftkv::kv_status::ok, 99, false}, 0x0102030405060708u},
                 {300, {true, raftkv::kv_status::precondition_failed, 7, false}, ~std::uint64_t{0}},
                 {~std::uint64_t{0}, {false, raftkv::kv_status::ok, 0, false}, 0}};
    const std::string encoded = raftkv::kv_session_table::encode(s);
    BOOST_TEST((raftkv::kv_session_table::decode(encoded) == s));
    for (std::size_t n = 0; n < encoded.size(); ++n)
        BOOST_TEST(!raftkv::kv_session_table::decode(encoded.substr(0, n)), "cut at " << n);
    BOOST_TEST(!raftkv::kv_session_table::decode(encoded + "x"));
    BOOST_TEST(!raftkv::kv_session_table::decode(std::string("\x01\x00\x21", 3)), "33 results");
    raftkv::kv_session unordered = s;
    std::swap(unordered.results[0], unordered.results[1]);
    BOOST_TEST(!raftkv::kv_session_table::decode(raftkv::kv_session_table::encode(unordered)));

    // A result's flags byte: 0x01 found, 0x02 a fingerprint follows (never 0); no other bit.
    const std::string one = raftkv::kv_session_table::encode(
        {.last_index = 1, .forgotten = 0, .results = {{1, {true, raftkv::kv_status::ok, 1, false}, 9}}});
    BOOST_TEST_REQUIRE(one == std::string("\x01\x00\x01\x01\x03\x00\x01\0\0\0\0\0\0\0\x09", 15));
    std::string bad = one;
    bad[4] = 0x07;
    BOOST_TEST(!raftkv::kv_session_table::decode(bad), "unknown flag");
    bad = one;
    bad[14] = 0;
    BOOST_TEST(!raftkv::kv_session_table::decode(bad), "fingerprint 0");
    bad = std::string("\x01\x00\x01\x01\x01\x03\x01", 7);
    BOOST_TEST(!raftkv::kv_session_table::decode(bad), "a recorded sequence_reused");
    // What builds before fingerprints wrote: a result without one.
    const auto old = raftkv::kv_session_table::decode(std::string("\x01\x00\x01\x01\x01\x00\x01", 7));
    BOOST_TEST_REQUIRE(old.has_value());
    BOOST_TEST(old->results.at(0).request == 0u);
    BOOST_TEST(old->results.at(0).result.found);

    BOOST_TEST(raftkv::kv_session_table::decode_id(raftkv::kv_session_table::encode_id(42)).value() == 42u);
    BOOST_TEST(!raftkv::kv_session_table::decode_id(std::string(8, '\0')));
    BOOST_TEST(!raftkv::kv_session_table::decode_id("short"));
}

BOOST_AUTO_TEST_CASE(a_request_fingerprint_covers_what_the_request_asks_and_never_changes)
{
    using raftkv::kv_precondition;
    const auto fp = [](const std::string& data) {
        return raftkv::kv_request_fingerprint(raftkv::decode_kv_command(data).value());
    };
    const raftkv::kv_client_session s1{1, 1, 1000, 10};
    const raftkv::kv_client_session s2{2, 9, 5, 3};
    // The session is not part of it; everything else is.
    BOOST_TEST(fp(raftkv::encode_put("k", "v", {}, s1)) == fp(raftkv::encode_put("k", "v", {}, s2)));
    BOOST_TEST(fp(raftkv::encode_put("k", "v", {}, s1)) == fp(raftkv::encode_put("k", "v")));
    const std::vector<std::string> distinct = {
        raftkv::encode_put("k", "v"),
        raftkv::encode_put("k", "w"),
        raftkv::encode_put("kv", ""),
        raftkv::encode_put("", "kv"),
        raftkv::encode_put("k", ""),
        raftkv::encode_del("k"),
        raftkv::encode_put("k", "v", kv_precondition{0, false}),
        raftkv::encode_put("k", "v", kv_precondition{1, false}),
        raftkv::encode_put("k", "v", kv_precondition{std::nullopt, true}),
        raftkv::encode_del("k", kv_precondition{0, false}),
        raftkv::encode_put(std::string(8, 'a'), std::string(9, 'b')),
        raftkv::encode_put(std::string(8, 'a'), std::string(9, 'b') + '\0'),
        // Words that differ only in their top bits, twice.
        raftkv::encode_put("k", std::string(8, '\x80') + std::string(8, '\x80')),
        raftkv::encode_put("k", std::string(16, '\0')),
    };
    std::set<std::uint64_t> seen;
    for (const std::string& d : distinct) {
        BOOST_TEST(fp(d) != 0u);
        seen.insert(fp(d));
    }
    BOOST_TEST(seen.size() == distinct.size());
    // Replicas and builds compare fingerprints stored by others: the value is fixed for good.
    BOOST_TEST(fp(raftkv::encode_put("key", "value")) == 0x1f96fd1fb4f6c650u);
}

BOOST_AUTO_TEST_CASE(a_replayed_result_differs_from_the_original)
{
    const raftkv::kv_result original{true, raftkv::kv_status::ok, 5};
    raftkv::kv_result replay = original;
    replay.replayed = true;
    BOOST_TEST(!(original == replay));
}
