#include <raftkv/sim/cluster.hpp>

#define BOOST_TEST_MODULE sim_disk_stall
#include <boost/test/unit_test.hpp>

#include "sim/support.hpp"

#include <raftkv/sim/kv_workload.hpp>
#include <raftkv/sim/linearizability.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>

// A disk that hangs (hashicorp/raft #503 and #666, etcd #13527): syncs stop completing
// while the node runs on. A leader whose own entries stay not durable steps down, does
// not win back the leadership while its disk hangs, and catches up once it returns.

using namespace raftkv;
using namespace raftkv::sim;
using namespace raftkv::sim::testing;

namespace {

// The highest term any live node has reached.
term_t highest_term(kv_cluster& c)
{
    term_t t = 0;
    for (node_id id : c.ids())
        t = c.is_up(id) ? std::max(t, c.node(id).term()) : t;
    return t;
}

// Whether node `id` led any term in (after, upto]. The invariant checker records the
// leader of every term, whenever it was elected.
bool led_in_terms(kv_cluster& c, node_id id, term_t after, term_t upto)
{
    const auto& leaders = c.invariants().leaders();
    for (auto it = leaders.upper_bound(after); it != leaders.end() && it->first <= upto; ++it) {
        if (it->second == id)
            return true;
    }
    return false;
}

std::chrono::microseconds election_timeout(const kv_cluster& c)
{
    return c.config().tick_interval * c.config().node_options.election_ticks;
}

// Clients write and read while the leader's disk hangs for `stall`, then the disk returns.
void leader_disk_hangs(cluster_config cfg, std::chrono::microseconds stall)
{
    kv_cluster c{cfg};
    kv_workload<> w{c, {.clients = 4, .keys = 3}};
    w.start();
    const auto l = wait_leader(c);
    BOOST_TEST_REQUIRE(l.has_value());
    c.run_for(300ms);
    const term_t term = c.node(*l).term();

    c.stall_disk(*l);
    const auto stalled_at = c.now();
    BOOST_TEST_REQUIRE(c.run_until([&] { return c.node(*l).role() != role::leader; }, 1s));
    BOOST_TEST(c.node(*l).term() == term); // it stepped down, nobody deposed it
    const auto stepped_down = c.now() - stalled_at;
    BOOST_TEST_REQUIRE(c.run_until([&] { return c.leader() && *c.leader() != *l; }, 1s));
    const auto replaced = c.now() - stalled_at;
    BOOST_TEST_MESSAGE("leader " << *l << " stepped down " << stepped_down.count() / 1000
                                 << " ms after its disk hung; node " << *c.leader() << " led after "
                                 << replaced.count() / 1000 << " ms");
    BOOST_TEST(stepped_down <= 2 * election_timeout(c));
    BOOST_TEST(replaced <= 5 * election_timeout(c));

    // Writes commit again under the new leader. Clients whose writes wait at the stalled
    // node until their timeout move on later; some are served before the disk returns.
    BOOST_TEST(commit_at(c, *c.leader(), command(0), c.size() / 2 + 1, election_timeout(c)) > 0u);
    const std::size_t acked = w.acknowledged().size();
    c.run_for(stall - (c.now() - stalled_at));
    BOOST_TEST(w.acknowledged().size() > acked + 10);
    BOOST_TEST(c.disk_stalled(*l));
    BOOST_TEST(!led_in_terms(c, *l, term, highest_term(c))); // not once while its disk hung

    // The disk returns: the node catches up; nothing acknowledged was lost.
    c.resume_disk(*l);
    c.run_for(500ms);
    w.stop();
    BOOST_TEST_REQUIRE(c.run_until([&] { return w.idle(); }, 5s));
    BOOST_TEST_REQUIRE(one(c, command(1), c.size()) > 0u);
    BOOST_TEST_REQUIRE(wait_converged(c));
    const node_id leader = *c.leader();
    BOOST_TEST(c.node(*l).applied_index() == c.node(leader).last_index());
    BOOST_TEST((c.machine(*l).data() == c.machine(leader).data()));
    const auto& log = c.store(leader).all_entries();
    for (const acknowledged_write& a : w.acknowledged()) {
        BOOST_TEST_REQUIRE(a.index <= c.node(leader).commit_index());
        BOOST_TEST(log[a.index - 1].data == a.command);
    }
    const check_result r = check_kv_history(w.history(), std::chrono::seconds(10));
    BOOST_TEST((r.outcome == check_outcome::ok), r.explanation);
    BOOST_TEST_MESSAGE(w.history().size() << " operations, " << w.stats().indeterminate << " indeterminate");
}

} // namespace

BOOST_AUTO_TEST_CASE(a_leader_whose_disk_hangs_gives_way_and_catches_up_when_it_returns)
{
    leader_disk_hangs({.nodes = 5, .seed = 61, .sync_on_append = false}, 3s);
}

BOOST_AUTO_TEST_CASE(a_leader_whose_disk_hangs_gives_way_in_a_three_node_cluster)
{
    leader_disk_hangs({.nodes = 3, .seed = 62, .sync_on_append = false}, 3s);
}

BOOST_AUTO_TEST_CASE(a_leader_whose_disk_hangs_gives_way_when_appends_are_durable_at_once_otherwise)
{
    leader_disk_hangs({.nodes = 3, .seed = 63, .sync_on_append = true}, 3s);
}

BOOST_AUTO_TEST_CASE(a_node_whose_disk_hangs_wins_none_of_many_elections_until_it_returns)
{
    kv_cluster c{{.nodes = 5, .seed = 66, .sync_on_append = false}};
    kv_workload<> w{c, {.clients = 3, .keys = 3}};
    w.start();
    const auto l = wait_leader(c);
    BOOST_TEST_REQUIRE(l.has_value());
    c.run_for(200ms);
    const term_t term = c.node(*l).term();
    c.stall_disk(*l);
    // Depose every new leader in turn, so the stalled node takes part in many elections.
    std::size_t elections = 0;
    for (int round = 0; round < 12; ++round) {
        if (!c.run_until([&] { return c.leader() && *c.leader() != *l; }, 2s))
            continue;
        ++elections;
        const node_id leader = *c.leader();
        c.run_for(100ms);
        c.isolate(leader);
        c.run_for(300ms);
        c.heal();
    }
    BOOST_TEST(elections >= 10u);
    BOOST_TEST(!led_in_terms(c, *l, term, highest_term(c)));
    c.resume_disk(*l);
    w.stop();
    BOOST_TEST_REQUIRE(c.run_until([&] { return w.idle(); }, 5s));
    BOOST_TEST_REQUIRE(one(c, command(1), 5) > 0u);
    BOOST_TEST(wait_converged(c));
    const check_result r = check_kv_history(w.history(), std::chrono::seconds(10));
    BOOST_TEST((r.outcome == check_outcome::ok), r.explanation);
}

BOOST_AUTO_TEST_CASE(a_node_restarted_on_a_hung_disk_does_not_lead_until_the_disk_returns)
{
    kv_cluster c{{.nodes = 3, .seed = 64, .sync_on_append = false}};
    BOOST_TEST_REQUIRE(one(c, command(1), 3) > 0u);
    const node_id l = *c.leader();
    c.stall_disk(l);
    BOOST_TEST_REQUIRE(one(c, command(2), 2) > 0u);
    const term_t term = c.node(l).term();
    c.crash(l);
    c.restart(l); // the disk still hangs
    for (std::size_t n = 3; n < 10; ++n)
        BOOST_TEST_REQUIRE(one(c, command(n), 2) > 0u);
    c.run_for(2s);
    BOOST_TEST(!led_in_terms(c, l, term, highest_term(c)));
    c.resume_disk(l);
    BOOST_TEST_REQUIRE(one(c, command(10), 3) > 0u);
    BOOST_TEST(wait_converged(c));
}

BOOST_AUTO_TEST_CASE(a_follower_whose_disk_hangs_still_votes_when_its_leader_dies)
{
    // Three nodes: once the leader crashes, the healthy follower needs the stalled one's
    // vote. It cannot commit without its durable acknowledgement, but it can lead, and
    // commits as soon as the disk returns.
    for (std::uint64_t seed = 67; seed < 77; ++seed) {
        kv_cluster c{{.nodes = 3, .seed = seed, .sync_on_append = false}};
        BOOST_TEST_REQUIRE(one(c, command(1), 3) > 0u);
        const node_id l = *c.leader();
        const node_id stalled = l % 3 + 1;
        c.stall_disk(stalled);
        BOOST_TEST_REQUIRE(one(c, command(2), 2) > 0u); // the stalled follower holds it, not durably
        c.crash(l);
        const auto crashed_at = c.now();
        BOOST_TEST_REQUIRE(c.run_until([&] { return c.leader().has_value(); }, 5s));
        BOOST_TEST(*c.leader() != stalled);
        BOOST_TEST_MESSAGE("seed " << seed << ": a leader after " << (c.now() - crashed_at).count() / 1000
                                   << " ms");
        BOOST_TEST(c.now() - crashed_at <= 4 * election_timeout(c));
        c.resume_disk(stalled);
        BOOST_TEST(commit_at(c, *c.leader(), command(3), 2) > 0u);
        c.restart(l);
        BOOST_TEST(wait_converged(c));
    }
}

BOOST_AUTO_TEST_CASE(a_leader_whose_disk_is_slow_but_keeps_up_keeps_leading)
{
    // Every sync takes most of an election timeout, but syncs complete.
    kv_cluster c{
        {.nodes = 3, .seed = 65, .sync_on_append = false, .min_sync_delay = 60ms, .max_sync_delay = 80ms}};
    kv_workload<> w{c, {.clients = 4, .keys = 3}};
    w.start();
    const auto l = wait_leader(c);
    BOOST_TEST_REQUIRE(l.has_value());
    const term_t term = c.node(*l).term();
    c.run_for(3s);
    BOOST_TEST((c.leader() == l));
    BOOST_TEST(c.node(*l).term() == term);
    BOOST_TEST(w.acknowledged().size() > 50u);
}
