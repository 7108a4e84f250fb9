#ifndef RAFTKV_IMPL_MEMBERSHIP_HPP
#define RAFTKV_IMPL_MEMBERSHIP_HPP

// Configuration changes (Raft §6, with etcd's refinements): where the configuration in
// force comes from, how it follows the log, and how a leader proposes and completes a
// change. docs/membership.md explains the choices.
//
// The node keeps `configs_`: the configuration at the log's start (from the log store, or
// the bootstrap one), then one record per config entry in the log, in index order. The
// last one is in force: a configuration takes effect when appended, committed or not.

#include <raftkv/membership.hpp>
#include <raftkv/node.hpp>

#include <algorithm>
#include <limits>
#include <string>
#include <system_error>

namespace raftkv {

// Where the configuration comes from at start: the store's record of its log's start, or
// for a store that has none, the bootstrap configuration (recorded in a new store, so a
// restart with other options cannot change it); then every config entry in the log.
template <transport Transport, log_store LogStore, state_machine StateMachine>
void basic_node<Transport, LogStore, StateMachine>::load_configs()
{
    const index_t first = store_.first_index();
    const index_t last = store_.last_index();
    membership base = store_.base_members();
    if (base.empty()) {
        base = opts_.members;
        if (first == 1 && last == 0 && !base.empty())
            store_.install_snapshot(snapshot_meta{.index = 0, .term = 0, .members = base});
    }
    configs_.clear();
    configs_.push_back(config_record{first - 1, std::move(base)});
    for_each_config_entry(store_, [this](const log_entry& e) {
        configs_.push_back(config_record{e.index, decode_config(e)});
    });
    outputs_.push_back(config_output{configs_.back().index});
}

template <transport Transport, log_store LogStore, state_machine StateMachine>
membership basic_node<Transport, LogStore, StateMachine>::decode_config(const log_entry& e) const
{
    auto m = decode_config_entry(e.data);
    if (!m)
        throw std::system_error(make_error_code(errc::storage_inconsistent),
                                "raftkv: node " + std::to_string(opts_.id) + ": the config entry at index " +
                                    std::to_string(e.index) + " does not hold a valid configuration");
    return std::move(*m);
}

// Whether a config entry received from a leader can be used: one that cannot would stop
// this node at its next start (decode_config), so it is never appended.
template <transport Transport, log_store LogStore, state_machine StateMachine>
bool basic_node<Transport, LogStore, StateMachine>::holds_valid_config(const log_entry& e)
{
    return decode_config_entry(e.data).has_value();
}

template <transport Transport, log_store LogStore, state_machine StateMachine>
const membership& basic_node<Transport, LogStore, StateMachine>::config_at(index_t i) const
{
    auto it = std::upper_bound(configs_.begin(), configs_.end(), i,
                               [](index_t v, const config_record& r) { return v < r.index; });
    return it == configs_.begin() ? configs_.front().members : std::prev(it)->members;
}

// Called after every append to the store: entries from es.front().index on replaced
// whatever the log held there.
template <transport Transport, log_store LogStore, state_machine StateMachine>
void basic_node<Transport, LogStore, StateMachine>::note_appended(std::span<const log_entry> es)
{
    if (es.empty())
        return;
    const std::size_t before = configs_.size();
    const index_t old_index = configs_.back().index;
    while (configs_.size() > 1 && configs_.back().index >= es.front().index)
        configs_.pop_back();
    const bool dropped = configs_.size() != before;
    bool added = false;
    for (const log_entry& e : es) {
        if (e.type == entry_type::config) {
            configs_.push_back(config_record{e.index, decode_config(e)});
            added = true;
        }
    }
    if (added || (dropped && configs_.back().index != old_index))
        config_changed();
}

template <transport Transport, log_store LogStore, state_machine StateMachine>
void basic_node<Transport, LogStore, StateMachine>::compact_log(index_t to)
{
    store_.compact(to, config_at(to));
    auto it = std::upper_bound(configs_.begin(), configs_.end(), to,
                               [](index_t v, const config_record& r) { return v < r.index; });
    // `it - 1` is the record in force at `to`: it becomes the log's start.
    configs_.erase(configs_.begin(), std::prev(it));
    configs_.front().index = std::max(configs_.front().index, to);
}

template <transport Transport, log_store LogStore, state_machine StateMachine>
void basic_node<Transport, LogStore, StateMachine>::note_installed(const snapshot_meta& meta)
{
    configs_.assign(1, config_record{meta.index, meta.members});
    config_changed();
}

// The configuration in force changed: replicate to its members, and no one else.
template <transport Transport, log_store LogStore, state_machine StateMachine>
void basic_node<Transport, LogStore, StateMachine>::config_changed()
{
    const membership& m = members();
    for (std::size_t k = peers_.size(); k-- > 0;) {
        if (!m.contains(peers_[k].id)) {
            senders_[k].stop();
            peers_.erase(peers_.begin() + static_cast<std::ptrdiff_t>(k));
            senders_.erase(senders_.begin() + static_cast<std::ptrdiff_t>(k));
        }
    }
    const index_t last = store_.last_index();
    for (const auto* ids : {&m.voters, &m.outgoing, &m.learners}) {
        for (node_id id : *ids) {
            if (id == opts_.id || progress_of(id))
                continue;
            detail::progress p;
            p.id = id;
            p.next = last + 1;
            // A new member gets a CheckQuorum period to show up, as the others had.
            p.recent_active = true;
            p.inflight.reset(opts_.max_inflight_appends, opts_.max_inflight_bytes);
            peers_.push_back(std::move(p));
            senders_.emplace_back();
            if (role_ == role::leader)
                send_append(peers_.back(), true);
        }
    }
    if (transfer_target_ != no_node && !m.is_voter(transfer_target_))
        transfer_target_ = no_node;
    outputs_.push_back(config_output{configs_.back().index});
}

template <transport Transport, log_store LogStore, state_machine StateMachine>
std::optional<index_t> basic_node<Transport, LogStore, StateMachine>::match_of(node_id id) const noexcept
{
    if (role_ != role::leader)
        return std::nullopt;
    if (id == opts_.id)
        return store_.durable_index();
    for (const auto& p : peers_) {
        if (p.id == id)
            return p.match;
    }
    return std::nullopt;
}

template <transport Transport, log_store LogStore, state_machine StateMachine>
node_id basic_node<Transport, LogStore, StateMachine>::successor() const noexcept
{
    if (role_ != role::leader)
        return no_node;
    const auto& voters = members().voters;
    const auto rank = [](const detail::progress& q) { return std::pair{q.recent_active, q.match}; };
    const detail::progress* best = nullptr;
    for (const auto& p : peers_) {
        if (std::find(voters.begin(), voters.end(), p.id) != voters.end() && (!best || rank(p) > rank(*best)))
            best = &p;
    }
    return best ? best->id : no_node;
}

template <transport Transport, log_store LogStore, state_machine StateMachine>
propose_result
basic_node<Transport, LogStore, StateMachine>::change_membership(std::span<const config_change> changes)
{
    const auto refuse = [&](errc ec) {
        return propose_result{.ec = make_error_code(ec), .index = 0, .term = 0, .leader = leader_};
    };
    if (role_ != role::leader)
        return refuse(errc::not_leader);
    if (transfer_target_ != no_node)
        return refuse(errc::transfer_in_progress);
    if (changes.empty())
        return refuse(errc::invalid_argument);
    // One change at a time, and none before this leader knows its commit index is current
    // (its first entry committed): a single-voter change made by a leader that has not
    // committed one could overlap a change of a previous leader (thesis §4.1, the 2015 fix).
    if (commit_ < term_start_ || members_index() > commit_ || members().joint())
        return refuse(errc::change_in_progress);
    const membership& old = members();
    membership next = old;
    const auto erase = [](std::vector<node_id>& ids, node_id id) { std::erase(ids, id); };
    for (const config_change& c : changes) {
        if (c.id == no_node)
            return refuse(errc::invalid_argument);
        switch (c.type) {
        case config_change::kind::add_voter:
            if (std::find(next.voters.begin(), next.voters.end(), c.id) != next.voters.end())
                return refuse(errc::invalid_argument);
            if (next.is_learner(c.id) && c.id != opts_.id) {
                const auto* p = progress_of(c.id);
                // A learner that never acknowledged anything may not even be running; one
                // that stopped answering (down, cut off, its storage failed) would be a voter
                // that does not vote.
                if (!p || p->match == 0 || !p->heard_lately() ||
                    p->match + opts_.promote_max_lag < store_.last_index())
                    return refuse(errc::learner_behind);
            }
            erase(next.learners, c.id);
            next.voters.push_back(c.id);
            break;
        case config_change::kind::add_learner:
            if (next.contains(c.id))
                return refuse(errc::invalid_argument);
            next.learners.push_back(c.id);
            break;
        case config_change::kind::remove:
            if (!next.contains(c.id))
                return refuse(errc::invalid_argument);
            erase(next.voters, c.id);
            erase(next.learners, c.id);
            next.info.erase(c.id);
            break;
        case config_change::kind::update:
            if (!next.contains(c.id) || c.info.empty())
                return refuse(errc::invalid_argument);
            break;
        }
        if (c.type != config_change::kind::remove && !c.info.empty())
            next.info[c.id] = c.info;
    }
    if (next.voters.empty())
        return refuse(errc::invalid_argument);
    // A change of one voter at most takes effect at once: any majority of the old voters
    // and any majority of the new ones intersect. A larger one goes through the joint
    // configuration of both (Raft §6).
    std::size_t changed = 0;
    for (node_id id : old.voters)
        changed += std::find(next.voters.begin(), next.voters.end(), id) == next.voters.end() ? 1 : 0;
    for (node_id id : next.voters)
        changed += std::find(old.voters.begin(), old.voters.end(), id) == old.voters.end() ? 1 : 0;
    if (changed > 1)
        next.outgoing = old.voters;
    std::sort(next.voters.begin(), next.voters.end());
    std::sort(next.learners.begin(), next.learners.end());
    if (opts_.strict_membership_changes && opts_.check_quorum &&
        (!answering_majority(next.voters) || !answering_majority(next.outgoing)))
        return refuse(errc::quorum_at_risk);
    return append_config(next);
}

template <transport Transport, log_store LogStore, state_machine StateMachine>
bool basic_node<Transport, LogStore, StateMachine>::answers(node_id id) const noexcept
{
    if (role_ != role::leader)
        return false;
    if (id == opts_.id)
        return true;
    const detail::progress* p = progress_of(id);
    return p && p->match > 0 && p->heard_lately();
}

// Whether a majority of `voters` (none: trivially) answer this leader (answers()). A node
// that never ran, or is not a member yet, has no record and does not count.
template <transport Transport, log_store LogStore, state_machine StateMachine>
bool basic_node<Transport, LogStore, StateMachine>::answering_majority(
    const std::vector<node_id>& voters) const noexcept
{
    const auto answering =
        std::count_if(voters.begin(), voters.end(), [this](node_id id) { return answers(id); });
    return voters.empty() || static_cast<std::size_t>(answering) > voters.size() / 2;
}

template <transport Transport, log_store LogStore, state_machine StateMachine>
propose_result basic_node<Transport, LogStore, StateMachine>::append_config(const membership& next)
{
    const log_entry e{term_, store_.last_index() + 1, entry_type::config, encode_membership(next)};
    store_.append(std::span<const log_entry>(&e, 1));
    note_appended(std::span<const log_entry>(&e, 1));
    uncommitted_.emplace_back(e.index, e.data.size());
    uncommitted_bytes_ += e.data.size();
    proposals_.push_back(tracked_proposal{e.index, term_});
    broadcast_append(false);
    deliver_outputs();
    return {.ec = {}, .index = e.index, .term = term_, .leader = opts_.id};
}

// Run at the end of every input (step, tick, on_log_durable), never from inside a handler:
// it may append a configuration, which adds and removes followers' progress, and a
// handler may hold a pointer to one. On a leader whose configuration in force committed,
// it leaves a joint configuration, and steps down once a configuration without it
// committed, handing over to the most up-to-date voter so the cluster need not wait for
// an election timeout.
template <transport Transport, log_store LogStore, state_machine StateMachine>
void basic_node<Transport, LogStore, StateMachine>::complete_config_change()
{
    if (role_ != role::leader || members_index() > commit_)
        return;
    const membership& m = members();
    if (m.joint()) {
        membership next = m;
        next.outgoing.clear();
        append_config(next);
        return;
    }
    if (m.is_voter(opts_.id))
        return;
    if (const auto* p = progress_of(successor()); p && p->match == store_.last_index())
        send_timeout_now(p->id);
    note_step_down(step_down_reason::removed);
    become_follower(term_, no_node);
}

// A node removed from the configuration rarely learns it on its own: the leader stops
// sending to it when it appends the change. When such a node asks for votes (its PreVote,
// once it stops hearing from the leader; a learner asks too, see tick_election) or answers
// what this sends, and its removal is committed, the leader sends it its log up to the
// entry that removed it, one append per message from it. It then holds its removal,
// committed, never campaigns again, and drops its leader after an election timeout: the
// server reports it removed. (etcd's peers answer a removed member's messages with
// "removed" instead.) A node ahead of this leader's term is left alone, so it never sees a
// stale leader's term answered; so is one whose removal this log no longer holds, or that
// needs entries compacted away.
template <transport Transport, log_store LogStore, state_machine StateMachine>
void basic_node<Transport, LogStore, StateMachine>::tell_removed(const message& m)
{
    const auto* vote = std::get_if<vote_request>(&m.body);
    const auto* answer = std::get_if<append_response>(&m.body);
    // A PreVote carries the term its sender would campaign in, one above its own.
    if (vote ? !vote->pre_vote || m.term > term_ + 1 : !answer || m.term != term_)
        return;
    // The removal is the first configuration after the last that still held the node.
    index_t removed_at = 0;
    for (std::size_t k = configs_.size(); k-- > 1;) {
        if (configs_[k - 1].members.contains(m.from)) {
            removed_at = configs_[k].index;
            break;
        }
    }
    if (removed_at == 0 || removed_at > commit_ || removed_at < store_.first_index())
        return;
    index_t next = std::min(removed_at, vote ? vote->last_log_index + 1 : removed_at);
    if (answer) {
        if (answer->success && answer->match_index >= removed_at)
            return; // it knows
        if (answer->snapshot_needed)
            return;
        next = answer->success ? answer->match_index + 1 : next_after_rejection(0, *answer);
        next = std::min(next, removed_at);
    }
    if (next < store_.first_index())
        return;
    append_request req{
        .prev_index = next - 1, .prev_term = store_.term_at(next - 1), .commit = removed_at, .entries = {}};
    req.entries = store_.entries(next, std::min<index_t>(removed_at + 1, next + opts_.max_entries_per_append),
                                 opts_.max_bytes_per_append);
    send(m.from, std::move(req));
}

template <transport Transport, log_store LogStore, state_machine StateMachine>
index_t basic_node<Transport, LogStore, StateMachine>::quorum_match()
{
    return detail::joint_value(
        members(),
        [&](node_id id) -> std::uint64_t {
            if (id == opts_.id)
                return store_.durable_index();
            const auto* p = progress_of(id);
            return p ? p->match : 0;
        },
        quorum_scratch_);
}

} // namespace raftkv

#endif
