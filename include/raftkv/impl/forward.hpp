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
    unanswered_forwards_.emplace_back(id, ticks_);
    forward_request r{.id = id, .nonce = forward_nonce_, .seq = ++forward_seq_, .commands = {}};
    metrics_.proposals_forwarded += commands.size();
    r.commands.reserve(commands.size());
    for (auto& c : commands)
        r.commands.push_back(std::move(c));
    send(leader_, std::move(r));
    deliver_outputs();
    return {};
}

// Only requests of this node's term get here (older ones are dropped: whether an earlier
// leadership of this node proposed them is not known). A request seen before in this term,
// or overtaken by a later one from the same sender, is ignored: it may have been proposed,
// so no answer may say it was not. The sender then learns nothing and times out.
template <transport Transport, log_store LogStore, state_machine StateMachine>
void basic_node<Transport, LogStore, StateMachine>::handle_forward_request(const message& m,
                                                                           forward_request& r)
{
    if (forward_seen_term_ != term_) {
        forward_seen_.clear();
        forward_seen_term_ = term_;
    }
    std::uint64_t& highest = forward_seen_[{m.from, r.nonce}];
    if (r.seq <= highest)
        return;
    highest = r.seq;
    std::error_code ec = errc::not_leader;
    index_t index = 0;
    if (role_ == role::leader) {
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
    // Only the leader it was sent to answers in this term (an answer from an older term
    // never gets here); an answer after the forward was given up is dropped.
    const auto it = std::find_if(unanswered_forwards_.begin(), unanswered_forwards_.end(),
                                 [&](const auto& f) { return f.first == r.id; });
    if (it == unanswered_forwards_.end() || m.from != leader_)
        return;
    unanswered_forwards_.erase(it);
    std::error_code ec;
    if (r.error != 0)
        ec = static_cast<errc>(r.error);
    outputs_.push_back(forward_output{r.id, ec, ec ? 0 : r.index, ec ? 0 : m.term});
}

// A forward unanswered for two election timeouts fails: the request or its answer was lost
// on the way, or the leader is stuck. (A leader that is gone is given up sooner: a
// follower's election timer, reset at the leader's last message, runs out within two
// election timeouts, and abandon_forwards() answers then.)
template <transport Transport, log_store LogStore, state_machine StateMachine>
void basic_node<Transport, LogStore, StateMachine>::tick_forwards()
{
    const std::uint64_t limit = 2 * std::uint64_t{opts_.election_ticks};
    while (!unanswered_forwards_.empty() && ticks_ - unanswered_forwards_.front().second >= limit) {
        outputs_.push_back(forward_output{unanswered_forwards_.front().first, errc::timeout, 0, 0});
        unanswered_forwards_.pop_front();
    }
}

// The forwards sent to a leader this node no longer follows fail at once rather than at
// their callers' deadlines: their answers will not come, or not be believed.
template <transport Transport, log_store LogStore, state_machine StateMachine>
void basic_node<Transport, LogStore, StateMachine>::abandon_forwards(std::error_code why)
{
    for (const auto& f : unanswered_forwards_)
        outputs_.push_back(forward_output{f.first, why, 0, 0});
    unanswered_forwards_.clear();
}

} // namespace raftkv

#endif
