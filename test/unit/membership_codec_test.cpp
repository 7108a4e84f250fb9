#include <raftkv/membership.hpp>

#define BOOST_TEST_MODULE membership_codec
#include <boost/test/unit_test.hpp>

#include <cstdint>
#include <optional>
#include <string>

using raftkv::decode_membership;
using raftkv::encode_membership;
using raftkv::membership;

namespace {

/// A joint configuration with learners and info, binary info included.
membership full()
{
    membership m;
    m.voters = {1, 2, 4};
    m.outgoing = {1, 2, 3};
    m.learners = {5, 0xffffffffffffffffu};
    m.info = {{1, "10.0.0.1:7000"}, {3, ""}, {5, std::string("a\0\xff", 3)}};
    return m;
}

void put_u32(std::string& out, std::uint32_t v)
{
    for (int k = 0; k < 4; ++k)
        out.push_back(static_cast<char>((v >> (8 * k)) & 0xff));
}

} // namespace

BOOST_AUTO_TEST_CASE(round_trips_voters_outgoing_learners_and_info)
{
    const std::optional<membership> m = decode_membership(encode_membership(full()));
    BOOST_TEST_REQUIRE(m.has_value());
    BOOST_TEST((*m == full()));
    BOOST_TEST(m->joint());
    BOOST_TEST(m->info.at(5) == std::string("a\0\xff", 3));
}

BOOST_AUTO_TEST_CASE(round_trips_the_empty_membership)
{
    const std::string bytes = encode_membership(membership{});
    // The version, then four zero counts.
    BOOST_TEST(bytes == std::string("\x01", 1) + std::string(16, '\0'));
    const std::optional<membership> m = decode_membership(bytes);
    BOOST_TEST_REQUIRE(m.has_value());
    BOOST_TEST(m->empty());
    BOOST_TEST(m->info.empty());
}

BOOST_AUTO_TEST_CASE(starts_with_the_version_byte)
{
    BOOST_TEST(static_cast<unsigned char>(encode_membership(full())[0]) ==
               raftkv::membership_encoding_version);
}

BOOST_AUTO_TEST_CASE(rejects_every_truncation)
{
    const std::string bytes = encode_membership(full());
    for (std::size_t n = 0; n < bytes.size(); ++n)
        BOOST_TEST(!decode_membership(bytes.substr(0, n)).has_value(), "a prefix of " << n << " bytes");
}

BOOST_AUTO_TEST_CASE(rejects_padding)
{
    BOOST_TEST(!decode_membership(encode_membership(full()) + '\0').has_value());
    BOOST_TEST(!decode_membership(encode_membership(membership{}) + "x").has_value());
}

BOOST_AUTO_TEST_CASE(rejects_other_versions)
{
    for (const int version : {0, 2, 0xff}) {
        std::string bytes = encode_membership(full());
        bytes[0] = static_cast<char>(version);
        BOOST_TEST(!decode_membership(bytes).has_value(), "version " << version);
    }
}

BOOST_AUTO_TEST_CASE(rejects_node_id_zero_wherever_it_appears)
{
    membership voter = full();
    voter.voters.push_back(raftkv::no_node);
    membership outgoing = full();
    outgoing.outgoing.front() = raftkv::no_node;
    membership learner = full();
    learner.learners.back() = raftkv::no_node;
    membership info = full();
    info.info[raftkv::no_node] = "zero";
    for (const membership* m : {&voter, &outgoing, &learner, &info})
        BOOST_TEST(!decode_membership(encode_membership(*m)).has_value());
}

BOOST_AUTO_TEST_CASE(rejects_counts_and_lengths_past_the_end)
{
    // A voter count far larger than the bytes that follow: refused before allocating.
    std::string huge_count(1, '\x01');
    put_u32(huge_count, 0xffffffffu);
    BOOST_TEST(!decode_membership(huge_count).has_value());

    // An info entry whose length runs past the end.
    std::string long_info(1, '\x01');
    for (int k = 0; k < 3; ++k)
        put_u32(long_info, 0);
    put_u32(long_info, 1);
    long_info += std::string("\x07\0\0\0\0\0\0\0", 8);
    put_u32(long_info, 5);
    long_info += "abc";
    BOOST_TEST(!decode_membership(long_info).has_value());
    long_info += "de";
    BOOST_TEST(decode_membership(long_info).has_value());
}

BOOST_AUTO_TEST_CASE(rejects_info_out_of_id_order_or_repeated)
{
    // Info for ids `a` then `b`, with no voters, outgoing or learners.
    const auto two_infos = [](std::uint64_t a, std::uint64_t b) {
        std::string s(1, '\x01');
        for (int k = 0; k < 3; ++k)
            put_u32(s, 0);
        put_u32(s, 2);
        for (std::uint64_t id : {a, b}) {
            put_u32(s, static_cast<std::uint32_t>(id));
            put_u32(s, static_cast<std::uint32_t>(id >> 32));
            put_u32(s, 1);
            s += "x";
        }
        return s;
    };
    BOOST_TEST(decode_membership(two_infos(3, 7)).has_value());
    // Each decoded to a configuration that encodes differently; a repeated id lost an info.
    BOOST_TEST(!decode_membership(two_infos(7, 3)).has_value());
    BOOST_TEST(!decode_membership(two_infos(7, 7)).has_value());
}

BOOST_AUTO_TEST_CASE(rejects_a_member_listed_twice_or_both_voter_and_learner)
{
    // encode_membership() writes whatever it is given: these are what a forger could send.
    membership twice_a_voter;
    twice_a_voter.voters = {1, 2, 2};
    BOOST_TEST(!decode_membership(encode_membership(twice_a_voter)).has_value());

    membership twice_outgoing;
    twice_outgoing.voters = {1, 2, 3};
    twice_outgoing.outgoing = {1, 1, 2};
    BOOST_TEST(!decode_membership(encode_membership(twice_outgoing)).has_value());

    membership twice_a_learner;
    twice_a_learner.voters = {1};
    twice_a_learner.learners = {4, 4};
    BOOST_TEST(!decode_membership(encode_membership(twice_a_learner)).has_value());

    membership voting_learner;
    voting_learner.voters = {1, 2};
    voting_learner.learners = {2};
    BOOST_TEST(!decode_membership(encode_membership(voting_learner)).has_value());

    // Leaving the outgoing voters for the learners, as a joint demotion does, is allowed.
    membership demoting;
    demoting.voters = {1, 2};
    demoting.outgoing = {1, 2, 3};
    demoting.learners = {3};
    BOOST_TEST(decode_membership(encode_membership(demoting)).has_value());
}
