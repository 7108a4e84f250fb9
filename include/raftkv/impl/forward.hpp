#ifndef RAFTKV_IMPL_FORWARD_HPP
#define RAFTKV_IMPL_FORWARD_HPP

// Proposals made at a follower: it hands them to the leader over Raft, the leader proposes
// them and says where it appended them, and the follower's caller waits for its own node to
// apply them (etcd's MsgProp, with the answer that lets the follower match its entries).

#include <raftkv/node.hpp>

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
    std::error_code ec;
    if (r.error != 0)
        ec = static_cast<errc>(r.error);
    outputs_.push_back(forward_output{r.id, ec, ec ? 0 : r.index, ec ? 0 : m.term});
}

} // namespace raftkv

#endif
