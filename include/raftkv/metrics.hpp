#ifndef RAFTKV_METRICS_HPP
#define RAFTKV_METRICS_HPP

// Plain counters the library keeps about itself, for the user to read and export however
// they like (the reference server renders them for Prometheus, docs/metrics.md). Nothing
// here does I/O, takes a lock or depends on a metrics library: a node's counters are
// read through basic_node::metrics() (raftkv::asio::driver::async_metrics() off the
// strand), a write-ahead log's through raftkv::wal::log_store::stats().

#include <raftkv/types.hpp>

#include <algorithm>
#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace raftkv {

/** A histogram of unsigned values in power-of-two buckets, which fit every unit without
    a choice of bounds: bucket `k` counts the values `v` with 2^(k-1) < v <= 2^k (bucket 0
    counts 0 and 1). A reader may merge adjacent buckets, so any subset of the bounds 2^k
    gives an exact cumulative histogram.

    Plain data: recording is an increment and an add, and the owner decides how it is
    shared between threads.
*/
struct log2_histogram {
    static constexpr std::size_t bucket_count = 64;

    /// Counts per bucket, not cumulative.
    std::array<std::uint64_t, bucket_count> buckets{};
    /// The sum of the values recorded (wraps after 2^64).
    std::uint64_t sum = 0;

    /// The bucket `v` falls in.
    static constexpr std::size_t bucket_of(std::uint64_t v) noexcept
    {
        return v <= 1 ? 0 : std::min<std::size_t>(std::bit_width(v - 1), bucket_count - 1);
    }

    /// The largest value bucket `k` holds: 2^k (the last bucket holds everything above).
    static constexpr std::uint64_t upper_bound(std::size_t k) noexcept { return std::uint64_t{1} << k; }

    void record(std::uint64_t v) noexcept
    {
        ++buckets[bucket_of(v)];
        sum += v;
    }

    /// The number of values recorded.
    std::uint64_t count() const noexcept
    {
        std::uint64_t n = 0;
        for (std::uint64_t b : buckets)
            n += b;
        return n;
    }

    friend bool operator==(const log2_histogram&, const log2_histogram&) = default;
};

/// What a leader knows of one follower's replication (node_metrics::peers).
struct peer_metrics {
    node_id id = no_node;
    /// The highest index known to match and be durable on the follower.
    index_t match = 0;
    /// The next index the leader sends it.
    index_t next = 1;
    /// Whether the leader streams entries to it (`replicate`), probes where its log
    /// diverges (`probe`), or sends it a snapshot (`snapshot`).
    enum class mode : std::uint8_t { probe, replicate, snapshot };
    mode state = mode::probe;
    /// append_requests sent and not acknowledged yet, and their payload bytes.
    std::uint64_t inflight_messages = 0;
    std::uint64_t inflight_bytes = 0;
    /// Heard from within the current or the previous CheckQuorum period (the last one
    /// to two election timeouts). A new leader counts every peer as heard for its first
    /// period. The current period alone would read "not heard" for a moment after each
    /// period starts, until the next heartbeat answer.
    bool active = false;

    friend bool operator==(const peer_metrics&, const peer_metrics&) = default;
};

/// A short lower-case name for a replication mode ("probe", "replicate", "snapshot").
constexpr const char* to_string(peer_metrics::mode m) noexcept
{
    switch (m) {
    case peer_metrics::mode::probe: return "probe";
    case peer_metrics::mode::replicate: return "replicate";
    case peer_metrics::mode::snapshot: return "snapshot";
    }
    return "unknown";
}

/** Counters of one basic_node since it was constructed. Every counter only grows; a node
    built again (a restart, or after a storage failure) starts from zero.
*/
struct node_metrics {
    /// Times this node learned of a new leader (itself included): the known leader changed
    /// to a node other than the one before.
    std::uint64_t leader_changes = 0;
    /// Times this node became leader.
    std::uint64_t elections_won = 0;
    /// Times this node stopped leading, by reason (step_down_reason, `none` aside).
    std::array<std::uint64_t, static_cast<std::size_t>(step_down_reason::removed) + 1> step_downs{};

    /// Entries this node proposed as leader (commands, its own and those forwarded to it,
    /// and configuration changes) that were applied in the term they were proposed in.
    std::uint64_t proposals_committed = 0;
    /// Entries this node proposed as leader that did not take effect or whose outcome is
    /// unknown here: overwritten by another leader, or gone with a lost leadership.
    std::uint64_t proposals_dropped = 0;
    /// Commands propose() refused at once, by reason: errc::not_leader,
    /// errc::overloaded, errc::transfer_in_progress.
    std::uint64_t proposals_refused_not_leader = 0;
    std::uint64_t proposals_refused_overloaded = 0;
    std::uint64_t proposals_refused_transfer = 0;
    /// Commands this node sent to its leader with forward().
    std::uint64_t proposals_forwarded = 0;

    /// ReadIndex heartbeat rounds this node started as leader (each confirms every read
    /// waiting), and read_index requests it sent to its leader as a follower (each for
    /// every read waiting).
    std::uint64_t read_index_rounds = 0;
    std::uint64_t follower_read_requests = 0;

    /// Batches handed to StateMachine::apply(), by their number of entries.
    log2_histogram apply_batch_entries;

    /// Snapshots taken (StateMachine::take_snapshot() calls).
    std::uint64_t snapshots_taken = 0;
    /// Snapshots installed from a leader, and the size of the last one's stream in bytes.
    std::uint64_t snapshots_installed = 0;
    std::uint64_t last_installed_snapshot_bytes = 0;
    /// Snapshots this node streamed to followers to the end, and the bytes of every chunk
    /// it sent (resent chunks included).
    std::uint64_t snapshots_sent = 0;
    std::uint64_t snapshot_bytes_sent = 0;
    /// Snapshot transfers this node gave up before their end, by reason: the follower
    /// answered nothing for 20 election timeouts, or the transfer would have held more than
    /// options::snapshot_hold_bytes of log. The follower is sent a newer snapshot when it
    /// answers again.
    std::uint64_t snapshot_transfers_given_up_silent = 0;
    std::uint64_t snapshot_transfers_given_up_hold_bytes = 0;

    /// On the leader, one entry per other member it replicates to; empty otherwise.
    std::vector<peer_metrics> peers;
};

} // namespace raftkv

#endif
