#ifndef RAFTKV_DETAIL_READ_QUEUE_HPP
#define RAFTKV_DETAIL_READ_QUEUE_HPP

#include <raftkv/types.hpp>

#include <cstdint>
#include <deque>
#include <vector>

namespace raftkv::detail {

/// One ReadIndex read on its way through the leader.
struct pending_read {
    std::uint64_t id = 0;
    /// The commit index when the read began: it may be served once applied reaches it.
    index_t index = 0;
    /// The heartbeat round whose quorum of echoes confirms this node was still leader.
    std::uint64_t seq = 0;
};

/// The reads a leader is serving, in three stages: `blocked` until the leader commits an
/// entry of its own term (before that its commit index may be stale, thesis §6.4);
/// `unconfirmed` until a quorum echoes round `seq`; `confirmed` until applied reaches
/// `index`. Each stage is ordered by the order of arrival, which is also seq and index
/// order.
struct read_queue {
    std::vector<std::uint64_t> blocked;
    std::deque<pending_read> unconfirmed;
    std::deque<pending_read> confirmed;

    bool empty() const noexcept { return blocked.empty() && unconfirmed.empty() && confirmed.empty(); }

    /// Calls `f(id)` for every read, then forgets them all.
    template <class F>
    void drain(F&& f)
    {
        for (auto id : blocked)
            f(id);
        for (auto& r : unconfirmed)
            f(r.id);
        for (auto& r : confirmed)
            f(r.id);
        blocked.clear();
        unconfirmed.clear();
        confirmed.clear();
    }
};

} // namespace raftkv::detail

#endif
