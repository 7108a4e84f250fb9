#ifndef RAFTKV_IMPL_REPLICATION_HPP
#define RAFTKV_IMPL_REPLICATION_HPP

// Log replication (Raft §5.3), commitment (§5.4) and applying committed entries.

#include <raftkv/node.hpp>

#include <algorithm>
#include <cstddef>
#include <limits>
#include <string>
#include <system_error>

namespace raftkv {

// ---- follower side ----------------------------------------------------------------

template <transport Transport, log_store LogStore, state_machine StateMachine>
void basic_node<Transport, LogStore, StateMachine>::handle_append_request(const message& m, append_request& r)
{
    leader_ = m.from;
    election_elapsed_ = 0;
    for (std::size_t k = 0; k < r.entries.size(); ++k) {
        const log_entry& e = r.entries[k];
        // Terms never fall along a log: not from the entry before the first (prev_term) nor
        // from one entry to the next; and no entry has term 0. A store may refuse to open
        // such a log again (the WAL does), so accepting one would stop the node's restart.
        const term_t before = k == 0 ? r.prev_term : r.entries[k - 1].term;
        if (e.index != r.prev_index + 1 + k || e.term > m.term || e.term == 0 || e.term < before ||
            (e.type == entry_type::config && !holds_valid_config(e))) {
            ++malformed_dropped_; // a correct leader never sends this
            return;
        }
    }
    if (behind_log_) {
        send(m.from,
             append_response{.success = false, .reject_index = r.prev_index, .snapshot_needed = true});
        return;
    }
    abort_restore(); // a leader that sends entries gave up on the snapshot it was sending
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
        forget_proposals_from(r.entries[k].index);
        store_.append(std::span<const log_entry>(r.entries).subspan(k));
        note_appended(std::span<const log_entry>(r.entries).subspan(k));
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
    // The leader never sends a commit index beyond what we acknowledged as durable.
    if (h.commit > store_.last_index())
        throw std::system_error(make_error_code(errc::storage_inconsistent),
                                "raftkv: node " + std::to_string(opts_.id) + " was told by leader " +
                                    std::to_string(m.from) + " of term " + std::to_string(m.term) +
                                    " to commit index " + std::to_string(h.commit) +
                                    " but its log ends at index " + std::to_string(store_.last_index()) +
                                    ": was the raft log corrupted, truncated, or lost?");
    commit_ = std::max(commit_, h.commit);
    send(m.from, heartbeat_response{h.read_seq});
    if (behind_log_) // an idle leader sends no appends to reject: ask for the snapshot now
        send(m.from, append_response{.success = false, .snapshot_needed = true});
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
    p->silent_ticks = 0;
    using mode = detail::progress::mode;
    if (r.success) {
        if (r.match_index > store_.last_index())
            return; // impossible from a correct follower in our term
        p->match = std::max(p->match, r.match_index);
        if (p->state == mode::snapshot && p->match + 1 < store_.first_index()) {
            maybe_commit(); // a late answer: the follower still needs the snapshot
            return;
        }
        p->ticks_since_ack = 0;
        if (p->state != mode::replicate) {
            // A probe answered, or a follower that needed no snapshot after all.
            sender_of(*p).stop();
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
    if (r.snapshot_needed) {
        if (p->state != mode::snapshot)
            start_snapshot_transfer(*p);
        return;
    }
    // A rejection is stale unless it answers the request the leader is waiting on.
    if (p->state == mode::snapshot ||
        (p->state == mode::replicate ? r.reject_index <= p->match : r.reject_index + 1 != p->next))
        return;
    p->ticks_since_ack = 0;
    p->next = next_after_rejection(p->match, r);
    p->state = mode::probe;
    p->probe_sent = false;
    p->inflight.clear();
    send_append(*p, true);
}

// Where to probe next after a rejection: past our last entry of the follower's
// conflicting term if we have that term, else the first index the follower holds of it.
template <transport Transport, log_store LogStore, state_machine StateMachine>
index_t basic_node<Transport, LogStore, StateMachine>::next_after_rejection(index_t match,
                                                                            const append_response& r) const
{
    index_t next = r.conflict_index;
    if (r.conflict_term != 0) {
        const index_t at_most =
            last_index_with_term_at_most(r.conflict_term, std::min(r.reject_index, store_.last_index()));
        if (at_most >= store_.first_index() && store_.term_at(at_most) == r.conflict_term)
            next = at_most + 1;
    }
    return std::clamp<index_t>(next, match + 1, std::max<index_t>(r.reject_index, match + 1));
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
    p->silent_ticks = 0;
    if (r.read_seq > p->read_ack) {
        p->read_ack = r.read_seq;
        update_lease();
        advance_reads();
    }
    check_stalled(*p);
}

// The follower answered a heartbeat, so it is alive. If what was sent to it seems lost,
// probe its tail with an empty append (or resend the unacknowledged snapshot chunks):
// never resend entries blindly, which would cost a stalled follower a window per beat.
template <transport Transport, log_store LogStore, state_machine StateMachine>
void basic_node<Transport, LogStore, StateMachine>::check_stalled(detail::progress& p)
{
    using mode = detail::progress::mode;
    const std::uint32_t stall_ticks = std::max<std::uint32_t>(2, opts_.election_ticks / 2);
    switch (p.state) {
    case mode::snapshot:
        if (p.ticks_since_ack >= stall_ticks) {
            p.ticks_since_ack = 0;
            auto& sender = sender_of(p);
            if (sender.resends() >= 3) {
                start_snapshot_transfer(p); // a fresh snapshot, in case this one cannot be used
            } else {
                sender.resend([&](install_snapshot_request r) { send(p.id, std::move(r)); });
            }
        }
        return;
    case mode::replicate:
        if (p.match >= store_.last_index())
            return;
        if (p.inflight.empty()) {
            send_append(p, false);
            return;
        }
        if (p.ticks_since_ack < stall_ticks)
            return;
        to_probe(p);
        [[fallthrough]];
    case mode::probe:
        if (p.match >= store_.last_index() && p.commit_sent >= commit_)
            return;
        if (p.next < store_.first_index()) {
            start_snapshot_transfer(p);
            return;
        }
        p.probe_sent = true;
        p.commit_sent = commit_;
        send(p.id, append_request{.prev_index = p.next - 1,
                                  .prev_term = store_.term_at(p.next - 1),
                                  .commit = commit_,
                                  .entries = {}});
        return;
    }
}

template <transport Transport, log_store LogStore, state_machine StateMachine>
void basic_node<Transport, LogStore, StateMachine>::to_probe(detail::progress& p)
{
    p.state = detail::progress::mode::probe;
    p.next = p.match + 1;
    p.probe_sent = false;
    p.inflight.clear();
    p.ticks_since_ack = 0;
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
    if (p.state == mode::snapshot || (p.state == mode::probe ? p.probe_sent : p.inflight.full()))
        return false;
    const index_t last = store_.last_index();
    if (p.next > last && !allow_empty)
        return false;
    if (p.next < store_.first_index()) {
        start_snapshot_transfer(p); // the entries it needs were compacted away
        return false;
    }
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
        std::size_t bytes = 0;
        for (const log_entry& e : req.entries)
            bytes += e.data.size();
        p.next = req.entries.back().index + 1;
        p.inflight.add(req.entries.back().index, bytes);
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
    const index_t q = quorum_match();
    if (q <= commit_ || q > store_.last_index() || store_.term_at(q) != term_)
        return;
    commit_ = q;
    release_uncommitted();
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
        send_timeout_now(p.id);
}

// ---- applying ---------------------------------------------------------------------

// Hands committed entries to the state machine in batches. Only durable entries are
// applied, so a restarted node never finds its state machine ahead of its log.
template <transport Transport, log_store LogStore, state_machine StateMachine>
void basic_node<Transport, LogStore, StateMachine>::apply_committed()
{
    if (behind_log_)
        return;
    const index_t limit = std::min(commit_, store_.durable_index());
    while (applied_ < limit) {
        const index_t hi = std::min<index_t>(limit, applied_ + opts_.max_apply_batch);
        apply_batch_ = store_.entries(applied_ + 1, hi + 1, std::numeric_limits<std::size_t>::max());
        apply_results_.clear();
        apply_results_.resize(apply_batch_.size());
        machine_.apply(std::span<const log_entry>(apply_batch_), std::span<result_type>(apply_results_));
        metrics_.apply_batch_entries.record(apply_batch_.size());
        applied_ = apply_batch_.back().index;
        std::uint64_t bytes = 0;
        for (std::size_t k = 0; k < apply_batch_.size(); ++k) {
            bytes += apply_batch_[k].data.size();
            outputs_.push_back(
                applied_output{apply_batch_[k].index, apply_batch_[k].term, std::move(apply_results_[k])});
        }
        bytes_since_snapshot_ += bytes;
        if (counts_applied_bytes())
            applied_bytes_.applied(applied_, bytes);
        resolve_proposals(apply_batch_);
    }
    if (role_ == role::leader)
        advance_reads();
    serve_follower_reads();
    maybe_snapshot();
}

// Proposals of this node whose index was just applied with another term never took effect.
template <transport Transport, log_store LogStore, state_machine StateMachine>
void basic_node<Transport, LogStore, StateMachine>::resolve_proposals(std::span<const log_entry> applied)
{
    const index_t first = applied.front().index;
    while (!proposals_.empty() && proposals_.front().index <= applied.back().index) {
        const tracked_proposal t = proposals_.front();
        proposals_.pop_front();
        if (t.index < first)
            drop_proposal(drop_output{t.index, t.term, errc::leadership_lost});
        else if (applied[t.index - first].term != t.term)
            drop_proposal(drop_output{t.index, t.term, errc::proposal_dropped});
        else
            ++metrics_.proposals_committed;
    }
}

// Proposals of this node at `from` and after are about to leave its log: whether another
// leader still commits them is unknown here.
template <transport Transport, log_store LogStore, state_machine StateMachine>
void basic_node<Transport, LogStore, StateMachine>::forget_proposals_from(index_t from)
{
    while (!proposals_.empty() && proposals_.back().index >= from) {
        drop_proposal(drop_output{proposals_.back().index, proposals_.back().term, errc::leadership_lost});
        proposals_.pop_back();
    }
}

template <transport Transport, log_store LogStore, state_machine StateMachine>
void basic_node<Transport, LogStore, StateMachine>::release_uncommitted()
{
    std::size_t k = 0;
    while (k < uncommitted_.size() && uncommitted_[k].first <= commit_)
        uncommitted_bytes_ -= uncommitted_[k++].second;
    uncommitted_.erase(uncommitted_.begin(), uncommitted_.begin() + static_cast<std::ptrdiff_t>(k));
}

} // namespace raftkv

#endif
