#ifndef RAFTKV_IMPL_READ_INDEX_HPP
#define RAFTKV_IMPL_READ_INDEX_HPP

// Linearizable reads without log writes: ReadIndex (thesis §6.4). A read records the
// leader's commit index, waits until a quorum answers a heartbeat round started after
// the read arrived (proving no newer leader existed at that moment), then waits until
// that index is applied. One round serves every read that arrived before it started.

#include <raftkv/node.hpp>

namespace raftkv {

template <transport Transport, log_store LogStore, state_machine StateMachine>
std::error_code basic_node<Transport, LogStore, StateMachine>::read_index(std::uint64_t read_id)
{
    if (role_ != role::leader)
        return errc::not_leader;
    if (commit_ < term_start_) {
        reads_.blocked.push_back(read_id);
        return {};
    }
    const bool idle = reads_.unconfirmed.empty();
    reads_.unconfirmed.push_back({read_id, commit_, read_seq_ + 1});
    // With a round already out, this read waits for the next one, which starts when the
    // current one is answered: at most one round in flight, however many reads arrive.
    if (idle)
        start_read_round();
    advance_reads();
    deliver_outputs();
    return {};
}

template <transport Transport, log_store LogStore, state_machine StateMachine>
void basic_node<Transport, LogStore, StateMachine>::start_read_round()
{
    ++read_seq_;
    broadcast_heartbeat();
}

// Called when commit_ advances: reads that waited for the leader's first commit in its
// term can now take the commit index.
template <transport Transport, log_store LogStore, state_machine StateMachine>
void basic_node<Transport, LogStore, StateMachine>::unblock_reads()
{
    if (reads_.blocked.empty() || commit_ < term_start_)
        return;
    const bool idle = reads_.unconfirmed.empty();
    for (auto id : reads_.blocked)
        reads_.unconfirmed.push_back({id, commit_, read_seq_ + 1});
    reads_.blocked.clear();
    if (idle)
        start_read_round();
    advance_reads();
}

// The highest round a quorum (this node included) has answered.
template <transport Transport, log_store LogStore, state_machine StateMachine>
std::uint64_t basic_node<Transport, LogStore, StateMachine>::confirmed_read_seq()
{
    quorum_scratch_.clear();
    quorum_scratch_.push_back(read_seq_);
    for (const auto& p : peers_)
        quorum_scratch_.push_back(p.read_ack);
    return detail::quorum_value(quorum_scratch_, opts_.members.quorum());
}

template <transport Transport, log_store LogStore, state_machine StateMachine>
void basic_node<Transport, LogStore, StateMachine>::advance_reads()
{
    if (role_ != role::leader || (reads_.unconfirmed.empty() && reads_.confirmed.empty()))
        return;
    if (!reads_.unconfirmed.empty()) {
        const std::uint64_t confirmed = confirmed_read_seq();
        while (!reads_.unconfirmed.empty() && reads_.unconfirmed.front().seq <= confirmed) {
            reads_.confirmed.push_back(reads_.unconfirmed.front());
            reads_.unconfirmed.pop_front();
        }
        if (!reads_.unconfirmed.empty() && reads_.unconfirmed.front().seq > read_seq_)
            start_read_round();
    }
    while (!reads_.confirmed.empty() && reads_.confirmed.front().index <= applied_) {
        outputs_.push_back(read_output{reads_.confirmed.front().id, {}});
        reads_.confirmed.pop_front();
    }
}

} // namespace raftkv

#endif
