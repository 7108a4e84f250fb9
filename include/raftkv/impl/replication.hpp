#ifndef RAFTKV_IMPL_REPLICATION_HPP
#define RAFTKV_IMPL_REPLICATION_HPP

// Log replication (Raft §5.3), commitment (§5.4) and applying committed entries.

#include <raftkv/node.hpp>

#include <algorithm>
#include <limits>

namespace raftkv {

// ---- follower side ----------------------------------------------------------------

template <transport Transport, log_store LogStore, state_machine StateMachine>
void basic_node<Transport, LogStore, StateMachine>::handle_append_request(const message& m, append_request& r)
{
    leader_ = m.from;
    election_elapsed_ = 0;
    for (std::size_t k = 0; k < r.entries.size(); ++k) {
        const log_entry& e = r.entries[k];
        if (e.index != r.prev_index + 1 + k || e.term > m.term || (k > 0 && e.term < r.entries[k - 1].term))
            return; // malformed: a correct leader never sends this
    }
    if (r.prev_index < commit_) {
        // Everything up to our commit index is known to match; say so, and let the
        // leader continue from there.
        acknowledge(commit_);
        return;
    }
    if (r.prev_index > store_.last_index() || store_.term_at(r.prev_index) != r.prev_term) {
        send(m.from, reject_hint(r.prev_index));
        return;
    }
    // Skip the entries we already hold; truncate at the first that conflicts (§5.3).
    std::size_t k = 0;
    while (k < r.entries.size() && r.entries[k].index <= store_.last_index() &&
           store_.term_at(r.entries[k].index) == r.entries[k].term)
        ++k;
    if (k < r.entries.size()) {
        assert(r.entries[k].index > commit_);
        store_.append(std::span<const log_entry>(r.entries).subspan(k));
    }
    const index_t last_new = r.prev_index + r.entries.size();
    commit_ = std::max(commit_, std::min(r.commit, last_new));
    acknowledge(last_new);
    apply_committed();
}

// Entries up to `match` match the current leader's log. Tell it so once they are durable.
template <transport Transport, log_store LogStore, state_machine StateMachine>
void basic_node<Transport, LogStore, StateMachine>::acknowledge(index_t match)
{
    if (pending_ack_term_ != term_ || pending_ack_index_ < match) {
        pending_ack_term_ = term_;
        pending_ack_index_ = match;
    }
    if (store_.durable_index() >= match) {
        send(leader_, append_response{.success = true, .match_index = match});
        if (pending_ack_index_ == match)
            pending_ack_index_ = 0;
    }
}

template <transport Transport, log_store LogStore, state_machine StateMachine>
void basic_node<Transport, LogStore, StateMachine>::flush_pending_ack()
{
    if (role_ != role::follower || leader_ == no_node || pending_ack_term_ != term_ ||
        pending_ack_index_ == 0)
        return;
    const index_t durable = std::min(store_.durable_index(), pending_ack_index_);
    if (durable == 0)
        return;
    send(leader_, append_response{.success = true, .match_index = durable});
    if (durable == pending_ack_index_)
        pending_ack_index_ = 0;
}

// The hint that lets a leader skip a whole divergent term per round trip.
template <transport Transport, log_store LogStore, state_machine StateMachine>
append_response basic_node<Transport, LogStore, StateMachine>::reject_hint(index_t prev_index) const
{
    append_response r{.success = false, .reject_index = prev_index};
    const index_t last = store_.last_index();
    if (prev_index > last) {
        r.conflict_index = last + 1;
        return r;
    }
    // Terms never decrease along the log: binary-search the first index of our term at
    // prev_index, no lower than commit_ + 1 (everything committed matches).
    r.conflict_term = store_.term_at(prev_index);
    index_t lo = std::max(commit_ + 1, store_.first_index());
    index_t hi = prev_index;
    while (lo < hi) {
        const index_t mid = lo + (hi - lo) / 2;
        if (store_.term_at(mid) < r.conflict_term)
            lo = mid + 1;
        else
            hi = mid;
    }
    r.conflict_index = lo;
    return r;
}

template <transport Transport, log_store LogStore, state_machine StateMachine>
void basic_node<Transport, LogStore, StateMachine>::handle_heartbeat(const message& m, const heartbeat& h)
{
    leader_ = m.from;
    election_elapsed_ = 0;
    // The leader never sends a commit index beyond what we are known to match.
    commit_ = std::max(commit_, std::min(h.commit, store_.last_index()));
    send(m.from, heartbeat_response{h.read_seq});
    apply_committed();
}

// ---- leader side ------------------------------------------------------------------

template <transport Transport, log_store LogStore, state_machine StateMachine>
void basic_node<Transport, LogStore, StateMachine>::handle_append_response(const message& m,
                                                                           const append_response& r)
{
    auto* p = progress_of(m.from);
    if (!p)
        return;
    p->recent_active = true;
    using mode = detail::progress::mode;
    if (r.success) {
        if (r.match_index > store_.last_index())
            return; // impossible from a correct follower in our term
        p->match = std::max(p->match, r.match_index);
        if (p->state == mode::probe) {
            p->state = mode::replicate;
            p->next = p->match + 1;
            p->probe_sent = false;
            p->inflight.clear();
        } else {
            p->next = std::max(p->next, p->match + 1);
            p->inflight.free_to(r.match_index);
        }
        maybe_commit();
        maybe_send_timeout_now(*p);
        send_append(*p, p->commit_sent < commit_);
        return;
    }
    // A rejection is stale unless it answers the request the leader is waiting on.
    if (p->state == mode::replicate ? r.reject_index <= p->match : r.reject_index + 1 != p->next)
        return;
    p->next = next_after_rejection(*p, r);
    p->state = mode::probe;
    p->probe_sent = false;
    p->inflight.clear();
    send_append(*p, true);
}

// Where to probe next after a rejection: past our last entry of the follower's
// conflicting term if we have that term, else the first index the follower holds of it.
template <transport Transport, log_store LogStore, state_machine StateMachine>
index_t basic_node<Transport, LogStore, StateMachine>::next_after_rejection(const detail::progress& p,
                                                                            const append_response& r) const
{
    index_t next = r.conflict_index;
    if (r.conflict_term != 0) {
        const index_t at_most =
            last_index_with_term_at_most(r.conflict_term, std::min(r.reject_index, store_.last_index()));
        if (at_most >= store_.first_index() && store_.term_at(at_most) == r.conflict_term)
            next = at_most + 1;
    }
    return std::clamp<index_t>(next, p.match + 1, std::max<index_t>(r.reject_index, p.match + 1));
}

// The last index i <= from whose term is <= t (first_index() - 1 if none).
template <transport Transport, log_store LogStore, state_machine StateMachine>
index_t basic_node<Transport, LogStore, StateMachine>::last_index_with_term_at_most(term_t t,
                                                                                    index_t from) const
{
    index_t lo = store_.first_index() - 1;
    index_t hi = from;
    while (lo < hi) {
        const index_t mid = hi - (hi - lo) / 2;
        if (store_.term_at(mid) <= t)
            lo = mid;
        else
            hi = mid - 1;
    }
    return lo;
}

template <transport Transport, log_store LogStore, state_machine StateMachine>
void basic_node<Transport, LogStore, StateMachine>::handle_heartbeat_response(const message& m,
                                                                              const heartbeat_response& r)
{
    auto* p = progress_of(m.from);
    if (!p)
        return;
    p->recent_active = true;
    if (r.read_seq > p->read_ack) {
        p->read_ack = r.read_seq;
        advance_reads();
    }
    if (p->match < store_.last_index()) {
        // The follower is alive but behind: whatever we sent it may have been lost. With
        // nothing new to send, an empty append probes the tail: if the last message was
        // lost, the follower rejects it and the leader falls back to probing.
        p->probe_sent = false;
        if (p->inflight.full())
            p->inflight.free_first();
        send_append(*p, true);
    }
}

template <transport Transport, log_store LogStore, state_machine StateMachine>
void basic_node<Transport, LogStore, StateMachine>::send_append(detail::progress& p, bool allow_empty)
{
    while (send_one_append(p, allow_empty))
        allow_empty = false;
}

// Sends one append_request to `p` if its state allows. Returns true if another may follow.
template <transport Transport, log_store LogStore, state_machine StateMachine>
bool basic_node<Transport, LogStore, StateMachine>::send_one_append(detail::progress& p, bool allow_empty)
{
    using mode = detail::progress::mode;
    if (p.state == mode::probe ? p.probe_sent : p.inflight.full())
        return false;
    const index_t last = store_.last_index();
    if (p.next > last && !allow_empty)
        return false;
    append_request req{
        .prev_index = p.next - 1, .prev_term = store_.term_at(p.next - 1), .commit = commit_, .entries = {}};
    if (p.next <= last) {
        const index_t hi = std::min<index_t>(last + 1, p.next + opts_.max_entries_per_append);
        req.entries = store_.entries(p.next, hi, opts_.max_bytes_per_append);
    }
    const bool carries = !req.entries.empty();
    p.commit_sent = commit_;
    if (p.state == mode::probe) {
        p.probe_sent = true;
    } else if (carries) {
        p.next = req.entries.back().index + 1;
        p.inflight.add(req.entries.back().index);
    }
    send(p.id, std::move(req));
    return p.state == mode::replicate && carries && p.next <= last;
}

template <transport Transport, log_store LogStore, state_machine StateMachine>
void basic_node<Transport, LogStore, StateMachine>::broadcast_append(bool allow_empty)
{
    for (auto& p : peers_)
        send_append(p, allow_empty);
}

template <transport Transport, log_store LogStore, state_machine StateMachine>
void basic_node<Transport, LogStore, StateMachine>::broadcast_heartbeat()
{
    for (const auto& p : peers_)
        send(p.id, heartbeat{.commit = std::min(p.match, commit_), .read_seq = read_seq_});
}

// Commits the highest index a quorum holds durably, if it is of our term (§5.4.2).
template <transport Transport, log_store LogStore, state_machine StateMachine>
void basic_node<Transport, LogStore, StateMachine>::maybe_commit()
{
    quorum_scratch_.clear();
    quorum_scratch_.push_back(store_.durable_index());
    for (const auto& p : peers_)
        quorum_scratch_.push_back(p.match);
    const index_t q = detail::quorum_value(quorum_scratch_, opts_.members.quorum());
    if (q <= commit_ || store_.term_at(q) != term_)
        return;
    commit_ = q;
    apply_committed();
    unblock_reads();
    // Followers learn the new commit index with the next entries; idle ones get it now.
    for (auto& p : peers_) {
        if (p.state == detail::progress::mode::replicate && p.inflight.empty())
            send_append(p, true);
    }
}

template <transport Transport, log_store LogStore, state_machine StateMachine>
void basic_node<Transport, LogStore, StateMachine>::maybe_send_timeout_now(detail::progress& p)
{
    if (transfer_target_ == p.id && p.match == store_.last_index())
        send(p.id, timeout_now{});
}

// ---- applying ---------------------------------------------------------------------

// Hands committed entries to the state machine in batches. Only durable entries are
// applied, so a restarted node never finds its state machine ahead of its log.
template <transport Transport, log_store LogStore, state_machine StateMachine>
void basic_node<Transport, LogStore, StateMachine>::apply_committed()
{
    const index_t limit = std::min(commit_, store_.durable_index());
    while (applied_ < limit) {
        const index_t hi = std::min<index_t>(limit, applied_ + opts_.max_apply_batch);
        apply_batch_ = store_.entries(applied_ + 1, hi + 1, std::numeric_limits<std::size_t>::max());
        apply_results_.clear();
        apply_results_.resize(apply_batch_.size());
        machine_.apply(std::span<const log_entry>(apply_batch_), std::span<result_type>(apply_results_));
        applied_ = apply_batch_.back().index;
        if (apply_handler_) {
            for (std::size_t k = 0; k < apply_batch_.size(); ++k)
                apply_handler_(apply_batch_[k].index, apply_batch_[k].term, apply_results_[k]);
        }
    }
    if (role_ == role::leader)
        advance_reads();
}

} // namespace raftkv

#endif
