#ifndef RAFTKV_IMPL_LEASE_HPP
#define RAFTKV_IMPL_LEASE_HPP

// Leader leases for reads (thesis §6.4.1), measured from when heartbeats were sent. Every
// heartbeat round carries a new read_seq; the leader remembers the tick each was sent at.
// When a quorum has echoed round s, sent at tick t, every voter of that quorum received it
// after t and refuses other candidates for an election timeout of its own ticks from then
// (CheckQuorum), so no other leader can be elected before about t + election_ticks: the
// leader holds its lease until t + election_ticks - lease_margin_ticks. A leader that sent
// timeout_now holds none for the rest of its term: the transferee campaigns at once.

#include <raftkv/node.hpp>

#include <algorithm>

namespace raftkv {

template <transport Transport, log_store LogStore, state_machine StateMachine>
std::uint32_t basic_node<Transport, LogStore, StateMachine>::lease_ticks() const noexcept
{
    if (!opts_.check_quorum || opts_.lease_margin_ticks >= opts_.election_ticks)
        return 0;
    return opts_.election_ticks - opts_.lease_margin_ticks;
}

template <transport Transport, log_store LogStore, state_machine StateMachine>
bool basic_node<Transport, LogStore, StateMachine>::lease_valid() const noexcept
{
    return role_ == role::leader && lease_held_ && !lease_revoked_ && commit_ >= term_start_ &&
           ticks_ < lease_sent_ + lease_ticks();
}

// Starts a heartbeat round: its number goes out with the heartbeats about to be sent.
template <transport Transport, log_store LogStore, state_machine StateMachine>
void basic_node<Transport, LogStore, StateMachine>::begin_round()
{
    ++read_seq_;
    if (lease_ticks() == 0)
        return;
    if (round_ticks_.empty() || round_ticks_.back().second != ticks_)
        round_ticks_.emplace_back(read_seq_, ticks_);
    update_lease(); // a leader that is a quorum by itself confirms its round at once
}

// Extends the lease to the send tick of the latest round a quorum has echoed.
template <transport Transport, log_store LogStore, state_machine StateMachine>
void basic_node<Transport, LogStore, StateMachine>::update_lease()
{
    if (role_ != role::leader || round_ticks_.empty())
        return;
    const std::uint64_t confirmed = confirmed_read_seq();
    // The last round group that starts at or before `confirmed` was sent at its tick.
    auto it = std::upper_bound(round_ticks_.begin(), round_ticks_.end(), confirmed,
                               [](std::uint64_t seq, const auto& r) { return seq < r.first; });
    if (it == round_ticks_.begin())
        return; // older than every round still remembered: no longer worth a lease
    --it;
    if (!lease_held_ || it->second > lease_sent_)
        lease_sent_ = it->second;
    lease_held_ = true;
    round_ticks_.erase(round_ticks_.begin(), it);
}

// Rounds sent a lease ago can no longer give one: forget them, so an unanswered leader
// remembers at most a lease's worth of ticks.
template <transport Transport, log_store LogStore, state_machine StateMachine>
void basic_node<Transport, LogStore, StateMachine>::forget_old_rounds()
{
    const std::uint64_t lease = lease_ticks();
    while (!round_ticks_.empty() && round_ticks_.front().second + lease <= ticks_)
        round_ticks_.pop_front();
}

template <transport Transport, log_store LogStore, state_machine StateMachine>
void basic_node<Transport, LogStore, StateMachine>::send_timeout_now(node_id to)
{
    lease_revoked_ = true;
    send(to, timeout_now{});
}

} // namespace raftkv

#endif
