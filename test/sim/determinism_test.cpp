#include "sim/instances.hpp"

#include <raftkv/sim/cluster.hpp>

#define BOOST_TEST_MODULE sim_determinism
#include <boost/test/unit_test.hpp>

#include <raftkv/sim/fault_injector.hpp>
#include <raftkv/sim/history.hpp>
#include <raftkv/sim/kv_workload.hpp>
#include <raftkv/sim/sweep.hpp>

#include <chrono>
#include <cstdint>
#include <tuple>

// The same seed gives the same run, bit for bit: what makes RAFTKV_SEED=<n> a replay.

using namespace std::chrono_literals;
using namespace raftkv::sim;

namespace {
struct run_record {
    std::uint64_t trace = 0;
    kv_history history;
    std::uint64_t sent = 0;
};

bool same_op(const kv_op& a, const kv_op& b)
{
    return std::tie(a.client, a.kind, a.key, a.value, a.found, a.result, a.call, a.ret, a.indeterminate) ==
           std::tie(b.client, b.kind, b.key, b.value, b.found, b.result, b.call, b.ret, b.indeterminate);
}

bool same_history(const kv_history& a, const kv_history& b)
{
    if (a.size() != b.size())
        return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        if (!same_op(a[i], b[i]))
            return false;
    }
    return true;
}

// Clients and every kind of fault, on stores whose syncs lag.
run_record run(std::uint64_t seed)
{
    cluster<> c{{.nodes = 5, .seed = seed, .sync_on_append = false}};
    kv_workload<> w{c, {.clients = 4}};
    fault_injector<kv_state_machine> faults{c};
    w.start();
    faults.start(2s);
    c.run_for(2s);
    w.stop();
    faults.heal_all();
    c.run_for(2s);
    return {c.trace_hash(), w.history(), c.stats().sent};
}
} // namespace

BOOST_AUTO_TEST_CASE(same_seed_gives_the_same_trace_and_the_same_history)
{
    const run_record a = run(77);
    const run_record b = run(77);
    BOOST_TEST(a.trace == b.trace);
    BOOST_TEST(a.sent == b.sent);
    BOOST_TEST(a.history.size() > 50u);
    BOOST_TEST(same_history(a.history, b.history));
}

BOOST_AUTO_TEST_CASE(different_seeds_give_different_runs)
{
    const run_record a = run(78);
    const run_record b = run(79);
    BOOST_TEST(a.trace != b.trace);
    BOOST_TEST(!same_history(a.history, b.history));
}

BOOST_AUTO_TEST_CASE(a_random_scenario_replays_whatever_ran_before_it)
{
    const scenario_result first = run_random_scenario(5);
    run_random_scenario(6);
    const scenario_result again = run_random_scenario(5);
    BOOST_TEST(first.trace_hash == again.trace_hash);
    BOOST_TEST(first.operations == again.operations);
    BOOST_TEST(first.nodes == again.nodes);
}

BOOST_AUTO_TEST_CASE(the_trace_hash_changes_with_every_event)
{
    cluster<> c{{.nodes = 3, .seed = 1}};
    std::uint64_t last = c.trace_hash();
    for (int k = 0; k < 100; ++k) {
        BOOST_TEST_REQUIRE(c.step());
        BOOST_TEST_REQUIRE(c.trace_hash() != last);
        last = c.trace_hash();
    }
}
