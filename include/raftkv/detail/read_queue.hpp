#ifndef RAFTKV_DETAIL_READ_QUEUE_HPP
#define RAFTKV_DETAIL_READ_QUEUE_HPP

#include <raftkv/types.hpp>

#include <cstdint>
#include <deque>
#include <vector>

namespace raftkv::detail {

/// One ReadIndex read on its way through the leader: one of its own, or a follower's
/// read_index_request.
struct pending_read {
    /// The caller's read id, or the follower's request number.
    std::uint64_t id = 0;
    /// The commit index when the read began: it may be served once applied reaches it.
    index_t index = 0;
    /// The heartbeat round whose quorum of echoes confirms this node was still leader.
    std::uint64_t seq = 0;
    /// The follower that asked, or no_node for a read of this node's own.
    node_id from = no_node;
};

/// The reads a leader is serving, in three stages: `blocked` until the leader commits an
/// entry of its own term (before that its commit index may be stale, thesis §6.4);
/// `unconfirmed` until a quorum echoes round `seq`; `confirmed` until applied reaches
/// `index` (a follower's request is answered instead, and waits for its own apply). Each
/// stage is ordered by the order of arrival, which is also seq and index order.
struct read_queue {
    std::vector<pending_read> blocked;
    std::deque<pending_read> unconfirmed;
    std::deque<pending_read> confirmed;

    bool empty() const noexcept { return blocked.empty() && unconfirmed.empty() && confirmed.empty(); }

    /// Calls `f(read)` for every read, then forgets them all.
    template <class F>
    void drain(F&& f)
    {
        for (const auto& r : blocked)
            f(r);
        for (const auto& r : unconfirmed)
            f(r);
        for (const auto& r : confirmed)
            f(r);
        blocked.clear();
        unconfirmed.clear();
        confirmed.clear();
    }
};

/// The reads a follower serves through its leader (thesis §6.4), all sent to `leader` in
/// `term`: `waiting` for the next request, then in one of the requests in flight
/// (`requested`, oldest first, each with its number and the tick it was sent at), then
/// `ready` with the index the leader named, until applied reaches it. Request numbers grow
/// in the order of sending, and an answer to one also answers every older one: the leader
/// confirmed its leadership after that request was sent, so after every read of the older
/// ones arrived, and named an index no lower than it would have for them. `ready` is in index
/// order: a leader's commit index never decreases within its term.
struct follower_read_queue {
    struct request {
        std::uint64_t number = 0;
        std::uint64_t sent_tick = 0;
        std::vector<std::uint64_t> reads;
    };

    node_id leader = no_node;
    term_t term = 0;
    std::vector<std::uint64_t> waiting;
    std::deque<request> requested;
    std::deque<pending_read> ready;

    bool empty() const noexcept { return waiting.empty() && requested.empty() && ready.empty(); }

    /// Calls `f(id)` for every read, then forgets them all and the requests in flight.
    template <class F>
    void drain(F&& f)
    {
        for (auto id : waiting)
            f(id);
        for (const auto& r : requested)
            for (auto id : r.reads)
                f(id);
        for (const auto& r : ready)
            f(r.id);
        waiting.clear();
        requested.clear();
        ready.clear();
    }
};

} // namespace raftkv::detail

#endif
