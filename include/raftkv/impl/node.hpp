#ifndef RAFTKV_IMPL_NODE_HPP
#define RAFTKV_IMPL_NODE_HPP

// Construction, message dispatch and the public entry points of basic_node. The Raft
// rules themselves live in election.hpp, replication.hpp and read_index.hpp.

#include <raftkv/node.hpp>

#include <algorithm>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>
#include <variant>

namespace raftkv {

template <transport Transport, log_store LogStore, state_machine StateMachine>
basic_node<Transport, LogStore, StateMachine>::basic_node(options opts, Transport& transport, LogStore& store,
                                                          StateMachine& machine)
    : opts_((validate(opts), std::move(opts))), transport_(transport), store_(store), machine_(machine),
      rng_(opts_.random_seed ^ (opts_.id * 0x9e3779b97f4a7c15ULL))
{
    check_storage();
    const hard_state hs = store_.saved_hard_state();
    term_ = hs.term;
    vote_ = hs.vote;
    restarted_ = hs.term > 0;
    start_term_ = hs.term;
    applied_ = machine_.applied_index();
    commit_ = applied_;
    behind_log_ = applied_ + 1 < store_.first_index();
    snapshot_taken_ = applied_;
    applied_bytes_.reset(applied_);
    std::uint64_t request_seed = opts_.random_seed ^ (opts_.id << 32) ^ 0x72656164696e6478ULL;
    last_read_request_ = detail::splitmix64(request_seed);
    std::uint64_t forward_seed = opts_.random_seed ^ (opts_.id << 32) ^ 0x666f72776172646eULL;
    forward_nonce_ = detail::splitmix64(forward_seed);
    load_configs();
    for (const auto* ids : {&members().voters, &members().outgoing, &members().learners}) {
        for (node_id peer : *ids) {
            if (peer != opts_.id && !progress_of(peer)) {
                peers_.emplace_back();
                peers_.back().id = peer;
            }
        }
    }
    senders_.resize(peers_.size());
    become_follower(term_, no_node);
    reported_term_ = term_;
}

template <transport Transport, log_store LogStore, state_machine StateMachine>
void basic_node<Transport, LogStore, StateMachine>::validate(const options& o)
{
    const auto fail = [](const char* what) {
        throw std::system_error(make_error_code(errc::invalid_argument),
                                std::string("raftkv::options: ") + what);
    };
    if (o.id == no_node)
        fail("id must not be 0");
    const membership& m = o.members;
    if (!m.empty()) {
        if (!m.contains(o.id))
            fail("id must be one of members.voters or members.learners");
        if (m.voters.empty() || m.joint())
            fail("members must have voters, and no outgoing voters");
        std::vector<node_id> all = m.voters;
        all.insert(all.end(), m.learners.begin(), m.learners.end());
        std::sort(all.begin(), all.end());
        if (all.front() == no_node)
            fail("members must not hold 0");
        if (std::adjacent_find(all.begin(), all.end()) != all.end())
            fail("members holds an id twice");
    }
    if (o.heartbeat_ticks == 0)
        fail("heartbeat_ticks must be at least 1");
    if (o.election_ticks <= o.heartbeat_ticks)
        fail("election_ticks must be greater than heartbeat_ticks");
    if (o.lease_margin_ticks == 0)
        fail("lease_margin_ticks must be at least 1: ticks are counted whole");
    if (o.max_read_rounds == 0)
        fail("max_read_rounds must be at least 1");
    if (o.max_entries_per_append == 0 || o.max_inflight_appends == 0 || o.max_apply_batch == 0)
        fail("max_entries_per_append, max_inflight_appends and max_apply_batch must be at least 1");
    if (o.snapshot_chunk_bytes == 0)
        fail("snapshot_chunk_bytes must be at least 1");
    if (o.max_snapshot_inflight_bytes < o.snapshot_chunk_bytes)
        fail("max_snapshot_inflight_bytes must be at least snapshot_chunk_bytes");
}

// A state machine that applied entries its log does not hold means the log lost entries
// this node may have acknowledged: going on could lose committed writes.
template <transport Transport, log_store LogStore, state_machine StateMachine>
void basic_node<Transport, LogStore, StateMachine>::check_storage() const
{
    const index_t applied = machine_.applied_index();
    const index_t first = store_.first_index();
    const index_t last = store_.last_index();
    if (applied > last)
        throw std::system_error(make_error_code(errc::storage_inconsistent),
                                "raftkv: the state machine applied index " + std::to_string(applied) +
                                    " but the log ends at index " + std::to_string(last) + " (first index " +
                                    std::to_string(first) +
                                    "): was the raft log corrupted, truncated, or lost?");
    if (store_.durable_index() < first - 1 || store_.durable_index() > last)
        throw std::system_error(make_error_code(errc::storage_inconsistent),
                                "raftkv: the log store reports durable index " +
                                    std::to_string(store_.durable_index()) + " outside its log [" +
                                    std::to_string(first) + ", " + std::to_string(last) + "]");
    // A term is saved, durably, before any entry of it is appended (set_hard_state), so a
    // log with an entry of a later term than the saved one lost the record of that term
    // and of the vote cast in it: the node could vote twice in one term.
    const term_t saved = store_.saved_hard_state().term;
    if (const term_t logged = store_.term_at(last); saved < logged)
        throw std::system_error(make_error_code(errc::storage_inconsistent),
                                "raftkv: the saved hard state is at term " + std::to_string(saved) +
                                    " but the log holds entries of term " + std::to_string(logged) +
                                    " (its last, at index " + std::to_string(last) +
                                    "): the hard state was damaged or replaced, and with it the vote "
                                    "cast in a later term, so this node could vote twice in one term; "
                                    "its storage must be replaced (in a cluster: remove the member, "
                                    "empty its storage and add it back)");
}

template <transport Transport, log_store LogStore, state_machine StateMachine>
void basic_node<Transport, LogStore, StateMachine>::tick()
{
    ++ticks_;
    if (role_ == role::leader) {
        tick_leader();
    } else {
        tick_election();
        tick_read_request();
    }
    tick_forwards(); // a follower that forwarded and then won an election still waits
    maybe_snapshot();
    complete_config_change();
    deliver_outputs();
}

template <transport Transport, log_store LogStore, state_machine StateMachine>
void basic_node<Transport, LogStore, StateMachine>::step(message m)
{
    // Messages from nodes outside the configuration are taken: a new leader, or a member
    // this node does not know of yet, may well be one. The transport authenticates peers.
    if (m.to != opts_.id || m.from == opts_.id || m.from == no_node)
        return;
    // No term may wrap: the largest is never adopted (see max_term).
    if (m.term == max_term) {
        ++malformed_dropped_;
        return;
    }
    if (role_ == role::leader && !members().contains(m.from))
        tell_removed(m);
    if (accept_term(m))
        dispatch(m);
    complete_config_change();
    deliver_outputs();
}

// Delivers queued outputs until none is left, including those that handlers' calls back
// into the node produce; a call made from a handler leaves delivery to this loop.
template <transport Transport, log_store LogStore, state_machine StateMachine>
void basic_node<Transport, LogStore, StateMachine>::deliver_outputs()
{
    if (delivering_)
        return;
    delivering_ = true;
    struct reset {
        bool& flag;
        ~reset() { flag = false; }
    } guard{delivering_};
    for (;;) {
        if (role_ != reported_role_ || term_ != reported_term_ || leader_ != reported_leader_) {
            if (leader_ != reported_leader_ && leader_ != no_node)
                ++metrics_.leader_changes;
            if (role_ == role::leader && reported_role_ != role::leader)
                ++metrics_.elections_won;
            reported_role_ = role_;
            reported_term_ = term_;
            reported_leader_ = leader_;
            if (leader_handler_)
                leader_handler_(role_, term_, leader_);
            continue;
        }
        if (outputs_.empty())
            break;
        delivering_outputs_.clear();
        delivering_outputs_.swap(outputs_);
        for (std::size_t k = 0; k < delivering_outputs_.size(); ++k) {
            output o = std::move(delivering_outputs_[k]);
            deliver(o);
        }
    }
}

template <transport Transport, log_store LogStore, state_machine StateMachine>
void basic_node<Transport, LogStore, StateMachine>::deliver(output& o)
{
    if (auto* a = std::get_if<applied_output>(&o)) {
        if (apply_handler_)
            apply_handler_(a->index, a->term, a->result);
    } else if (auto* r = std::get_if<read_output>(&o)) {
        if (read_handler_)
            read_handler_(r->id, r->ec);
    } else if (auto* d = std::get_if<drop_output>(&o)) {
        if (drop_handler_)
            drop_handler_(d->index, d->term, d->ec);
    } else if (auto* meta = std::get_if<snapshot_meta>(&o)) {
        if (restore_handler_)
            restore_handler_(*meta);
    } else if (auto* f = std::get_if<forward_output>(&o)) {
        if (forward_handler_)
            forward_handler_(f->id, f->ec, f->index, f->term);
    } else if (std::holds_alternative<config_output>(o)) {
        // The configuration in force now, which may be newer than when this was queued:
        // handlers see the configurations in order, possibly skipping some.
        if (config_handler_)
            config_handler_(members_index(), members());
    }
}

// Applies the term rules every message obeys before its body is looked at (Raft §5.1,
// with the PreVote and CheckQuorum refinements of thesis §9.6 and §6.2). Returns false
// when the message must go no further.
template <transport Transport, log_store LogStore, state_machine StateMachine>
bool basic_node<Transport, LogStore, StateMachine>::accept_term(message& m)
{
    const auto* vote_req = std::get_if<vote_request>(&m.body);
    // An answer to a forwarded proposal names (index, term) in the sender's term: a fact
    // whatever this node's term is now. A forward that reaches a leader after it stepped
    // down is answered all the same, when it can say the forward was not proposed.
    if (m.term < term_ &&
        (std::holds_alternative<forward_response>(m.body) || std::holds_alternative<forward_request>(m.body)))
        return true;
    if (m.term > term_) {
        if (vote_req) {
            // A node that heard from a live leader within an election timeout ignores
            // elections it did not ask for: a partitioned node cannot depose a healthy leader.
            // A node that restarted may have acknowledged a leader's lease round in its
            // previous life (it had a term): with leases on, it waits an election timeout.
            const bool starting = restarted_ && lease_ticks() > 0 && ticks_ < opts_.election_ticks;
            if (opts_.check_quorum && !vote_req->transfer && (in_leader_lease() || starting))
                return false;
            if (!vote_req->pre_vote) {
                // Only this leader can have told a node to campaign in the term after its own,
                // maybe in a transfer it has given up since (the message arrived late).
                const bool told = vote_req->transfer && m.term == term_ + 1;
                note_step_down(told ? step_down_reason::transferred : step_down_reason::newer_term, m.from,
                               m.term);
                become_follower(m.term, no_node);
            }
            return true;
        }
        if (const auto* resp = std::get_if<vote_response>(&m.body); resp && resp->pre_vote && resp->granted)
            return true; // a granted PreVote carries the term we would campaign in
        const bool from_leader = std::holds_alternative<append_request>(m.body) ||
                                 std::holds_alternative<heartbeat>(m.body) ||
                                 std::holds_alternative<timeout_now>(m.body);
        note_step_down(step_down_reason::newer_term, m.from, m.term);
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
            } else if constexpr (std::is_same_v<body_t, install_snapshot_request>) {
                if (role_ == role::leader)
                    return;
                if (role_ != role::follower)
                    become_follower(term_, m.from);
                handle_install_snapshot(m, body);
            } else if constexpr (std::is_same_v<body_t, install_snapshot_response>) {
                if (role_ == role::leader)
                    handle_install_snapshot_response(m, body);
            } else if constexpr (std::is_same_v<body_t, read_index_request>) {
                handle_read_index_request(m, body);
            } else if constexpr (std::is_same_v<body_t, read_index_response>) {
                handle_read_index_response(m, body);
            } else if constexpr (std::is_same_v<body_t, forward_request>) {
                handle_forward_request(m, body);
            } else if constexpr (std::is_same_v<body_t, forward_response>) {
                handle_forward_response(m, body);
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
    if (commands.empty())
        return {.ec = errc::invalid_argument, .index = 0, .term = 0, .leader = leader_};
    if (role_ != role::leader) {
        metrics_.proposals_refused_not_leader += commands.size();
        return {.ec = errc::not_leader, .index = 0, .term = 0, .leader = leader_};
    }
    if (transfer_target_ != no_node) {
        metrics_.proposals_refused_transfer += commands.size();
        return {.ec = errc::transfer_in_progress, .index = 0, .term = 0, .leader = leader_};
    }
    std::size_t bytes = 0;
    for (const auto& command : commands)
        bytes += command.size();
    if (opts_.max_uncommitted_bytes != 0 && uncommitted_bytes_ > 0 &&
        uncommitted_bytes_ + bytes > opts_.max_uncommitted_bytes) {
        metrics_.proposals_refused_overloaded += commands.size();
        return {.ec = errc::overloaded, .index = 0, .term = 0, .leader = leader_};
    }
    const index_t first = store_.last_index() + 1;
    proposal_scratch_.clear();
    for (auto& command : commands)
        proposal_scratch_.push_back(
            {term_, first + proposal_scratch_.size(), entry_type::normal, std::move(command)});
    store_.append(std::span<const log_entry>(proposal_scratch_));
    proposal_scratch_.clear(); // commands only: no configuration changed
    uncommitted_.emplace_back(first + commands.size() - 1, bytes);
    uncommitted_bytes_ += bytes;
    // In index order: proposals leave the tracker when their entries leave the log, so
    // every one tracked lies before the new entries.
    for (std::size_t k = 0; k < commands.size(); ++k)
        proposals_.push_back(tracked_proposal{first + k, term_});
    // No commit here, even if the entries are durable already: the caller learns the
    // index only when this returns, and must be able to wait for it before it is applied.
    broadcast_append(false);
    deliver_outputs();
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
    complete_config_change();
    deliver_outputs();
}

template <transport Transport, log_store LogStore, state_machine StateMachine>
void basic_node<Transport, LogStore, StateMachine>::campaign()
{
    if (role_ != role::leader && may_campaign())
        start_election(false, false);
    deliver_outputs();
}

template <transport Transport, log_store LogStore, state_machine StateMachine>
node_status basic_node<Transport, LogStore, StateMachine>::status() const
{
    node_status s = status_except_members();
    s.members = members();
    return s;
}

template <transport Transport, log_store LogStore, state_machine StateMachine>
node_status basic_node<Transport, LogStore, StateMachine>::status_except_members() const
{
    return {.id = opts_.id,
            .role = role_,
            .term = term_,
            .leader = leader_,
            .commit_index = commit_,
            .applied_index = applied_,
            .first_index = store_.first_index(),
            .last_index = store_.last_index(),
            .snapshot_index = snapshot_index(),
            .snapshot_term = store_.term_at(snapshot_index()),
            .members = {},
            .members_index = members_index(),
            .malformed_dropped = malformed_dropped_,
            .restoring_snapshot = restoring_snapshot(),
            .last_step_down = last_step_down_};
}

template <transport Transport, log_store LogStore, state_machine StateMachine>
node_metrics basic_node<Transport, LogStore, StateMachine>::metrics() const
{
    node_metrics m = metrics_;
    if (role_ != role::leader)
        return m;
    m.peers.reserve(peers_.size());
    for (const detail::progress& p : peers_) {
        using mode = detail::progress::mode;
        m.peers.push_back(peer_metrics{.id = p.id,
                                       .match = p.match,
                                       .next = p.next,
                                       .state = p.state == mode::replicate  ? peer_metrics::mode::replicate
                                                : p.state == mode::snapshot ? peer_metrics::mode::snapshot
                                                                            : peer_metrics::mode::probe,
                                       .inflight_messages = p.inflight.size(),
                                       .inflight_bytes = p.inflight.bytes(),
                                       .active = p.heard_lately()});
    }
    return m;
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

template <transport Transport, log_store LogStore, state_machine StateMachine>
const detail::progress* basic_node<Transport, LogStore, StateMachine>::progress_of(node_id id) const noexcept
{
    for (const auto& p : peers_) {
        if (p.id == id)
            return &p;
    }
    return nullptr;
}

} // namespace raftkv

#include <raftkv/impl/election.hpp>
#include <raftkv/impl/forward.hpp>
#include <raftkv/impl/lease.hpp>
#include <raftkv/impl/membership.hpp>
#include <raftkv/impl/read_index.hpp>
#include <raftkv/impl/replication.hpp>
#include <raftkv/impl/snapshot.hpp>

#endif
