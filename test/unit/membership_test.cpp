#define BOOST_TEST_MODULE membership
#include <boost/test/unit_test.hpp>

#include <raftkv/node.hpp>
#include <raftkv/recovery.hpp>

#include "support/manual_cluster.hpp"

#include <stdexcept>
#include <string>
#include <vector>

// Unit tests of configuration changes: learners, promotion, removal (of the leader too),
// joint changes and where the configuration comes from after a restart. Every message is
// delivered by hand; test/sim/membership_test.cpp changes membership under faults.

BOOST_TEST_DONT_PRINT_LOG_VALUE(raftkv::role)

namespace {

using raftkv::config_change;
using raftkv::errc;
using raftkv::membership;
using raftkv::node_id;
using raftkv::role;
using raftkv::test::cluster;
using kind = raftkv::config_change::kind;

raftkv::propose_result change(cluster& c, node_id leader, std::vector<config_change> changes)
{
    auto r = c.node(leader).change_membership(changes);
    c.node(leader).on_log_durable();
    c.deliver_all();
    return r;
}

std::vector<node_id> ids(std::initializer_list<node_id> l)
{
    return l;
}

// Node 1 leads; a fourth node is added as a learner and holds an entry written after.
node_id elect_1_and_add_a_learner(cluster& c)
{
    c.elect(1);
    const node_id spare = c.add_spare();
    BOOST_REQUIRE(!change(c, 1, {{kind::add_learner, spare, "addr-4"}}).ec);
    c.propose(1, "x");
    BOOST_REQUIRE(c.node(spare).members().learners == ids({spare}));
    return spare;
}

// Node `id` holds its removal at `removed_at`, committed, and nothing after it; it follows
// no one and, ticked alone, sends nothing.
void check_knows_it_was_removed(cluster& c, node_id id, raftkv::index_t removed_at)
{
    BOOST_TEST(!c.node(id).members().contains(id));
    BOOST_TEST(c.node(id).last_index() == removed_at);
    BOOST_TEST(c.node(id).commit_index() == removed_at);
    BOOST_TEST(c.node(id).leader() == raftkv::no_node);
    BOOST_TEST(c.node(id).role() == role::follower);
    for (int t = 0; t < 50; ++t) {
        c.node(id).tick();
        BOOST_TEST(c.at(id).transport.sent.empty());
    }
}

// "x" + std::to_string(k), built by appending: GCC 12 warns falsely (-Wrestrict, its bug
// 105329) about the inserting operator+ in release builds.
std::string numbered(const char* prefix, int k)
{
    std::string s = prefix;
    s += std::to_string(k);
    return s;
}

} // namespace

BOOST_AUTO_TEST_CASE(a_new_cluster_records_its_bootstrap_configuration_in_the_store)
{
    cluster c(3);
    for (node_id id = 1; id <= 3; ++id) {
        BOOST_TEST(c.at(id).store.base_members().voters == ids({1, 2, 3}));
        BOOST_TEST(c.node(id).members().voters == ids({1, 2, 3}));
        BOOST_TEST(c.node(id).members_index() == 0u);
    }
}

BOOST_AUTO_TEST_CASE(a_learner_receives_the_log_but_never_votes_or_counts)
{
    cluster c(3);
    c.elect(1);
    const node_id spare = c.add_spare();
    BOOST_TEST(c.node(spare).members().empty());
    auto r = change(c, 1, {{kind::add_learner, spare, "addr-4"}});
    BOOST_REQUIRE(!r.ec);
    c.propose(1, "x");
    BOOST_TEST(c.node(spare).members().learners == ids({4}));
    BOOST_TEST(c.node(spare).members().info.at(4) == "addr-4");
    BOOST_TEST(c.at(spare).machine.commands == std::vector<std::string>{"x"});
    // The learner's acknowledgement does not count: with both other voters away, nothing commits.
    c.isolate(2);
    c.isolate(3);
    c.cut_.erase({1, spare});
    c.cut_.erase({spare, 1});
    const auto before = c.node(1).commit_index();
    c.propose(1, "y");
    BOOST_TEST(c.node(1).commit_index() == before);
    // Nor does it campaign, however long it goes without a leader.
    c.isolate(1);
    c.tick_all(100);
    BOOST_TEST(c.node(spare).role() == role::follower);
    BOOST_TEST(c.node(spare).term() == c.node(1).term());
}

BOOST_AUTO_TEST_CASE(a_learner_is_promoted_only_once_it_caught_up)
{
    raftkv::options o;
    o.promote_max_lag = 5;
    cluster c(3, true, o);
    c.elect(1);
    const node_id spare = c.add_spare();
    c.isolate(spare);
    BOOST_REQUIRE(!change(c, 1, {{kind::add_learner, spare, {}}}).ec);
    // A learner that never answered is behind, however short the log.
    BOOST_TEST(change(c, 1, {{kind::add_voter, spare, {}}}).ec == errc::learner_behind);
    for (int k = 0; k < 10; ++k)
        c.propose(1, numbered("x", k));
    BOOST_TEST(change(c, 1, {{kind::add_voter, spare, {}}}).ec == errc::learner_behind);
    c.heal();
    c.tick_all(15); // the leader re-probes a follower that stopped answering
    BOOST_TEST(*c.node(1).match_of(spare) == c.node(1).last_index());
    auto r = change(c, 1, {{kind::add_voter, spare, {}}});
    BOOST_REQUIRE(!r.ec);
    for (node_id id = 1; id <= 4; ++id) {
        BOOST_TEST(c.node(id).members().voters == ids({1, 2, 3, 4}));
        BOOST_TEST(c.node(id).members().learners.empty());
    }
    BOOST_TEST(c.node(1).commit_index() >= r.index);
}

BOOST_AUTO_TEST_CASE(one_change_at_a_time)
{
    cluster c(3);
    c.elect(1);
    c.isolate(2);
    c.isolate(3);
    auto r = c.node(1).change_membership(std::vector<config_change>{{kind::remove, 3, {}}});
    BOOST_REQUIRE(!r.ec);
    // The first is not committed: a second is refused, whatever it is.
    BOOST_TEST(c.node(1).change_membership(std::vector<config_change>{{kind::add_learner, 9, {}}}).ec ==
               errc::change_in_progress);
    c.heal();
    c.node(1).on_log_durable();
    c.deliver_all();
    c.tick_all(2);
    BOOST_TEST(c.node(1).commit_index() >= r.index);
    BOOST_TEST(!c.node(1).change_membership(std::vector<config_change>{{kind::add_learner, 9, {}}}).ec);
}

BOOST_AUTO_TEST_CASE(invalid_changes_are_refused_at_once)
{
    cluster c(3);
    c.elect(1);
    const auto refused = [&](std::vector<config_change> changes) {
        return c.node(1).change_membership(changes).ec == errc::invalid_argument;
    };
    BOOST_TEST(refused({}));
    BOOST_TEST(refused({{kind::add_voter, 2, {}}}));
    BOOST_TEST(refused({{kind::add_learner, 3, {}}}));
    BOOST_TEST(refused({{kind::remove, 7, {}}}));
    BOOST_TEST(refused({{kind::update, 7, "addr-7"}}));
    BOOST_TEST(refused({{kind::update, 2, {}}}));
    BOOST_TEST(refused({{kind::add_voter, raftkv::no_node, {}}}));
    BOOST_TEST(refused({{kind::remove, 1, {}}, {kind::remove, 2, {}}, {kind::remove, 3, {}}}));
    BOOST_TEST(c.node(2).change_membership(std::vector<config_change>{{kind::remove, 3, {}}}).ec ==
               errc::not_leader);
    BOOST_TEST(c.node(1).members_index() == 0u); // nothing was appended
}

// A learner that caught up and then went silent (down, cut off, its storage failed) is not
// promoted: it would be a voter that does not vote.
BOOST_AUTO_TEST_CASE(a_learner_that_stopped_answering_is_not_promoted)
{
    cluster c(3);
    const node_id spare = elect_1_and_add_a_learner(c);
    BOOST_REQUIRE(*c.node(1).match_of(spare) == c.node(1).last_index());
    c.isolate(spare);
    c.tick_all(3 * static_cast<int>(raftkv::options{}.election_ticks)); // the others keep answering
    BOOST_TEST(*c.node(1).match_of(spare) == c.node(1).last_index());   // not behind, only silent
    BOOST_TEST(change(c, 1, {{kind::add_voter, spare, {}}}).ec == errc::learner_behind);
    c.heal();
    c.tick_all(15);
    BOOST_TEST(!change(c, 1, {{kind::add_voter, spare, {}}}).ec);
}

// An update replaces a member's info, votes as before, and commits in one entry.
BOOST_AUTO_TEST_CASE(an_update_replaces_a_members_info_and_nothing_else)
{
    cluster c(3);
    const node_id spare = elect_1_and_add_a_learner(c);
    const membership before = c.node(1).members();
    const auto r = change(c, 1, {{kind::update, 2, "addr-2-moved"}, {kind::update, spare, "addr-4-moved"}});
    BOOST_REQUIRE(!r.ec);
    for (node_id id : {node_id{1}, node_id{2}, node_id{3}, spare}) {
        const membership& m = c.node(id).members();
        BOOST_TEST(m.voters == before.voters);
        BOOST_TEST(m.learners == before.learners);
        BOOST_TEST(!m.joint());
        BOOST_TEST(m.info.at(2) == "addr-2-moved");
        BOOST_TEST(m.info.at(spare) == "addr-4-moved");
        BOOST_TEST(c.node(id).members_index() == r.index);
    }
    BOOST_TEST(c.node(1).commit_index() >= r.index);
    const auto after = c.propose(1, "after"); // the same voters still commit
    BOOST_TEST(c.node(1).commit_index() == after.index);
}

BOOST_AUTO_TEST_CASE(a_removed_follower_no_longer_counts_and_is_left_alone)
{
    cluster c(3);
    c.elect(1);
    BOOST_REQUIRE(!change(c, 1, {{kind::remove, 3, {}}}).ec);
    BOOST_TEST(c.node(1).members().voters == ids({1, 2}));
    c.isolate(3);
    auto r = c.propose(1, "x");
    BOOST_TEST(c.node(1).commit_index() >= r.index);
    // Node 3 may or may not have learnt it was removed; either way it cannot take over.
    c.tick_all(100);
    BOOST_TEST(c.node(1).role() == role::leader);
    BOOST_TEST(c.node(3).role() != role::leader);
}

BOOST_AUTO_TEST_CASE(a_removed_follower_learns_its_removal_when_it_asks_for_votes)
{
    cluster c(3);
    c.elect(1);
    c.propose(1, "before");
    // The leader stops sending to node 3 when it appends the change; cut off, node 3 does
    // not even see an append already on its way.
    c.isolate(3);
    auto r = change(c, 1, {{kind::remove, 3, {}}});
    BOOST_REQUIRE(!r.ec);
    const auto after = c.propose(1, "after");
    BOOST_REQUIRE(c.node(1).commit_index() >= after.index);
    BOOST_REQUIRE(c.node(3).members().contains(3));
    const raftkv::index_t was_last = c.node(3).last_index();
    BOOST_REQUIRE(was_last < r.index);
    c.heal();
    // Node 3 hears from no leader, asks for votes, and the leader answers with its log up
    // to the entry that removed node 3, committed, and nothing after it.
    c.tick_all(25);
    BOOST_TEST(c.node(3).members().voters == ids({1, 2}));
    BOOST_TEST(c.node(3).last_index() == r.index);
    // It forgets the leader after an election timeout and never asks for votes again.
    c.tick_all(25);
    check_knows_it_was_removed(c, 3, r.index);
    BOOST_TEST(c.node(1).role() == role::leader);
    BOOST_TEST(c.node(1).term() == r.term);
}

BOOST_AUTO_TEST_CASE(a_removed_learner_learns_its_removal_though_it_never_campaigns)
{
    cluster c(3);
    const node_id spare = elect_1_and_add_a_learner(c);
    c.isolate(spare);
    auto r = change(c, 1, {{kind::remove, spare, {}}});
    BOOST_REQUIRE(!r.ec);
    c.propose(1, "after");
    BOOST_REQUIRE(c.node(spare).members().learners == ids({spare}));
    c.heal();
    c.tick_all(50);
    check_knows_it_was_removed(c, spare, r.index);
    BOOST_TEST(c.node(1).role() == role::leader);
    BOOST_TEST(c.node(1).term() == r.term);
}

BOOST_AUTO_TEST_CASE(a_learner_without_a_leader_asks_but_neither_campaigns_nor_disturbs)
{
    cluster c(3);
    const node_id spare = elect_1_and_add_a_learner(c);
    const raftkv::term_t term = c.node(1).term();
    // Cut off from the leader only: it asks the other voters, which ignore it (they hear
    // from their leader), and nothing changes.
    c.cut_.insert({1, spare});
    c.cut_.insert({spare, 1});
    c.tick_all(100);
    BOOST_TEST(c.node(spare).role() == role::follower);
    BOOST_TEST(c.node(spare).members().learners == ids({4}));
    BOOST_TEST(c.node(1).role() == role::leader);
    BOOST_TEST(c.node(2).term() == term);
    BOOST_TEST(c.node(3).term() == term);
}

BOOST_AUTO_TEST_CASE(a_removed_follower_far_behind_is_brought_up_to_its_removal)
{
    raftkv::options small;
    small.max_entries_per_append = 8; // several rounds
    cluster c(3, true, small);
    c.elect(1);
    c.isolate(3);
    for (int k = 0; k < 40; ++k)
        c.propose(1, numbered("w", k));
    auto r = change(c, 1, {{kind::remove, 3, {}}});
    BOOST_REQUIRE(!r.ec);
    c.propose(1, "after");
    c.heal();
    c.tick_all(40);
    BOOST_TEST(c.node(3).last_index() == r.index);
    BOOST_TEST(c.node(3).commit_index() == r.index);
    BOOST_TEST(!c.node(3).members().contains(3));
    BOOST_TEST(c.node(3).applied_index() == r.index);
}

BOOST_AUTO_TEST_CASE(a_leader_that_removes_itself_steps_down_once_the_change_commits)
{
    cluster c(3);
    c.elect(1);
    auto r = change(c, 1, {{kind::remove, 1, {}}});
    BOOST_REQUIRE(!r.ec);
    c.tick_all(3);
    BOOST_TEST(c.node(1).role() == role::follower);
    BOOST_TEST((c.node(1).status().last_step_down.reason == raftkv::step_down_reason::removed));
    // It handed over at once (timeout_now): no election timeout had to pass.
    const bool handed_over = c.node(2).role() == role::leader || c.node(3).role() == role::leader;
    BOOST_TEST(handed_over);
    const node_id leader = c.node(2).role() == role::leader ? 2 : 3;
    BOOST_TEST(c.node(leader).members().voters == (leader == 2 ? ids({2, 3}) : ids({2, 3})));
    auto w = c.propose(leader, "after");
    BOOST_TEST(c.node(leader).commit_index() >= w.index);
    c.tick_all(100);
    BOOST_TEST(c.node(1).role() == role::follower); // never campaigns again
}

BOOST_AUTO_TEST_CASE(replacing_a_voter_goes_through_a_joint_configuration)
{
    cluster c(3);
    c.elect(1);
    const node_id spare = c.add_spare();
    // Replace 3 with 4 in one change: two voters change, so the configuration is joint.
    c.isolate(2);
    c.isolate(3);
    c.cut_.erase({1, spare});
    c.cut_.erase({spare, 1});
    auto r = change(c, 1, {{kind::remove, 3, {}}, {kind::add_voter, spare, {}}});
    BOOST_REQUIRE(!r.ec);
    BOOST_TEST(c.node(1).members().joint());
    BOOST_TEST(c.node(1).members().outgoing == ids({1, 2, 3}));
    BOOST_TEST(c.node(1).members().voters == ids({1, 2, 4}));
    // {1, 4} is a majority of the new voters but not of the old: the joint entry waits.
    BOOST_TEST(c.node(1).commit_index() < r.index);
    c.heal();
    c.tick_all(5);
    BOOST_TEST(c.node(1).commit_index() > r.index);
    // The leader left the joint configuration by itself.
    for (node_id id : {1, 2, 4}) {
        BOOST_TEST(!c.node(id).members().joint());
        BOOST_TEST(c.node(id).members().voters == ids({1, 2, 4}));
    }
    auto w = c.propose(1, "x");
    BOOST_TEST(c.node(1).commit_index() >= w.index);
}

// A change whose new voters hold no majority that answers the leader would stall the
// cluster (and make the leader step down under CheckQuorum): it is refused, unless the
// options allow it.
BOOST_AUTO_TEST_CASE(a_change_that_would_leave_no_answering_quorum_is_refused)
{
    cluster c(3);
    c.elect(1);
    c.isolate(3);
    c.tick_all(2 * static_cast<int>(c.node(1).config().election_ticks)); // 3 silent for two periods
    BOOST_REQUIRE(c.node(1).role() == role::leader);
    // {1, 3}: 3 does not answer. {2, 3} without the leader: the same.
    BOOST_TEST(change(c, 1, {{kind::remove, 2, {}}}).ec == errc::quorum_at_risk);
    BOOST_TEST(change(c, 1, {{kind::remove, 1, {}}}).ec == errc::quorum_at_risk);
    // A new voter that never answered does not count: {1, 2, 3, 4} would need three.
    const node_id spare = c.add_spare();
    BOOST_TEST(change(c, 1, {{kind::add_voter, spare, {}}}).ec == errc::quorum_at_risk);
    BOOST_TEST(c.node(1).members_index() == 0u, "nothing was appended");
    // Removing the silent voter leaves {1, 2}, both answering; a learner is always fine.
    BOOST_TEST(!change(c, 1, {{kind::remove, 3, {}}}).ec);
    BOOST_TEST(!change(c, 1, {{kind::add_learner, spare, {}}}).ec);
    c.tick_all(2);
    BOOST_TEST(!change(c, 1, {{kind::add_voter, spare, {}}}).ec,
               "a learner that answers counts once promoted");
    BOOST_TEST(c.node(1).members().voters == ids({1, 2, 4}));
}

BOOST_AUTO_TEST_CASE(a_one_voter_cluster_adds_a_learner_first_or_turns_the_check_off)
{
    cluster strict(1);
    strict.elect(1);
    const node_id spare = strict.add_spare();
    BOOST_TEST(change(strict, 1, {{kind::add_voter, spare, {}}}).ec == errc::quorum_at_risk);

    raftkv::options o;
    o.strict_membership_changes = false;
    cluster lax(1, true, o);
    lax.elect(1);
    const node_id other = lax.add_spare();
    lax.isolate(other);
    BOOST_TEST(!change(lax, 1, {{kind::add_voter, other, {}}}).ec);
    BOOST_TEST(lax.node(1).members().voters == ids({1, 2}));
}

BOOST_AUTO_TEST_CASE(the_configuration_survives_a_restart_whatever_the_options_say)
{
    cluster c(3);
    c.elect(1);
    BOOST_REQUIRE(!change(c, 1, {{kind::remove, 3, {}}}).ec);
    c.tick_all(2);
    // Restarted with the bootstrap list, node 2 still knows 3 was removed: the change is in its log.
    c.start(2);
    BOOST_TEST(c.node(2).members().voters == ids({1, 2}));
    // And once the log is compacted past it, the store's base configuration says so.
    c.at(2).store.compact(c.node(2).commit_index(), c.node(2).members());
    c.start(2);
    BOOST_TEST(c.node(2).members().voters == ids({1, 2}));
}

BOOST_AUTO_TEST_CASE(the_config_handler_reports_each_configuration_in_force)
{
    cluster c(3);
    std::vector<std::pair<raftkv::index_t, std::vector<node_id>>> seen;
    c.node(2).on_config_change(
        [&](raftkv::index_t index, const membership& m) { seen.emplace_back(index, m.voters); });
    c.elect(1);
    BOOST_REQUIRE(!seen.empty());
    BOOST_TEST(seen.front().first == 0u);
    BOOST_TEST(seen.front().second == ids({1, 2, 3}));
    auto r = change(c, 1, {{kind::remove, 3, {}}});
    BOOST_TEST(seen.back().first == r.index);
    BOOST_TEST(seen.back().second == ids({1, 2}));
}

BOOST_AUTO_TEST_CASE(the_successor_is_the_most_caught_up_voter)
{
    cluster c(3);
    c.elect(1);
    BOOST_TEST(c.node(2).successor() == raftkv::no_node); // only a leader names one
    c.isolate(2);
    c.cut_.erase({1, 3});
    c.cut_.erase({3, 1});
    c.propose(1, "x");
    BOOST_TEST(c.node(1).successor() == 3u);
    c.heal();
    c.isolate(3);
    c.cut_.erase({1, 2});
    c.cut_.erase({2, 1});
    c.tick_all(15); // node 2 catches up, node 3 falls silent
    c.propose(1, "y");
    BOOST_TEST(c.node(1).successor() == 2u);
}

BOOST_AUTO_TEST_CASE(a_member_forced_to_be_the_only_voter_commits_its_whole_log_alone)
{
    cluster c(3);
    c.elect(1);
    c.propose(1, "a");
    // Nodes 2 and 3 are lost for good; node 1 still takes an entry it can never commit.
    for (node_id id = 1; id <= 3; ++id)
        c.isolate(id);
    c.propose(1, "b");
    const raftkv::index_t last = c.node(1).last_index();
    BOOST_REQUIRE(c.node(1).commit_index() < last);

    const raftkv::forced_configuration forced = raftkv::force_single_voter(c.at(1).store, 1, "addr-1");
    BOOST_TEST(forced.previous.voters == ids({1, 2, 3}));
    BOOST_TEST(forced.index == last + 1);
    BOOST_TEST(forced.term == c.node(1).term());
    // Interrupted and run again, it finds the work done.
    BOOST_TEST(raftkv::force_single_voter(c.at(1).store, 1, "addr-1").index == 0u);
    BOOST_TEST(c.at(1).store.last_index() == last + 1);

    c.start(1);
    BOOST_TEST(c.node(1).members().voters == ids({1}));
    BOOST_TEST(c.node(1).members().info.at(1) == "addr-1");
    c.tick_all(100);
    BOOST_REQUIRE(c.node(1).role() == role::leader);
    BOOST_TEST(c.node(1).commit_index() > forced.index); // its own entry as leader, after it
    BOOST_TEST(c.at(1).machine.commands == (std::vector<std::string>{"a", "b"}));
    BOOST_TEST(!c.propose(1, "c").ec);
    BOOST_TEST(c.node(1).commit_index() == c.node(1).last_index());
    BOOST_TEST(c.at(1).machine.commands.back() == "c");
    // The lost members, were they to come back, are not members of its configuration.
    BOOST_TEST(!c.node(1).members().contains(2));
}

BOOST_AUTO_TEST_CASE(a_learner_can_be_forced_to_be_the_only_voter_but_a_removed_member_cannot)
{
    cluster c(3);
    const node_id spare = elect_1_and_add_a_learner(c);
    const auto forced = raftkv::force_single_voter(c.at(spare).store, spare, "addr-4");
    BOOST_TEST(forced.previous.learners == ids({spare}));
    BOOST_TEST(forced.index == c.at(spare).store.last_index());

    BOOST_REQUIRE(!change(c, 1, {{kind::remove, 3, {}}}).ec);
    c.tick_all(50); // node 3 learns of its removal when it asks for votes
    BOOST_REQUIRE(!c.node(3).members().contains(3));
    const raftkv::index_t before = c.at(3).store.last_index();
    BOOST_CHECK_THROW(raftkv::force_single_voter(c.at(3).store, 3, "addr-3"), std::invalid_argument);
    BOOST_TEST(c.at(3).store.last_index() == before); // nothing appended
}
