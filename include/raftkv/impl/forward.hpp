#ifndef RAFTKV_IMPL_FORWARD_HPP
#define RAFTKV_IMPL_FORWARD_HPP

// Proposals made at a follower: it hands them to the leader over Raft, the leader proposes
// them and says where it appended them, and the follower's caller waits for its own node to
// apply them (etcd's MsgProp, with the answer that lets the follower match its entries).

#include <raftkv/node.hpp>

#include <algorithm>
#include <utility>
#include <vector>

namespace raftkv {

template <transport Transport, log_store LogStore, state_machine StateMachine>
std::error_code basic_node<Transport, LogStore, StateMachine>::forward(std::uint64_t id,
                                                                       std::span<std::string> commands)
{
    if (commands.empty() || role_ == role::leader)
        return errc::invalid_argument;
    if (leader_ == no_node)
        return errc::not_leader;
    unanswered_forwards_.push_back(sent_forward{.id = id, .sent_tick = ticks_, .to = leader_});
    forward_request r{.id = id, .nonce = forward_nonce_, .seq = ++forward_seq_, .commands = {}};
    metrics_.proposals_forwarded += commands.size();
    r.commands.reserve(commands.size());
    for (auto& c : commands)
        r.commands.push_back(std::move(c));
    send(leader_, std::move(r));
    deliver_outputs();
    return {};
}

// A request is proposed only by the leader of the term it carries, once: a request seen
// before in that term, or overtaken by a later one from the same sender, is ignored (it
// may have been proposed, so no answer may say it was not; the sender times out).
//
// A request that finds this node no longer leading (a transfer or an election overtook
// it) is answered "not leader" when this node knows it did not propose it: the request's
// term is the last one this instance led and the request is new to that term's table,
// or a term after the one this instance started in that it never led. Otherwise (an
// older term this instance led, or one a previous instance may have led) it stays silent.
template <transport Transport, log_store LogStore, state_machine StateMachine>
void basic_node<Transport, LogStore, StateMachine>::handle_forward_request(const message& m,
                                                                           forward_request& r)
{
    const bool leads_its_term = role_ == role::leader && m.term == term_;
    // Only a member hands the leader commands: a removed node still running, or a sender
    // that only claims an id, proposes nothing (its answer says so, so it need not time out).
    if (leads_its_term && !members().contains(m.from)) {
        send(m.from, forward_response{
                         .id = r.id, .index = 0, .error = static_cast<std::uint8_t>(errc::not_a_member)});
        return;
    }
    if (leads_its_term || (m.term == forward_seen_term_ && forward_seen_term_ > start_term_)) {
        std::uint64_t& highest = forward_seen_[{m.from, r.nonce}];
        if (r.seq <= highest)
            return;
        highest = r.seq;
    } else if (m.term < forward_seen_term_ || m.term <= start_term_) {
        return;
    }
    std::error_code ec = errc::not_leader;
    index_t index = 0;
    if (leads_its_term) {
        const propose_result p = propose(std::span<std::string>(r.commands));
        ec = p.ec;
        index = p.index;
    }
    send(m.from,
         forward_response{.id = r.id, .index = index, .error = static_cast<std::uint8_t>(ec.value())});
}

template <transport Transport, log_store LogStore, state_machine StateMachine>
void basic_node<Transport, LogStore, StateMachine>::handle_forward_response(const message& m,
                                                                            const forward_response& r)
{
    // Only the node a forward was sent to answers it, in the term it appended the commands
    // in (m.term), whatever this node's term and leader are now. A duplicate, or an answer
    // after the forward timed out, is dropped.
    const auto it = std::find_if(unanswered_forwards_.begin(), unanswered_forwards_.end(),
                                 [&](const sent_forward& f) { return f.id == r.id && f.to == m.from; });
    if (it == unanswered_forwards_.end())
        return;
    unanswered_forwards_.erase(it);
    std::error_code ec;
    if (r.error != 0)
        ec = static_cast<errc>(r.error);
    // The leader this node follows says it no longer leads this term, and it never will
    // again: forget it, rather than forward it the caller's next try.
    if (ec == errc::not_leader && m.from == leader_ && m.term == term_ && role_ == role::follower)
        leader_ = no_node;
    outputs_.push_back(forward_output{r.id, ec, ec ? 0 : r.index, ec ? 0 : m.term});
}

// A forward unanswered for two election timeouts fails: the request or its answer was lost
// on the way, the node it went to is down, or it is stuck. Its outcome is unknown.
template <transport Transport, log_store LogStore, state_machine StateMachine>
void basic_node<Transport, LogStore, StateMachine>::tick_forwards()
{
    const std::uint64_t limit = 2 * std::uint64_t{opts_.election_ticks};
    while (!unanswered_forwards_.empty() && ticks_ - unanswered_forwards_.front().sent_tick >= limit) {
        outputs_.push_back(forward_output{unanswered_forwards_.front().id, errc::timeout, 0, 0});
        unanswered_forwards_.pop_front();
    }
}

} // namespace raftkv

#endif
