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
#include <filesystem>
#include <optional>
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

// Disk faults: the nodes run with the disk-pause library (io_pause_shim.cpp) preloaded, and
// a node's writes and syncs to files hang while its pause file exists.

/// The disk-pause library, if this build has it and RAFTKV_NEMESIS_DISK is not 0; else
/// nullopt, with the reason in *why.
std::optional<std::string> io_pause_library(std::string* why);

/// Node `id`'s pause file (in the cluster's directory; it may not exist).
std::filesystem::path pause_file(const e2e::cluster& c, std::uint64_t id);

/// Makes every node of `c` (those added later excepted) start with `library` preloaded and
/// its pause file named. Under ASan the preloaded library comes before the ASan runtime, so
/// ASAN_OPTIONS gets verify_asan_link_order=0. `wal_only`: only the files of each node's
/// write-ahead log (DATA_DIR/wal) hang, as if the log had a disk of its own.
void enable_disk_pauses(e2e::cluster& c, const std::string& library, bool wal_only = false);

/// Hangs (`on`) or resumes node `id`'s disk: creates or removes its pause file.
void set_disk_pause(const e2e::cluster& c, std::uint64_t id, bool on);

struct disk_stall_options {
    /// Every file of the node hangs (its write-ahead log, LevelDB, snapshots), or only its
    /// write-ahead log.
    bool whole_disk = true;
    /// How long the leader's disk hangs at least (it hangs until the checks below are made).
    std::chrono::milliseconds stall = std::chrono::seconds(3);
    /// How long, from the moment the leader's disk hangs, another node has to lead and
    /// acknowledge a write.
    std::chrono::milliseconds failover_bound = std::chrono::seconds(10);
    std::chrono::milliseconds recovery_bound = std::chrono::seconds(60);
};

/// Three nodes; the leader's disk hangs while clients write through the two others. Another
/// node must lead and acknowledge writes within the bound while the disk still hangs; once it
/// returns, the history must be linearizable and the nodes converge. When only the log hangs,
/// the old leader, which keeps running its event loop, must also have stopped saying it leads
/// (when the whole disk hangs, an apply to LevelDB may block that loop, and its last /status
/// is what it answers). Skipped (passed, with a message) when io_pause_library() has none.
run_report leader_disk_stall_round(const disk_stall_options& opts, std::uint64_t seed);

} // namespace raftkv::nemesis

#endif
