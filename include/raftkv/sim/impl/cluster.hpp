#ifndef RAFTKV_SIM_IMPL_CLUSTER_HPP
#define RAFTKV_SIM_IMPL_CLUSTER_HPP

// Template bodies of raftkv::sim::cluster; included at the bottom of <raftkv/sim/cluster.hpp>.

#include <raftkv/sim/cluster.hpp>

namespace raftkv::sim {

template <state_machine StateMachine, log_store LogStore>
cluster<StateMachine, LogStore>::cluster(cluster_config config, machine_factory factory, store_factory stores)
    : config_(std::move(config)), factory_(std::move(factory)), stores_(std::move(stores)),
      rng_(config_.seed), net_(config_.link)
{
    if (config_.nodes == 0)
        throw std::invalid_argument("raftkv::sim::cluster: a cluster needs at least one node");
    if (!factory_)
        factory_ = default_machines();
    if (!stores_)
        stores_ = default_stores();
    for (node_id id = 1; id <= config_.nodes + config_.spares; ++id) {
        const bool spare = id > config_.nodes;
        if (!spare)
            members_.voters.push_back(id);
        slots_.push_back(std::make_unique<slot>(id, stores_(id), spare));
    }
    last_members_ = members_;
    for (auto& s : slots_)
        start(*s);
}

template <state_machine StateMachine, log_store LogStore>
bool cluster<StateMachine, LogStore>::step()
{
    flush();
    if (queue_.empty())
        return false;
    auto handle = queue_.extract(queue_.begin());
    now_ = handle.key().first;
    ++stats_.events;
    event& e = handle.mapped();
    const auto* m = e.kind == event_kind::deliver ? &e.msg : nullptr;
    trace(e.kind, m ? m->from : e.node, m ? m->to : e.node, m ? m->body.index() : 0, m ? m->term : 0);
    run(e);
    flush();
    check();
    return true;
}

template <state_machine StateMachine, log_store LogStore>
void cluster<StateMachine, LogStore>::run_for(std::chrono::microseconds d)
{
    const std::uint64_t end = now_ + static_cast<std::uint64_t>(d.count());
    for (;;) {
        flush();
        if (queue_.empty() || queue_.begin()->first.first > end)
            break;
        step();
    }
    now_ = end;
}

template <state_machine StateMachine, log_store LogStore>
bool cluster<StateMachine, LogStore>::run_until(const std::function<bool()>& done,
                                                std::chrono::microseconds timeout)
{
    const std::uint64_t end = now_ + static_cast<std::uint64_t>(timeout.count());
    while (!done()) {
        flush();
        if (queue_.empty() || queue_.begin()->first.first > end) {
            now_ = end;
            return done();
        }
        step();
    }
    return true;
}

template <state_machine StateMachine, log_store LogStore>
void cluster<StateMachine, LogStore>::schedule(std::chrono::microseconds delay, std::function<void()> action)
{
    event e;
    e.action = std::move(action);
    push(static_cast<std::uint64_t>(delay.count()), std::move(e));
}

template <state_machine StateMachine, log_store LogStore>
void cluster<StateMachine, LogStore>::crash(node_id id)
{
    slot& s = slot_of(id);
    if (!s.node)
        return;
    flush(); // what it sent before the crash is already on the wire
    trace(event_kind::crash, id, id, 0, s.node->term());
    s.node.reset();
    s.machine.reset();
    if constexpr (requires { s.store->crash(); })
        s.store->crash();
    s.transport.take();
    ++s.incarnation;
    s.sync_index = 0;
    s.sync_term = 0;
    for (auto& h : crash_hooks_)
        h(id);
}

template <state_machine StateMachine, log_store LogStore>
void cluster<StateMachine, LogStore>::restart(node_id id)
{
    slot& s = slot_of(id);
    if (s.node)
        return;
    trace(event_kind::restart, id, id, 0, 0);
    start(s);
}

template <state_machine StateMachine, log_store LogStore>
void cluster<StateMachine, LogStore>::stall_disk(node_id id)
{
    static_assert(stallable_log_store<LogStore>, "a stalled disk needs a store with stall() and resume()");
    slot_of(id).store->stall();
}

template <state_machine StateMachine, log_store LogStore>
void cluster<StateMachine, LogStore>::resume_disk(node_id id)
{
    static_assert(stallable_log_store<LogStore>, "a stalled disk needs a store with stall() and resume()");
    slot& s = slot_of(id);
    if (!s.store->stalled())
        return;
    if (s.store->resume() && s.node)
        s.node->on_log_durable();
}

template <state_machine StateMachine, log_store LogStore>
bool cluster<StateMachine, LogStore>::disk_stalled(node_id id) const
{
    static_assert(stallable_log_store<LogStore>, "a stalled disk needs a store with stall() and resume()");
    return slot_of(id).store->stalled();
}

template <state_machine StateMachine, log_store LogStore>
propose_result cluster<StateMachine, LogStore>::propose(node_id id, std::string command)
{
    slot& s = slot_of(id);
    if (!s.node)
        return {.ec = errc::not_leader};
    propose_result r = s.node->propose(std::move(command));
    flush();
    return r;
}

template <state_machine StateMachine, log_store LogStore>
std::error_code cluster<StateMachine, LogStore>::read_index(node_id id, std::uint64_t read_id)
{
    slot& s = slot_of(id);
    if (!s.node)
        return errc::not_leader;
    const std::error_code ec = s.node->read_index(read_id);
    flush();
    return ec;
}

template <state_machine StateMachine, log_store LogStore>
std::error_code cluster<StateMachine, LogStore>::forward(node_id id, std::uint64_t forward_id,
                                                         std::string command)
{
    slot& s = slot_of(id);
    if (!s.node)
        return errc::not_leader;
    const std::error_code ec = s.node->forward(forward_id, std::span<std::string>(&command, 1));
    flush();
    return ec;
}

template <state_machine StateMachine, log_store LogStore>
node_id cluster<StateMachine, LogStore>::add_spare()
{
    const node_id id = slots_.size() + 1;
    slots_.push_back(std::make_unique<slot>(id, stores_(id), true));
    trace(event_kind::restart, id, id, 0, 0);
    start(*slots_.back());
    return id;
}

template <state_machine StateMachine, log_store LogStore>
propose_result cluster<StateMachine, LogStore>::change_membership(node_id id,
                                                                  std::vector<config_change> changes)
{
    slot& s = slot_of(id);
    if (!s.node)
        return {.ec = errc::not_leader};
    propose_result r = s.node->change_membership(changes);
    flush();
    return r;
}

template <state_machine StateMachine, log_store LogStore>
propose_result cluster<StateMachine, LogStore>::change_membership(std::vector<config_change> changes)
{
    const auto l = leader();
    if (!l)
        return {.ec = errc::not_leader};
    return change_membership(*l, std::move(changes));
}

template <state_machine StateMachine, log_store LogStore>
membership cluster<StateMachine, LogStore>::members() const
{
    if (const auto l = leader())
        last_members_ = slot_of(*l).node->members();
    return last_members_;
}

template <state_machine StateMachine, log_store LogStore>
std::vector<node_id> cluster<StateMachine, LogStore>::member_ids() const
{
    const membership m = members();
    std::vector<node_id> out = m.voters;
    out.insert(out.end(), m.outgoing.begin(), m.outgoing.end());
    out.insert(out.end(), m.learners.begin(), m.learners.end());
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
    return out;
}

template <state_machine StateMachine, log_store LogStore>
std::vector<node_id> cluster<StateMachine, LogStore>::ids() const
{
    std::vector<node_id> out;
    for (const auto& s : slots_)
        out.push_back(s->id);
    return out;
}

template <state_machine StateMachine, log_store LogStore>
std::optional<node_id> cluster<StateMachine, LogStore>::leader() const
{
    std::optional<node_id> best;
    term_t best_term = 0;
    bool unique = false;
    for (const auto& s : slots_) {
        if (!s->node || s->node->role() != role::leader)
            continue;
        if (!best || s->node->term() > best_term) {
            best = s->id;
            best_term = s->node->term();
            unique = true;
        } else if (s->node->term() == best_term) {
            unique = false;
        }
    }
    return unique ? best : std::nullopt;
}

template <state_machine StateMachine, log_store LogStore>
auto cluster<StateMachine, LogStore>::slot_of(node_id id) -> slot&
{
    if (id == no_node || id > slots_.size())
        throw std::out_of_range("raftkv::sim::cluster: no node " + std::to_string(id));
    return *slots_[id - 1];
}

template <state_machine StateMachine, log_store LogStore>
auto cluster<StateMachine, LogStore>::slot_of(node_id id) const -> const slot&
{
    if (id == no_node || id > slots_.size())
        throw std::out_of_range("raftkv::sim::cluster: no node " + std::to_string(id));
    return *slots_[id - 1];
}

template <state_machine StateMachine, log_store LogStore>
auto cluster<StateMachine, LogStore>::up_slot(node_id id) -> slot&
{
    slot& s = slot_of(id);
    if (!s.node)
        throw std::logic_error("raftkv::sim::cluster: node " + std::to_string(id) + " is down");
    return s;
}

// Builds the node of a new incarnation and starts its ticks at a random phase.
template <state_machine StateMachine, log_store LogStore>
void cluster<StateMachine, LogStore>::start(slot& s)
{
    s.machine = factory_(s.id);
    options o = config_.node_options;
    o.id = s.id;
    o.members = s.spare ? membership{} : members_;
    o.random_seed = rng_.fork_seed();
    s.node = std::make_unique<node_type>(std::move(o), s.transport, *s.store, *s.machine);
    s.node->on_apply([this, &s](index_t i, term_t t, result_type& r) { handle_apply(s, i, t, r); });
    s.node->on_read([this, id = s.id](std::uint64_t read_id, std::error_code ec) {
        for (auto& h : read_hooks_)
            h(id, read_id, ec);
    });
    s.node->on_drop([this, id = s.id](index_t i, term_t t, std::error_code ec) {
        for (auto& h : drop_hooks_)
            h(id, i, t, ec);
    });
    s.node->on_forward([this, id = s.id](std::uint64_t f, std::error_code ec, index_t i, term_t t) {
        for (auto& h : forward_hooks_)
            h(id, f, ec, i, t);
    });
    s.node->on_restore([this, id = s.id](const snapshot_meta& meta) {
        ++stats_.snapshots_installed;
        if (config_.check_invariants)
            invariants_.on_restored(id, meta.index);
    });
    invariants_.on_start(s.id, s.machine->applied_index());
    const auto interval = static_cast<std::uint64_t>(config_.tick_interval.count());
    s.tick_interval = interval;
    if (config_.max_tick_skew > 0) {
        const auto most = static_cast<std::uint64_t>(static_cast<double>(interval) * config_.max_tick_skew);
        s.tick_interval += rng_.uniform(0, most);
    }
    push(rng_.uniform(1, interval), node_event(event_kind::tick, s));
}

template <state_machine StateMachine, log_store LogStore>
void cluster<StateMachine, LogStore>::push(std::uint64_t delay, event e)
{
    queue_.emplace(std::pair{now_ + delay, seq_++}, std::move(e));
}

template <state_machine StateMachine, log_store LogStore>
void cluster<StateMachine, LogStore>::run(event& e)
{
    if (e.kind == event_kind::action) {
        e.action();
        return;
    }
    if (e.kind == event_kind::deliver) {
        deliver(e.msg);
        return;
    }
    slot& s = slot_of(e.node);
    if (!s.node || s.incarnation != e.incarnation)
        return; // scheduled for an incarnation that crashed
    if (e.kind == event_kind::tick) {
        s.node->tick();
        push(s.tick_interval, std::move(e));
    } else if (e.kind == event_kind::sync) {
        sync(s, e);
    }
}

// Completes a sync that covered the log up to (e.sync_index, e.sync_term) when it started.
template <state_machine StateMachine, log_store LogStore>
void cluster<StateMachine, LogStore>::sync(slot& s, const event& e)
{
    bool advanced = false;
    if constexpr (requires { s.store->sync_to(e.sync_index, e.sync_term); })
        advanced = s.store->sync_to(e.sync_index, e.sync_term);
    else if constexpr (requires { s.store->sync(); })
        advanced = s.store->sync();
    if (advanced)
        s.node->on_log_durable();
}

// Schedules a sync of everything appended so far, unless one covering it is scheduled.
// Syncs take random times, so they may complete out of order, and after the entries
// they cover were replaced.
template <state_machine StateMachine, log_store LogStore>
void cluster<StateMachine, LogStore>::schedule_sync(slot& s)
{
    const index_t last = s.store->last_index();
    if (!s.node || s.store->durable_index() >= last)
        return;
    const term_t term = s.store->term_at(last);
    if (s.sync_index == last && s.sync_term == term)
        return;
    s.sync_index = last;
    s.sync_term = term;
    event e = node_event(event_kind::sync, s);
    e.sync_index = last;
    e.sync_term = term;
    const auto lo = static_cast<std::uint64_t>(config_.min_sync_delay.count());
    const auto hi = static_cast<std::uint64_t>(config_.max_sync_delay.count());
    push(rng_.uniform(lo, std::max(lo, hi)), std::move(e));
}

template <state_machine StateMachine, log_store LogStore>
auto cluster<StateMachine, LogStore>::default_machines() -> machine_factory
{
    if constexpr (detail::machine_with_disk<StateMachine>) {
        auto disks = std::make_shared<std::map<node_id, std::shared_ptr<typename StateMachine::disk>>>();
        return [disks](node_id id) {
            auto& d = (*disks)[id];
            if (!d)
                d = std::make_shared<typename StateMachine::disk>();
            return std::make_unique<StateMachine>(d);
        };
    } else if constexpr (std::default_initializable<StateMachine>) {
        return [](node_id) { return std::make_unique<StateMachine>(); };
    } else {
        throw std::invalid_argument("raftkv::sim::cluster: a machine factory is required");
    }
}

template <state_machine StateMachine, log_store LogStore>
auto cluster<StateMachine, LogStore>::default_stores() const -> store_factory
{
    if constexpr (std::constructible_from<LogStore, bool>) {
        return [sync = config_.sync_on_append](node_id) { return std::make_unique<LogStore>(sync); };
    } else if constexpr (std::default_initializable<LogStore>) {
        return [](node_id) { return std::make_unique<LogStore>(); };
    } else {
        throw std::invalid_argument("raftkv::sim::cluster: a store factory is required");
    }
}

// A message arrives only if its link is still up, as well as when it was sent.
template <state_machine StateMachine, log_store LogStore>
void cluster<StateMachine, LogStore>::deliver(message& m)
{
    if (m.to == no_node || m.to > slots_.size())
        return;
    slot& s = slot_of(m.to);
    if (!s.node || !net_.connected(m.from, m.to))
        return;
    ++stats_.delivered;
    for (auto& h : deliver_hooks_)
        h(m);
    s.node->step(std::move(m));
}

// Puts on the wire what nodes sent, and schedules syncs for stores with unsynced entries.
template <state_machine StateMachine, log_store LogStore>
void cluster<StateMachine, LogStore>::flush()
{
    for (auto& s : slots_) {
        for (message& m : s->transport.take())
            route(std::move(m));
        schedule_sync(*s);
    }
}

template <state_machine StateMachine, log_store LogStore>
void cluster<StateMachine, LogStore>::route(message m)
{
    ++stats_.sent;
    if (std::holds_alternative<install_snapshot_request>(m.body))
        ++stats_.snapshot_chunks;
    const auto delays = net_.route(m.from, m.to, rng_);
    for (std::size_t k = 0; k < delays.size(); ++k) {
        event e;
        e.kind = event_kind::deliver;
        e.msg = k + 1 == delays.size() ? std::move(m) : m;
        push(static_cast<std::uint64_t>(delays[k].count()), std::move(e));
    }
}

template <state_machine StateMachine, log_store LogStore>
void cluster<StateMachine, LogStore>::check()
{
    if (!config_.check_invariants)
        return;
    try {
        for (auto& s : slots_) {
            if (!s->node)
                continue;
            const node_type& n = *s->node;
            const node_view v{s->id,        n.role(),         n.term(), n.commit_index(), n.applied_index(),
                              &n.members(), n.members_index()};
            index_t changed_from = s->store->first_index();
            if constexpr (requires { s->store->take_changed_from(); })
                changed_from = s->store->take_changed_from();
            const index_t committed = invariants_.committed_index();
            invariants_.check(v, *s->store, changed_from);
            if (invariants_.committed_index() > committed)
                check_commit_quorum(*s, invariants_.committed_index());
        }
    } catch (const invariant_violation& e) {
        throw invariant_violation(std::string(e.what()) + " [at virtual time " + std::to_string(now_) +
                                  " us, seed " + std::to_string(config_.seed) + "]");
    }
}

// Node `by` just revealed that `index` is committed: a quorum of its configuration must
// hold that entry durably (the checker has verified, by log matching, that equal terms at
// one index mean equal logs up to it). A store whose snapshot is past `index` holds it.
template <state_machine StateMachine, log_store LogStore>
void cluster<StateMachine, LogStore>::check_commit_quorum(const slot& by, index_t index)
{
    const term_t term = *invariants_.committed_term(index);
    invariants_.check_commit_quorum(by.id, by.node->members(), index, [&](node_id id) {
        if (id == no_node || id > slots_.size())
            return false;
        const LogStore& st = *slots_[id - 1]->store;
        if (index + 1 < st.first_index())
            return true;
        return index <= st.durable_index() && index <= st.last_index() && st.term_at(index) == term;
    });
}

template <state_machine StateMachine, log_store LogStore>
void cluster<StateMachine, LogStore>::trace(event_kind kind, node_id from, node_id to, std::uint64_t type,
                                            term_t term)
{
    std::uint64_t h = detail::hash_combine(trace_, now_);
    h = detail::hash_combine(h, static_cast<std::uint64_t>(kind));
    h = detail::hash_combine(h, from);
    h = detail::hash_combine(h, to);
    h = detail::hash_combine(h, type);
    trace_ = detail::hash_combine(h, term);
}

template <state_machine StateMachine, log_store LogStore>
void cluster<StateMachine, LogStore>::handle_apply(slot& s, index_t index, term_t term, result_type& result)
{
    if (config_.check_invariants) {
        // Handlers run at the end of the node's call, which may have compacted the entry.
        const bool compacted = index < s.store->first_index();
        std::vector<log_entry> es;
        if (!compacted && index <= s.store->last_index())
            es = s.store->entries(index, index + 1, std::numeric_limits<std::size_t>::max());
        invariants_.on_applied(s.id, index, term, es.empty() ? nullptr : &es.front(), compacted);
    }
    for (auto& h : apply_hooks_)
        h(s.id, index, term, result);
}

} // namespace raftkv::sim

#endif
