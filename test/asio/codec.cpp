#include <raftkv/asio/codec.hpp>
#include <raftkv/membership.hpp>

#include "frame_header.hpp"

#include <raftkv/asio/tcp_transport.hpp>
#include <raftkv/options.hpp>

#define BOOST_TEST_MODULE raftkv_asio_codec
#include <boost/test/unit_test.hpp>

#include <cstdint>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

using raftkv::test::frame_header;

namespace {

using namespace raftkv;
using raftkv::asio::decode_payload;
using raftkv::asio::encode_frame;
using raftkv::asio::frame_errc;
using raftkv::asio::frame_header_size;
using raftkv::asio::frame_magic;
using raftkv::asio::frame_version;

/// Every byte value, NULs included, in an entry's data.
std::string binary_data()
{
    std::string s;
    for (int i = 0; i < 512; ++i)
        s.push_back(static_cast<char>(i % 256));
    s.append(3, '\0');
    return s;
}

/// One message of every body type, each field set to something other than its default.
std::vector<message> one_of_each()
{
    return {
        {11, 22, 33,
         vote_request{.last_log_index = 1001, .last_log_term = 7, .pre_vote = true, .transfer = true}},
        {22, 11, 34, vote_response{.granted = true, .pre_vote = true}},
        {11, 33, 35,
         append_request{.prev_index = 0xFFFF'FFFF'FFFF'FFFEull,
                        .prev_term = 9,
                        .commit = 41,
                        .entries = {{9, 42, entry_type::normal, "set x=1"},
                                    {9, 43, entry_type::noop, ""},
                                    {10, 44, entry_type::config, binary_data()}}}},
        {33, 11, 36,
         append_response{.success = true,
                         .match_index = 44,
                         .reject_index = 5,
                         .conflict_index = 3,
                         .conflict_term = 2,
                         .snapshot_needed = true}},
        {11, 22, 37, heartbeat{.commit = 40, .read_seq = 0x0123'4567'89AB'CDEFull}},
        {22, 11, 38, heartbeat_response{.read_seq = 99}},
        {11, 33, 0xFFFF'FFFF'FFFF'FFFFull, timeout_now{}},
        {11, 22, 39,
         install_snapshot_request{.meta = {.index = 5000, .term = 8, .members = {{11, 22, 33}}},
                                  .transfer = 0xFEDC'BA98'7654'3210ull,
                                  .offset = 3u << 20,
                                  .data = binary_data(),
                                  .done = true}},
        {22, 11, 40,
         install_snapshot_response{.transfer = 17, .index = 5000, .offset = 4u << 20, .done = true}},
        {33, 11, 41, read_index_request{.request = 0xA5A5'0000'FFFF'0001ull}},
        {11, 33, 41,
         read_index_response{.request = 0xA5A5'0000'FFFF'0001ull, .index = 4999, .success = true}},
        {33, 11, 41,
         forward_request{.id = 7,
                         .nonce = 0x0123'4567'89AB'CDEFull,
                         .seq = 0xFFFF'FFFF'FFFF'FFFEull,
                         .commands = {binary_data(), "", "put"}}},
        {11, 33, 41, forward_response{.id = 7, .index = 5001, .error = 0}},
        {11, 33, 42, forward_response{.id = 8, .index = 0, .error = 8}},
    };
}

std::string_view payload_of(const std::string& frame)
{
    return std::string_view(frame).substr(frame_header_size);
}

std::size_t parse(const std::string& bytes, std::size_t max, std::error_code& ec)
{
    BOOST_REQUIRE_GE(bytes.size(), frame_header_size);
    return raftkv::asio::parse_frame_header(
        std::span<const char, frame_header_size>(bytes.data(), frame_header_size), max, ec);
}

std::vector<message> round_trip(std::span<const message> batch)
{
    const std::string frame = encode_frame(batch);
    BOOST_TEST(frame.size() == raftkv::asio::frame_size(batch));
    std::error_code ec;
    const std::size_t n = parse(frame, raftkv::asio::default_max_frame_bytes, ec);
    BOOST_TEST(!ec);
    BOOST_TEST(n == frame.size() - frame_header_size);
    auto decoded = decode_payload(payload_of(frame));
    BOOST_REQUIRE(decoded.has_value());
    return *decoded;
}

/// `body`, sent alone in a frame and decoded again.
template <class Body>
Body round_trip_body(const Body& body)
{
    const message m{1, 2, 3, body};
    const auto decoded = round_trip(std::span(&m, 1));
    BOOST_REQUIRE_EQUAL(decoded.size(), 1u);
    BOOST_REQUIRE(std::holds_alternative<Body>(decoded.front().body));
    return std::get<Body>(decoded.front().body);
}

/// Appends `v` as `bytes` little-endian bytes (zeros past the eighth).
void put_le(std::string& out, std::uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; ++i)
        out.push_back(i < 8 ? static_cast<char>((v >> (8 * i)) & 0xFF) : '\0');
}

/// A payload holding one message with the given header fields and raw body bytes.
std::string one_message_payload(std::uint8_t body_index, const std::string& body)
{
    std::string p;
    put_le(p, 1, 8); // message count
    put_le(p, 1, 8); // from
    put_le(p, 2, 8); // to
    put_le(p, 3, 8); // term
    put_le(p, body_index, 1);
    return p + body;
}

/// Decoding garbage may succeed only by chance, and then the encoding must be canonical:
/// the decoded batch re-encodes to the very same bytes.
void check_garbage(std::string_view payload)
{
    const auto decoded = decode_payload(payload);
    if (decoded)
        BOOST_TEST(payload_of(encode_frame(*decoded)) == payload);
}

} // namespace

BOOST_AUTO_TEST_SUITE(round_trips)

BOOST_AUTO_TEST_CASE(every_message_type_round_trips_alone)
{
    for (const message& m : one_of_each()) {
        BOOST_TEST_CONTEXT(type_name(m))
        {
            const auto decoded = round_trip(std::span(&m, 1));
            BOOST_REQUIRE_EQUAL(decoded.size(), 1u);
            BOOST_TEST((decoded.front() == m));
            BOOST_TEST(raftkv::asio::frame_size(std::span(&m, 1)) ==
                       frame_header_size + 8 + raftkv::asio::encoded_size(m));
        }
    }
}

BOOST_AUTO_TEST_CASE(a_batch_of_many_messages_round_trips_in_order)
{
    std::vector<message> batch;
    for (int round = 0; round < 20; ++round)
        for (message m : one_of_each()) {
            m.term += static_cast<term_t>(round);
            batch.push_back(std::move(m));
        }
    const auto decoded = round_trip(batch);
    BOOST_TEST((decoded == batch));
}

BOOST_AUTO_TEST_CASE(an_empty_batch_round_trips)
{
    BOOST_TEST(round_trip({}).empty());
}

BOOST_AUTO_TEST_CASE(binary_and_large_entries_round_trip_byte_for_byte)
{
    std::string large(8u << 20, '\0');
    std::mt19937_64 gen(42);
    for (char& c : large)
        c = static_cast<char>(gen());
    const message m{1, 2, 3,
                    append_request{.prev_index = 1,
                                   .prev_term = 1,
                                   .commit = 1,
                                   .entries = {{1, 2, entry_type::normal, std::string("\0\0a\0", 4)},
                                               {1, 3, entry_type::normal, large},
                                               {1, 4, entry_type::normal, binary_data()}}}};
    const auto decoded = round_trip(std::span(&m, 1));
    BOOST_REQUIRE_EQUAL(decoded.size(), 1u);
    const auto& entries = std::get<append_request>(decoded.front().body).entries;
    BOOST_REQUIRE_EQUAL(entries.size(), 3u);
    BOOST_TEST(entries[0].data.size() == 4u);
    BOOST_TEST((entries[1].data == large));
    BOOST_TEST((decoded.front() == m));
}

BOOST_AUTO_TEST_CASE(a_binary_snapshot_chunk_with_several_members_round_trips)
{
    const install_snapshot_request chunk{.meta = {.index = 123456, .term = 42, .members = {{5, 1, 4, 2, 3}}},
                                         .transfer = 9,
                                         .offset = 1u << 20,
                                         .data = std::string("\0snap\0shot\0", 11) + binary_data(),
                                         .done = false};
    const auto decoded = round_trip_body(chunk);
    BOOST_TEST(decoded.data.size() == chunk.data.size());
    BOOST_TEST(decoded.data.front() == '\0');
    BOOST_TEST((decoded.meta.members.voters == std::vector<node_id>{5, 1, 4, 2, 3}));
    BOOST_TEST((decoded == chunk));
}

BOOST_AUTO_TEST_CASE(an_empty_last_snapshot_chunk_round_trips)
{
    const install_snapshot_request chunk{
        .meta = {.index = 7, .term = 2, .members = {}}, .transfer = 1, .offset = 0, .data = {}, .done = true};
    BOOST_TEST((round_trip_body(chunk) == chunk));
}

BOOST_AUTO_TEST_CASE(snapshot_responses_in_progress_and_done_round_trip)
{
    const install_snapshot_response progress{.transfer = 3, .index = 100, .offset = 2u << 20, .done = false};
    const install_snapshot_response done{.transfer = 3, .index = 100, .offset = 0, .done = true};
    BOOST_TEST((round_trip_body(progress) == progress));
    BOOST_TEST((round_trip_body(done) == done));
}

BOOST_AUTO_TEST_CASE(an_append_rejection_asking_for_a_snapshot_round_trips)
{
    const append_response asks{
        .success = false, .reject_index = 40, .conflict_index = 1, .snapshot_needed = true};
    append_response plain = asks;
    plain.snapshot_needed = false;
    BOOST_TEST(round_trip_body(asks).snapshot_needed);
    BOOST_TEST(!round_trip_body(plain).snapshot_needed);
    BOOST_TEST((round_trip_body(asks) == asks));

    // The flag is the body's last byte; nothing else differs.
    const message a{1, 2, 3, asks};
    const message p{1, 2, 3, plain};
    const std::string with = encode_frame(std::span(&a, 1));
    const std::string without = encode_frame(std::span(&p, 1));
    BOOST_REQUIRE_EQUAL(with.size(), without.size());
    BOOST_TEST(with.substr(0, with.size() - 1) == without.substr(0, without.size() - 1));
    BOOST_TEST(with.back() == '\1');
    BOOST_TEST(without.back() == '\0');
}

BOOST_AUTO_TEST_CASE(a_window_of_default_snapshot_chunks_fits_the_default_frame_limit)
{
    const raftkv::options defaults;
    const std::size_t max_frame = raftkv::asio::tcp_transport_options{}.max_frame_bytes;
    const message chunk{
        1, 2, 3,
        install_snapshot_request{.meta = {.index = 1, .term = 1, .members = {{1, 2, 3, 4, 5, 6, 7}}},
                                 .data = std::string(defaults.snapshot_chunk_bytes, 'x')}};
    // 92 bytes of frame, message and chunk fields (the configuration's length prefix
    // included), then the configuration itself.
    const auto& meta = std::get<install_snapshot_request>(chunk.body).meta;
    BOOST_TEST(raftkv::asio::frame_size(std::span(&chunk, 1)) ==
               defaults.snapshot_chunk_bytes + 92 + raftkv::encode_membership(meta.members).size());

    // Every chunk a leader may have in flight to one follower, batched into one frame.
    const std::vector<message> window(defaults.max_snapshot_inflight_bytes / defaults.snapshot_chunk_bytes,
                                      chunk);
    BOOST_TEST(raftkv::asio::frame_size(window) * 8 <= max_frame);
}

BOOST_AUTO_TEST_CASE(read_index_requests_and_both_kinds_of_answer_round_trip)
{
    const read_index_request request{.request = 0xFFFF'FFFF'FFFF'FFFFull};
    const read_index_response served{.request = 7, .index = 0x0123'4567'89AB'CDEFull, .success = true};
    const read_index_response refused{.request = 8, .index = 0, .success = false};
    BOOST_TEST((round_trip_body(request) == request));
    BOOST_TEST((round_trip_body(served) == served));
    BOOST_TEST((round_trip_body(refused) == refused));
    const message m{1, 2, 3, served};
    BOOST_TEST(raftkv::asio::encoded_size(m) == 25u + 8 + 8 + 1);
}

BOOST_AUTO_TEST_CASE(threads_encode_and_decode_at_once_without_mixing_frames)
{
    // Each thread has archives of its own; frames built and read at the same time on
    // several threads come out as they would on one.
    const std::vector<message> batch = one_of_each();
    const std::string expected = encode_frame(batch);
    std::vector<int> good(4, 0);
    std::vector<std::thread> threads;
    for (std::size_t t = 0; t < good.size(); ++t)
        threads.emplace_back([&, t] {
            for (int i = 0; i < 200; ++i) {
                const std::string frame = encode_frame(batch);
                const auto decoded = decode_payload(payload_of(frame));
                if (frame == expected && decoded && *decoded == batch)
                    ++good[t];
            }
        });
    for (std::thread& t : threads)
        t.join();
    for (int g : good)
        BOOST_TEST(g == 200);
}

BOOST_AUTO_TEST_CASE(encode_frame_appends_to_its_output)
{
    const auto batch = one_of_each();
    std::string out = "prefix";
    raftkv::asio::encode_frame(batch, out);
    BOOST_TEST(out.substr(0, 6) == "prefix");
    BOOST_TEST(out.substr(6) == encode_frame(batch));
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(frame_headers)

BOOST_AUTO_TEST_CASE(a_valid_header_gives_the_payload_length)
{
    std::error_code ec = frame_errc::bad_magic;
    BOOST_TEST(parse(frame_header(frame_magic, frame_version, 1234), 1 << 20, ec) == 1234u);
    BOOST_TEST(!ec);
    BOOST_TEST(encode_frame({}).substr(0, 4) == "RFKV");
    BOOST_TEST(encode_frame({}).substr(0, 6) ==
               frame_header(frame_magic, raftkv::asio::frame_version, 0).substr(0, 6));
}

BOOST_AUTO_TEST_CASE(a_bad_magic_is_refused)
{
    std::error_code ec;
    parse(frame_header(0x52464B57, frame_version, 10), 1 << 20, ec);
    BOOST_TEST((ec == frame_errc::bad_magic));
    parse("GET / HTTP/1.1\r\n", 1 << 20, ec);
    BOOST_TEST((ec == frame_errc::bad_magic));
}

BOOST_AUTO_TEST_CASE(an_unknown_version_is_refused)
{
    std::error_code ec;
    parse(frame_header(frame_magic, 0, 10), 1 << 20, ec);
    BOOST_TEST((ec == frame_errc::unsupported_version));
    parse(frame_header(frame_magic, static_cast<std::uint16_t>(frame_version + 1), 10), 1 << 20, ec);
    BOOST_TEST((ec == frame_errc::unsupported_version));
}

BOOST_AUTO_TEST_CASE(a_version_1_frame_from_before_snapshots_is_refused)
{
    std::error_code ec;
    BOOST_TEST(parse(frame_header(frame_magic, 1, 10), 1 << 20, ec) == 0u);
    BOOST_TEST((ec == frame_errc::unsupported_version));
}

BOOST_AUTO_TEST_CASE(a_version_2_frame_from_before_follower_reads_is_refused)
{
    std::error_code ec;
    BOOST_TEST(parse(frame_header(frame_magic, 2, 10), 1 << 20, ec) == 0u);
    BOOST_TEST((ec == frame_errc::unsupported_version));
}

BOOST_AUTO_TEST_CASE(a_frame_over_the_limit_is_refused_and_one_at_it_accepted)
{
    const std::size_t max = 4096;
    std::error_code ec;
    BOOST_TEST(parse(frame_header(frame_magic, frame_version, max - frame_header_size), max, ec) ==
               max - frame_header_size);
    BOOST_TEST(!ec);
    BOOST_TEST(parse(frame_header(frame_magic, frame_version, max - frame_header_size + 1), max, ec) == 0u);
    BOOST_TEST((ec == frame_errc::frame_too_large));
    parse(frame_header(frame_magic, frame_version, 0xFFFF'FFFF), raftkv::asio::default_max_frame_bytes, ec);
    BOOST_TEST((ec == frame_errc::frame_too_large));
    BOOST_TEST(!ec.message().empty());
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(malformed_payloads)

BOOST_AUTO_TEST_CASE(every_truncation_of_a_valid_payload_is_refused)
{
    const std::string frame = encode_frame(one_of_each());
    const std::string_view payload = payload_of(frame);
    for (std::size_t n = 0; n < payload.size(); ++n)
        BOOST_TEST_REQUIRE(!decode_payload(payload.substr(0, n)), "prefix of " << n << " bytes decoded");
}

BOOST_AUTO_TEST_CASE(a_refused_payload_leaves_the_next_decode_unharmed)
{
    // The archives are kept from frame to frame: a load that threw midway must leave
    // nothing behind for the next frame on the same thread.
    const std::vector<message> batch = one_of_each();
    const std::string frame = encode_frame(batch);
    const std::string_view payload = payload_of(frame);
    for (std::size_t n : {payload.size() / 3, payload.size() / 2, payload.size() - 1}) {
        BOOST_TEST_REQUIRE(!decode_payload(payload.substr(0, n)));
        const auto decoded = decode_payload(payload);
        BOOST_TEST_REQUIRE(decoded.has_value());
        BOOST_TEST((*decoded == batch));
    }
}

BOOST_AUTO_TEST_CASE(trailing_bytes_are_refused)
{
    std::string payload(payload_of(encode_frame(one_of_each())));
    payload.push_back('\0');
    BOOST_TEST(!decode_payload(payload));
}

BOOST_AUTO_TEST_CASE(an_unknown_message_type_is_refused)
{
    const std::string empty_response(8 * 2 + 1, '\0');
    // forward_response (id, index, error): the last type.
    BOOST_TEST(decode_payload(one_message_payload(12, empty_response)).has_value());
    BOOST_TEST(!decode_payload(one_message_payload(13, empty_response)));
    BOOST_TEST(!decode_payload(one_message_payload(255, empty_response)));
}

BOOST_AUTO_TEST_CASE(a_bool_other_than_0_or_1_is_refused)
{
    BOOST_TEST(decode_payload(one_message_payload(1, std::string("\1\0", 2))).has_value());
    BOOST_TEST(!decode_payload(one_message_payload(1, std::string("\2\0", 2))));
    BOOST_TEST(!decode_payload(one_message_payload(1, std::string("\0\xFF", 2))));
}

BOOST_AUTO_TEST_CASE(a_snapshot_flag_other_than_0_or_1_is_refused)
{
    const auto append_response_with_flag = [](char flag) {
        return one_message_payload(3, std::string(1 + 8 * 4, '\0') + flag);
    };
    BOOST_TEST(decode_payload(append_response_with_flag('\1')).has_value());
    BOOST_TEST(!decode_payload(append_response_with_flag('\2')));

    const auto response_with_done = [](char done) {
        return one_message_payload(8, std::string(8 * 3, '\0') + done);
    };
    BOOST_TEST(decode_payload(response_with_done('\1')).has_value());
    BOOST_TEST(!decode_payload(response_with_done('\xFF')));
}

BOOST_AUTO_TEST_CASE(a_read_index_success_flag_other_than_0_or_1_is_refused)
{
    const auto response_with_success = [](char success) {
        return one_message_payload(10, std::string(8 * 2, '\0') + success);
    };
    BOOST_TEST(decode_payload(response_with_success('\0')).has_value());
    BOOST_TEST(decode_payload(response_with_success('\1')).has_value());
    BOOST_TEST(!decode_payload(response_with_success('\2')));
}

BOOST_AUTO_TEST_CASE(an_append_response_in_the_version_1_layout_is_refused)
{
    // success, match_index, reject_index, conflict_index, conflict_term: no snapshot_needed.
    BOOST_TEST(!decode_payload(one_message_payload(3, std::string(1 + 8 * 4, '\0'))));
}

BOOST_AUTO_TEST_CASE(an_unknown_entry_type_is_refused)
{
    const auto append_with_entry_type = [](std::uint8_t type) {
        std::string body;
        put_le(body, 0, 8 * 3); // prev_index, prev_term, commit
        put_le(body, 1, 8);     // one entry
        put_le(body, 5, 8);     // term
        put_le(body, 6, 8);     // index
        put_le(body, type, 1);
        put_le(body, 0, 8); // empty data
        return one_message_payload(2, body);
    };
    BOOST_TEST(decode_payload(append_with_entry_type(2)).has_value());
    BOOST_TEST(!decode_payload(append_with_entry_type(3)));
}

BOOST_AUTO_TEST_CASE(huge_counts_and_lengths_are_refused_without_allocating_them)
{
    std::string huge_batch;
    put_le(huge_batch, 0x7FFF'FFFF'FFFF'FFFFull, 8);
    huge_batch.append(64, '\0');
    BOOST_TEST(!decode_payload(huge_batch));

    std::string huge_entries;
    put_le(huge_entries, 0, 8 * 3);
    put_le(huge_entries, 0xFFFF'FFFF'FFFFull, 8);
    huge_entries.append(64, '\0');
    BOOST_TEST(!decode_payload(one_message_payload(2, huge_entries)));

    std::string huge_string;
    put_le(huge_string, 0, 8 * 3);
    put_le(huge_string, 1, 8);  // one entry
    put_le(huge_string, 0, 17); // term, index, type
    put_le(huge_string, 1ull << 40, 8);
    huge_string.append(64, 'x');
    BOOST_TEST(!decode_payload(one_message_payload(2, huge_string)));

    std::string huge_members;
    put_le(huge_members, 0, 8 * 2); // meta index, term
    put_le(huge_members, 0xFFFF'FFFF'FFFF'FFFFull, 8);
    huge_members.append(64, '\0');
    BOOST_TEST(!decode_payload(one_message_payload(7, huge_members)));

    std::string huge_chunk;
    put_le(huge_chunk, 0, 8 * 2); // meta index, term
    put_le(huge_chunk, 0, 8);     // no members
    put_le(huge_chunk, 0, 8 * 2); // transfer, offset
    put_le(huge_chunk, 1ull << 40, 8);
    huge_chunk.append(64, 'x');
    BOOST_TEST(!decode_payload(one_message_payload(7, huge_chunk)));
}

BOOST_AUTO_TEST_CASE(random_payloads_never_crash_and_decode_only_canonically)
{
    std::mt19937_64 gen(20240601);
    std::uniform_int_distribution<int> length(0, 300);
    std::uniform_int_distribution<int> byte(0, 255);
    for (int i = 0; i < 20000; ++i) {
        std::string payload(static_cast<std::size_t>(length(gen)), '\0');
        for (char& c : payload)
            c = static_cast<char>(byte(gen));
        // Small counts make the decoder go deeper than a random first u64 would.
        if (i % 2 == 0 && payload.size() >= 8)
            payload[0] = static_cast<char>(i % 5), std::fill_n(payload.begin() + 1, 7, '\0');
        check_garbage(payload);
    }
}

BOOST_AUTO_TEST_CASE(mutated_valid_payloads_never_crash_and_decode_only_canonically)
{
    const std::string frame = encode_frame(one_of_each());
    const std::string valid(payload_of(frame));
    std::mt19937_64 gen(7);
    std::uniform_int_distribution<std::size_t> position(0, valid.size() - 1);
    std::uniform_int_distribution<int> byte(0, 255);
    std::uniform_int_distribution<int> edits(1, 4);
    int decoded = 0;
    for (int i = 0; i < 20000; ++i) {
        std::string payload = valid;
        for (int e = edits(gen); e > 0; --e)
            payload[position(gen)] = static_cast<char>(byte(gen));
        if (i % 3 == 0)
            payload.resize(position(gen));
        check_garbage(payload);
        decoded += decode_payload(payload).has_value();
    }
    BOOST_TEST_MESSAGE(decoded << " of 20000 mutated payloads were still valid");
}

BOOST_AUTO_TEST_SUITE_END()
