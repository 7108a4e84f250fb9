#include <raftkv/sim/sweep.hpp>

#define BOOST_TEST_MODULE sim_sweep
#include <boost/test/unit_test.hpp>

#include <chrono>
#include <cstdint>
#include <vector>

// Random fault scenarios, one per seed: clients, partitions, crashes and restarts, lossy
// and duplicating links, lagging syncs; then heal, settle and check invariants, durability
// of acknowledged writes and linearizability.
//
// By default 500 seeds from 1. Environment overrides:
//   RAFTKV_SEED=<n>         replay one seed (what a failure report prints)
//   RAFTKV_SEEDS=<count>    run more seeds, e.g. RAFTKV_SEEDS=20000 for a long sweep
//   RAFTKV_FIRST_SEED=<n>   start somewhere else

using namespace raftkv::sim;

BOOST_AUTO_TEST_CASE(random_fault_scenarios_keep_raft_safe_and_linearizable)
{
    const std::vector<std::uint64_t> seeds = seeds_from_env(1, 500);
    std::size_t failed = 0, inconclusive = 0, operations = 0, installs = 0;
    const auto start = std::chrono::steady_clock::now();
    for (std::uint64_t seed : seeds) {
        const scenario_result r = run_random_scenario(seed);
        operations += r.operations;
        installs += r.snapshots_installed;
        if (!r.passed) {
            ++failed;
            BOOST_ERROR(r.report);
        } else if (r.inconclusive) {
            ++inconclusive;
            BOOST_TEST_MESSAGE(r.report);
        }
    }
    const auto seconds =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start)
            .count() /
        1000.0;
    BOOST_TEST_MESSAGE(seeds.size() << " seeds, " << operations << " client operations, " << installs
                                    << " snapshots installed, " << failed << " failed, " << inconclusive
                                    << " inconclusive, in " << seconds << " s");
}
