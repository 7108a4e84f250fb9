#ifndef RAFTKV_SIM_FAULT_INJECTOR_HPP
#define RAFTKV_SIM_FAULT_INJECTOR_HPP

// A random fault schedule for a simulated cluster: partitions, isolated leaders, crashes
// and restarts, lossy, duplicating and slow links, one-way blocks, stalled disks, and
// (optionally) membership changes.

#include <raftkv/error.hpp>
#include <raftkv/sim/cluster.hpp>
#include <raftkv/sim/detail/format.hpp>
#include <raftkv/sim/network.hpp>
#include <raftkv/types.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace raftkv::sim {

struct fault_config {
    /// The gap between two faults is drawn from [min_gap, max_gap].
    /// Defaults: 20 ms and 400 ms.
    std::chrono::microseconds min_gap{20'000};
    std::chrono::microseconds max_gap{400'000};
    /// Crash and restart nodes. Default: true.
    bool crashes = true;
    /// Make links lose, duplicate and delay messages. Default: true.
    bool unreliable_links = true;
    /// Make a node's disk hang (mostly the leader's) for a while: its syncs complete only
    /// when the stall ends. Only with a store that can (a stallable_log_store, as the
    /// simulator's own); with another, a one-way block takes a stall's turn. Default: true.
    bool disk_stalls = true;
    /// How long a disk stall lasts, drawn from [min_stall, max_stall].
    /// Defaults: 100 ms and 2 s.
    std::chrono::microseconds min_stall{100'000};
    std::chrono::microseconds max_stall{2'000'000};
    /// The worst link a fault may set up. Defaults: 30% loss, 20% duplicates, 40 ms delay.
    double max_loss = 0.3;
    double max_duplicate = 0.2;
    std::chrono::microseconds max_delay{40'000};
    /// Change the membership as faults happen: add a learner (a new node), promote it,
    /// add or remove a voter (the leader too), replace a voter in one joint step, remove a
    /// learner. A removed node keeps running and is never added back under its id; new
    /// members are always new nodes (cluster::add_spare()). Default: false.
    bool membership_changes = false;
    /// Among them, replace a voter in one step (a joint configuration). Default: true.
    bool joint_changes = true;
    /// The share of faults that are membership changes, when on. Default: 0.3.
    double membership_share = 0.3;
    /// Changes keep the voters within [min_voters, max_voters] (the last voter is never
    /// removed). Defaults: 2 and 5. (With one voter, a leader appends, commits and compacts
    /// an entry within one step, before the invariant checker has seen it: the checker
    /// then reports a log that starts past the known commit. Allow 1 only with
    /// snapshot_catchup_entries > 0.)
    std::size_t min_voters = 2;
    std::size_t max_voters = 5;
    /// No node is added once the cluster has this many (spares and removed ones
    /// included). Default: 12.
    std::size_t max_nodes = 12;
    /// A change refused for now (change_in_progress, learner_behind, quorum_at_risk, no
    /// leader) is tried again this many times, 50-150 ms apart. Default: 8.
    std::size_t change_retries = 8;
};

/// One fault injected, for reports.
struct fault_record {
    std::chrono::microseconds at{};
    std::string what;
};

/** Injects random faults into a cluster until a deadline, then can undo them all.

    Every choice comes from the cluster's generator, so a seed replays the same faults.

    @par Thread Safety
    Distinct objects: safe. Shared objects: unsafe.
*/
template <class StateMachine, class LogStore = sim_log_store>
class fault_injector {
public:
    /// REQUIRES: the injector outlives every later step of `c`.
    fault_injector(cluster<StateMachine, LogStore>& c, fault_config config = {})
        : cluster_(c), config_(config)
    {
    }

    fault_injector(const fault_injector&) = delete;
    fault_injector& operator=(const fault_injector&) = delete;

    /// Injects faults from now until `now() + duration`.
    void start(std::chrono::microseconds duration)
    {
        until_ = cluster_.now() + duration;
        schedule_next();
    }

    /// Stops injecting, heals the network, makes links reliable, ends disk stalls and
    /// restarts every crashed node.
    void heal_all()
    {
        until_ = cluster_.now();
        cluster_.heal();
        cluster_.net().set_default_link(cluster_.config().link);
        for (node_id id : cluster_.ids()) {
            if constexpr (stallable_log_store<LogStore>)
                cluster_.resume_disk(id);
            cluster_.restart(id);
        }
        note("heal all");
    }

    /// Every fault injected so far, in order.
    const std::vector<fault_record>& log() const noexcept { return log_; }

private:
    void schedule_next()
    {
        const auto lo = static_cast<std::uint64_t>(config_.min_gap.count());
        const auto hi = static_cast<std::uint64_t>(config_.max_gap.count());
        const auto gap = std::chrono::microseconds(
            static_cast<std::int64_t>(cluster_.rng().uniform(lo, std::max(lo, hi))));
        if (cluster_.now() + gap >= until_)
            return;
        cluster_.schedule(gap, [this] {
            if (cluster_.now() >= until_)
                return;
            inject();
            schedule_next();
        });
    }

    void inject()
    {
        if (config_.membership_changes && cluster_.rng().chance(config_.membership_share))
            return change_membership();
        switch (cluster_.rng().uniform(0, 11)) {
        case 0: return partition();
        case 1: return isolate_leader();
        case 2:
        case 3: return heal();
        case 4: return config_.crashes ? crash(false) : heal();
        case 5: return config_.crashes ? crash(true) : isolate_leader();
        case 6: return config_.crashes ? crash_many() : partition();
        case 7:
        case 8: return config_.crashes ? restart() : heal();
        case 9: return config_.unreliable_links ? degrade_links() : partition();
        case 10: return block_one_way();
        default:
            // A store that cannot stall (not a stallable_log_store) gets a one-way block instead.
            if constexpr (stallable_log_store<LogStore>) {
                if (config_.disk_stalls)
                    return stall_disk();
            }
            return block_one_way();
        }
    }

    std::vector<node_id> shuffled_ids()
    {
        std::vector<node_id> ids = cluster_.ids();
        for (std::size_t i = ids.size(); i > 1; --i)
            std::swap(ids[i - 1], ids[cluster_.rng().uniform(0, i - 1)]);
        return ids;
    }

    void partition()
    {
        std::vector<node_id> ids = shuffled_ids();
        if (ids.size() < 2)
            return;
        const auto cut = static_cast<std::ptrdiff_t>(cluster_.rng().uniform(1, ids.size() - 1));
        std::vector<node_id> a(ids.begin(), ids.begin() + cut), b(ids.begin() + cut, ids.end());
        cluster_.partition({a, b});
        note("partition " + list(a) + " | " + list(b));
    }

    void isolate_leader()
    {
        if (const auto l = cluster_.leader()) {
            cluster_.isolate(*l);
            note("isolate leader " + std::to_string(*l));
        }
    }

    void heal()
    {
        cluster_.heal();
        note("heal network");
    }

    void crash(bool leader)
    {
        std::vector<node_id> up;
        for (node_id id : cluster_.ids()) {
            if (cluster_.is_up(id))
                up.push_back(id);
        }
        if (up.empty())
            return;
        const auto l = cluster_.leader();
        const node_id victim = leader && l ? *l : up[cluster_.rng().uniform(0, up.size() - 1)];
        cluster_.crash(victim);
        note("crash " + std::to_string(victim) + (leader && l ? " (leader)" : ""));
    }

    // A power cut that takes down several nodes at once, some back soon after.
    void crash_many()
    {
        std::vector<node_id> ids = shuffled_ids();
        ids.resize(cluster_.rng().uniform(1, ids.size()));
        for (node_id id : ids) {
            if (!cluster_.is_up(id))
                continue;
            cluster_.crash(id);
            note("crash " + std::to_string(id) + " (power cut)");
            if (cluster_.rng().chance(0.5))
                schedule_restart(id);
        }
    }

    void schedule_restart(node_id id)
    {
        const auto delay =
            std::chrono::microseconds(static_cast<std::int64_t>(cluster_.rng().uniform(0, 300'000)));
        cluster_.schedule(delay, [this, id] {
            if (cluster_.now() >= until_ || cluster_.is_up(id))
                return;
            cluster_.restart(id);
            note("restart " + std::to_string(id));
        });
    }

    void restart()
    {
        std::vector<node_id> down;
        for (node_id id : cluster_.ids()) {
            if (!cluster_.is_up(id))
                down.push_back(id);
        }
        if (down.empty())
            return;
        const node_id id = down[cluster_.rng().uniform(0, down.size() - 1)];
        cluster_.restart(id);
        note("restart " + std::to_string(id));
    }

    void degrade_links()
    {
        random_generator& rng = cluster_.rng();
        link_config l = cluster_.config().link;
        l.loss = rng.unit() * config_.max_loss;
        l.duplicate = rng.unit() * config_.max_duplicate;
        const auto max_delay = static_cast<std::uint64_t>(config_.max_delay.count());
        const auto lo = static_cast<std::uint64_t>(l.min_delay.count());
        l.max_delay =
            std::chrono::microseconds(static_cast<std::int64_t>(rng.uniform(lo, std::max(lo, max_delay))));
        cluster_.net().set_default_link(l);
        note("links: loss " + std::to_string(l.loss) + ", duplicate " + std::to_string(l.duplicate) +
             ", max delay " + std::to_string(l.max_delay.count()) + " us");
    }

    // The leader's disk two times out of three: the case where a node must give way.
    void stall_disk()
    {
        const auto l = cluster_.leader();
        const node_id id =
            l && cluster_.rng().chance(2.0 / 3) ? *l : cluster_.rng().uniform(1, cluster_.size());
        if (cluster_.disk_stalled(id))
            return;
        cluster_.stall_disk(id);
        const std::uint64_t stall = ++stalls_;
        stall_of_[id] = stall;
        const auto lo = static_cast<std::uint64_t>(config_.min_stall.count());
        const auto hi = static_cast<std::uint64_t>(config_.max_stall.count());
        const auto lasts = std::chrono::microseconds(
            static_cast<std::int64_t>(cluster_.rng().uniform(lo, std::max(lo, hi))));
        note("stall disk " + std::to_string(id) + (l && *l == id ? " (leader)" : "") + " for " +
             std::to_string(lasts.count() / 1000) + " ms");
        cluster_.schedule(lasts, [this, id, stall] {
            if (stall_of_[id] != stall || !cluster_.disk_stalled(id))
                return; // healed meanwhile, perhaps stalled again since
            cluster_.resume_disk(id);
            note("resume disk " + std::to_string(id));
        });
    }

    void block_one_way()
    {
        std::vector<node_id> ids = shuffled_ids();
        if (ids.size() < 2)
            return;
        cluster_.net().block(ids[0], ids[1]);
        note("block " + std::to_string(ids[0]) + " -> " + std::to_string(ids[1]));
    }

    // ---- membership changes ----

    /// A node that waits to be added and never was: started by us, or whose addition was
    /// refused or lost. Its store may hold entries of a discarded change; it is whole, so
    /// it may be added under its id.
    node_id fresh_node()
    {
        const membership m = cluster_.members();
        for (node_id id : spares_) {
            if (!m.contains(id) && !used_.contains(id))
                return id;
        }
        if (cluster_.size() >= config_.max_nodes)
            return no_node;
        const node_id id = cluster_.add_spare();
        spares_.push_back(id);
        note("start node " + std::to_string(id) + " (spare)");
        return id;
    }

    void change_membership()
    {
        const membership m = cluster_.members();
        random_generator& rng = cluster_.rng();
        const std::size_t voters = m.voters.size();
        std::vector<config_change> changes;
        std::string what;
        switch (rng.uniform(0, 5)) {
        case 0:
        case 1: { // a learner, promoted later (or an existing one promoted now)
            if (!m.learners.empty() && voters < config_.max_voters) {
                const node_id id = m.learners[rng.uniform(0, m.learners.size() - 1)];
                changes.push_back({config_change::kind::add_voter, id, {}});
                what = "promote learner " + std::to_string(id);
            } else if (m.learners.size() < 2) {
                const node_id id = fresh_node();
                if (id == no_node)
                    return;
                changes.push_back({config_change::kind::add_learner, id, {}});
                what = "add learner " + std::to_string(id);
            }
            break;
        }
        case 2: { // a new voter at once
            if (voters >= config_.max_voters)
                break;
            const node_id id = fresh_node();
            if (id == no_node)
                return;
            changes.push_back({config_change::kind::add_voter, id, {}});
            what = "add voter " + std::to_string(id);
            break;
        }
        case 3: { // a voter removed, the leader one time in three
            if (voters <= config_.min_voters)
                break;
            const auto l = cluster_.leader();
            const node_id id = l && m.is_voter(*l) && rng.chance(1.0 / 3)
                                   ? *l
                                   : m.voters[rng.uniform(0, m.voters.size() - 1)];
            changes.push_back({config_change::kind::remove, id, {}});
            what = "remove voter " + std::to_string(id) + (l && *l == id ? " (leader)" : "");
            break;
        }
        case 4: { // a voter replaced by a new node: a joint configuration
            if (m.voters.empty() || !config_.joint_changes)
                break;
            const node_id old = m.voters[rng.uniform(0, m.voters.size() - 1)];
            const node_id id = fresh_node();
            if (id == no_node)
                return;
            changes.push_back({config_change::kind::remove, old, {}});
            changes.push_back({config_change::kind::add_voter, id, {}});
            what = "replace voter " + std::to_string(old) + " with " + std::to_string(id);
            break;
        }
        default: { // a learner removed
            if (m.learners.empty())
                break;
            const node_id id = m.learners[rng.uniform(0, m.learners.size() - 1)];
            changes.push_back({config_change::kind::remove, id, {}});
            what = "remove learner " + std::to_string(id);
            break;
        }
        }
        if (changes.empty())
            return;
        propose_change(std::move(changes), std::move(what), config_.change_retries);
    }

    // The voters `changes` would leave, applied to `m`.
    static std::size_t voters_after(const membership& m, const std::vector<config_change>& changes)
    {
        std::vector<node_id> v = m.voters;
        for (const config_change& c : changes) {
            if (c.type == config_change::kind::remove)
                std::erase(v, c.id);
            else if (c.type == config_change::kind::add_voter &&
                     std::find(v.begin(), v.end(), c.id) == v.end())
                v.push_back(c.id);
        }
        return v.size();
    }

    void propose_change(std::vector<config_change> changes, std::string what, std::size_t retries)
    {
        const membership m = cluster_.members();
        const std::size_t after = voters_after(m, changes);
        if (after < std::max<std::size_t>(config_.min_voters, 1) || after > config_.max_voters)
            return note("membership: " + what + " no longer fits");
        const propose_result r = cluster_.change_membership(changes);
        if (!r.ec) {
            for (const config_change& c : changes)
                used_.insert(c.id);
            return note("membership: " + what + " at index " + std::to_string(r.index) + " term " +
                        std::to_string(r.term));
        }
        const bool later = r.ec == errc::change_in_progress || r.ec == errc::learner_behind ||
                           r.ec == errc::quorum_at_risk || r.ec == errc::not_leader ||
                           r.ec == errc::transfer_in_progress;
        note("membership: " + what + " refused (" + r.ec.message() + ")" +
             (later && retries > 0 ? ", will retry" : ""));
        if (!later || retries == 0)
            return;
        const auto delay =
            std::chrono::microseconds(static_cast<std::int64_t>(cluster_.rng().uniform(50'000, 150'000)));
        cluster_.schedule(delay,
                          [this, changes = std::move(changes), what = std::move(what), retries]() mutable {
                              if (cluster_.now() >= until_)
                                  return;
                              propose_change(std::move(changes), std::move(what), retries - 1);
                          });
    }

    static std::string list(const std::vector<node_id>& ids) { return detail::id_list(ids); }

    void note(std::string what) { log_.push_back(fault_record{cluster_.now(), std::move(what)}); }

    cluster<StateMachine, LogStore>& cluster_;
    fault_config config_;
    std::chrono::microseconds until_{};
    std::vector<fault_record> log_;
    /// Numbers each disk stall, so the end scheduled for one cannot end a later one.
    std::uint64_t stalls_ = 0;
    std::map<node_id, std::uint64_t> stall_of_;
    /// Nodes this injector started, and those a change it proposed named.
    std::vector<node_id> spares_;
    std::set<node_id> used_;
};

} // namespace raftkv::sim

#endif
