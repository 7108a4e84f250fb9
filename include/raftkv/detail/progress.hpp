#ifndef RAFTKV_DETAIL_PROGRESS_HPP
#define RAFTKV_DETAIL_PROGRESS_HPP

#include <raftkv/types.hpp>

#include <cstddef>
#include <cstdint>
#include <vector>

namespace raftkv::detail {

/// The append_requests in flight to one follower (the last index and payload bytes of
/// each), oldest first, in a fixed-capacity ring so a busy leader allocates nothing per
/// message. Full when it holds `capacity` messages or `max_bytes` bytes.
class inflight_window {
public:
    void reset(std::size_t capacity, std::size_t max_bytes)
    {
        ring_.assign(capacity == 0 ? 1 : capacity, slot{});
        max_bytes_ = max_bytes;
        clear();
    }
    bool full() const noexcept { return count_ == ring_.size() || (count_ > 0 && bytes_ >= max_bytes_); }
    bool empty() const noexcept { return count_ == 0; }
    std::size_t bytes() const noexcept { return bytes_; }
    std::size_t size() const noexcept { return count_; }
    void clear() noexcept { head_ = count_ = bytes_ = 0; }

    /// REQUIRES: !full().
    void add(index_t last, std::size_t bytes) noexcept
    {
        ring_[(head_ + count_) % ring_.size()] = slot{last, bytes};
        ++count_;
        bytes_ += bytes;
    }

    /// Forgets every message whose entries are all at or below `acked`.
    void free_to(index_t acked) noexcept
    {
        while (count_ > 0 && ring_[head_].last <= acked) {
            bytes_ -= ring_[head_].bytes;
            head_ = (head_ + 1) % ring_.size();
            --count_;
        }
    }

private:
    struct slot {
        index_t last = 0;
        std::size_t bytes = 0;
    };
    std::vector<slot> ring_ = std::vector<slot>(1);
    std::size_t max_bytes_ = 0;
    std::size_t head_ = 0;
    std::size_t count_ = 0;
    std::size_t bytes_ = 0;
};

/// What a leader knows about one follower.
///
/// In `probe` the leader does not know where the follower's log diverges: it sends one
/// append_request at a time and waits. In `replicate` the follower is known to match up
/// to `match`, and the leader streams entries optimistically, up to a window of messages.
/// In `snapshot` the follower needs entries the leader no longer holds (or its state
/// machine lost its state): the leader streams it a snapshot and sends no entries.
struct progress {
    enum class mode : std::uint8_t { probe, replicate, snapshot };

    node_id id = no_node;
    /// The highest index known to be durably stored on the follower and to match.
    index_t match = 0;
    /// The next index to send.
    index_t next = 1;
    /// The commit index the last append_request to this follower carried.
    index_t commit_sent = 0;
    mode state = mode::probe;
    /// In probe mode: an append_request is outstanding.
    bool probe_sent = false;
    /// Heard from within the current CheckQuorum period.
    bool recent_active = false;
    /// Heard from within the previous period (true in a leader's first period: the
    /// benefit of the doubt). Neither flag set: silent for at least an election timeout.
    bool active_last_period = false;
    /// Heard from within the current or the previous period: the last one to two election
    /// timeouts. What metrics show, and what a transfer or a membership change asks of a peer.
    bool heard_lately() const noexcept { return recent_active || active_last_period; }
    /// Ticks since the follower last answered anything (an append, a heartbeat, a snapshot
    /// chunk): what tells a follower that stopped from one busy for a while.
    std::uint32_t silent_ticks = 0;
    /// Ticks since the follower last answered an append or a snapshot chunk while
    /// something was in flight to it: a stalled stream is re-probed, never re-sent blindly.
    std::uint32_t ticks_since_ack = 0;
    /// Set when a snapshot transfer to this follower finishes: while it catches up from the
    /// snapshot's index, the leader keeps its log from `match` (maybe_compact), as long as
    /// the follower stays within this many entries of the leader's last one (and answers,
    /// and the log kept fits snapshot_hold_bytes). 0: no hold.
    index_t catchup_hold = 0;
    /// The highest ReadIndex round this follower has echoed in the current term.
    std::uint64_t read_ack = 0;
    inflight_window inflight;
};

} // namespace raftkv::detail

#endif
