#include <raftkv/sim/cluster.hpp>

#define BOOST_TEST_MODULE sim_election
#include <boost/test/unit_test.hpp>

#include "sim/support.hpp"

#include <set>

using namespace raftkv;
using namespace raftkv::sim;
using namespace raftkv::sim::testing;

namespace {
// Every live node that is connected to the leader agrees on its term.
bool agree_on_term(kv_cluster& c, node_id leader)
{
    for (node_id id : c.ids()) {
        if (c.is_up(id) && c.net().connected(leader, id) && c.node(id).term() != c.node(leader).term())
            return false;
    }
    return true;
}
} // namespace

BOOST_AUTO_TEST_CASE(initial_election_picks_one_leader_and_keeps_it_without_failures)
{
    kv_cluster c{{.nodes = 3, .seed = 1}};
    const auto l = wait_leader(c);
    BOOST_TEST_REQUIRE(l.has_value());
    c.run_for(500ms);
    BOOST_TEST(agree_on_term(c, *l));
    const term_t term = c.node(*l).term();
    BOOST_TEST(term >= 1u);
    c.run_for(2s);
    BOOST_TEST((c.leader() == l));
    BOOST_TEST(c.node(*l).term() == term);
}

BOOST_AUTO_TEST_CASE(a_new_leader_is_elected_when_the_leader_is_cut_off)
{
    kv_cluster c{{.nodes = 3, .seed = 2}};
    const auto l1 = wait_leader(c);
    BOOST_TEST_REQUIRE(l1.has_value());
    c.isolate(*l1);
    c.run_until([&] { return c.leader() && *c.leader() != *l1; }, 5s);
    const auto l2 = c.leader();
    BOOST_TEST_REQUIRE((l2 && *l2 != *l1));
    // The old leader rejoins: one leader remains, of the highest term.
    c.heal();
    c.run_for(1s);
    const auto l3 = c.leader();
    BOOST_TEST_REQUIRE(l3.has_value());
    BOOST_TEST(agree_on_term(c, *l3));
    // With two nodes cut off, no quorum: no leader is elected.
    c.isolate(*l3);
    c.isolate(*l3 == 1 ? 2 : 1);
    c.run_for(2s);
    for (node_id id : c.ids())
        BOOST_TEST(c.node(id).role() != role::leader);
    // A quorum returns: a leader is elected again.
    c.heal();
    BOOST_TEST(wait_leader(c).has_value());
}

BOOST_AUTO_TEST_CASE(no_leader_without_a_quorum_and_a_stale_leader_steps_down)
{
    kv_cluster c{{.nodes = 5, .seed = 3}};
    const auto l = wait_leader(c);
    BOOST_TEST_REQUIRE(l.has_value());
    std::vector<node_id> minority{*l}, majority;
    for (node_id id : c.ids()) {
        if (id == *l)
            continue;
        (minority.size() < 2 ? minority : majority).push_back(id);
    }
    c.partition({minority, majority});
    c.crash(majority[0]);
    c.crash(majority[1]);
    c.run_for(3s);
    // CheckQuorum makes the old leader step down; nobody can win with two of five votes.
    for (node_id id : c.ids())
        BOOST_TEST((!c.is_up(id) || c.node(id).role() != role::leader));
    // The majority side gets its three nodes back and elects a leader of its own.
    c.restart(majority[0]);
    c.restart(majority[1]);
    const auto l2 = wait_leader(c);
    BOOST_TEST_REQUIRE(l2.has_value());
    BOOST_TEST(*l2 != *l);
}

BOOST_AUTO_TEST_CASE(many_elections_under_repeated_leader_isolation_never_split_a_term)
{
    kv_cluster c{{.nodes = 7, .seed = 4}};
    for (int round = 0; round < 10; ++round) {
        const auto l = wait_leader(c);
        BOOST_TEST_REQUIRE(l.has_value());
        c.isolate(*l);
        c.run_for(300ms);
        c.heal();
    }
    // Election safety is checked after every step; here we check elections happened.
    BOOST_TEST(c.invariants().leaders().size() >= 10u);
}

BOOST_AUTO_TEST_CASE(a_rejoining_partitioned_node_does_not_disrupt_a_healthy_leader)
{
    kv_cluster c{{.nodes = 3, .seed = 5}};
    const auto l = wait_leader(c);
    BOOST_TEST_REQUIRE(l.has_value());
    const node_id out = *l == 3 ? 1 : 3;
    c.isolate(out);
    c.run_for(3s); // `out` times out again and again; PreVote keeps its term
    const term_t term = c.node(*l).term();
    c.heal();
    c.run_for(1s);
    BOOST_TEST((c.leader() == l));
    BOOST_TEST(c.node(*l).term() == term);
}
