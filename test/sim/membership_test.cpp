#include "support.hpp"

#include <raftkv/sim/kv_workload.hpp>
#include <raftkv/sim/linearizability.hpp>
#include <raftkv/sim/sweep.hpp>

#define BOOST_TEST_MODULE sim_membership
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <chrono>
#include <string>
#include <vector>

// Membership changes in the simulator, each while clients read and write: the cluster
// grows, shrinks, replaces a voter through a joint configuration, removes its leader,
// brings a learner up from a snapshot, holds a change it cannot commit through a
// partition, and ignores a removed node that comes back. Every step is checked by the
// invariant checker (including the configuration invariants); each scenario ends by
// settling the cluster and checking that every acknowledged write is in the final log,
// that the state machines agree and that the client history is linearizable.

using namespace raftkv;
using namespace raftkv::sim;
using namespace raftkv::sim::testing;
using kind = config_change::kind;

namespace {

cluster_config config(std::size_t nodes, std::size_t spares, std::uint64_t seed)
{
    cluster_config cfg{.nodes = nodes, .spares = spares, .seed = seed};
    cfg.node_options.snapshot_entries = 20;
    cfg.node_options.snapshot_catchup_entries = 5;
    cfg.node_options.promote_max_lag = 5;
    return cfg;
}

// Proposes `changes` at whichever node leads until one accepts them, then waits until the
// configuration they lead to is committed (and a joint one left). Returns the index of
// the change, 0 if it never went through.
index_t change(kv_cluster& c, const std::vector<config_change>& changes,
               std::chrono::microseconds timeout = 10s)
{
    index_t at = 0;
    const bool proposed = c.run_until(
        [&] {
            const propose_result r = c.change_membership(changes);
            at = r.ec ? 0 : r.index;
            return !r.ec;
        },
        timeout);
    if (!proposed)
        return 0;
    const bool done = c.run_until(
        [&] {
            const auto l = c.leader();
            if (!l)
                return false;
            const auto& n = c.node(*l);
            return n.commit_index() >= at && n.members_index() <= n.commit_index() && !n.members().joint();
        },
        timeout);
    return done ? at : 0;
}

std::vector<node_id> sorted(std::vector<node_id> v)
{
    std::sort(v.begin(), v.end());
    return v;
}

// Stops the clients, lets the cluster settle and checks what every scenario promises.
void finish(kv_cluster& c, kv_workload<>& w)
{
    w.stop();
    const bool settled = c.run_until([&] { return sim::detail::settled(c, w); }, 30s);
    BOOST_TEST_REQUIRE(settled, "the cluster did not settle:\n" << sim::detail::node_states(c));
    BOOST_TEST(sim::detail::check_acknowledged(c, w) == "");
    BOOST_TEST(w.stats().completed > 10u);
    const check_result lin = check_kv_history(w.history(), std::chrono::milliseconds(5000));
    BOOST_TEST((lin.outcome != check_outcome::illegal), lin.explanation);
}

} // namespace

BOOST_AUTO_TEST_CASE(the_cluster_grows_from_three_to_five_while_clients_write)
{
    kv_cluster c{config(3, 2, 11)};
    kv_workload<> w{c, {.clients = 3}};
    BOOST_TEST_REQUIRE(wait_leader(c).has_value());
    w.start();
    c.run_for(300ms);
    for (node_id id : {4, 5}) {
        BOOST_TEST_REQUIRE(change(c, {{kind::add_learner, id, {}}}) != 0u);
        BOOST_TEST(c.members().is_learner(id));
        c.run_for(200ms);
        // Promotion is refused (learner_behind) until the learner caught up: change() retries.
        BOOST_TEST_REQUIRE(change(c, {{kind::add_voter, id, {}}}) != 0u);
    }
    BOOST_TEST(sorted(c.members().voters) == (std::vector<node_id>{1, 2, 3, 4, 5}));
    c.run_for(500ms);
    finish(c, w);
}

BOOST_AUTO_TEST_CASE(the_cluster_shrinks_from_five_to_three_and_commits_without_the_removed)
{
    kv_cluster c{config(5, 0, 12)};
    kv_workload<> w{c, {.clients = 3}};
    BOOST_TEST_REQUIRE(wait_leader(c).has_value());
    w.start();
    c.run_for(300ms);
    std::vector<node_id> removed;
    for (node_id id = 5; removed.size() < 2; --id) {
        if (id == *c.leader())
            continue;
        BOOST_TEST_REQUIRE(change(c, {{kind::remove, id, {}}}) != 0u);
        removed.push_back(id);
    }
    BOOST_TEST(c.members().voters.size() == 3u);
    // The removed nodes no longer count: with them down, the three commit on their own.
    for (node_id id : removed)
        c.crash(id);
    BOOST_TEST(one(c, command(1), 3) != 0u);
    for (node_id id : removed)
        c.restart(id); // and back up, they do not disturb
    c.run_for(1s);
    finish(c, w);
}

BOOST_AUTO_TEST_CASE(a_voter_is_replaced_in_one_step_through_a_joint_configuration)
{
    kv_cluster c{config(3, 1, 13)};
    kv_workload<> w{c, {.clients = 3}};
    const node_id l = *wait_leader(c);
    const node_id old = l == 3 ? 2 : 3;
    w.start();
    c.run_for(300ms);
    bool saw_joint = false;
    c.on_apply([&](node_id n, index_t, term_t, kv_result&) {
        if (c.is_up(n) && c.node(n).members().joint())
            saw_joint = true;
    });
    BOOST_TEST_REQUIRE(change(c, {{kind::remove, old, {}}, {kind::add_voter, 4, {}}}) != 0u);
    BOOST_TEST(saw_joint);
    std::vector<node_id> expected{1, 2, 3};
    std::erase(expected, old);
    expected.push_back(4);
    BOOST_TEST(sorted(c.members().voters) == expected);
    BOOST_TEST(c.members().outgoing.empty());
    c.run_for(500ms);
    finish(c, w);
}

BOOST_AUTO_TEST_CASE(a_leader_that_removes_itself_hands_over_once_the_change_commits)
{
    kv_cluster c{config(3, 0, 14)};
    kv_workload<> w{c, {.clients = 3}};
    const node_id l = *wait_leader(c);
    w.start();
    c.run_for(300ms);
    BOOST_TEST_REQUIRE(change(c, {{kind::remove, l, {}}}) != 0u);
    BOOST_TEST_REQUIRE(c.run_until([&] { return c.leader() && *c.leader() != l; }, 2s));
    BOOST_TEST(!c.members().contains(l));
    BOOST_TEST(c.node(l).role() != role::leader);
    c.run_for(1s);
    BOOST_TEST(*c.leader() != l); // it never comes back
    finish(c, w);
}

BOOST_AUTO_TEST_CASE(a_learner_catches_up_from_a_snapshot_that_carries_the_configuration)
{
    cluster_config cfg = config(3, 1, 15);
    cfg.node_options.snapshot_entries = 10;
    cfg.node_options.snapshot_catchup_entries = 0;
    kv_cluster c{cfg};
    kv_workload<> w{c, {.clients = 3}};
    BOOST_TEST_REQUIRE(wait_leader(c).has_value());
    for (std::size_t i = 0; i < 40; ++i)
        BOOST_TEST_REQUIRE(one(c, command(i), 3) != 0u);
    BOOST_TEST_REQUIRE(c.store(*c.leader()).first_index() > 1u); // compacted: 4 needs a snapshot
    w.start();
    const auto installs = c.stats().snapshots_installed;
    BOOST_TEST_REQUIRE(change(c, {{kind::add_learner, 4, {}}}) != 0u);
    BOOST_TEST_REQUIRE(c.run_until([&] { return c.stats().snapshots_installed > installs; }, 5s));
    // The snapshot carried the configuration: 4 knows it is a learner of the cluster.
    BOOST_TEST_REQUIRE(c.run_until([&] { return c.node(4).members().is_learner(4); }, 5s));
    BOOST_TEST(c.store(4).first_index() > 1u);
    BOOST_TEST_REQUIRE(change(c, {{kind::add_voter, 4, {}}}) != 0u);
    BOOST_TEST(c.members().is_voter(4));
    c.run_for(500ms);
    finish(c, w);
}

BOOST_AUTO_TEST_CASE(a_change_that_cannot_commit_in_a_partition_commits_after_the_heal)
{
    cluster_config cfg = config(3, 1, 16);
    cfg.node_options.promote_max_lag = 1000; // the clients keep writing while 4 is cut off
    kv_cluster c{cfg};
    kv_workload<> w{c, {.clients = 3}};
    const node_id l = *wait_leader(c);
    w.start();
    c.run_for(300ms);
    BOOST_TEST_REQUIRE(c.run_until(
        [&] {
            return !c.change_membership({{kind::add_learner, 4, {}}}).ec;
        },
        5s));
    BOOST_TEST_REQUIRE(c.run_until(
        [&] {
            return c.members().is_learner(4) && c.node(l).members_index() <= c.node(l).commit_index() &&
                   c.node(l).match_of(4).value_or(0) > 0; // it answered: it may be promoted
        },
        5s));
    // Cut 4 and one voter off, then add 4 as a voter: {1,2,3,4} needs three of four, and
    // only the leader and one voter are on this side.
    const node_id other = l == 1 ? 2 : 1;
    const node_id cut = 6 - l - other;
    c.partition({{l, other}, {cut, 4}});
    propose_result r;
    BOOST_TEST_REQUIRE(c.run_until(
        [&] {
            r = c.change_membership(l, {{kind::add_voter, 4, {}}});
            return !r.ec || r.ec == errc::learner_behind;
        },
        2s));
    BOOST_TEST_REQUIRE(!r.ec);
    c.run_for(2s);
    BOOST_TEST(c.invariants().committed_index() < r.index); // no quorum of the new configuration
    c.heal();
    BOOST_TEST_REQUIRE(c.run_until(
        [&] {
            const auto t = c.invariants().committed_term(r.index);
            return t && *t == r.term;
        },
        10s));
    BOOST_TEST_REQUIRE(c.run_until([&] { return c.members().is_voter(4); }, 5s));
    c.run_for(500ms);
    finish(c, w);
}

BOOST_AUTO_TEST_CASE(a_node_removed_while_partitioned_does_not_disrupt_the_cluster)
{
    kv_cluster c{config(3, 0, 17)};
    kv_workload<> w{c, {.clients = 3}};
    const node_id l = *wait_leader(c);
    w.start();
    c.run_for(300ms);
    const node_id gone = l == 3 ? 2 : 3;
    c.isolate(gone);
    BOOST_TEST_REQUIRE(change(c, {{kind::remove, gone, {}}}) != 0u);
    c.run_for(2s); // it campaigns alone, raising its term
    c.reconnect(gone);
    const node_id leader = *c.leader();
    const term_t term = c.node(leader).term();
    c.run_for(3s);
    BOOST_TEST((c.leader() == std::optional<node_id>(leader)));
    BOOST_TEST(c.node(leader).term() == term);
    BOOST_TEST(c.node(gone).role() != role::leader);
    finish(c, w);
}

// A leader replacing itself appends the final configuration once the joint one commits,
// then is cut off before anyone has that entry. The others are still joint, where its vote
// counts, and it refuses them all: its log is longer. It must campaign itself (as a voter
// of the configuration before the one that removed it, not yet committed), win, commit
// the change and hand over; were it to wait as a non-voter, nobody could ever be elected.
BOOST_AUTO_TEST_CASE(a_leader_cut_off_after_leaving_a_joint_configuration_still_lets_the_cluster_elect)
{
    kv_cluster c{config(3, 1, 18)};
    kv_workload<> w{c, {.clients = 3}};
    const node_id l = *wait_leader(c);
    w.start();
    c.run_for(300ms);
    const node_id gone = l == 3 ? 2 : 3;
    const node_id stays = 6 - l - gone;
    BOOST_TEST_REQUIRE(change(c, {{kind::remove, gone, {}}}) != 0u);
    BOOST_TEST_REQUIRE((c.leader() == std::optional<node_id>(l)));
    // 4 joins as a learner first: a voter that never answered would put the quorum of
    // {stays, 4} at risk, and the leader refuses that (options::strict_membership_changes).
    BOOST_TEST_REQUIRE(change(c, {{kind::add_learner, 4, {}}}) != 0u);
    BOOST_TEST_REQUIRE((c.leader() == std::optional<node_id>(l)));
    // {l, stays} to {stays, 4}: the joint configuration needs both majorities, so l's vote.
    BOOST_TEST_REQUIRE(c.run_until(
        [&] {
            return !c.change_membership(l, {{kind::remove, l, {}}, {kind::add_voter, 4, {}}}).ec;
        },
        5s));
    BOOST_TEST_REQUIRE(c.run_until(
        [&] {
            const auto& n = c.node(l);
            return !n.members().joint() && !n.members().is_voter(l);
        },
        10s));
    c.isolate(l); // the final configuration is in its log alone
    c.run_for(2s);
    BOOST_TEST(c.node(stays).members().joint()); // still joint there
    BOOST_TEST(!c.leader().has_value());
    c.reconnect(l);
    BOOST_TEST_REQUIRE(c.run_until(
        [&] {
            const auto ld = c.leader();
            return ld && *ld != l && c.node(*ld).members_index() <= c.node(*ld).commit_index() &&
                   !c.node(*ld).members().joint();
        },
        10s));
    BOOST_TEST(sorted(c.members().voters) == sorted({stays, node_id{4}}));
    finish(c, w);
}
