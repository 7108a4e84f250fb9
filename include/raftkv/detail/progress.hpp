#ifndef RAFTKV_DETAIL_PROGRESS_HPP
#define RAFTKV_DETAIL_PROGRESS_HPP

#include <raftkv/types.hpp>

#include <cstddef>
#include <cstdint>
#include <vector>

namespace raftkv::detail {

/// The last indexes of the append_requests in flight to one follower, oldest first, in a
/// fixed-capacity ring so a busy leader allocates nothing per message.
class inflight_window {
public:
    void reset(std::size_t capacity)
    {
        ring_.assign(capacity == 0 ? 1 : capacity, 0);
        head_ = count_ = 0;
    }
    bool full() const noexcept { return count_ == ring_.size(); }
    bool empty() const noexcept { return count_ == 0; }
    void clear() noexcept { head_ = count_ = 0; }

    /// REQUIRES: !full().
    void add(index_t last) noexcept
    {
        ring_[(head_ + count_) % ring_.size()] = last;
        ++count_;
    }

    /// Forgets every message whose entries are all at or below `acked`.
    void free_to(index_t acked) noexcept
    {
        while (count_ > 0 && ring_[head_] <= acked)
            pop();
    }

    /// Forgets the oldest message; used when a heartbeat answer shows the follower alive
    /// but the window is stuck full (its answers were lost).
    void free_first() noexcept
    {
        if (count_ > 0)
            pop();
    }

private:
    void pop() noexcept
    {
        head_ = (head_ + 1) % ring_.size();
        --count_;
    }

    std::vector<index_t> ring_ = std::vector<index_t>(1, 0);
    std::size_t head_ = 0;
    std::size_t count_ = 0;
};

/// What a leader knows about one follower.
///
/// In `probe` the leader does not know where the follower's log diverges: it sends one
/// append_request at a time and waits. In `replicate` the follower is known to match up
/// to `match`, and the leader streams entries optimistically, up to a window of messages.
struct progress {
    enum class mode : std::uint8_t { probe, replicate };

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
    /// The highest ReadIndex round this follower has echoed in the current term.
    std::uint64_t read_ack = 0;
    inflight_window inflight;
};

} // namespace raftkv::detail

#endif
