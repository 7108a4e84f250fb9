#ifndef RAFTKV_IMPL_ELECTION_HPP
#define RAFTKV_IMPL_ELECTION_HPP

// Roles, timers and voting: leader election (Raft §5.2), PreVote (thesis §9.6),
// CheckQuorum (thesis §6.2) and leadership transfer (thesis §3.10).

#include <raftkv/node.hpp>

#include <algorithm>
#include <cstdint>
#include <limits>

namespace raftkv {

template <transport Transport, log_store LogStore, state_machine StateMachine>
void basic_node<Transport, LogStore, StateMachine>::set_hard_state(term_t term, node_id vote)
{
    if (term == term_ && vote == vote_)
        return;
    store_.save_hard_state(hard_state{term, vote});
    term_ = term;
    vote_ = vote;
}

template <transport Transport, log_store LogStore, state_machine StateMachine>
void basic_node<Transport, LogStore, StateMachine>::reset_election_timer()
{
    election_elapsed_ = 0;
    randomized_timeout_ = opts_.election_ticks + static_cast<std::uint32_t>(rng_.below(opts_.election_ticks));
}

template <transport Transport, log_store LogStore, state_machine StateMachine>
bool basic_node<Transport, LogStore, StateMachine>::in_leader_lease() const noexcept
{
    return leader_ != no_node && election_elapsed_ < opts_.election_ticks;
}

// A node campaigns only as a voter (a learner, a removed member or a node still waiting to
// be added never does), with its state machine inside its log and its whole log durable.
// Nothing is appended while the election timer runs, so a log still not durable when it
// fires has waited an election timeout for its disk: that disk hangs, and another node
// should lead. A campaign's term (and a PreVote's) is term_ + 1, which must stay below
// max_term.
template <transport Transport, log_store LogStore, state_machine StateMachine>
bool basic_node<Transport, LogStore, StateMachine>::may_campaign() const noexcept
{
    return !behind_log_ && term_ < max_term - 1 && store_.durable_index() >= store_.last_index() &&
           (members().is_voter(opts_.id) || removed_pending());
}

// A voter of the configuration before the one in force, which removed or demoted it and is
// not known committed yet, still campaigns: the others are likely still under the older
// configuration, where its vote counts, and its log may be the only one they can elect
// from (a leader that appended the change and lost its term before replicating it refuses
// every shorter log; were it to wait, nobody would ever win). It counts votes under the
// configuration in force, as every candidate does; elected, it leads until that
// configuration commits and then steps down, as a leader that removed itself does.
template <transport Transport, log_store LogStore, state_machine StateMachine>
bool basic_node<Transport, LogStore, StateMachine>::removed_pending() const noexcept
{
    return configs_.size() >= 2 && configs_.back().index > commit_ &&
           configs_[configs_.size() - 2].members.is_voter(opts_.id);
}

// Counts the ticks this leader's log has held entries that are not durable while its
// durable index stood still. Returns true once that lasted longer than an election timeout.
template <transport Transport, log_store LogStore, state_machine StateMachine>
bool basic_node<Transport, LogStore, StateMachine>::own_log_stalled()
{
    const index_t durable = store_.durable_index();
    if (durable >= store_.last_index() || durable != durable_seen_) {
        durable_seen_ = durable;
        stall_elapsed_ = 0;
        return false;
    }
    return ++stall_elapsed_ > opts_.election_ticks;
}

template <transport Transport, log_store LogStore, state_machine StateMachine>
bool basic_node<Transport, LogStore, StateMachine>::log_is_up_to_date(index_t last_index,
                                                                      term_t last_term) const
{
    const index_t my_last = store_.last_index();
    const term_t my_term = store_.term_at(my_last);
    return last_term > my_term || (last_term == my_term && last_index >= my_last);
}

template <transport Transport, log_store LogStore, state_machine StateMachine>
void basic_node<Transport, LogStore, StateMachine>::leave_leadership()
{
    if (role_ != role::leader)
        return;
    transfer_target_ = no_node;
    lease_held_ = false;
    fail_leader_reads();
    for (auto& sender : senders_)
        sender.stop();
    for (auto& p : peers_)
        p.catchup_hold = 0;
    uncommitted_.clear();
    uncommitted_bytes_ = 0;
}

template <transport Transport, log_store LogStore, state_machine StateMachine>
void basic_node<Transport, LogStore, StateMachine>::become_follower(term_t term, node_id leader)
{
    leave_leadership();
    if (term != term_ || leader != leader_)
        abandon_follower_reads();
    set_hard_state(term, term == term_ ? vote_ : no_node);
    role_ = role::follower;
    leader_ = leader;
    reset_election_timer();
}

template <transport Transport, log_store LogStore, state_machine StateMachine>
void basic_node<Transport, LogStore, StateMachine>::note_step_down(step_down_reason why, node_id from,
                                                                   term_t newer_term)
{
    if (role_ != role::leader)
        return;
    last_step_down_ = {.reason = why, .term = term_, .from = from, .newer_term = newer_term};
    ++metrics_.step_downs[static_cast<std::size_t>(why)];
}

template <transport Transport, log_store LogStore, state_machine StateMachine>
void basic_node<Transport, LogStore, StateMachine>::become_pre_candidate()
{
    leave_leadership();
    abort_restore();
    abandon_follower_reads();
    role_ = role::pre_candidate;
    leader_ = no_node;
    reset_election_timer();
}

template <transport Transport, log_store LogStore, state_machine StateMachine>
void basic_node<Transport, LogStore, StateMachine>::become_candidate()
{
    leave_leadership();
    abort_restore();
    abandon_follower_reads();
    set_hard_state(term_ + 1, opts_.id);
    role_ = role::candidate;
    leader_ = no_node;
    reset_election_timer();
}

template <transport Transport, log_store LogStore, state_machine StateMachine>
void basic_node<Transport, LogStore, StateMachine>::become_leader()
{
    role_ = role::leader;
    leader_ = opts_.id;
    read_seq_at_term_start_ = read_seq_;
    forward_seen_.clear();
    forward_seen_term_ = term_;
    heartbeat_elapsed_ = 0;
    election_elapsed_ = 0;
    durable_seen_ = store_.durable_index();
    stall_elapsed_ = 0;
    transfer_target_ = no_node;
    round_ticks_.clear();
    lease_held_ = false;
    lease_revoked_ = false;
    lease_sent_ = 0;
    const index_t last = store_.last_index();
    for (auto& p : peers_) {
        p.match = 0;
        p.next = last + 1;
        p.commit_sent = 0;
        p.state = detail::progress::mode::probe;
        p.probe_sent = false;
        // CheckQuorum starts from "nobody heard": a leader cut off right after winning
        // steps down within one election timeout.
        p.recent_active = false;
        p.active_last_period = true;
        p.ticks_since_ack = 0;
        p.read_ack = 0;
        p.silent_ticks = 0;
        p.catchup_hold = 0;
        p.inflight.reset(opts_.max_inflight_appends, opts_.max_inflight_bytes);
    }
    for (auto& sender : senders_)
        sender.stop();
    uncommitted_.clear();
    uncommitted_bytes_ = 0;
    // Entries of earlier terms commit only with one of our own (Raft §5.4.2); reads wait
    // for it too, as the commit index is not known to be current before.
    const log_entry noop{term_, last + 1, entry_type::noop, {}};
    term_start_ = noop.index;
    store_.append(std::span<const log_entry>(&noop, 1));
    maybe_commit();
    broadcast_append(false);
}

template <transport Transport, log_store LogStore, state_machine StateMachine>
void basic_node<Transport, LogStore, StateMachine>::start_election(bool pre_vote, bool transfer)
{
    if (pre_vote)
        become_pre_candidate();
    else
        become_candidate();
    votes_granted_.assign(1, opts_.id);
    votes_rejected_.clear();
    if (detail::joint_vote(members(), votes_granted_, votes_rejected_) == detail::vote_outcome::won) {
        if (pre_vote)
            start_election(false, transfer);
        else
            become_leader();
        return;
    }
    const term_t election_term = pre_vote ? term_ + 1 : term_;
    const index_t last = store_.last_index();
    const vote_request req{last, store_.term_at(last), pre_vote, transfer};
    for (const auto& p : peers_) {
        if (members().is_voter(p.id))
            send(p.id, req, election_term);
    }
}

template <transport Transport, log_store LogStore, state_machine StateMachine>
void basic_node<Transport, LogStore, StateMachine>::handle_vote_request(const message& m,
                                                                        const vote_request& r)
{
    // A PreVote for a later term is granted whatever we voted in ours: it changes nothing.
    const bool free_to_vote =
        vote_ == m.from || (vote_ == no_node && leader_ == no_node) || (r.pre_vote && m.term > term_);
    const bool grant = free_to_vote && log_is_up_to_date(r.last_log_index, r.last_log_term);
    if (grant && !r.pre_vote) {
        set_hard_state(term_, m.from); // durable before the vote leaves this node
        election_elapsed_ = 0;
    }
    send(m.from, vote_response{grant, r.pre_vote}, grant && r.pre_vote ? m.term : term_);
}

template <transport Transport, log_store LogStore, state_machine StateMachine>
void basic_node<Transport, LogStore, StateMachine>::handle_vote_response(const message& m,
                                                                         const vote_response& r)
{
    const bool counts = r.pre_vote ? role_ == role::pre_candidate && (!r.granted || m.term == term_ + 1)
                                   : role_ == role::candidate;
    if (!counts)
        return;
    auto& tally = r.granted ? votes_granted_ : votes_rejected_;
    if (std::find(tally.begin(), tally.end(), m.from) == tally.end())
        tally.push_back(m.from);
    const detail::vote_outcome outcome = detail::joint_vote(members(), votes_granted_, votes_rejected_);
    if (outcome == detail::vote_outcome::won) {
        if (r.pre_vote)
            start_election(false, false);
        else
            become_leader();
    } else if (outcome == detail::vote_outcome::lost) {
        become_follower(term_, no_node);
    }
}

template <transport Transport, log_store LogStore, state_machine StateMachine>
void basic_node<Transport, LogStore, StateMachine>::handle_timeout_now()
{
    if (role_ != role::leader && may_campaign())
        start_election(false, true);
}

template <transport Transport, log_store LogStore, state_machine StateMachine>
void basic_node<Transport, LogStore, StateMachine>::tick_election()
{
    if (++election_elapsed_ < randomized_timeout_)
        return;
    if (may_campaign()) {
        start_election(opts_.pre_vote, false);
        return;
    }
    // It could not lead: let others, and vote for them. It has not heard from its leader
    // for an election timeout, so it forgets it: a leader it still believed in would keep
    // it ignoring their vote requests (CheckQuorum's lease) timeout after timeout.
    leader_ = no_node;
    abandon_follower_reads();
    reset_election_timer();
    // A learner asks the voters whether anyone leads, with a PreVote it never acts on (it
    // is no candidate, so the answers change nothing): if it was removed, no leader writes
    // to it any more, and one that committed the removal answers with it (tell_removed).
    if (opts_.pre_vote && members().is_learner(opts_.id) && term_ < max_term - 1) {
        const index_t last = store_.last_index();
        const vote_request req{last, store_.term_at(last), true, false};
        for (const auto& p : peers_)
            if (members().is_voter(p.id))
                send(p.id, req, term_ + 1);
    }
}

template <transport Transport, log_store LogStore, state_machine StateMachine>
void basic_node<Transport, LogStore, StateMachine>::tick_leader()
{
    // Its disk hangs: it cannot count itself or apply, so nothing it holds completes.
    if (own_log_stalled()) {
        note_step_down(step_down_reason::log_stalled);
        become_follower(term_, no_node);
        return;
    }
    if (++election_elapsed_ >= opts_.election_ticks) {
        election_elapsed_ = 0;
        if (opts_.check_quorum) {
            const std::uint64_t active = detail::joint_value(
                members(),
                [&](node_id id) -> std::uint64_t {
                    const auto* p = progress_of(id);
                    return id == opts_.id || (p && p->recent_active) ? 1 : 0;
                },
                quorum_scratch_);
            for (auto& p : peers_) {
                p.active_last_period = p.recent_active;
                p.recent_active = false;
            }
            if (active == 0) {
                note_step_down(step_down_reason::check_quorum);
                become_follower(term_, no_node);
                return;
            }
        }
    }
    if (transfer_target_ != no_node && ++transfer_elapsed_ >= opts_.election_ticks)
        transfer_target_ = no_node; // a transfer not done in an election timeout is abandoned
    for (auto& p : peers_) {
        const bool waiting = p.state == detail::progress::mode::snapshot
                                 ? true
                                 : p.state == detail::progress::mode::replicate && !p.inflight.empty();
        p.ticks_since_ack = waiting ? p.ticks_since_ack + 1 : 0;
        if (p.silent_ticks < std::numeric_limits<std::uint32_t>::max())
            ++p.silent_ticks;
        // A follower that answers nothing for long while it is sent a snapshot (it died, or
        // is cut off) gets no more of it: the transfer holds the log at its index
        // (maybe_compact) and the state machine's snapshot open. Not sooner: a follower
        // writing a large snapshot to a busy disk can be silent for seconds, and starting
        // over would cost it the whole transfer again (snapshot_hold_bytes bounds the log
        // held meanwhile). A live follower's answers to heartbeats keep its transfer going
        // (check_stalled); this one gets a fresh one when it answers a heartbeat again
        // (check_stalled), not at the next append (its probe counts as sent).
        if (p.state == detail::progress::mode::snapshot && p.silent_ticks >= hold_silence_ticks()) {
            ++metrics_.snapshot_transfers_given_up_silent;
            sender_of(p).stop();
            to_probe(p);
            p.probe_sent = true;
            compact_pending_ = true;
        }
    }
    maybe_commit(); // in case the driver did not call on_log_durable() after proposing
    if (++heartbeat_elapsed_ >= opts_.heartbeat_ticks) {
        heartbeat_elapsed_ = 0;
        // A heartbeat starts a round of its own, to renew the lease, unless ReadIndex
        // reads wait on the round out: repeating its number lets any echo confirm them.
        if (reads_.unconfirmed.empty())
            begin_round();
        broadcast_heartbeat();
    }
    forget_old_rounds();
}

template <transport Transport, log_store LogStore, state_machine StateMachine>
std::error_code basic_node<Transport, LogStore, StateMachine>::transfer_leadership(node_id target)
{
    if (role_ != role::leader)
        return errc::not_leader;
    const auto& voters = members().voters;
    if (std::find(voters.begin(), voters.end(), target) == voters.end())
        return errc::invalid_argument;
    if (target == opts_.id)
        return {};
    auto* p = progress_of(target);
    if (!p)
        return errc::invalid_argument;
    // Writes would stop for an election timeout to no avail.
    if (opts_.check_quorum && !p->heard_lately())
        return errc::peer_unreachable;
    transfer_target_ = target;
    transfer_elapsed_ = 0;
    if (p->match == store_.last_index())
        send_timeout_now(target);
    else
        send_append(*p, false);
    deliver_outputs();
    return {};
}

} // namespace raftkv

#endif
