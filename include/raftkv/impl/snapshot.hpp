#ifndef RAFTKV_IMPL_SNAPSHOT_HPP
#define RAFTKV_IMPL_SNAPSHOT_HPP

// Snapshots and log compaction (Raft §7): taking snapshots of the state machine,
// dropping the log behind a durable one, and streaming a snapshot in chunks to a
// follower that needs entries the leader no longer holds.

#include <raftkv/error.hpp>
#include <raftkv/node.hpp>

#include <algorithm>
#include <cstdint>
#include <exception>
#include <limits>
#include <utility>

namespace raftkv {

// Takes a snapshot once enough was applied since the last one, and drops the log behind
// a snapshot once the state machine says it is durable.
template <transport Transport, log_store LogStore, state_machine StateMachine>
void basic_node<Transport, LogStore, StateMachine>::maybe_snapshot()
{
    if (behind_log_)
        return;
    const index_t since = applied_ - snapshot_taken_;
    const bool by_entries = opts_.snapshot_entries != 0 && since >= opts_.snapshot_entries;
    const bool by_bytes = opts_.snapshot_bytes != 0 && bytes_since_snapshot_ >= opts_.snapshot_bytes;
    if (since > 0 && (by_entries || by_bytes)) {
        machine_.take_snapshot();
        ++metrics_.snapshots_taken;
        snapshot_taken_ = applied_;
        bytes_since_snapshot_ = 0;
        snapshot_taken_bytes_ = applied_bytes_.total();
        compact_pending_ = true;
    }
    if (compact_pending_)
        maybe_compact();
}

// Whether the node counts the bytes of what it applies: only snapshot_catchup_bytes and
// snapshot_hold_bytes use them, and only once snapshots are taken (with none, the marks
// would pile up).
template <transport Transport, log_store LogStore, state_machine StateMachine>
bool basic_node<Transport, LogStore, StateMachine>::counts_applied_bytes() const
{
    return (opts_.snapshot_catchup_bytes != 0 || opts_.snapshot_hold_bytes != 0) &&
           (opts_.snapshot_entries != 0 || opts_.snapshot_bytes != 0);
}

// Drops the log behind the last snapshot taken but its last snapshot_catchup_entries
// entries, or fewer when they hold more than snapshot_catchup_bytes; once that snapshot is
// durable, never past a snapshot being sent (the follower continues from the entry after
// it), and never past a follower catching up from a snapshot it was sent (catchup_hold).
// Those two holds last while they keep at most snapshot_hold_bytes: past it the leader
// gives them up, and the follower gets a newer snapshot.
template <transport Transport, log_store LogStore, state_machine StateMachine>
void basic_node<Transport, LogStore, StateMachine>::maybe_compact()
{
    if (machine_.snapshot_index() < snapshot_taken_)
        return; // not durable yet: a crash would need the log to rebuild it
    index_t target = snapshot_taken_ > opts_.snapshot_catchup_entries
                         ? snapshot_taken_ - opts_.snapshot_catchup_entries
                         : 0;
    index_t hold_floor = 0; // a follower that needs the log from before it is not held for
    if (counts_applied_bytes()) {
        if (opts_.snapshot_catchup_bytes != 0)
            target = std::max(target, applied_bytes_.keep_within(snapshot_taken_, snapshot_taken_bytes_,
                                                                 opts_.snapshot_catchup_bytes));
        if (opts_.snapshot_hold_bytes != 0)
            hold_floor =
                applied_bytes_.keep_within(applied_, applied_bytes_.total(), opts_.snapshot_hold_bytes);
    }
    index_t to = std::min(target, store_.durable_index());
    for (auto& p : peers_) {
        auto& sender = sender_of(p);
        if (sender.active() && sender.meta().index < hold_floor) {
            // Its install would find the log after the snapshot gone: send a newer one.
            sender.stop();
            to_probe(p);
            ++metrics_.snapshot_transfers_given_up_hold_bytes;
        } else if (sender.active()) {
            to = std::min(to, sender.meta().index);
        }
        if (p.catchup_hold == 0)
            continue;
        // Held until it catches up with what the log keeps anyway; given up when it is sent
        // another snapshot, stops answering, falls further behind than the hold allows, or
        // needs more than snapshot_hold_bytes. A follower that answers slowly (probed
        // again after a stall) is still held for.
        if (p.state == detail::progress::mode::snapshot || p.silent_ticks >= hold_silence_ticks() ||
            p.match >= target || p.match < hold_floor || store_.last_index() - p.match > p.catchup_hold)
            p.catchup_hold = 0;
        else
            to = std::min(to, p.match);
    }
    if (to + 1 > store_.first_index())
        compact_log(to);
    applied_bytes_.dropped_through(store_.first_index() - 1);
    compact_pending_ = to < target;
}

// How long a follower may answer nothing before the leader stops holding its log for it
// (a snapshot transfer, or the catch-up after one): 20 election timeouts.
template <transport Transport, log_store LogStore, state_machine StateMachine>
std::uint32_t basic_node<Transport, LogStore, StateMachine>::hold_silence_ticks() const
{
    constexpr std::uint64_t timeouts = 20;
    return static_cast<std::uint32_t>(
        std::min<std::uint64_t>(timeouts * opts_.election_ticks, std::numeric_limits<std::uint32_t>::max()));
}

template <transport Transport, log_store LogStore, state_machine StateMachine>
auto basic_node<Transport, LogStore, StateMachine>::sender_of(const detail::progress& p)
    -> detail::snapshot_sender<typename StateMachine::snapshot_reader>&
{
    return senders_[static_cast<std::size_t>(&p - peers_.data())];
}

// Starts a new transfer of the current state to `p`, whose answers to appends can no
// longer be served from the log.
template <transport Transport, log_store LogStore, state_machine StateMachine>
void basic_node<Transport, LogStore, StateMachine>::start_snapshot_transfer(detail::progress& p)
{
    p.state = detail::progress::mode::snapshot;
    p.probe_sent = false;
    p.inflight.clear();
    p.ticks_since_ack = 0;
    typename StateMachine::snapshot_reader reader = machine_.snapshot();
    const index_t index = reader.index();
    snapshot_meta meta{.index = index, .term = store_.term_at(index), .members = config_at(index)};
    sender_of(p).start(std::move(reader), std::move(meta), ++next_transfer_);
    send_snapshot_chunks(p);
}

template <transport Transport, log_store LogStore, state_machine StateMachine>
void basic_node<Transport, LogStore, StateMachine>::send_snapshot_chunks(detail::progress& p)
{
    sender_of(p).fill(opts_.snapshot_chunk_bytes, opts_.max_snapshot_inflight_bytes,
                      [&](install_snapshot_request r) {
                          metrics_.snapshot_bytes_sent += r.data.size();
                          send(p.id, std::move(r));
                      });
}

template <transport Transport, log_store LogStore, state_machine StateMachine>
void basic_node<Transport, LogStore, StateMachine>::handle_install_snapshot_response(
    const message& m, const install_snapshot_response& r)
{
    auto* p = progress_of(m.from);
    if (!p)
        return;
    p->recent_active = true;
    p->silent_ticks = 0;
    if (p->state != detail::progress::mode::snapshot)
        return;
    auto& sender = sender_of(*p);
    using ack = typename detail::snapshot_sender<typename StateMachine::snapshot_reader>::ack;
    switch (sender.on_response(r)) {
    case ack::ignored:
        if (r.transfer == sender.transfer() && !r.done)
            sender.resend_first([&](install_snapshot_request c) { send(p->id, std::move(c)); });
        return;
    case ack::progress:
        p->ticks_since_ack = 0;
        send_snapshot_chunks(*p);
        return;
    case ack::done:
        ++metrics_.snapshots_sent;
        sender.stop();
        p->ticks_since_ack = 0;
        p->match = std::max(p->match, r.index);
        p->next = p->match + 1;
        p->state = detail::progress::mode::replicate;
        p->inflight.clear();
        // The entries written while the snapshot was sent are what the follower needs
        // next, and they can be more than one window carries: compacting them away would
        // send it another snapshot, itself outlasted by the writes, over and over. They
        // stay until it has caught up, while it falls no further behind than twice what
        // the transfer let it (plus one window), so a follower slower than the writes
        // holds at most about twice what its transfer held.
        p->catchup_hold =
            2 * (store_.last_index() - p->match) + opts_.max_entries_per_append * opts_.max_inflight_appends;
        maybe_commit();
        send_append(*p, true);
        return;
    }
}

// ---- follower side ----------------------------------------------------------------

template <transport Transport, log_store LogStore, state_machine StateMachine>
void basic_node<Transport, LogStore, StateMachine>::handle_install_snapshot(const message& m,
                                                                            const install_snapshot_request& r)
{
    const snapshot_meta& meta = r.meta;
    if (meta.term > m.term || meta.members.voters.empty()) {
        ++malformed_dropped_; // a correct leader never sends this
        return;
    }
    leader_ = m.from;
    election_elapsed_ = 0;
    if (!behind_log_) {
        if (meta.index <= commit_) {
            // Older than what we have: everything up to our commit index matches.
            abort_restore();
            acknowledge(commit_);
            return;
        }
        if (meta.index <= store_.last_index() && meta.index + 1 >= store_.first_index() &&
            store_.term_at(meta.index) == meta.term) {
            // We hold the snapshot's last entry, so the log up to it matches: no need for it.
            abort_restore();
            commit_ = meta.index;
            acknowledge(meta.index);
            apply_committed();
            return;
        }
    } else if (meta.index + 1 < store_.first_index()) {
        return; // it would leave the state machine behind the log still; wait for a newer one
    }
    const bool accepted = accept_snapshot_chunk(m, r);
    install_snapshot_response answer{.transfer = r.transfer, .index = meta.index, .offset = 0, .done = false};
    if (restore_.active && restore_.transfer == r.transfer && restore_.leader == m.from &&
        restore_.term == m.term)
        answer.offset = restore_.offset;
    if (accepted && r.done) {
        answer.done = finish_install(meta);
        if (!answer.done)
            answer.offset = 0; // the state machine refused it: the leader starts again
    }
    send(m.from, answer);
}

// Feeds the chunk to the state machine if it is the next one of the transfer in progress,
// or the first of a new transfer. Returns whether it was taken.
template <transport Transport, log_store LogStore, state_machine StateMachine>
bool basic_node<Transport, LogStore, StateMachine>::accept_snapshot_chunk(const message& m,
                                                                          const install_snapshot_request& r)
{
    const bool same = restore_.active && restore_.leader == m.from && restore_.term == m.term &&
                      restore_.transfer == r.transfer;
    if (!same) {
        if (r.offset != 0)
            return false; // the answer's offset 0 asks the leader to start again
        machine_.begin_restore(r.meta);
        restore_ = restore_progress{
            .active = true, .leader = m.from, .term = m.term, .transfer = r.transfer, .offset = 0};
    } else if (r.offset != restore_.offset) {
        return false; // a duplicate or a chunk after a lost one: the answer says where we are
    }
    try {
        machine_.restore_chunk(r.data);
    } catch (const storage_error&) {
        throw; // the disk failed, not the data: the node stops, as for a failed apply
    } catch (const std::exception&) {
        fail_restore(); // bytes the state machine cannot decode: not a snapshot it can use
        ++malformed_dropped_;
        return false;
    }
    restore_.offset += r.data.size();
    return true;
}

// Abandons a restore whose snapshot the state machine refused (it threw anything but a
// storage_error), so that bytes from the wire can never stop the node; the leader's next
// transfer starts over.
template <transport Transport, log_store LogStore, state_machine StateMachine>
void basic_node<Transport, LogStore, StateMachine>::fail_restore()
{
    restore_.active = false;
    machine_.abort_restore();
}

// Replaces the state machine with the received snapshot; returns whether it did. The log
// is reset first: a crash before the state machine finishes leaves it behind the log, and
// the node then asks for a snapshot again instead of applying entries on top of an older
// state. A state machine that refuses the snapshot (an incomplete or undecodable stream:
// it throws) leaves the node as that crash would, asking for a snapshot again; one whose
// storage fails (storage_error) stops the node, which a restart leaves as that crash.
template <transport Transport, log_store LogStore, state_machine StateMachine>
bool basic_node<Transport, LogStore, StateMachine>::finish_install(const snapshot_meta& meta)
{
    const bool holds_last = meta.index <= store_.last_index() && meta.index + 1 >= store_.first_index() &&
                            store_.term_at(meta.index) == meta.term;
    if (!holds_last) {
        forget_proposals_from(meta.index + 1);
        store_.install_snapshot(meta);
        note_installed(meta);
        pending_ack_index_ = 0;
    }
    try {
        machine_.finish_restore();
    } catch (const storage_error&) {
        throw; // the log was reset already: a restart asks for the snapshot again
    } catch (const std::exception&) {
        fail_restore();
        ++malformed_dropped_;
        behind_log_ = applied_ + 1 < store_.first_index();
        return false;
    }
    restore_.active = false;
    ++metrics_.snapshots_installed;
    metrics_.last_installed_snapshot_bytes = restore_.offset;
    behind_log_ = false;
    applied_ = meta.index;
    commit_ = std::max(meta.index, std::min(commit_, store_.last_index()));
    snapshot_taken_ = meta.index;
    bytes_since_snapshot_ = 0;
    applied_bytes_.reset(meta.index);
    snapshot_taken_bytes_ = applied_bytes_.total();
    outputs_.push_back(meta);
    while (!proposals_.empty() && proposals_.front().index <= meta.index) {
        drop_proposal(drop_output{proposals_.front().index, proposals_.front().term, errc::leadership_lost});
        proposals_.pop_front();
    }
    apply_committed();
    return true;
}

template <transport Transport, log_store LogStore, state_machine StateMachine>
void basic_node<Transport, LogStore, StateMachine>::abort_restore()
{
    if (!restore_.active)
        return;
    restore_.active = false;
    machine_.abort_restore();
}

} // namespace raftkv

#endif
