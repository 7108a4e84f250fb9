#include <raftkv/sim/cluster.hpp>

#define BOOST_TEST_MODULE sim_agreement
#include <boost/test/unit_test.hpp>

#include "sim/support.hpp"

#include <cstdint>
#include <map>
#include <vector>

// Log agreement under failures, after MIT 6.824's lab 2B tests.

using namespace raftkv;
using namespace raftkv::sim;
using namespace raftkv::sim::testing;

namespace {
node_id other_than(const std::vector<node_id>& ids, std::initializer_list<node_id> not_these)
{
    for (node_id id : ids) {
        if (std::find(not_these.begin(), not_these.end(), id) == not_these.end())
            return id;
    }
    return no_node;
}
} // namespace

BOOST_AUTO_TEST_CASE(basic_agreement_commits_on_every_node_in_order)
{
    kv_cluster c{{.nodes = 3, .seed = 11}};
    BOOST_TEST_REQUIRE(wait_leader(c).has_value());
    index_t prev = 0;
    for (std::size_t i = 1; i <= 5; ++i) {
        const index_t index = one(c, command(i), 3, false);
        BOOST_TEST_REQUIRE(index > prev);
        prev = index;
    }
}

BOOST_AUTO_TEST_CASE(agreement_continues_after_a_follower_crashes_and_stops_without_a_quorum)
{
    kv_cluster c{{.nodes = 3, .seed = 12}};
    BOOST_TEST_REQUIRE(one(c, command(101), 3) > 0u);
    const node_id l = *c.leader();
    const node_id f1 = other_than(c.ids(), {l});
    c.crash(f1);
    BOOST_TEST(one(c, command(102), 2) > 0u);
    BOOST_TEST(one(c, command(103), 2) > 0u);
    const node_id f2 = other_than(c.ids(), {l, f1});
    c.crash(f2);
    const propose_result r = c.propose(l, command(104));
    BOOST_TEST_REQUIRE(!r.ec);
    c.run_for(2s);
    BOOST_TEST(n_committed(c, r.index).nodes == 0u);
}

BOOST_AUTO_TEST_CASE(agreement_continues_after_the_leader_crashes_and_stops_without_a_quorum)
{
    kv_cluster c{{.nodes = 3, .seed = 13}};
    BOOST_TEST_REQUIRE(one(c, command(101), 3) > 0u);
    const node_id l1 = *c.leader();
    c.crash(l1);
    BOOST_TEST(one(c, command(102), 2) > 0u);
    BOOST_TEST(one(c, command(103), 2) > 0u);
    const node_id l2 = *c.leader();
    c.crash(l2);
    std::vector<index_t> proposed;
    for (node_id id : c.ids()) {
        if (c.is_up(id)) {
            if (const auto r = c.propose(id, command(104)); !r.ec)
                proposed.push_back(r.index);
        }
    }
    c.run_for(2s);
    for (index_t i : proposed)
        BOOST_TEST(n_committed(c, i).nodes == 0u);
}

BOOST_AUTO_TEST_CASE(a_reconnected_follower_catches_up_fail_agree)
{
    kv_cluster c{{.nodes = 3, .seed = 14}};
    BOOST_TEST_REQUIRE(one(c, command(101), 3) > 0u);
    const node_id f = other_than(c.ids(), {*c.leader()});
    c.isolate(f);
    for (std::size_t i = 102; i <= 105; ++i)
        BOOST_TEST_REQUIRE(one(c, command(i), 2) > 0u);
    c.heal();
    BOOST_TEST(one(c, command(106), 3) > 0u);
    BOOST_TEST(one(c, command(107), 3) > 0u);
}

BOOST_AUTO_TEST_CASE(a_leader_without_a_majority_commits_nothing_fail_no_agree)
{
    kv_cluster c{{.nodes = 5, .seed = 15}};
    BOOST_TEST_REQUIRE(one(c, command(10), 5) > 0u);
    const node_id l = *c.leader();
    std::vector<node_id> cut;
    for (node_id id : c.ids()) {
        if (id != l && cut.size() < 3)
            cut.push_back(id);
    }
    for (node_id id : cut)
        c.isolate(id);
    const propose_result r = c.propose(l, command(20));
    BOOST_TEST_REQUIRE(!r.ec);
    c.run_for(2s);
    BOOST_TEST(n_committed(c, r.index).nodes == 0u);
    c.heal();
    BOOST_TEST(one(c, command(30), 5) > 0u);
    BOOST_TEST(one(c, command(1000), 5) > 0u);
}

BOOST_AUTO_TEST_CASE(concurrent_proposals_all_commit_at_distinct_indexes)
{
    kv_cluster c{{.nodes = 3, .seed = 16}};
    BOOST_TEST_REQUIRE(one(c, command(1), 3) > 0u);
    const node_id l = *c.leader();
    const term_t term = c.node(l).term();
    std::map<index_t, std::string> proposed;
    for (std::size_t i = 0; i < 20; ++i) {
        const propose_result r = c.propose(l, command(100 + i));
        BOOST_TEST_REQUIRE(!r.ec);
        BOOST_TEST(r.term == term);
        BOOST_TEST_REQUIRE(proposed.emplace(r.index, command(100 + i)).second);
    }
    BOOST_TEST_REQUIRE(wait_converged(c));
    for (const auto& [index, cmd] : proposed) {
        const auto n = n_committed(c, index);
        BOOST_TEST(n.nodes == 3u);
        BOOST_TEST((n.data == cmd));
    }
}

BOOST_AUTO_TEST_CASE(a_partitioned_leader_rejoins_and_its_uncommitted_entries_are_discarded)
{
    kv_cluster c{{.nodes = 3, .seed = 17}};
    BOOST_TEST_REQUIRE(one(c, command(101), 3) > 0u);
    const node_id l1 = *c.leader();
    c.isolate(l1);
    std::vector<propose_result> stale;
    for (std::size_t i = 102; i <= 104; ++i)
        stale.push_back(c.propose(l1, command(i)));
    for (const auto& r : stale)
        BOOST_TEST_REQUIRE(!r.ec);
    BOOST_TEST_REQUIRE(one(c, command(103), 2) > 0u);
    const node_id l2 = *c.leader();
    BOOST_TEST_REQUIRE(l2 != l1);
    // The new leader is cut off too; the old one returns to the remaining follower.
    c.partition({{l2}, {l1, other_than(c.ids(), {l1, l2})}});
    BOOST_TEST(one(c, command(104), 2) > 0u);
    c.heal();
    BOOST_TEST(one(c, command(105), 3) > 0u);
    BOOST_TEST_REQUIRE(wait_converged(c));
    for (const auto& r : stale) {
        const auto n = n_committed(c, r.index);
        BOOST_TEST(n.nodes == 3u);
        BOOST_TEST(c.store(l1).term_at(r.index) != r.term); // overwritten by a later leader
    }
}

// Two rounds of divergence of 60 entries each: a leader and a follower build a long
// uncommitted suffix while the majority commits another. The third leader then brings
// all four stragglers back; the conflict hints must let it skip each divergent term in a
// round trip or two, not one entry per trip. (Bursts of pipelined appends also draw
// rejections when the network reorders them, so only the third leader's are counted.)
BOOST_AUTO_TEST_CASE(leader_backs_up_over_long_divergent_logs_in_few_round_trips)
{
    kv_cluster c{{.nodes = 5, .seed = 18}};
    BOOST_TEST_REQUIRE(one(c, command(0), 5) > 0u);
    const auto diverge = [&](node_id leader, node_id follower, std::size_t base) {
        std::vector<node_id> rest;
        for (node_id id : c.ids()) {
            if (id != leader && id != follower)
                rest.push_back(id);
        }
        c.partition({{leader, follower}, rest});
        for (std::size_t i = 0; i < 60; ++i)
            BOOST_TEST_REQUIRE(!c.propose(leader, command(base + i)).ec);
        return rest;
    };
    const node_id l1 = *c.leader();
    const node_id f1 = other_than(c.ids(), {l1});
    std::vector<node_id> rest = diverge(l1, f1, 1000);
    c.run_until([&] { return c.leader() && *c.leader() != l1; }, 5s);
    const node_id l2 = *c.leader();
    for (std::size_t i = 0; i < 60; ++i)
        BOOST_TEST_REQUIRE(!c.propose(l2, command(2000 + i)).ec);
    BOOST_TEST_REQUIRE(commit_at(c, l2, command(2100), 3) > 0u);
    // Round two: l2 and one of its followers diverge; l1 and f1 join the other three.
    const node_id f2 = other_than(rest, {l2});
    rest = diverge(l2, f2, 3000);
    c.run_until([&] { return c.leader() && *c.leader() != l2; }, 10s);
    const node_id l3 = *c.leader();
    const term_t t3 = c.node(l3).term();
    std::map<node_id, int> rejections;
    c.on_deliver([&](const message& m) {
        const auto* r = std::get_if<append_response>(&m.body);
        if (r && !r->success && m.to == l3 && m.term == t3)
            ++rejections[m.from];
    });
    BOOST_TEST_REQUIRE(commit_at(c, l3, command(4000), 3) > 0u);
    c.heal();
    BOOST_TEST_REQUIRE(one(c, command(5000), 5) > 0u);
    BOOST_TEST_REQUIRE(wait_converged(c));
    int total = 0;
    for (const auto& [id, n] : rejections) {
        BOOST_TEST_MESSAGE("node " << id << " rejected " << n << " append_requests of leader " << l3);
        BOOST_TEST(n <= 4);
        total += n;
    }
    BOOST_TEST(total <= 12); // one entry per round trip would take about 240
}

BOOST_AUTO_TEST_CASE(agreement_costs_a_bounded_number_of_append_requests)
{
    kv_cluster c{{.nodes = 3, .seed = 19}};
    BOOST_TEST_REQUIRE(one(c, command(1), 3) > 0u);
    std::uint64_t appends = 0;
    c.on_deliver(
        [&](const message& m) { appends += std::holds_alternative<append_request>(m.body) ? 1 : 0; });
    const node_id l = *c.leader();
    for (std::size_t i = 0; i < 10; ++i)
        BOOST_TEST_REQUIRE(commit_at(c, l, command(10 + i), 3) > 0u);
    BOOST_TEST_MESSAGE("10 agreements took " << appends << " append_requests");
    BOOST_TEST(appends <= 10u * 2 * 3); // per command and follower: the entry, the commit, a spare
}
