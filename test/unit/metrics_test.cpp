#include <raftkv/metrics.hpp>

#define BOOST_TEST_MODULE raftkv_metrics
#include <boost/test/unit_test.hpp>

#include "support/manual_cluster.hpp"

#include <string>

namespace {

using raftkv::log2_histogram;
using raftkv::node_metrics;
using raftkv::peer_metrics;
using namespace raftkv::test;

} // namespace

BOOST_AUTO_TEST_CASE(log2_histogram_buckets_hold_values_up_to_their_power_of_two)
{
    BOOST_TEST(log2_histogram::bucket_of(0) == 0u);
    BOOST_TEST(log2_histogram::bucket_of(1) == 0u);
    BOOST_TEST(log2_histogram::bucket_of(2) == 1u);
    BOOST_TEST(log2_histogram::bucket_of(3) == 2u);
    BOOST_TEST(log2_histogram::bucket_of(4) == 2u);
    BOOST_TEST(log2_histogram::bucket_of(5) == 3u);
    BOOST_TEST(log2_histogram::bucket_of(1024) == 10u);
    BOOST_TEST(log2_histogram::bucket_of(1025) == 11u);
    BOOST_TEST(log2_histogram::bucket_of(~std::uint64_t{0}) == 63u);
    for (std::size_t k = 0; k < 63; ++k) {
        BOOST_TEST(log2_histogram::bucket_of(log2_histogram::upper_bound(k)) == k);
        BOOST_TEST(log2_histogram::bucket_of(log2_histogram::upper_bound(k) + 1) == k + 1);
    }

    log2_histogram h;
    for (std::uint64_t v : {1u, 2u, 3u, 4u, 100u})
        h.record(v);
    BOOST_TEST(h.count() == 5u);
    BOOST_TEST(h.sum == 110u);
    BOOST_TEST(h.buckets[2] == 2u); // 3 and 4
    BOOST_TEST(h.buckets[7] == 1u); // 100 <= 128
}

BOOST_AUTO_TEST_CASE(leader_counts_committed_proposals_and_reports_follower_progress)
{
    cluster c(3, true, plain_raft());
    const node_id leader = c.elect(1);
    for (int k = 0; k < 5; ++k)
        BOOST_TEST_REQUIRE(!c.propose(leader, "cmd" + std::to_string(k)).ec);
    c.tick_all(3); // heartbeats carry the commit index to the followers

    const node_metrics m = c.node(leader).metrics();
    BOOST_TEST(m.proposals_committed == 5u);
    BOOST_TEST(m.proposals_dropped == 0u);
    BOOST_TEST(m.elections_won == 1u);
    BOOST_TEST(m.leader_changes == 1u);
    BOOST_TEST(m.apply_batch_entries.count() >= 1u);
    BOOST_TEST(m.apply_batch_entries.sum == c.node(leader).applied_index());
    BOOST_TEST_REQUIRE(m.peers.size() == 2u);
    for (const peer_metrics& p : m.peers) {
        BOOST_TEST((p.id == 2 || p.id == 3));
        BOOST_TEST(p.match == c.node(leader).last_index());
        BOOST_TEST(p.next == p.match + 1);
        BOOST_TEST((p.state == peer_metrics::mode::replicate));
        BOOST_TEST(p.inflight_messages == 0u);
    }

    // A follower knows the leader, reports no peers, and counts what it refuses.
    const node_metrics f = c.node(2).metrics();
    BOOST_TEST(f.leader_changes == 1u);
    BOOST_TEST(f.elections_won == 0u);
    BOOST_TEST(f.peers.empty());
    BOOST_TEST(f.apply_batch_entries.sum == c.node(2).applied_index());
    std::string cmd = "refused";
    BOOST_TEST((c.node(2).propose(cmd).ec == raftkv::errc::not_leader));
    BOOST_TEST(c.node(2).metrics().proposals_refused_not_leader == 1u);
}

BOOST_AUTO_TEST_CASE(reads_count_leader_rounds_and_follower_requests)
{
    cluster c(3, true, plain_raft());
    const node_id leader = c.elect(1);
    BOOST_TEST_REQUIRE(!c.propose(leader, "x").ec);
    BOOST_TEST(!c.node(leader).read_index(1));
    c.deliver_all();
    BOOST_TEST(c.node(leader).metrics().read_index_rounds >= 1u);
    BOOST_TEST(!c.node(2).read_index(2));
    c.deliver_all();
    BOOST_TEST(c.node(2).metrics().follower_read_requests == 1u);
}
