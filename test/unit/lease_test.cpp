#include <raftkv/node.hpp>

#define BOOST_TEST_MODULE lease
#include <boost/test/unit_test.hpp>

#include "support/manual_cluster.hpp"

#include <cstdint>
#include <system_error>
#include <utility>
#include <vector>

// Unit tests of leader leases (basic_node::lease_valid()): measured from when a round was
// sent, confirmed by a quorum of each configuration, never before the leader's first
// commit, given up by a transfer, and covered on restarted voters.

BOOST_TEST_DONT_PRINT_LOG_VALUE(raftkv::role)

namespace {

using raftkv::message;
using raftkv::node_id;
using raftkv::role;
using raftkv::test::cluster;
using kind = raftkv::config_change::kind;

std::vector<message> take(cluster& c, node_id id)
{
    std::vector<message> out = std::move(c.at(id).transport.sent);
    c.at(id).transport.sent.clear();
    return out;
}

// Ticks only `id`, dropping what it sends.
void tick_alone(cluster& c, node_id id, int ticks)
{
    for (int i = 0; i < ticks; ++i) {
        c.node(id).tick();
        take(c, id);
    }
}

void deliver(cluster& c, std::vector<message> msgs)
{
    for (auto& m : msgs)
        if (!c.cut_.contains({m.from, m.to}))
            c.node(m.to).step(std::move(m));
    c.deliver_all();
}

} // namespace

BOOST_AUTO_TEST_CASE(the_lease_runs_from_when_the_round_was_sent_not_when_it_was_answered)
{
    cluster c(3);
    c.elect(1);
    c.propose(1, "x");
    BOOST_TEST(c.node(1).lease_ticks() == 8u); // election_ticks 10 - lease_margin_ticks 2
    BOOST_TEST(!c.node(1).lease_valid());      // no heartbeat round answered yet
    c.node(1).tick();
    BOOST_REQUIRE(c.node(1).ticks() == 1u);
    std::vector<message> round = take(c, 1); // sent at tick 1, answered only 3 ticks later
    tick_alone(c, 1, 3);
    deliver(c, std::move(round));
    BOOST_TEST(c.node(1).lease_valid());
    BOOST_TEST(c.node(1).lease_sent_tick() == 1u);
    tick_alone(c, 1, 4); // tick 8: 1 + 8 - 1
    BOOST_TEST(c.node(1).lease_valid());
    tick_alone(c, 1, 1); // tick 9 = 1 + lease_ticks
    BOOST_TEST(!c.node(1).lease_valid());
    BOOST_TEST(c.node(1).role() == role::leader); // still leads: only the lease ran out
    c.tick_all(1);                                // a round answered at once renews it
    BOOST_TEST(c.node(1).lease_valid());
    BOOST_TEST(c.node(1).lease_sent_tick() == 10u);
}

BOOST_AUTO_TEST_CASE(one_follower_answering_is_not_a_quorum_of_five)
{
    cluster c(5);
    c.elect(1);
    c.propose(1, "x");
    c.node(1).tick();
    std::vector<message> round = take(c, 1);
    std::erase_if(round, [](const message& m) { return m.to != 2; });
    deliver(c, std::move(round));
    BOOST_TEST(!c.node(1).lease_valid());
    c.tick_all(1);
    BOOST_TEST(c.node(1).lease_valid());
}

BOOST_AUTO_TEST_CASE(no_lease_before_the_leader_committed_an_entry_of_its_term)
{
    cluster c(3, /*sync_on_append=*/false); // nothing becomes durable: the noop never commits
    c.elect(1);
    c.tick_all(1);
    BOOST_TEST(c.node(1).role() == role::leader);
    BOOST_TEST(c.node(1).commit_index() == 0u);
    BOOST_TEST(!c.node(1).lease_valid());
}

BOOST_AUTO_TEST_CASE(a_joint_configuration_needs_a_quorum_of_both_for_a_lease)
{
    cluster c(3);
    c.elect(1);
    const node_id spare = c.add_spare();
    c.isolate(2);
    c.isolate(3);
    c.cut_.erase({1, spare});
    c.cut_.erase({spare, 1});
    auto r = c.node(1).change_membership(
        std::vector<raftkv::config_change>{{kind::remove, 3, {}}, {kind::add_voter, spare, {}}});
    c.node(1).on_log_durable();
    c.deliver_all();
    BOOST_REQUIRE(!r.ec);
    BOOST_REQUIRE(c.node(1).members().joint());
    // Only the spare answers: a majority of {1, 2, 4} but not of {1, 2, 3}.
    BOOST_TEST(!c.node(1).read_index(1));
    c.deliver_all();
    BOOST_TEST(!c.node(1).lease_valid());
    c.cut_.erase({1, 3});
    c.cut_.erase({3, 1});
    c.node(1).tick(); // the next round reaches 3 and 4
    c.deliver_all();
    BOOST_REQUIRE(c.node(1).members().joint()); // no tick yet: still joint
    BOOST_TEST(c.node(1).lease_valid());
}

BOOST_AUTO_TEST_CASE(a_leader_gives_up_its_lease_when_it_sends_timeout_now)
{
    cluster c(3);
    c.elect(1);
    c.propose(1, "x");
    c.tick_all(1);
    BOOST_REQUIRE(c.node(1).lease_valid());
    BOOST_TEST(!c.node(1).transfer_leadership(2)); // 2 is up to date: timeout_now goes out now
    BOOST_TEST(!c.node(1).lease_valid());
    // Abandoned or not, the transfer may still win: no lease for the rest of the term.
    std::vector<message> out = take(c, 1);
    c.tick_all(3);
    BOOST_TEST(c.node(1).role() == role::leader);
    BOOST_TEST(!c.node(1).lease_valid());
    deliver(c, std::move(out));
    BOOST_TEST(c.node(2).role() == role::leader);
    BOOST_TEST(!c.node(1).lease_valid());
}

BOOST_AUTO_TEST_CASE(a_new_leader_gets_a_lease_of_its_own)
{
    cluster c(3);
    c.elect(1);
    c.propose(1, "x");
    c.tick_all(1);
    c.isolate(1);
    c.tick_all(30);
    c.heal();
    c.tick_all(2);
    node_id leader = 0;
    for (node_id id = 1; id <= 3; ++id)
        if (c.node(id).role() == role::leader)
            leader = id;
    BOOST_REQUIRE(leader != 0u);
    BOOST_TEST(c.node(leader).lease_valid());
    for (node_id id = 1; id <= 3; ++id)
        BOOST_TEST(c.node(id).lease_valid() == (id == leader));
}

BOOST_AUTO_TEST_CASE(leases_are_off_without_check_quorum_or_with_a_margin_that_leaves_nothing)
{
    raftkv::options o;
    o.check_quorum = false;
    cluster a(3, true, o);
    a.elect(1);
    a.propose(1, "x");
    a.tick_all(1);
    BOOST_TEST(a.node(1).lease_ticks() == 0u);
    BOOST_TEST(!a.node(1).lease_valid());

    raftkv::options wide;
    wide.lease_margin_ticks = wide.election_ticks;
    cluster b(3, true, wide);
    b.elect(1);
    b.propose(1, "x");
    b.tick_all(1);
    BOOST_TEST(!b.node(1).lease_valid());
}

BOOST_AUTO_TEST_CASE(a_zero_lease_margin_is_refused)
{
    raftkv::options o;
    o.id = 1;
    o.members.voters = {1};
    o.lease_margin_ticks = 0;
    raftkv::test::recording_transport t;
    raftkv::memory_log_store s;
    raftkv::test::list_machine m;
    BOOST_CHECK_THROW((raftkv::test::node_t{o, t, s, m}), std::system_error);
}

BOOST_AUTO_TEST_CASE(a_restarted_voter_refuses_other_candidates_for_an_election_timeout)
{
    cluster c(3);
    c.elect(1);
    c.propose(1, "x");
    c.tick_all(1); // 2 and 3 acknowledged a round: node 1 holds a lease
    BOOST_REQUIRE(c.node(1).lease_valid());
    c.isolate(1);
    c.start(2); // restarts at once, forgetting it just heard from node 1
    c.node(3).campaign();
    c.deliver_all();
    BOOST_TEST(c.node(3).role() != role::leader); // node 2 refused: node 1's lease may still hold
    for (int i = 0; i < 10; ++i)
        c.node(2).tick();
    c.node(3).campaign();
    c.deliver_all();
    BOOST_TEST(c.node(3).role() == role::leader);
}
