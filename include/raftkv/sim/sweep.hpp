#ifndef RAFTKV_SIM_SWEEP_HPP
#define RAFTKV_SIM_SWEEP_HPP

// Random scenarios for seed sweeps: one seed builds a cluster, runs clients under a
// random fault schedule, heals, settles and checks everything. A failure names the seed,
// and RAFTKV_SEED=<n> replays it.

#include <raftkv/options.hpp>
#include <raftkv/sim/cluster.hpp>
#include <raftkv/sim/fault_injector.hpp>
#include <raftkv/sim/history.hpp>
#include <raftkv/sim/invariants.hpp>
#include <raftkv/sim/kv_state_machine.hpp>
#include <raftkv/sim/kv_workload.hpp>
#include <raftkv/sim/linearizability.hpp>
#include <raftkv/sim/random.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <functional>
#include <initializer_list>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <tuple>
#include <vector>

namespace raftkv::sim {

struct scenario_params {
    /// Cluster size; 0 lets the seed choose 3 or 5. Default: 0.
    std::size_t nodes = 0;
    std::size_t clients = 5;
    std::size_t keys = 3;
    /// How long clients run under faults (virtual time). Default: 8 s.
    std::chrono::microseconds duration{8'000'000};
    /// After healing, how long the cluster may take to elect a leader, bring every node
    /// up to date and finish client operations; not settling is a failure. Default: 30 s.
    std::chrono::microseconds settle_timeout{30'000'000};
    /// Let the seed choose, for about half the runs, stores that sync after a lag of up
    /// to 0.5-30 ms. Default: true.
    bool sync_lag = true;
    /// Let the seed choose the nodes' options (election and heartbeat ticks, entries per
    /// append, pipelining window, apply batch, PreVote, CheckQuorum), so that rare paths
    /// such as one-entry appends get exercised. Default: true.
    bool vary_options = true;
    fault_config faults{};
    /// Change the membership during the faults (fault_config::membership_changes): add,
    /// promote, remove and replace members, the leader included; the seed then also
    /// chooses snapshot settings that make new members often catch up from a snapshot,
    /// and a small options::promote_max_lag. Default: false.
    bool membership_changes = false;
    /// A run that needs more events than this, or has more than `max_pending_events` in
    /// flight at once, fails as a message storm (a feedback loop in the protocol) instead
    /// of running out of time or memory. A normal run takes tens of thousands.
    /// Defaults: 2 million and 100,000.
    std::uint64_t max_events = 2'000'000;
    std::size_t max_pending_events = 100'000;
    /// Of the gets, the shares that are lease reads and stale reads
    /// (workload_config::lease_reads, stale_reads); a stale read that goes back on a node
    /// fails the run. Defaults: 0.
    double lease_reads = 0;
    double stale_reads = 0;
    /// Nodes' clocks run at rates up to this much apart (cluster_config::max_tick_skew).
    /// Default: 0.
    double max_tick_skew = 0;
    /// Wall-clock time the linearizability checker may spend. Default: 5 s.
    std::chrono::milliseconds checker_budget{5000};
};

struct scenario_result {
    std::uint64_t seed = 0;
    /// No invariant violated, the cluster settled, every acknowledged write is in the
    /// final log, and the history is not illegal.
    bool passed = true;
    /// The linearizability checker gave up (budget); not a failure, but worth a look.
    bool inconclusive = false;
    /// On failure: what failed, the seed and parameters, recent faults and the replay line.
    std::string report;
    std::uint64_t trace_hash = 0;
    std::size_t nodes = 0;
    bool sync_lag = false;
    /// What the seed chose: cluster size, syncs, node options.
    std::string setup;
    std::size_t operations = 0;
    std::size_t indeterminate = 0;
    std::size_t faults = 0;
    std::uint64_t events = 0;
    std::uint64_t snapshots_installed = 0;
    /// Gets served under a leader's lease, and stale reads (workload_stats).
    std::uint64_t lease_reads = 0;
    std::uint64_t stale_reads = 0;
};

namespace detail {

inline std::string describe(std::uint64_t seed, const scenario_params& p, const scenario_result& r)
{
    return "seed " + std::to_string(seed) + ": " + r.setup + "; " + std::to_string(p.clients) + " clients, " +
           std::to_string(p.keys) + " keys, " + std::to_string(p.duration.count() / 1000) +
           " ms of faults, crashes " + (p.faults.crashes ? "on" : "off") + ", unreliable links " +
           (p.faults.unreliable_links ? "on" : "off") + ", disk stalls " +
           (p.faults.disk_stalls ? "on" : "off") + ", membership changes " +
           (p.membership_changes ? "on" : "off");
}

template <class T>
T pick(random_generator& rng, std::initializer_list<T> choices)
{
    return *(choices.begin() + rng.uniform(0, choices.size() - 1));
}

/// The cluster a seed asks for, and a line that says what was chosen.
inline cluster_config choose_cluster(std::uint64_t seed, const scenario_params& p, scenario_result& r)
{
    random_generator choose{seed ^ 0x5eed5eed5eed5eedULL};
    cluster_config cfg;
    cfg.seed = seed;
    cfg.nodes = r.nodes = p.nodes ? p.nodes : (choose.chance(0.5) ? 5 : 3);
    r.sync_lag = p.sync_lag && choose.chance(0.5);
    cfg.sync_on_append = !r.sync_lag;
    cfg.max_sync_delay = std::chrono::microseconds(static_cast<std::int64_t>(choose.uniform(500, 30'000)));
    cfg.max_tick_skew = p.max_tick_skew;
    r.setup =
        std::to_string(cfg.nodes) + " nodes, sync lag " +
        (r.sync_lag ? "up to " + std::to_string(cfg.max_sync_delay.count()) + " us" : std::string("off"));
    if (!p.vary_options)
        return cfg;
    options& o = cfg.node_options;
    o.election_ticks = static_cast<std::uint32_t>(choose.uniform(5, 20));
    o.heartbeat_ticks = static_cast<std::uint32_t>(choose.uniform(1, 3));
    o.max_entries_per_append = pick<std::size_t>(choose, {1, 2, 8, 256});
    o.max_inflight_appends = pick<std::size_t>(choose, {1, 2, 16});
    o.max_apply_batch = pick<std::size_t>(choose, {1, 1024});
    o.pre_vote = choose.chance(0.8);
    o.check_quorum = choose.chance(0.8);
    // Snapshots often enough that followers need them, in chunks small enough to need many.
    o.snapshot_entries = pick<std::uint64_t>(choose, {0, 5, 20, 100});
    o.snapshot_catchup_entries = pick<std::uint64_t>(choose, {0, 3, 30});
    o.snapshot_chunk_bytes = pick<std::size_t>(choose, {1, 16, 1024});
    o.max_snapshot_inflight_bytes = o.snapshot_chunk_bytes * pick<std::size_t>(choose, {1, 4});
    o.max_inflight_bytes = pick<std::size_t>(choose, {64, 8 * 1024 * 1024});
    o.max_uncommitted_bytes = pick<std::size_t>(choose, {0, 256, 64 * 1024 * 1024});
    if (p.membership_changes) {
        // New members usually need a snapshot that carries the configuration, and a
        // learner is often refused promotion until it catches up.
        o.snapshot_entries = pick<std::uint64_t>(choose, {5, 20, 50});
        o.snapshot_catchup_entries = pick<std::uint64_t>(choose, {0, 3, 10});
        o.promote_max_lag = pick<std::uint64_t>(choose, {0, 5, 1000});
        r.setup += ", promote_max_lag " + std::to_string(o.promote_max_lag);
    }
    // Drawn last, so that the choices above stay what each seed chose before it existed.
    o.snapshot_catchup_bytes = pick<std::uint64_t>(choose, {0, 64, 1024, 64 * 1024 * 1024});
    // Half the seeds let the leader make changes that put its quorum at risk (new voters
    // that never answered, voters removed while others are down), so those stay covered.
    if (p.membership_changes) {
        o.strict_membership_changes = choose.chance(0.5);
        r.setup += std::string(", strict_membership_changes ") + (o.strict_membership_changes ? "on" : "off");
    }
    // Last again: small budgets make leaders give up transfers and catch-ups for newer
    // snapshots.
    o.snapshot_hold_bytes = pick<std::uint64_t>(choose, {0, 64, 4096, 512 * 1024 * 1024});
    r.setup += ", election_ticks " + std::to_string(o.election_ticks) + ", heartbeat_ticks " +
               std::to_string(o.heartbeat_ticks) + ", max_entries_per_append " +
               std::to_string(o.max_entries_per_append) + ", max_inflight_appends " +
               std::to_string(o.max_inflight_appends) + ", max_apply_batch " +
               std::to_string(o.max_apply_batch) + ", pre_vote " + (o.pre_vote ? "on" : "off") +
               ", check_quorum " + (o.check_quorum ? "on" : "off") + ", snapshot_entries " +
               std::to_string(o.snapshot_entries) + ", snapshot_catchup_entries " +
               std::to_string(o.snapshot_catchup_entries) + ", snapshot_catchup_bytes " +
               std::to_string(o.snapshot_catchup_bytes) + ", snapshot_hold_bytes " +
               std::to_string(o.snapshot_hold_bytes) + ", snapshot_chunk_bytes " +
               std::to_string(o.snapshot_chunk_bytes) + ", max_snapshot_inflight_bytes " +
               std::to_string(o.max_snapshot_inflight_bytes) + ", max_inflight_bytes " +
               std::to_string(o.max_inflight_bytes) + ", max_uncommitted_bytes " +
               std::to_string(o.max_uncommitted_bytes);
    return cfg;
}

/// Whether every member of the leader's configuration is up, agrees with the leader on the
/// whole log, and applied it, and the clients are done. (Spares never added and removed
/// nodes are left alone: the leader no longer replicates to them.)
template <class StateMachine, class Clients>
bool settled(cluster<StateMachine>& c, const Clients& w)
{
    const auto l = c.leader();
    if (!w.idle() || !l)
        return false;
    const index_t last = c.node(*l).last_index();
    for (node_id id : c.member_ids()) {
        if (!c.is_up(id))
            return false;
        const auto& n = c.node(id);
        if (n.last_index() != last || n.commit_index() != last || n.applied_index() != last)
            return false;
    }
    return true;
}

/// Empty when every acknowledged write is committed, where it was acknowledged, in the final log.
template <class StateMachine>
std::string check_acknowledged(cluster<StateMachine>& c, const kv_workload<StateMachine>& w)
{
    const node_id l = *c.leader();
    const index_t commit = c.node(l).commit_index();
    const auto& store = c.store(l);
    for (const acknowledged_write& a : w.acknowledged()) {
        // An entry compacted into a snapshot is identified by its term: the committed
        // entry of that index and term is the one the client's proposal appended.
        bool held = a.index <= commit && c.invariants().committed_term(a.index) == a.term;
        if (held && a.index >= store.first_index()) {
            const log_entry e = store.entries(a.index, a.index + 1, 0).front();
            held = e.term == a.term && e.data == a.command;
        }
        if (!held)
            return "client " + std::to_string(a.client) + "'s write acknowledged at index " +
                   std::to_string(a.index) + " term " + std::to_string(a.term) + " is not in the final log";
    }
    for (node_id id : c.member_ids()) {
        if (c.machine(id).data() != c.machine(l).data())
            return "node " + std::to_string(id) + "'s state machine differs from the leader's";
    }
    return {};
}

/// One line per node: what a stuck cluster looks like.
template <class StateMachine>
std::string node_states(cluster<StateMachine>& c)
{
    std::string s = "    configuration: " + invariant_checker::describe(c.members()) + "\n";
    for (node_id id : c.ids()) {
        s += "    node " + std::to_string(id) + ": ";
        if (!c.is_up(id)) {
            s += "down\n";
            continue;
        }
        const node_status st = c.node(id).status();
        s += std::string(to_string(st.role)) + ", term " + std::to_string(st.term) + ", leader " +
             std::to_string(st.leader) + ", last " + std::to_string(st.last_index) + ", durable " +
             std::to_string(c.store(id).durable_index()) + ", commit " + std::to_string(st.commit_index) +
             ", applied " + std::to_string(st.applied_index) + ", config " +
             invariant_checker::describe(st.members) + " at " + std::to_string(st.members_index) + "\n";
        // A machine that came back from a crash behind the log its node kept can only be
        // caught up by a snapshot, which no node may have if every machine forgot its own.
        if (const index_t first = c.store(id).first_index(); st.applied_index + 1 < first)
            s += "      its machine restarted at index " + std::to_string(st.applied_index) +
                 " but its log starts at " + std::to_string(first) +
                 ": it waits for a snapshot (does the factory give each node storage that outlives its "
                 "crashes?)\n";
    }
    return s;
}

template <class StateMachine>
bool storming(const cluster<StateMachine>& c, const scenario_params& p)
{
    return c.stats().events >= p.max_events || c.pending_events() > p.max_pending_events;
}

inline std::string recent_faults(const std::vector<fault_record>& log)
{
    std::string s;
    const std::size_t from = log.size() > 12 ? log.size() - 12 : 0;
    for (std::size_t i = from; i < log.size(); ++i)
        s += "    " + std::to_string(log[i].at.count()) + " us: " + log[i].what + "\n";
    return s;
}

} // namespace detail

namespace detail {

template <class StateMachine>
std::string storm(cluster<StateMachine>& c, const scenario_params& p)
{
    return "message storm: " + std::to_string(c.stats().events) + " events run and " +
           std::to_string(c.pending_events()) + " pending by " + std::to_string(c.now().count() / 1000) +
           " ms of virtual time (limits " + std::to_string(p.max_events) + " and " +
           std::to_string(p.max_pending_events) + "; " + std::to_string(c.stats().sent) + " messages sent)";
}

/// Empty when every node's machine holds the leader's state.
template <class StateMachine, class Same>
std::string check_same_state(cluster<StateMachine>& c, const Same& same_state)
{
    const node_id l = *c.leader();
    for (node_id id : c.member_ids()) {
        if (!same_state(c.machine(id), c.machine(l)))
            return "node " + std::to_string(id) + "'s state machine differs from the leader's (node " +
                   std::to_string(l) + ")";
    }
    return {};
}

/// Crashes every node at once, restarts them all and lets them settle: each must rebuild
/// the same state from what survived (its snapshot and its log). Empty when they did.
template <class StateMachine, class Clients, class Same>
std::string check_restart(cluster<StateMachine>& c, const Clients& w, const Same& same_state,
                          const scenario_params& p)
{
    for (node_id id : c.ids())
        c.crash(id);
    for (node_id id : c.ids())
        c.restart(id);
    c.run_until([&] { return settled(c, w) || storming(c, p); }, p.settle_timeout);
    if (!settled(c, w))
        return "the cluster did not settle after every node restarted:\n" + node_states(c);
    const std::string differs = check_same_state(c, same_state);
    return differs.empty() ? differs : "after every node restarted, " + differs;
}

/// Runs the scenario's phases; returns what failed, or nothing.
template <class StateMachine, class Clients>
std::string drive(cluster<StateMachine>& c, Clients& w, fault_injector<StateMachine>& faults,
                  const scenario_params& p)
{
    w.start();
    faults.start(p.duration);
    const bool stormed = c.run_until([&] { return storming(c, p); }, p.duration);
    w.stop();
    faults.heal_all();
    if (stormed)
        return storm(c, p);
    c.run_until([&] { return settled(c, w) || storming(c, p); }, p.settle_timeout);
    if (storming(c, p))
        return storm(c, p);
    if (!settled(c, w))
        return "the cluster did not settle within " + std::to_string(p.settle_timeout.count() / 1000) +
               " ms after healing (no leader, a lagging node, or a stuck client" +
               (w.idle() ? "" : "; clients still busy") + "):\n" + node_states(c);
    return {};
}

/// Drives the scenario, then runs `checks()` and the restart check; returns what failed.
template <class StateMachine, class Clients, class Same, class Checks>
std::string run_phases(cluster<StateMachine>& c, Clients& w, fault_injector<StateMachine>& faults,
                       const scenario_params& p, const Same& same_state, const Checks& checks)
{
    try {
        std::string failure = drive(c, w, faults, p);
        if (failure.empty())
            failure = checks();
        if (failure.empty())
            failure = check_restart(c, w, same_state, p);
        return failure;
    } catch (const std::exception& e) {
        return e.what();
    }
}

inline std::string replay_line(std::uint64_t seed)
{
    return "replay with RAFTKV_SEED=" + std::to_string(seed) + "\n";
}

/// Records what the run did in `r`, and `failure` if there is one.
template <class StateMachine>
void conclude(scenario_result& r, cluster<StateMachine>& c, const fault_injector<StateMachine>& faults,
              const std::string& failure, const scenario_params& p)
{
    r.trace_hash = c.trace_hash();
    r.events = c.stats().events;
    r.snapshots_installed = c.stats().snapshots_installed;
    r.faults = faults.log().size();
    if (failure.empty())
        return;
    r.passed = false;
    r.report = "simulation failed: " + failure + "\n  " + describe(r.seed, p, r) + "\n  last faults:\n" +
               recent_faults(faults.log()) + replay_line(r.seed);
}

} // namespace detail

/// Runs the random scenario of `seed`: builds a cluster (3 or 5 nodes unless `params`
/// fixes it), runs clients under random faults for `params.duration`, heals everything,
/// waits for the cluster to settle, then checks that no invariant was violated, every
/// acknowledged write is in the final log, all state machines agree, and the history is
/// linearizable. Deterministic in (seed, params) except for the checker's wall-clock budget.
inline scenario_result run_random_scenario(std::uint64_t seed, const scenario_params& params = {})
{
    scenario_result r;
    r.seed = seed;
    cluster<> c{detail::choose_cluster(seed, params, r)};
    workload_config wc{.clients = params.clients, .keys = params.keys};
    wc.lease_reads = params.lease_reads;
    wc.stale_reads = params.stale_reads;
    kv_workload<> w{c, wc};
    fault_config fc = params.faults;
    fc.membership_changes = fc.membership_changes || params.membership_changes;
    fault_injector<kv_state_machine> faults{c, fc};
    const auto same = [](const kv_state_machine& a, const kv_state_machine& b) {
        return a.data() == b.data();
    };
    std::string failure =
        detail::run_phases(c, w, faults, params, same, [&] { return detail::check_acknowledged(c, w); });
    if (failure.empty() && w.stats().stale_regressions > 0)
        failure = std::to_string(w.stats().stale_regressions) +
                  " stale reads saw a lower applied index than an earlier one on the same node";
    r.operations = w.history().size();
    r.lease_reads = w.stats().lease_served;
    r.stale_reads = w.stats().stale_served;
    r.indeterminate = w.stats().indeterminate;
    if (failure.empty()) {
        const check_result lin = check_kv_history(w.history(), params.checker_budget);
        if (lin.outcome == check_outcome::illegal)
            failure = "the history is not linearizable:\n" + lin.explanation;
        r.inconclusive = lin.outcome == check_outcome::unknown;
        if (r.inconclusive)
            r.report = "linearizability check inconclusive for " + detail::describe(seed, params, r) + "\n" +
                       lin.explanation + detail::replay_line(seed);
    }
    detail::conclude(r, c, faults, failure, params);
    return r;
}

/// What run_machine_scenario needs to know of a state machine of yours.
template <state_machine StateMachine>
struct machine_scenario {
    /// The next command a client proposes; draw any randomness from `rng`, so runs replay.
    std::function<std::string(random_generator& rng)> command;
    /// Whether two machines hold the same state.
    std::function<bool(const StateMachine&, const StateMachine&)> same_state;
    /// Makes a node's machine, giving it the storage that survives the node's crashes;
    /// empty for the cluster's default.
    typename cluster<StateMachine>::machine_factory factory;
};

namespace detail {

/// Clients that propose opaque commands, one at a time each, and wait for the outcome
/// the node reports (applied, dropped, or the node crashed), retrying refusals.
template <state_machine StateMachine>
class command_clients {
public:
    command_clients(cluster<StateMachine>& c, std::size_t n,
                    std::function<std::string(random_generator&)> command)
        : c_(c), command_(std::move(command)), clients_(n)
    {
        c_.on_apply([this](node_id n, index_t i, term_t t, auto&) { done({n, i, t}); });
        c_.on_drop([this](node_id n, index_t i, term_t t, std::error_code) { done({n, i, t}); });
        c_.on_crash([this](node_id n) {
            std::erase_if(waiting_, [&](const auto& w) {
                if (std::get<0>(w.first) == n)
                    next(w.second);
                return std::get<0>(w.first) == n;
            });
        });
    }

    void start()
    {
        for (std::size_t k = 0; k < clients_.size(); ++k)
            attempt(k);
    }
    void stop() { stopped_ = true; }
    bool idle() const noexcept { return stopped_ && waiting_.empty() && pending_ == 0; }
    std::size_t proposals() const noexcept { return proposals_; }

private:
    using key = std::tuple<node_id, index_t, term_t>;

    void attempt(std::size_t k)
    {
        if (stopped_)
            return;
        node_id target = clients_[k];
        if (target == no_node) {
            const std::vector<node_id> ids = c_.member_ids();
            target = ids[c_.rng().uniform(0, ids.size() - 1)];
        }
        const propose_result r = c_.propose(target, command_(c_.rng()));
        if (r.ec) {
            clients_[k] = r.leader;
            return later(k, std::chrono::milliseconds(20));
        }
        clients_[k] = target;
        ++proposals_;
        waiting_.emplace(key{target, r.index, r.term}, k);
    }

    void done(const key& at)
    {
        const auto it = waiting_.find(at);
        if (it == waiting_.end())
            return;
        const std::size_t k = it->second;
        waiting_.erase(it);
        next(k);
    }

    void next(std::size_t k) { later(k, std::chrono::milliseconds(2)); }

    void later(std::size_t k, std::chrono::microseconds delay)
    {
        ++pending_;
        c_.schedule(delay, [this, k] {
            --pending_;
            attempt(k);
        });
    }

    cluster<StateMachine>& c_;
    std::function<std::string(random_generator&)> command_;
    /// The node each client proposes at next (no_node: a random one).
    std::vector<node_id> clients_;
    std::map<key, std::size_t> waiting_;
    std::size_t pending_ = 0;
    std::size_t proposals_ = 0;
    bool stopped_ = false;
};

} // namespace detail

/// Runs a random scenario of `seed` with your state machine: like run_random_scenario,
/// but its clients propose `s.command`s and the checks are the ones that need no model
/// of your machine: no invariant violated, the cluster settles after the faults, every
/// node's machine holds the same state (`s.same_state`), and still does after every
/// node crashed and restarted at once (so a machine that loses or corrupts its state on
/// restart fails). Linearizability needs a model: see kv_workload for the KV one.
template <state_machine StateMachine>
scenario_result run_machine_scenario(std::uint64_t seed, const machine_scenario<StateMachine>& s,
                                     const scenario_params& params = {})
{
    scenario_result r;
    r.seed = seed;
    cluster<StateMachine> c{detail::choose_cluster(seed, params, r), s.factory};
    detail::command_clients<StateMachine> clients{c, params.clients, s.command};
    fault_config fc = params.faults;
    fc.membership_changes = fc.membership_changes || params.membership_changes;
    fault_injector<StateMachine> faults{c, fc};
    const std::string failure = detail::run_phases(c, clients, faults, params, s.same_state,
                                                   [&] { return detail::check_same_state(c, s.same_state); });
    r.operations = clients.proposals();
    detail::conclude(r, c, faults, failure, params);
    return r;
}

/// The seeds a sweep runs: just RAFTKV_SEED when it is set; otherwise RAFTKV_SEEDS (or
/// `default_count`) consecutive seeds from RAFTKV_FIRST_SEED (or `default_first`).
/// Throws std::invalid_argument when a variable is not a number.
inline std::vector<std::uint64_t> seeds_from_env(std::uint64_t default_first, std::size_t default_count)
{
    const auto read = [](const char* name) -> std::optional<std::uint64_t> {
        const char* text = std::getenv(name);
        if (!text || !*text)
            return std::nullopt;
        char* end = nullptr;
        const unsigned long long v = std::strtoull(text, &end, 10);
        if (*end != '\0' || *text == '-')
            throw std::invalid_argument(std::string(name) + " is not a number: " + text);
        return v;
    };
    if (const auto seed = read("RAFTKV_SEED"))
        return {*seed};
    const std::uint64_t first = read("RAFTKV_FIRST_SEED").value_or(default_first);
    const std::uint64_t count = read("RAFTKV_SEEDS").value_or(default_count);
    std::vector<std::uint64_t> seeds;
    for (std::uint64_t i = 0; i < count; ++i)
        seeds.push_back(first + i);
    return seeds;
}

} // namespace raftkv::sim

#endif
