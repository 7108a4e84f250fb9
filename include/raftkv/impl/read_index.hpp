#ifndef RAFTKV_IMPL_READ_INDEX_HPP
#define RAFTKV_IMPL_READ_INDEX_HPP

// Linearizable reads without log writes: ReadIndex (thesis §6.4). A read records the
// leader's commit index, waits until a quorum answers a heartbeat round started after
// the read arrived (proving no newer leader existed at that moment), then waits until
// that index is applied. One round serves every read that arrived before it started, and
// up to max_read_rounds are in flight: a batch of reads that arrives while fewer are starts
// one at once rather than waiting for the answers to those before it. A follower asks its
// leader for that index (read_index_request), one request for every batch of reads, up to
// max_read_rounds in flight, and serves the reads once it applied the index.
//
// A follower's request is itself a confirmation: it was sent in the leader's term, after
// every read it carries arrived. When that follower and the leader alone are a quorum (a
// three-voter cluster), the leader answers at once with its commit index, no round needed:
// a leader of a newer term that committed a write before such a read began would have
// needed votes or acks from a quorum in that newer term, and every quorum holds the
// leader (still in its term when the request arrives, which is after the read began) or
// the follower (in the leader's term when it sent the request, also after) — terms never
// decrease. Writes of this term or earlier ones that were acknowledged before the read
// began are at or below the leader's commit index, once it committed an entry of its own
// term (which blocked reads wait for, as before). Larger clusters still take a round.

#include <raftkv/node.hpp>

namespace raftkv {

template <transport Transport, log_store LogStore, state_machine StateMachine>
std::error_code basic_node<Transport, LogStore, StateMachine>::read_index(std::uint64_t read_id)
{
    if (role_ == role::leader)
        queue_read(detail::pending_read{.id = read_id});
    else if (role_ == role::follower && leader_ != no_node)
        read_through_leader(read_id);
    else
        return errc::not_leader;
    deliver_outputs();
    return {};
}

// ---- leader side ------------------------------------------------------------------

// Queues a read of this node's own, or a follower's request, for the next heartbeat round.
template <transport Transport, log_store LogStore, state_machine StateMachine>
void basic_node<Transport, LogStore, StateMachine>::queue_read(detail::pending_read r)
{
    if (commit_ < term_start_) {
        reads_.blocked.push_back(r);
        return;
    }
    if (answered_at_once(r))
        return;
    r.index = commit_;
    r.seq = read_seq_ + 1;
    reads_.unconfirmed.push_back(r);
    // With max_read_rounds out, this read waits for the next one, which starts when one of
    // them is answered.
    if (read_rounds_in_flight() < opts_.max_read_rounds)
        start_read_round();
    advance_reads();
}

// The rounds this leader started that a quorum has not answered yet (those of an earlier
// term, echoed to an earlier leadership, do not count).
template <transport Transport, log_store LogStore, state_machine StateMachine>
std::uint64_t basic_node<Transport, LogStore, StateMachine>::read_rounds_in_flight()
{
    return read_seq_ - std::max(confirmed_read_seq(), read_seq_at_term_start_);
}

template <transport Transport, log_store LogStore, state_machine StateMachine>
void basic_node<Transport, LogStore, StateMachine>::handle_read_index_request(const message& m,
                                                                              const read_index_request& r)
{
    if (role_ != role::leader) {
        send(m.from, read_index_response{.request = r.request, .index = 0, .success = false});
        return;
    }
    queue_read(detail::pending_read{.id = r.request, .from = m.from});
}

template <transport Transport, log_store LogStore, state_machine StateMachine>
void basic_node<Transport, LogStore, StateMachine>::start_read_round()
{
    begin_round();
    ++metrics_.read_index_rounds;
    broadcast_heartbeat();
}

// Called when commit_ advances: reads that waited for the leader's first commit in its
// term can now take the commit index.
template <transport Transport, log_store LogStore, state_machine StateMachine>
void basic_node<Transport, LogStore, StateMachine>::unblock_reads()
{
    if (reads_.blocked.empty() || commit_ < term_start_)
        return;
    bool queued = false;
    for (auto r : reads_.blocked) {
        if (answered_at_once(r))
            continue;
        r.index = commit_;
        r.seq = read_seq_ + 1;
        reads_.unconfirmed.push_back(r);
        queued = true;
    }
    reads_.blocked.clear();
    if (queued && read_rounds_in_flight() < opts_.max_read_rounds)
        start_read_round();
    advance_reads();
}

// Answers a follower's request with the commit index at once when this leader and that
// follower are a quorum of every configuration in force: the request confirms the
// leadership its reads need (see the top of this file). Called once the leader committed
// in its term.
template <transport Transport, log_store LogStore, state_machine StateMachine>
bool basic_node<Transport, LogStore, StateMachine>::answered_at_once(const detail::pending_read& r)
{
    if (r.from == no_node)
        return false;
    const auto pair_only = [&](node_id id) -> std::uint64_t {
        return id == opts_.id || id == r.from ? 1 : 0;
    };
    if (detail::joint_value(members(), pair_only, quorum_scratch_) == 0)
        return false;
    send(r.from, read_index_response{.request = r.id, .index = commit_, .success = true});
    return true;
}

// The highest round a quorum (this node included) has answered.
template <transport Transport, log_store LogStore, state_machine StateMachine>
std::uint64_t basic_node<Transport, LogStore, StateMachine>::confirmed_read_seq()
{
    return detail::joint_value(
        members(),
        [&](node_id id) -> std::uint64_t {
            if (id == opts_.id)
                return read_seq_;
            const auto* p = progress_of(id);
            return p ? p->read_ack : 0;
        },
        quorum_scratch_);
}

// Confirms the reads whose round a quorum answered (a follower's request is answered
// then), and serves this node's own once their index is applied.
template <transport Transport, log_store LogStore, state_machine StateMachine>
void basic_node<Transport, LogStore, StateMachine>::advance_reads()
{
    if (role_ != role::leader || (reads_.unconfirmed.empty() && reads_.confirmed.empty()))
        return;
    if (!reads_.unconfirmed.empty()) {
        const std::uint64_t confirmed = confirmed_read_seq();
        while (!reads_.unconfirmed.empty() && reads_.unconfirmed.front().seq <= confirmed) {
            const detail::pending_read& r = reads_.unconfirmed.front();
            if (r.from == no_node)
                reads_.confirmed.push_back(r);
            else
                send(r.from, read_index_response{.request = r.id, .index = r.index, .success = true});
            reads_.unconfirmed.pop_front();
        }
        if (!reads_.unconfirmed.empty() && reads_.unconfirmed.back().seq > read_seq_ &&
            read_rounds_in_flight() < opts_.max_read_rounds)
            start_read_round();
    }
    while (!reads_.confirmed.empty() && reads_.confirmed.front().index <= applied_) {
        outputs_.push_back(read_output{reads_.confirmed.front().id, {}});
        reads_.confirmed.pop_front();
    }
}

// A leader that steps down fails its own reads and tells the followers that asked.
template <transport Transport, log_store LogStore, state_machine StateMachine>
void basic_node<Transport, LogStore, StateMachine>::fail_leader_reads()
{
    reads_.drain([&](const detail::pending_read& r) {
        if (r.from == no_node)
            fail_read(r.id, errc::leadership_lost);
        else
            send(r.from, read_index_response{.request = r.id, .index = 0, .success = false});
    });
}

// ---- follower side ----------------------------------------------------------------

template <transport Transport, log_store LogStore, state_machine StateMachine>
void basic_node<Transport, LogStore, StateMachine>::read_through_leader(std::uint64_t read_id)
{
    auto& q = follower_reads_;
    if (q.leader != leader_ || q.term != term_) {
        abandon_follower_reads(); // none are left when the leader changes; stay safe anyway
        q.leader = leader_;
        q.term = term_;
    }
    q.waiting.push_back(read_id);
    if (q.requested.size() < opts_.max_read_rounds)
        send_read_request();
}

// Sends one request for every read waiting, unless none is.
template <transport Transport, log_store LogStore, state_machine StateMachine>
void basic_node<Transport, LogStore, StateMachine>::send_read_request()
{
    auto& q = follower_reads_;
    if (q.waiting.empty())
        return;
    // Numbers start where this incarnation's seed says, so a restarted node does not take
    // the answer to its previous incarnation's request for one of its own. An answer is
    // matched by number and serves the requests sent before it in the order they were sent,
    // so the numbers' wrapping at 2^64 changes nothing.
    if (++last_read_request_ == 0)
        ++last_read_request_;
    auto& r = q.requested.emplace_back();
    r.number = last_read_request_;
    r.sent_tick = ticks_;
    r.reads.swap(q.waiting);
    q.waiting.clear();
    ++metrics_.follower_read_requests;
    send(q.leader, read_index_request{r.number});
}

template <transport Transport, log_store LogStore, state_machine StateMachine>
void basic_node<Transport, LogStore, StateMachine>::handle_read_index_response(const message& m,
                                                                               const read_index_response& r)
{
    auto& q = follower_reads_;
    if (m.from != q.leader || m.term != q.term)
        return; // from a leader these reads were not sent to
    const auto answered = std::find_if(q.requested.begin(), q.requested.end(),
                                       [&](const auto& req) { return req.number == r.request; });
    if (answered == q.requested.end())
        return; // late or duplicated
    if (!r.success) {
        // It is not the leader of this term, and never will be again.
        if (leader_ == m.from)
            leader_ = no_node;
        abandon_follower_reads();
        return;
    }
    // The answer serves the requests sent before this one as well (see follower_read_queue):
    // their own answers may have been lost, or be on their way with an index no higher.
    for (auto it = q.requested.begin(); it != std::next(answered); ++it)
        for (auto id : it->reads)
            q.ready.push_back(detail::pending_read{.id = id, .index = r.index});
    q.requested.erase(q.requested.begin(), std::next(answered));
    serve_follower_reads();
    send_read_request();
}

// Serves the reads whose index this node has applied.
template <transport Transport, log_store LogStore, state_machine StateMachine>
void basic_node<Transport, LogStore, StateMachine>::serve_follower_reads()
{
    auto& q = follower_reads_.ready;
    while (!q.empty() && q.front().index <= applied_) {
        outputs_.push_back(read_output{q.front().id, {}});
        q.pop_front();
    }
}

// A request unanswered for an election timeout fails, with every read waiting behind it:
// the leader is gone or cut off, and the callers may retry elsewhere.
template <transport Transport, log_store LogStore, state_machine StateMachine>
void basic_node<Transport, LogStore, StateMachine>::tick_read_request()
{
    const auto& q = follower_reads_;
    if (!q.requested.empty() && ticks_ - q.requested.front().sent_tick >= opts_.election_ticks)
        abandon_follower_reads();
}

// The reads sent through a leader this node no longer follows fail; the callers may retry.
template <transport Transport, log_store LogStore, state_machine StateMachine>
void basic_node<Transport, LogStore, StateMachine>::abandon_follower_reads()
{
    follower_reads_.drain([&](std::uint64_t id) { fail_read(id, errc::leadership_lost); });
}

} // namespace raftkv

#endif
