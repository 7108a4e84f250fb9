#ifndef RAFTKV_ASIO_DETAIL_INCARNATION_BOOK_HPP
#define RAFTKV_ASIO_DETAIL_INCARNATION_BOOK_HPP

// What a tcp_transport knows of data directories: its own incarnation and the one it
// recorded for each peer. Shared by the listener (which checks and records) and the peer
// links (which name the receiver's in their greetings). Included by the transport's
// detail headers only.

#include <raftkv/asio/detail/greeting.hpp>
#include <raftkv/types.hpp>

#include <cstdint>
#include <map>
#include <mutex>
#include <set>
#include <utility>
#include <vector>

namespace raftkv::asio::detail {

/// Thread-safe: the listener's connections and the peer links run on strands of their own.
class incarnation_book {
public:
    incarnation_book(std::uint64_t self, std::map<node_id, std::uint64_t> known)
        : self_(self), known_(std::move(known))
    {
        std::erase_if(known_, [](const auto& entry) { return entry.second == 0; });
    }

    /// This node's incarnation; 0 when incarnations are not tracked.
    std::uint64_t self() const noexcept { return self_; }

    /// The incarnation recorded for `peer`; 0 if none (or when not tracking).
    std::uint64_t recorded(node_id peer) const
    {
        std::lock_guard lock(mutex_);
        const auto it = known_.find(peer);
        return it == known_.end() ? 0 : it->second;
    }

    /// check_incarnations() for greeting `g`, recording the sender's incarnation when the
    /// verdict is `learn`. Sets `recorded` to what was recorded for the sender before. A
    /// sender that is not a member (set_members()) is never recorded: its verdict is
    /// `accept` instead of `learn`. A removed member still running would otherwise be
    /// recorded again right after forget(), and its id, added back with a new data
    /// directory, refused.
    incarnation_verdict admit(const greeting& g, std::uint64_t& recorded)
    {
        std::lock_guard lock(mutex_);
        const auto it = known_.find(g.from);
        recorded = it == known_.end() ? 0 : it->second;
        incarnation_verdict verdict = check_incarnations(g, self_, recorded);
        if (verdict != incarnation_verdict::replaced_receiver_directory && g.from_incarnation != 0 &&
            retired_.contains({g.from, g.from_incarnation}))
            return incarnation_verdict::retired_sender_directory;
        if (verdict == incarnation_verdict::learn) {
            if (members_.contains(g.from))
                known_[g.from] = g.from_incarnation;
            else
                verdict = incarnation_verdict::accept;
        }
        return verdict;
    }

    /// The ids whose incarnations may be recorded: the transport's peers, as they change.
    /// Returns the ids that became members without a recorded incarnation: a connection
    /// they greeted with before was accepted without recording them.
    std::vector<node_id> set_members(std::set<node_id> members)
    {
        std::lock_guard lock(mutex_);
        std::vector<node_id> unrecorded;
        for (node_id id : members)
            if (!members_.contains(id) && !known_.contains(id))
                unrecorded.push_back(id);
        members_ = std::move(members);
        return unrecorded;
    }

    /// Whether `peer` is a member whose incarnation is not recorded (while tracking).
    bool unrecorded_member(node_id peer) const
    {
        std::lock_guard lock(mutex_);
        return self_ != 0 && members_.contains(peer) && !known_.contains(peer);
    }

    /// Forgets the incarnation recorded for `peer`: the next one it greets with is learned.
    void forget(node_id peer)
    {
        std::lock_guard lock(mutex_);
        known_.erase(peer);
    }

    /// Refuses `incarnation` under `peer` from now on (and forgets it if recorded): the
    /// data directory of an earlier membership of that id. Returns whether it was new.
    bool retire(node_id peer, std::uint64_t incarnation)
    {
        std::lock_guard lock(mutex_);
        if (const auto it = known_.find(peer); it != known_.end() && it->second == incarnation)
            known_.erase(it);
        return retired_.insert({peer, incarnation}).second;
    }

private:
    const std::uint64_t self_;
    mutable std::mutex mutex_;
    std::map<node_id, std::uint64_t> known_;
    std::set<node_id> members_;
    std::set<std::pair<node_id, std::uint64_t>> retired_;
};

} // namespace raftkv::asio::detail

#endif
