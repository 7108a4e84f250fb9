#ifndef RAFTKV_SIM_IMPL_KV_WORKLOAD_HPP
#define RAFTKV_SIM_IMPL_KV_WORKLOAD_HPP

// Template bodies of raftkv::sim::kv_workload; included at the bottom of <raftkv/sim/kv_workload.hpp>.

#include <raftkv/sim/kv_workload.hpp>

namespace raftkv::sim {

template <class StateMachine, class LogStore>
kv_workload<StateMachine, LogStore>::kv_workload(cluster<StateMachine, LogStore>& c, workload_config config)
    : cluster_(c), config_(config)
{
    clients_.resize(config_.clients);
    for (std::size_t i = 0; i < clients_.size(); ++i)
        clients_[i].id = i + 1;
    cluster_.on_apply([this](node_id n, index_t i, term_t t, kv_result& r) { handle_apply(n, i, t, r); });
    cluster_.on_read([this](node_id n, std::uint64_t id, std::error_code ec) { handle_read(n, id, ec); });
    cluster_.on_drop(
        [this](node_id n, index_t i, term_t t, std::error_code ec) { handle_drop(n, i, t, ec); });
    cluster_.on_forward([this](node_id n, std::uint64_t id, std::error_code ec, index_t i, term_t t) {
        handle_forward(n, id, ec, i, t);
    });
    cluster_.on_crash([this](node_id n) { handle_crash(n); });
}

template <class StateMachine, class LogStore>
void kv_workload<StateMachine, LogStore>::start()
{
    for (std::size_t ci = 0; ci < clients_.size(); ++ci) {
        clients_[ci].target = random_node();
        cluster_.schedule(draw({}, config_.max_think), [this, ci] { issue(ci); });
    }
}

template <class StateMachine, class LogStore>
bool kv_workload<StateMachine, LogStore>::idle() const noexcept
{
    for (const client& c : clients_) {
        if (c.busy)
            return false;
    }
    return true;
}

// Starts the client's next operation, with its timeout.
template <class StateMachine, class LogStore>
void kv_workload<StateMachine, LogStore>::issue(std::size_t ci)
{
    client& c = clients_[ci];
    if (stopped_ || c.busy)
        return;
    random_generator& rng = cluster_.rng();
    const double r = rng.unit();
    const std::string key = "k" + std::to_string(rng.uniform(0, config_.keys - 1));
    c.op = kv_op{};
    c.op.client = c.id;
    c.op.key = key;
    c.op.call = stamp();
    c.reading = read_kind::linearizable;
    if (r < config_.get_share) {
        c.op.kind = kv_op_kind::get;
        if (config_.lease_reads + config_.stale_reads > 0) {
            const double m = rng.unit();
            if (m < config_.lease_reads)
                c.reading = read_kind::lease;
            else if (m < config_.lease_reads + config_.stale_reads)
                c.reading = read_kind::stale;
        }
    } else {
        const kv_client_session session{.client = c.id, .sequence = ++c.sequence};
        const auto with_session = [&](kv_command_op op, std::string_view value, const kv_precondition& pre) {
            if (!config_.sessions)
                return op == kv_command_op::put ? encode_put(key, value, pre) : encode_del(key, pre);
            return op == kv_command_op::put ? encode_put(key, value, pre, session)
                                            : encode_del(key, pre, session);
        };
        if (r < config_.get_share + config_.put_share) {
            c.op.kind = kv_op_kind::put;
            c.op.value = "c" + std::to_string(c.id) + "-" + std::to_string(++c.puts);
            c.command = with_session(kv_command_op::put, c.op.value, {});
        } else if (r < config_.get_share + config_.put_share + config_.create_share) {
            c.op.kind = kv_op_kind::create;
            c.op.value = "c" + std::to_string(c.id) + "-" + std::to_string(++c.puts);
            c.command = with_session(kv_command_op::put, c.op.value, kv_precondition{std::nullopt, true});
        } else {
            c.op.kind = kv_op_kind::del;
            c.command = with_session(kv_command_op::del, {}, {});
        }
    }
    c.busy = true;
    c.waiting = waiting_for::nothing;
    const std::uint64_t seq = ++c.op_seq;
    cluster_.schedule(config_.op_timeout, [this, ci, seq] { handle_timeout(ci, seq); });
    attempt(ci);
}

template <class StateMachine, class LogStore>
void kv_workload<StateMachine, LogStore>::attempt(std::size_t ci)
{
    client& c = clients_[ci];
    if (c.op.kind == kv_op_kind::get)
        attempt_read(c, ci);
    else
        attempt_write(c, ci);
}

template <class StateMachine, class LogStore>
void kv_workload<StateMachine, LogStore>::attempt_write(client& c, std::size_t ci)
{
    random_generator& rng = cluster_.rng();
    if (config_.follower_writes > 0 && rng.chance(config_.follower_writes)) {
        const node_id at = random_node();
        if (cluster_.is_up(at) && cluster_.node(at).role() != role::leader &&
            cluster_.node(at).leader() != no_node) {
            const std::uint64_t id = next_forward_id_++;
            c.waiting = waiting_for::write;
            c.at = at;
            c.index = 0; // not known until the leader answers
            c.term = 0;
            forwards_[id] = ci;
            if (cluster_.forward(at, id, c.command) && forwards_.erase(id) == 1)
                retry(c, ci, cluster_.node(at).leader());
            return;
        }
    }
    // The node reports the outcome after propose() returns, never during it.
    const propose_result r = cluster_.propose(c.target, c.command);
    if (r.ec)
        return retry(c, ci, r.leader);
    c.waiting = waiting_for::write;
    c.at = c.target;
    c.index = r.index;
    c.term = r.term;
    writes_[{c.at, c.index, c.term}] = ci;
}

template <class StateMachine, class LogStore>
void kv_workload<StateMachine, LogStore>::attempt_read(client& c, std::size_t ci)
{
    if (c.reading == read_kind::stale)
        return stale_read(c, ci);
    if (c.reading == read_kind::lease && try_lease_read(c, ci))
        return;
    random_generator& rng = cluster_.rng();
    const node_id at = rng.chance(config_.follower_reads) ? random_node() : c.target;
    const std::uint64_t read_id = next_read_id_++;
    c.waiting = waiting_for::read;
    c.at = at;
    reads_[read_id] = ci;
    const std::error_code ec = cluster_.read_index(at, read_id);
    if (ec && reads_.erase(read_id) == 1) {
        c.waiting = waiting_for::nothing;
        c.target = at; // the node tried: a hint that names another is followed
        retry(c, ci, cluster_.is_up(at) ? cluster_.node(at).leader() : no_node);
    }
}

// Serves the get at once if the node the client believes leads holds its lease and has
// applied its commit index; otherwise the caller runs ReadIndex.
template <class StateMachine, class LogStore>
bool kv_workload<StateMachine, LogStore>::try_lease_read(client& c, std::size_t ci)
{
    const node_id at = c.target;
    if (!cluster_.is_up(at))
        return false;
    const auto& n = cluster_.node(at);
    if (!n.lease_valid() || n.applied_index() < n.commit_index())
        return false;
    ++stats_.lease_served;
    c.at = at;
    std::optional<std::string> value = cluster_.machine(at).get(c.op.key);
    complete(c, ci, value.has_value(), value.value_or(std::string{}));
    return true;
}

// Reads a random live node's state machine as it is, and checks that the node never goes
// back: a later stale read there sees at least the applied index of an earlier one.
template <class StateMachine, class LogStore>
void kv_workload<StateMachine, LogStore>::stale_read(client& c, std::size_t ci)
{
    const node_id at = random_node();
    if (!cluster_.is_up(at))
        return retry(c, ci, no_node);
    const index_t applied = cluster_.machine(at).applied_index();
    index_t& seen = stale_seen_[{at, cluster_.incarnation(at)}];
    if (applied < seen)
        ++stats_.stale_regressions;
    seen = std::max(seen, applied);
    (void)cluster_.machine(at).get(c.op.key); // never checked against the history
    ++stats_.stale_served;
    finish(c, ci);
}

// Retries after a backoff, at `hint` if it names another node, else at a random node.
template <class StateMachine, class LogStore>
void kv_workload<StateMachine, LogStore>::retry(client& c, std::size_t ci, node_id hint)
{
    c.waiting = waiting_for::nothing;
    c.target = hint != no_node && hint != c.target ? hint : random_node();
    ++stats_.retries;
    const std::uint64_t seq = ++c.retry_seq;
    const std::uint64_t op = c.op_seq;
    cluster_.schedule(draw(config_.min_backoff, config_.max_backoff), [this, ci, seq, op] {
        client& again = clients_[ci];
        if (again.busy && again.op_seq == op && again.retry_seq == seq &&
            again.waiting == waiting_for::nothing)
            attempt(ci);
    });
}

// The client whose write was proposed at (node, index, term), no longer waiting.
template <class StateMachine, class LogStore>
std::optional<std::size_t> kv_workload<StateMachine, LogStore>::take_write(node_id node, index_t index,
                                                                           term_t term)
{
    const auto it = writes_.find({node, index, term});
    if (it == writes_.end())
        return std::nullopt;
    const std::size_t ci = it->second;
    writes_.erase(it);
    return ci;
}

template <class StateMachine, class LogStore>
void kv_workload<StateMachine, LogStore>::handle_apply(node_id node, index_t index, term_t term,
                                                       const kv_result& result)
{
    if (const auto ci = take_write(node, index, term)) {
        if (result.replayed)
            ++stats_.replayed;
        complete(clients_[*ci], *ci,
                 clients_[*ci].op.kind == kv_op_kind::create ? result.status == kv_status::precondition_failed
                                                             : result.found,
                 {});
    }
    // A forwarded write whose index this node applied with another term was overwritten
    // by another leader: it never took effect. (A node's own proposals are also reported
    // dropped by the node; whichever comes first takes the write.)
    for (auto it = writes_.lower_bound({node, index, 0});
         it != writes_.end() && std::get<0>(it->first) == node && std::get<1>(it->first) == index;) {
        const std::size_t ci = it->second;
        it = writes_.erase(it);
        ++stats_.forward_dropped;
        retry(clients_[ci], ci, no_node);
    }
}

// The leader appended a forwarded write at (index, term), or refused it.
template <class StateMachine, class LogStore>
void kv_workload<StateMachine, LogStore>::handle_forward(node_id node, std::uint64_t forward_id,
                                                         std::error_code ec, index_t index, term_t term)
{
    const auto it = forwards_.find(forward_id);
    if (it == forwards_.end())
        return;
    const std::size_t ci = it->second;
    forwards_.erase(it);
    client& c = clients_[ci];
    if (ec == errc::timeout)
        return unknown_outcome(c, ci); // unanswered: the leader may have appended it
    if (ec)
        return retry(c, ci, no_node); // it never entered a log
    if (cluster_.node(node).applied_index() >= index)
        return unknown_outcome(c, ci); // applied before the answer came: its outcome is lost
    c.index = index;
    c.term = term;
    writes_[{node, index, term}] = ci;
    ++stats_.forwarded;
}

// Drops the forward a client waits on: its answer, if it ever comes, is ignored.
template <class StateMachine, class LogStore>
void kv_workload<StateMachine, LogStore>::forget_forward(std::size_t ci)
{
    std::erase_if(forwards_, [ci](const auto& f) { return f.second == ci; });
}

template <class StateMachine, class LogStore>
void kv_workload<StateMachine, LogStore>::handle_drop(node_id node, index_t index, term_t term,
                                                      std::error_code ec)
{
    const auto ci = take_write(node, index, term);
    if (!ci)
        return;
    if (ec == errc::proposal_dropped)
        return retry(clients_[*ci], *ci, no_node); // another entry took its index: it never took effect
    unknown_outcome(clients_[*ci], *ci);
}

// The write may or may not have taken effect: with a session, send it again (it is applied
// once); otherwise the history says so.
template <class StateMachine, class LogStore>
void kv_workload<StateMachine, LogStore>::unknown_outcome(client& c, std::size_t ci)
{
    if (!config_.sessions)
        return indeterminate(c, ci);
    ++stats_.session_retries;
    retry(c, ci, no_node);
}

// The write may or may not have taken effect: the history says so.
template <class StateMachine, class LogStore>
void kv_workload<StateMachine, LogStore>::indeterminate(client& c, std::size_t ci)
{
    c.op.indeterminate = true;
    history_.push_back(c.op);
    ++stats_.indeterminate;
    finish(c, ci);
}

template <class StateMachine, class LogStore>
void kv_workload<StateMachine, LogStore>::handle_read(node_id node, std::uint64_t read_id, std::error_code ec)
{
    const auto it = reads_.find(read_id);
    if (it == reads_.end())
        return;
    client& c = clients_[it->second];
    const std::size_t ci = it->second;
    reads_.erase(it);
    if (ec)
        return retry(c, ci, no_node);
    std::optional<std::string> value = cluster_.machine(node).get(c.op.key);
    complete(c, ci, value.has_value(), value.value_or(std::string{}));
}

// A write in flight at a crashed node may or may not have happened; a read can go elsewhere.
template <class StateMachine, class LogStore>
void kv_workload<StateMachine, LogStore>::handle_crash(node_id node)
{
    for (std::size_t ci = 0; ci < clients_.size(); ++ci) {
        client& c = clients_[ci];
        if (!c.busy || c.at != node || c.waiting == waiting_for::nothing)
            continue;
        if (c.waiting == waiting_for::write) {
            writes_.erase({c.at, c.index, c.term});
            forget_forward(ci);
            unknown_outcome(c, ci);
        } else {
            std::erase_if(reads_, [ci](const auto& r) { return r.second == ci; });
            retry(c, ci, no_node);
        }
    }
}

template <class StateMachine, class LogStore>
void kv_workload<StateMachine, LogStore>::handle_timeout(std::size_t ci, std::uint64_t op_seq)
{
    client& c = clients_[ci];
    if (!c.busy || c.op_seq != op_seq)
        return;
    if (c.waiting == waiting_for::write) {
        writes_.erase({c.at, c.index, c.term});
        forget_forward(ci); // the leader may have appended it: unknown
        return indeterminate(c, ci);
    }
    std::erase_if(reads_, [ci](const auto& r) { return r.second == ci; });
    ++stats_.abandoned; // a read, or a write that was never in any log
    finish(c, ci);
}

// A history time: the virtual microsecond in nanoseconds, plus how many stamps this
// microsecond gave before (history()). Past 999 in one microsecond they tie, and the
// checker's rule for ties applies.
template <class StateMachine, class LogStore>
std::uint64_t kv_workload<StateMachine, LogStore>::stamp()
{
    const auto now = static_cast<std::uint64_t>(cluster_.now().count());
    if (now != stamp_us_) {
        stamp_us_ = now;
        stamps_in_us_ = 0;
    }
    return now * 1000 + std::min<std::uint64_t>(stamps_in_us_++, 999);
}

template <class StateMachine, class LogStore>
void kv_workload<StateMachine, LogStore>::complete(client& c, std::size_t ci, bool found, std::string value)
{
    c.op.ret = stamp();
    c.op.found = c.op.kind == kv_op_kind::put ? false : found;
    c.op.result = std::move(value);
    history_.push_back(c.op);
    ++stats_.completed;
    if (c.op.kind != kv_op_kind::get)
        acked_.push_back(acknowledged_write{c.id, c.index, c.term, c.command});
    finish(c, ci);
}

template <class StateMachine, class LogStore>
void kv_workload<StateMachine, LogStore>::finish(client& c, std::size_t ci)
{
    c.busy = false;
    c.waiting = waiting_for::nothing;
    ++c.op_seq;
    cluster_.schedule(draw({}, config_.max_think), [this, ci] { issue(ci); });
}

// A random member of the configuration in force (every node is one without changes):
// spares not yet added and removed nodes only ever answer not_leader or time out.
template <class StateMachine, class LogStore>
node_id kv_workload<StateMachine, LogStore>::random_node()
{
    const std::vector<node_id> ids = cluster_.member_ids();
    if (ids.empty())
        return cluster_.rng().uniform(1, cluster_.size());
    return ids[cluster_.rng().uniform(0, ids.size() - 1)];
}

template <class StateMachine, class LogStore>
std::chrono::microseconds kv_workload<StateMachine, LogStore>::draw(std::chrono::microseconds lo,
                                                                    std::chrono::microseconds hi)
{
    const auto a = static_cast<std::uint64_t>(lo.count());
    const auto b = static_cast<std::uint64_t>(hi.count());
    return std::chrono::microseconds(static_cast<std::int64_t>(cluster_.rng().uniform(a, b < a ? a : b)));
}

} // namespace raftkv::sim

#endif
