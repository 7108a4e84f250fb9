// Conditional writes in the simulator: clients race create-only puts on few keys through
// leader changes, and the history must be linearizable, which it is not if two creates of
// one key both win with no delete between them.
#include <raftkv/sim/cluster.hpp>

#define BOOST_TEST_MODULE sim_cas
#include <boost/test/unit_test.hpp>

#include "sim/support.hpp"

#include <raftkv/sim/kv_workload.hpp>
#include <raftkv/sim/linearizability.hpp>

#include <chrono>
#include <cstddef>

using namespace raftkv;
using namespace raftkv::sim;
using namespace raftkv::sim::testing;
using namespace std::chrono_literals;

BOOST_AUTO_TEST_CASE(racing_create_only_puts_stay_linearizable_through_leader_changes)
{
    for (const std::uint64_t seed : {71u, 72u, 73u}) {
        BOOST_TEST_CONTEXT("seed " << seed)
        {
            kv_cluster c{
                {.nodes = 3, .seed = seed, .link = {.min_delay = 1ms, .max_delay = 10ms, .loss = 0.05}}};
            kv_workload<> w{c,
                            {.clients = 5,
                             .keys = 2,
                             .get_share = 0.3,
                             .put_share = 0.05,
                             .create_share = 0.4,
                             .follower_writes = 0.5}};
            w.start();
            for (int round = 0; round < 6; ++round) {
                c.run_for(400ms);
                if (const auto l = c.leader())
                    c.isolate(*l);
                c.run_for(200ms);
                c.heal();
            }
            w.stop();
            c.net().set_default_link({});
            BOOST_TEST_REQUIRE(c.run_until([&] { return w.idle(); }, 10s));
            std::size_t won = 0;
            std::size_t lost = 0;
            for (const kv_op& op : w.history()) {
                if (op.kind == kv_op_kind::create && !op.indeterminate)
                    ++(op.found ? lost : won);
            }
            BOOST_TEST(won > 5u);
            BOOST_TEST(lost > 5u);
            const check_result r = check_kv_history(w.history(), std::chrono::seconds(10));
            BOOST_TEST((r.outcome == check_outcome::ok), r.explanation);
            BOOST_TEST_MESSAGE(w.history().size()
                               << " operations, " << won << " creates won, " << lost << " lost");
        }
    }
}

// With client sessions, a write whose outcome is unknown (its node crashed, leadership was
// lost) is sent again with the same session: it must be applied once, so the history, where
// each retried operation counts once, stays linearizable; creates and deletes retried after
// they took effect answer their first outcome, never a second one.
BOOST_AUTO_TEST_CASE(writes_retried_with_their_session_count_once_through_crashes_and_leader_changes)
{
    for (const std::uint64_t seed : {81u, 82u, 83u}) {
        BOOST_TEST_CONTEXT("seed " << seed)
        {
            kv_cluster c{
                {.nodes = 3, .seed = seed, .link = {.min_delay = 1ms, .max_delay = 10ms, .loss = 0.05}}};
            kv_workload<> w{c,
                            {.clients = 5,
                             .keys = 2,
                             .get_share = 0.3,
                             .put_share = 0.2,
                             .create_share = 0.3,
                             .follower_writes = 0.5,
                             .sessions = true}};
            w.start();
            // Crashes of the leader and of a follower (the writes it forwarded are waiting
            // there, often committed already), and leader isolations.
            for (int round = 0; round < 9; ++round) {
                c.run_for(400ms);
                const auto l = c.leader();
                if (!l)
                    continue;
                if (round % 3 == 2) {
                    c.isolate(*l);
                    c.run_for(200ms);
                    c.heal();
                    continue;
                }
                const node_id victim = round % 3 == 0 ? *l : *l % 3 + 1;
                c.crash(victim);
                c.run_for(200ms);
                c.restart(victim);
            }
            w.stop();
            c.net().set_default_link({});
            BOOST_TEST_REQUIRE(c.run_until([&] { return w.idle(); }, 10s));
            const workload_stats& s = w.stats();
            BOOST_TEST(s.session_retries > 0u);
            BOOST_TEST(s.replayed > 0u);
            const check_result r = check_kv_history(w.history(), std::chrono::seconds(10));
            BOOST_TEST((r.outcome == check_outcome::ok), r.explanation);
            BOOST_TEST_MESSAGE(w.history().size()
                               << " operations, " << s.indeterminate << " indeterminate, "
                               << s.session_retries << " sent again, " << s.replayed << " replayed");
        }
    }
}
