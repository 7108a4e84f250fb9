#ifndef RAFTKV_SIM_CLUSTER_HPP
#define RAFTKV_SIM_CLUSTER_HPP

// A deterministic, single-threaded simulation of a Raft cluster: virtual time, one event
// queue, a simulated network and storage, crash and restart, and Raft's safety
// invariants checked after every step.

#include <raftkv/error.hpp>
#include <raftkv/messages.hpp>
#include <raftkv/node.hpp>
#include <raftkv/options.hpp>
#include <raftkv/sim/detail/hash.hpp>
#include <raftkv/sim/invariants.hpp>
#include <raftkv/sim/kv_state_machine.hpp>
#include <raftkv/sim/log_store.hpp>
#include <raftkv/sim/network.hpp>
#include <raftkv/sim/random.hpp>
#include <raftkv/sim/transport.hpp>
#include <raftkv/types.hpp>

#include <algorithm>
#include <cassert>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

namespace raftkv::sim {

namespace detail {

/// A machine with a `disk` type that it is built from: the default factory gives each node
/// one of its own, which outlives the node's crashes.
template <class StateMachine>
concept machine_with_disk = requires
{
    typename StateMachine::disk;
}
&&std::constructible_from<StateMachine, std::shared_ptr<typename StateMachine::disk>>;

} // namespace detail

/// Everything a cluster is built from.
struct cluster_config {
    /// The number of nodes of the bootstrap configuration (all voters); their ids are
    /// 1..nodes. Default: 3.
    std::size_t nodes = 3;
    /// Nodes started beside them, with ids nodes+1..nodes+spares, fresh storage and no
    /// configuration: they wait to be added by a change (cluster::change_membership()).
    /// More can be started later with add_spare(). Default: 0.
    std::size_t spares = 0;
    /// Seeds the one generator every random choice of the run comes from. Default: 1.
    std::uint64_t seed = 1;
    /// The behaviour of every link at the start. Default: 1-5 ms delay, no loss.
    link_config link{};
    /// When false, appended entries become durable only at a sync that happens a random
    /// delay in [min_sync_delay, max_sync_delay] later, and a crash loses what was not
    /// synced. Default: true (durable at once).
    bool sync_on_append = true;
    std::chrono::microseconds min_sync_delay{200};
    std::chrono::microseconds max_sync_delay{3000};
    /// Virtual time between two ticks of a node; each node starts at its own phase.
    /// Default: 10 ms.
    std::chrono::microseconds tick_interval{10'000};
    /// Clock skew: each node incarnation ticks every tick_interval * (1 + u), u drawn once
    /// from [0, max_tick_skew], so nodes' logical clocks run at different rates (as real
    /// clocks drift), which leases (options::lease_margin_ticks) must cover. Default: 0.
    double max_tick_skew = 0;
    /// The options every node is given; `id`, `members` and `random_seed` are set by the
    /// cluster for each node and incarnation.
    options node_options{};
    /// Check Raft's safety invariants after every step (see invariants.hpp). Default: true.
    bool check_invariants = true;
};

/// A log store whose syncs the simulator can make hang, as `sim_log_store`'s: `stall()`
/// holds every sync until `resume()`, which completes them and says whether
/// `durable_index()` advanced.
// clang-format off
template <class S>
concept stallable_log_store = requires(S& s, const S& cs) {
    s.stall();
    { s.resume() } -> std::same_as<bool>;
    { cs.stalled() } -> std::same_as<bool>;
};
// clang-format on

/// Event and message counts, for tests that bound how much a protocol step costs.
struct network_stats {
    /// Events run by step().
    std::uint64_t events = 0;
    std::uint64_t sent = 0;
    /// Copies that reached a live node.
    std::uint64_t delivered = 0;
    /// install_snapshot chunks sent, and snapshots installed by followers.
    std::uint64_t snapshot_chunks = 0;
    std::uint64_t snapshots_installed = 0;
};

/** A simulated Raft cluster of `basic_node`s running `StateMachine`, in virtual time.

    Everything happens in `step()`: the earliest event of one queue ordered by (virtual
    time, sequence number) runs: a node's tick, a message delivery, a storage sync, or an
    action (a client operation, a scheduled fault). A single generator seeded by
    `cluster_config::seed` makes every random choice, so the same seed and the same calls
    give the same run bit for bit; `trace_hash()` fingerprints it. After each step the
    invariant checker inspects every live node and throws `invariant_violation` (with the
    virtual time and seed) when a safety property fails; the cluster is then unusable.

    Each node has a log store that survives crashes (minus unsynced entries) and a state
    machine that does not: `restart()` builds a new one from the factory, and the node
    replays its log into it.

    @par Example
    @code
    raftkv::sim::cluster<> c{{.nodes = 5, .seed = 7}};
    c.run_until([&] { return c.leader().has_value(); }, 5s);
    auto r = c.propose(*c.leader(), raftkv::encode_put("k", "v"));
    c.isolate(*c.leader());
    c.run_for(2s);
    @endcode

    @tparam StateMachine a type satisfying `raftkv::state_machine`; default-constructible
    unless a factory is given. A machine factory gives each node the storage that survives
    its crashes. The default one, for a machine with a nested `disk` type that it can be
    built from (`M(std::shared_ptr<M::disk>)`, as `kv_state_machine`), gives each node a
    `disk` of its own, kept across its crashes; for any other, a default-constructed
    machine at each start, which keeps nothing.
    @tparam LogStore a type satisfying `raftkv::log_store`, made by the store factory
    (default: constructed from `cluster_config::sync_on_append`, or default-constructed).
    One store serves every incarnation of a node. A crash calls `crash()` on it if it has
    one (drop what is not durable); storage syncs call `sync_to(index, term)` or `sync()`
    if it has them, after a random delay, possibly out of order; the invariant checker
    rehashes only what `take_changed_from()` reports if it has it, else the whole log
    after every step.

    @par Thread Safety
    Distinct objects: safe. Shared objects: unsafe.
*/
template <state_machine StateMachine = kv_state_machine, log_store LogStore = sim_log_store>
class cluster {
public:
    using machine_type = StateMachine;
    using store_type = LogStore;
    using result_type = typename StateMachine::result_type;
    using node_type = basic_node<sim_transport, LogStore, StateMachine>;
    /// Makes the state machine of a node that starts or restarts.
    using machine_factory = std::function<std::unique_ptr<StateMachine>(node_id)>;
    /// Makes the log store of a node, once: it outlives the node's crashes.
    using store_factory = std::function<std::unique_ptr<LogStore>(node_id)>;
    /// Hooks run inside node calls: they must not call into a node (use schedule()).
    using apply_hook = std::function<void(node_id, index_t, term_t, result_type&)>;
    using read_hook = std::function<void(node_id, std::uint64_t read_id, std::error_code)>;
    using drop_hook = std::function<void(node_id, index_t, term_t, std::error_code)>;
    using forward_hook = std::function<void(node_id, std::uint64_t id, std::error_code, index_t, term_t)>;
    using crash_hook = std::function<void(node_id)>;
    using message_hook = std::function<void(const message&)>;

    /// Builds and starts every node. Throws std::invalid_argument when config.nodes is 0, or
    /// a factory is missing for a type that cannot be built without one.
    explicit cluster(cluster_config config, machine_factory factory = {}, store_factory stores = {});

    cluster(const cluster&) = delete;
    cluster& operator=(const cluster&) = delete;

    // ---- running ----

    /// Runs the earliest event. Returns false when there is none (never while a node is up).
    bool step();

    /// Runs every event due within `d`, then sets the clock to now + d.
    void run_for(std::chrono::microseconds d);

    /// Runs until `done()` holds, checked before each step, or `timeout` passes.
    /// Returns whether `done()` held.
    bool run_until(const std::function<bool()>& done, std::chrono::microseconds timeout);

    /// Runs `action` at now + `delay`, as an event of its own.
    void schedule(std::chrono::microseconds delay, std::function<void()> action);

    /// Virtual time since the cluster was built.
    std::chrono::microseconds now() const noexcept { return std::chrono::microseconds(now_); }

    // ---- faults ----

    /// Stops node `id` as a power cut would: its state machine and volatile state are
    /// lost, its log keeps only durable entries, messages to it are dropped. Crash hooks
    /// run. Does nothing when it is down.
    void crash(node_id id);
    /// Starts node `id` again from its store, with a new state machine. Does nothing
    /// when it is up.
    void restart(node_id id);
    void partition(const std::vector<std::vector<node_id>>& groups) { net_.partition(groups); }
    void isolate(node_id id) { net_.isolate(id); }
    void reconnect(node_id id) { net_.reconnect(id); }
    void heal() { net_.heal(); }
    /// Makes node `id`'s disk hang: no sync of its log completes, so nothing it appends
    /// becomes durable, until resume_disk(id). The node runs on (ticks, messages, votes:
    /// the hard state is still saved at once, as the log_store concept requires). The
    /// stall is the disk's: it outlives the node's crashes.
    /// REQUIRES (compile time): LogStore is a stallable_log_store, as sim_log_store.
    void stall_disk(node_id id);
    /// Ends node `id`'s disk stall: the syncs asked for meanwhile complete, and the node,
    /// if up, is told through on_log_durable(). Does nothing when the disk is not stalled.
    void resume_disk(node_id id);
    bool disk_stalled(node_id id) const;
    /// Connectivity and link knobs (loss, duplication, delay, blocked links).
    sim::network& net() noexcept { return net_; }

    // ---- clients ----

    /// `node(id).propose(command)`, or errc::not_leader when the node is down.
    propose_result propose(node_id id, std::string command);
    /// `node(id).read_index(read_id)`, or errc::not_leader when the node is down.
    std::error_code read_index(node_id id, std::uint64_t read_id);
    /// `node(id).forward(forward_id, {command})`, or errc::not_leader when the node is down.
    std::error_code forward(node_id id, std::uint64_t forward_id, std::string command);

    // ---- membership ----

    /// Starts a new node with the next free id, fresh storage and no configuration: it
    /// waits to be added by a change. Returns its id. (A node whose data is gone comes
    /// back this way, under a new id, never under its old one.)
    node_id add_spare();
    /// `node(id).change_membership(changes)`, or errc::not_leader when the node is down.
    propose_result change_membership(node_id id, std::vector<config_change> changes);
    /// The same on the current leader(), or errc::not_leader when there is none.
    propose_result change_membership(std::vector<config_change> changes);
    /// The configuration in force on the current leader, or, when there is none, on the
    /// last leader seen (the bootstrap configuration before any).
    membership members() const;
    /// The members (voters, outgoing voters, learners) of members(), ascending: where clients
    /// and faults aim.
    std::vector<node_id> member_ids() const;
    /// Whether node `id` was started without a configuration (a spare).
    bool is_spare(node_id id) const { return slot_of(id).spare; }

    void on_apply(apply_hook h) { apply_hooks_.push_back(std::move(h)); }
    void on_read(read_hook h) { read_hooks_.push_back(std::move(h)); }
    /// Runs for each proposal a node reports dropped (basic_node::on_drop).
    void on_drop(drop_hook h) { drop_hooks_.push_back(std::move(h)); }
    /// Runs for each answer a node gets to a forward() (basic_node::on_forward).
    void on_forward(forward_hook h) { forward_hooks_.push_back(std::move(h)); }
    void on_crash(crash_hook h) { crash_hooks_.push_back(std::move(h)); }
    /// Runs for each message just before it is delivered.
    void on_deliver(message_hook h) { deliver_hooks_.push_back(std::move(h)); }

    // ---- observers ----

    /// The number of nodes, spares and removed ones included.
    std::size_t size() const noexcept { return slots_.size(); }
    /// Every node id, ascending (spares and removed nodes too: see member_ids()).
    std::vector<node_id> ids() const;
    bool is_up(node_id id) const { return slot_of(id).node != nullptr; }
    /// REQUIRES: is_up(id).
    node_type& node(node_id id) { return *up_slot(id).node; }
    /// REQUIRES: is_up(id).
    StateMachine& machine(node_id id) { return *up_slot(id).machine; }
    /// The node's store, which outlives its crashes.
    LogStore& store(node_id id) { return *slot_of(id).store; }
    /// How many times node `id` has crashed.
    std::uint64_t incarnation(node_id id) const { return slot_of(id).incarnation; }
    /// Among live nodes that think they lead, the one of the highest term, if unique.
    std::optional<node_id> leader() const;
    random_generator& rng() noexcept { return rng_; }
    const invariant_checker& invariants() const noexcept { return invariants_; }
    const cluster_config& config() const noexcept { return config_; }
    const network_stats& stats() const noexcept { return stats_; }
    /// Events waiting in the queue (ticks, messages in flight, syncs, actions).
    std::size_t pending_events() const noexcept { return queue_.size(); }
    /// A fingerprint of every event run so far: time, kind, nodes, message type and term.
    std::uint64_t trace_hash() const noexcept { return trace_; }

private:
    enum class event_kind : std::uint8_t { tick, deliver, sync, action, crash, restart };

    struct event {
        event_kind kind = event_kind::action;
        node_id node = no_node;
        std::uint64_t incarnation = 0;
        message msg;
        std::function<void()> action;
        /// For a sync: the last entry it covers.
        index_t sync_index = 0;
        term_t sync_term = 0;
    };

    struct slot {
        slot(node_id i, std::unique_ptr<LogStore> s, bool sp) : id(i), store(std::move(s)), spare(sp) {}
        node_id id;
        std::unique_ptr<LogStore> store;
        /// Started with no configuration, to be added by a change.
        bool spare = false;
        sim_transport transport;
        std::unique_ptr<StateMachine> machine;
        std::unique_ptr<node_type> node;
        std::uint64_t incarnation = 0;
        /// This incarnation's tick interval (see cluster_config::max_tick_skew).
        std::uint64_t tick_interval = 0;
        /// The last entry (index, term) a scheduled sync covers.
        index_t sync_index = 0;
        term_t sync_term = 0;
    };

    static event node_event(event_kind kind, const slot& s)
    {
        event e;
        e.kind = kind;
        e.node = s.id;
        e.incarnation = s.incarnation;
        return e;
    }
    slot& slot_of(node_id id);
    const slot& slot_of(node_id id) const;
    slot& up_slot(node_id id);
    void start(slot& s);
    void push(std::uint64_t delay, event e);
    void run(event& e);
    void deliver(message& m);
    void flush();
    void route(message m);
    void check();
    void check_commit_quorum(const slot& by, index_t index);
    void trace(event_kind kind, node_id from, node_id to, std::uint64_t type, term_t term);
    void handle_apply(slot& s, index_t index, term_t term, result_type& result);
    void sync(slot& s, const event& e);
    void schedule_sync(slot& s);
    static machine_factory default_machines();
    store_factory default_stores() const;

    cluster_config config_;
    machine_factory factory_;
    store_factory stores_;
    membership members_;
    /// The configuration in force on the last leader seen, for members().
    mutable membership last_members_;
    random_generator rng_;
    sim::network net_;
    invariant_checker invariants_;
    std::vector<std::unique_ptr<slot>> slots_;
    std::map<std::pair<std::uint64_t, std::uint64_t>, event> queue_;
    std::uint64_t now_ = 0;
    std::uint64_t seq_ = 0;
    std::uint64_t trace_ = 0;
    network_stats stats_;
    std::vector<apply_hook> apply_hooks_;
    std::vector<read_hook> read_hooks_;
    std::vector<drop_hook> drop_hooks_;
    std::vector<forward_hook> forward_hooks_;
    std::vector<crash_hook> crash_hooks_;
    std::vector<message_hook> deliver_hooks_;
};

} // namespace raftkv::sim

#include <raftkv/sim/impl/cluster.hpp>

#endif
