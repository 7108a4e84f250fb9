#ifndef RAFTKV_OPTIONS_HPP
#define RAFTKV_OPTIONS_HPP

// Everything that tunes a basic_node, in one plain struct. Time is measured in
// ticks: the node has no clock, its driver calls tick() at a fixed interval.

#include <raftkv/types.hpp>

#include <cstddef>
#include <cstdint>

namespace raftkv {

struct options {
    /// This node's id. REQUIRES: not no_node; a member of `members` when that is not empty.
    node_id id = no_node;

    /// The configuration a new cluster starts with (bootstrap), this node included. Every
    /// node of a new cluster must be given the same one. Used only when the log store holds
    /// no configuration yet: the node then records it in the store (as the configuration at
    /// index 0), and from then on the configuration comes from the store and the log, and
    /// this field is ignored. Leave it empty for a node that joins an existing cluster: it
    /// learns the configuration from the leader once a change adds it, and until then
    /// neither campaigns nor votes.
    membership members;

    /// A learner may be promoted to voter only while its log matches the leader's to
    /// within this many entries, so a promotion does not leave the cluster waiting for a
    /// voter that is far behind.
    /// Default: 1000.
    std::uint64_t promote_max_lag = 1000;

    /// Refuse a membership change (errc::quorum_at_risk) whose new voters do not hold a
    /// majority that answered this leader within the last one to two election timeouts:
    /// voters that are down or cut off, and a node made a voter before it ever answered,
    /// do not count. Such a change would commit only once enough of them answer, and
    /// under CheckQuorum the leader steps down meanwhile: the cluster stalls. (etcd's
    /// --strict-reconfig-check.) Takes effect with check_quorum, which tracks who answers.
    /// Default: true.
    bool strict_membership_changes = true;

    /// A follower that hears nothing from a leader for a randomized timeout drawn from
    /// [election_ticks, 2 * election_ticks) starts an election. A leader with CheckQuorum
    /// steps down after this many ticks without hearing from a quorum.
    /// REQUIRES: greater than heartbeat_ticks.
    /// Default: 10.
    std::uint32_t election_ticks = 10;

    /// A leader sends heartbeats every this many ticks.
    /// Default: 1.
    std::uint32_t heartbeat_ticks = 1;

    /// Run a PreVote round (thesis §9.6) before a real election, so a node that was
    /// partitioned away cannot disrupt a healthy leader by raising the term when it
    /// rejoins.
    /// Default: true.
    bool pre_vote = true;

    /// A leader that has not heard from a quorum within an election timeout steps down,
    /// and voters ignore vote requests while they believe a leader is alive (thesis §6.2).
    /// Default: true.
    bool check_quorum = true;

    /// Lease reads (basic_node::lease_valid()): a leader may serve a read from its own state
    /// machine, without a ReadIndex round, until `election_ticks - lease_margin_ticks` ticks
    /// after it sent a heartbeat round that a quorum acknowledged. A follower that acknowledged
    /// it refuses other candidates for at least election_ticks - 1 of its own ticks from then
    /// (CheckQuorum), so the margin must cover one tick of rounding plus how far the nodes'
    /// tick rates may differ over an election timeout (docs/design.md, "Lease reads").
    /// Lease reads are off when this leaves no tick (margin >= election_ticks) or when
    /// check_quorum is off; the node then never reports a valid lease.
    /// REQUIRES: at least 1.
    /// Default: 2.
    std::uint32_t lease_margin_ticks = 2;

    /// ReadIndex rounds a leader keeps in flight at once, and read_index_requests a follower
    /// keeps in flight to its leader. A read waits for a round (or request) that starts after
    /// it arrives: with one in flight, the reads that arrive meanwhile wait for its answer
    /// before theirs can start; with more, each batch of reads starts its own at once, which
    /// costs a heartbeat to every follower (or a message to the leader) per batch and saves
    /// up to a round trip per read.
    /// REQUIRES: at least 1.
    /// Default: 4.
    std::uint32_t max_read_rounds = 4;

    /// The most entries one append_request carries.
    /// Default: 256.
    std::size_t max_entries_per_append = 256;

    /// The most entry payload bytes one append_request carries (at least one entry is
    /// always sent, whatever its size).
    /// Default: 1 MiB.
    std::size_t max_bytes_per_append = 1024 * 1024;

    /// How many append_requests may be in flight to one follower before the leader waits
    /// for an answer. More pipelines replication over long links; proposals that arrive
    /// while the window is full are batched into the next message.
    /// Default: 16.
    std::size_t max_inflight_appends = 16;

    /// The most entry payload bytes in flight to one follower: together with
    /// max_inflight_appends, bounds what a slow follower makes the leader buffer.
    /// Default: 8 MiB.
    std::size_t max_inflight_bytes = 8 * 1024 * 1024;

    /// The most payload bytes of entries a leader holds uncommitted. Proposals past it are
    /// refused with errc::overloaded until commits catch up, so a leader that cannot reach
    /// a quorum does not grow its log without bound. A proposal made while nothing is
    /// uncommitted is taken whatever its size, so that one larger than the limit is not
    /// refused for ever: bound the size of a command where it is made. 0: no limit.
    /// Default: 64 MiB.
    std::size_t max_uncommitted_bytes = 64 * 1024 * 1024;

    /// Take a snapshot once this many entries were applied since the last one, then drop
    /// the log behind it (keeping snapshot_catchup_entries). 0: never by count.
    /// Default: 10000.
    std::uint64_t snapshot_entries = 10000;

    /// Take a snapshot once this many payload bytes were applied since the last one.
    /// 0: never by size.
    /// Default: 64 MiB.
    std::uint64_t snapshot_bytes = 64 * 1024 * 1024;

    /// Entries kept in the log behind a snapshot, so that a follower slightly behind still
    /// catches up from the log rather than with a whole snapshot.
    /// Default: 5000.
    std::uint64_t snapshot_catchup_entries = 5000;

    /// The most payload bytes kept in the log behind a snapshot: with large entries,
    /// snapshot_catchup_entries alone could keep gigabytes (and a log store that caches its
    /// entries holds them in memory). The log keeps whichever of the two is less. Entries
    /// applied before the node started are of unknown size and stay until entries applied
    /// since fill the budget. 0: no limit by size.
    /// Default: 64 MiB.
    std::uint64_t snapshot_catchup_bytes = 64 * 1024 * 1024;

    /// The most payload bytes of log a leader keeps for a follower it sends a snapshot to,
    /// or that catches up from one: counted from the entry the follower needs next to the
    /// last applied one. A leader keeps the log after the snapshot being sent, and after
    /// the transfer until the follower has caught up, however long that takes; past this
    /// many bytes it gives up (a transfer still in progress, or the catch-up) and sends
    /// the follower a newer snapshot instead. Only counted when snapshots are taken;
    /// entries applied before the node started are of unknown size and do not count.
    /// 0: no limit.
    /// Default: 512 MiB.
    std::uint64_t snapshot_hold_bytes = 512 * 1024 * 1024;

    /// The size of one install_snapshot chunk. REQUIRES: > 0.
    /// Default: 1 MiB.
    std::size_t snapshot_chunk_bytes = 1024 * 1024;

    /// The most snapshot bytes in flight to one follower. REQUIRES: >= snapshot_chunk_bytes.
    /// Default: 4 MiB.
    std::size_t max_snapshot_inflight_bytes = 4 * 1024 * 1024;

    /// The most entries handed to the state machine in one apply call.
    /// Default: 1024.
    std::size_t max_apply_batch = 1024;

    /// Seeds the generator that randomizes election timeouts, and where a follower starts
    /// numbering the read index requests it sends its leader. Give each node a different
    /// seed, and a node a new one each time it starts (from std::random_device, say): a
    /// node restarted with its previous seed could, if an answer to its previous life's
    /// request arrives late enough, serve a read at that older index. Give the same seeds
    /// to replay the same run.
    /// Default: 0 (mixed with `id`, so nodes still differ).
    std::uint64_t random_seed = 0;
};

} // namespace raftkv

#endif
