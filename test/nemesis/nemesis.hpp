#ifndef RAFTKV_TEST_NEMESIS_NEMESIS_HPP
#define RAFTKV_TEST_NEMESIS_NEMESIS_HPP

// One round of fault injection on a raftkv-server cluster whose Raft traffic crosses a
// proxy (proxy.hpp): clients record a history (test/e2e/recording_clients.hpp) while a
// nemesis, its choices drawn from a seed, injects faults; then everything is healed and the
// round checks recovery, linearizability and convergence with Boost.Test assertions.

#include "harness.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>

namespace raftkv::nemesis {

struct run_options {
    std::size_t nodes = 3;
    /// How long the nemesis injects faults (the round takes longer: start, recovery, checks).
    std::chrono::milliseconds fault_time = std::chrono::seconds(18);
    int clients = 4;
    std::size_t keys = 5;
    /// How long the healed cluster has to serve every node again, and to converge.
    std::chrono::milliseconds recovery_bound = std::chrono::seconds(60);
};

struct run_report {
    bool passed = false;
    /// One line: the seed, the faults, the operations and their outcomes.
    std::string summary;
};

/// Runs one round with `seed`. Failures are Boost.Test failures of the current test case;
/// each names the seed, and the nemesis' log is printed with them.
run_report run_round(const run_options& opts, std::uint64_t seed);

} // namespace raftkv::nemesis

#endif
