// docs/simulator.md's examples, as the page shows them (snippets_test checks that it does),
// run with the counter of docs/concepts/state_machine.md: a user who copies them gets code
// that compiles and a machine that passes the random scenarios.

#define BOOST_TEST_MODULE docs_simulator_example
#include <boost/test/unit_test.hpp>

#include "counter.hpp"

#include <raftkv/memory_log_store.hpp>
#include <raftkv/sim/cluster.hpp>
#include <raftkv/sim/fault_injector.hpp>
#include <raftkv/sim/kv_workload.hpp>
#include <raftkv/sim/linearizability.hpp>
#include <raftkv/sim/sweep.hpp>

#include <cstdint>
#include <iostream>
#include <sstream>
#include <string>

using namespace std::chrono_literals;

#pragma GCC diagnostic ignored "-Wunused-parameter"

BOOST_AUTO_TEST_CASE(a_cluster_with_your_own_state_machine)
{
    // clang-format off
    // snippet: cluster
    raftkv::sim::cluster<counter> c{{.nodes = 5, .seed = 42}};
    c.run_until([&] { return c.leader().has_value(); }, 5s);
    auto r = c.propose(*c.leader(), "abc");              // r.index, r.term, or r.ec
    c.on_apply([](raftkv::node_id n, raftkv::index_t i, raftkv::term_t t, std::int64_t& result) {
        // runs once node n's state is settled; it may call back into node n
    });
    c.run_for(1s);
    // end snippet
    // clang-format on
    BOOST_TEST(!r.ec);
    for (raftkv::node_id id = 1; id <= 5; ++id)
        BOOST_TEST(c.machine(id).value == 1, "node " << id);
}

BOOST_AUTO_TEST_CASE(your_machine_through_the_random_scenarios)
{
    // What the example prints is what failed: nothing, for a machine that keeps its
    // snapshot across crashes as the counter does.
    std::ostringstream printed;
    std::streambuf* const cerr = std::cerr.rdbuf(printed.rdbuf());
    // clang-format off
    // snippet: sweep
    raftkv::sim::machine_scenario<counter> s{
        .command = [](raftkv::sim::random_generator& rng) { return std::string(rng.uniform(1, 9), 'x'); },
        .same_state = [](const counter& a, const counter& b) { return a.value == b.value; },
        .factory = {}, // the default gives each node a counter::disk of its own, kept across its crashes
    };
    for (std::uint64_t seed : raftkv::sim::seeds_from_env(1, 100)) {
        auto r = raftkv::sim::run_machine_scenario(seed, s);
        if (!r.passed) std::cerr << r.report;   // ends with "replay with RAFTKV_SEED=<seed>"
    }
    // end snippet
    // clang-format on
    std::cerr.rdbuf(cerr);
    BOOST_TEST(printed.str().empty(), printed.str());
}

// The workload, the fault injector and the checker drive a cluster over a log store of the
// user's own (here memory_log_store, which cannot stall: the injector blocks links instead).
BOOST_AUTO_TEST_CASE(your_own_log_store_under_clients_and_faults)
{
    using store = raftkv::memory_log_store;
    raftkv::sim::cluster<raftkv::sim::kv_state_machine, store> c{{.nodes = 5, .seed = 9}};
    raftkv::sim::kv_workload<raftkv::sim::kv_state_machine, store> w{c, {.clients = 4}};
    raftkv::sim::fault_injector<raftkv::sim::kv_state_machine, store> faults{c};
    w.start();
    faults.start(3s);
    c.run_for(3s);
    w.stop();
    faults.heal_all();
    BOOST_TEST_REQUIRE(c.run_until([&] { return w.idle(); }, 10s));
    BOOST_TEST(w.acknowledged().size() > 20u);
    const raftkv::sim::check_result r = raftkv::sim::check_kv_history(w.history(), std::chrono::seconds(10));
    BOOST_TEST((r.outcome == raftkv::sim::check_outcome::ok), r.explanation);
}
