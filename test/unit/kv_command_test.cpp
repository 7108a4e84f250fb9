#include <raftkv/kv_command.hpp>

#define BOOST_TEST_MODULE kv_command
#include <boost/test/unit_test.hpp>

#include <cstddef>
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
