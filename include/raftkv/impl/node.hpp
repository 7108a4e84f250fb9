#ifndef RAFTKV_IMPL_NODE_HPP
#define RAFTKV_IMPL_NODE_HPP

// Construction, message dispatch and the public entry points of basic_node. The Raft
// rules themselves live in election.hpp, replication.hpp and read_index.hpp.

#include <raftkv/node.hpp>

#include <cassert>
#include <type_traits>
#include <utility>
#include <variant>

namespace raftkv {

template <transport Transport, log_store LogStore, state_machine StateMachine>
basic_node<Transport, LogStore, StateMachine>::basic_node(options opts, Transport& transport, LogStore& store,
                                                          StateMachine& machine)
    : opts_(std::move(opts)), transport_(transport), store_(store), machine_(machine),
      rng_(opts_.random_seed ^ (opts_.id * 0x9e3779b97f4a7c15ULL))
{
    assert(opts_.id != no_node && opts_.members.is_voter(opts_.id));
    assert(opts_.election_ticks > opts_.heartbeat_ticks && opts_.heartbeat_ticks > 0);
    const hard_state hs = store_.saved_hard_state();
    term_ = hs.term;
    vote_ = hs.vote;
    applied_ = machine_.applied_index();
    commit_ = applied_;
    assert(applied_ <= store_.last_index());
    for (node_id peer : opts_.members.voters) {
        if (peer != opts_.id) {
            peers_.emplace_back();
            peers_.back().id = peer;
        }
    }
    become_follower(term_, no_node);
}

template <transport Transport, log_store LogStore, state_machine StateMachine>
void basic_node<Transport, LogStore, StateMachine>::tick()
{
    if (role_ == role::leader)
        tick_leader();
    else
        tick_election();
}

template <transport Transport, log_store LogStore, state_machine StateMachine>
void basic_node<Transport, LogStore, StateMachine>::step(message m)
{
    if (m.to != opts_.id || m.from == opts_.id || !opts_.members.is_voter(m.from))
        return;
    if (accept_term(m))
        dispatch(m);
}

// Applies the term rules every message obeys before its body is looked at (Raft §5.1,
// with the PreVote and CheckQuorum refinements of thesis §9.6 and §6.2). Returns false
// when the message must go no further.
template <transport Transport, log_store LogStore, state_machine StateMachine>
bool basic_node<Transport, LogStore, StateMachine>::accept_term(message& m)
{
    const auto* vote_req = std::get_if<vote_request>(&m.body);
    if (m.term > term_) {
        if (vote_req) {
            // A node that heard from a live leader within an election timeout ignores
            // elections it did not ask for: a partitioned node cannot depose a healthy leader.
            if (opts_.check_quorum && !vote_req->transfer && in_leader_lease())
                return false;
            if (!vote_req->pre_vote)
                become_follower(m.term, no_node);
            return true;
        }
        if (const auto* resp = std::get_if<vote_response>(&m.body); resp && resp->pre_vote && resp->granted)
            return true; // a granted PreVote carries the term we would campaign in
        const bool from_leader = std::holds_alternative<append_request>(m.body) ||
                                 std::holds_alternative<heartbeat>(m.body) ||
                                 std::holds_alternative<timeout_now>(m.body);
        become_follower(m.term, from_leader ? m.from : no_node);
        return true;
    }
    if (m.term < term_) {
        // Tell a stale leader about the newer term, or it may never learn of it once
        // PreVote and CheckQuorum stop this node from raising terms (thesis §9.6).
        const bool from_leader =
            std::holds_alternative<append_request>(m.body) || std::holds_alternative<heartbeat>(m.body);
        if (from_leader && (opts_.check_quorum || opts_.pre_vote))
            send(m.from, append_response{});
        else if (vote_req && vote_req->pre_vote)
            send(m.from, vote_response{.granted = false, .pre_vote = true});
        return false;
    }
    return true;
}

template <transport Transport, log_store LogStore, state_machine StateMachine>
void basic_node<Transport, LogStore, StateMachine>::dispatch(message& m)
{
    std::visit(
        [&](auto& body) {
            using body_t = std::decay_t<decltype(body)>;
            if constexpr (std::is_same_v<body_t, vote_request>) {
                handle_vote_request(m, body);
            } else if constexpr (std::is_same_v<body_t, vote_response>) {
                handle_vote_response(m, body);
            } else if constexpr (std::is_same_v<body_t, append_request>) {
                if (role_ == role::leader)
                    return; // another leader in our term: impossible if election safety holds
                if (role_ != role::follower)
                    become_follower(term_, m.from);
                handle_append_request(m, body);
            } else if constexpr (std::is_same_v<body_t, append_response>) {
                if (role_ == role::leader)
                    handle_append_response(m, body);
            } else if constexpr (std::is_same_v<body_t, heartbeat>) {
                if (role_ == role::leader)
                    return;
                if (role_ != role::follower)
                    become_follower(term_, m.from);
                handle_heartbeat(m, body);
            } else if constexpr (std::is_same_v<body_t, heartbeat_response>) {
                if (role_ == role::leader)
                    handle_heartbeat_response(m, body);
            } else if constexpr (std::is_same_v<body_t, timeout_now>) {
                handle_timeout_now();
            }
        },
        m.body);
}

template <transport Transport, log_store LogStore, state_machine StateMachine>
propose_result basic_node<Transport, LogStore, StateMachine>::propose(std::string command)
{
    return propose(std::span<std::string>(&command, 1));
}

template <transport Transport, log_store LogStore, state_machine StateMachine>
propose_result basic_node<Transport, LogStore, StateMachine>::propose(std::span<std::string> commands)
{
    assert(!commands.empty());
    if (role_ != role::leader)
        return {.ec = errc::not_leader, .index = 0, .term = 0, .leader = leader_};
    if (transfer_target_ != no_node)
        return {.ec = errc::transfer_in_progress, .index = 0, .term = 0, .leader = leader_};
    const index_t first = store_.last_index() + 1;
    proposal_scratch_.clear();
    for (auto& command : commands)
        proposal_scratch_.push_back(
            {term_, first + proposal_scratch_.size(), entry_type::normal, std::move(command)});
    store_.append(std::span<const log_entry>(proposal_scratch_));
    proposal_scratch_.clear();
    // No commit here, even if the entries are durable already: the caller learns the
    // index only when this returns, and must be able to wait for it before it is applied.
    broadcast_append(false);
    return {.ec = {}, .index = first, .term = term_, .leader = opts_.id};
}

template <transport Transport, log_store LogStore, state_machine StateMachine>
void basic_node<Transport, LogStore, StateMachine>::on_log_durable()
{
    if (role_ == role::leader)
        maybe_commit();
    else
        flush_pending_ack();
    apply_committed();
}

template <transport Transport, log_store LogStore, state_machine StateMachine>
void basic_node<Transport, LogStore, StateMachine>::campaign()
{
    if (role_ != role::leader)
        start_election(false, false);
}

template <transport Transport, log_store LogStore, state_machine StateMachine>
node_status basic_node<Transport, LogStore, StateMachine>::status() const
{
    return {opts_.id, role_, term_, leader_, commit_, applied_, store_.last_index(), opts_.members};
}

template <transport Transport, log_store LogStore, state_machine StateMachine>
void basic_node<Transport, LogStore, StateMachine>::send(node_id to, message_body body, term_t term)
{
    transport_.send(message{opts_.id, to, term, std::move(body)});
}

template <transport Transport, log_store LogStore, state_machine StateMachine>
detail::progress* basic_node<Transport, LogStore, StateMachine>::progress_of(node_id id) noexcept
{
    for (auto& p : peers_) {
        if (p.id == id)
            return &p;
    }
    return nullptr;
}

} // namespace raftkv

#include <raftkv/impl/election.hpp>
#include <raftkv/impl/read_index.hpp>
#include <raftkv/impl/replication.hpp>

#endif
