#ifndef RAFTKV_SIM_FAULT_INJECTOR_HPP
#define RAFTKV_SIM_FAULT_INJECTOR_HPP

// A random fault schedule for a simulated cluster: partitions, isolated leaders, crashes
// and restarts, lossy, duplicating and slow links, one-way blocks, stalled disks.

#include <raftkv/sim/cluster.hpp>
#include <raftkv/sim/network.hpp>
#include <raftkv/types.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
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
    /// when the stall ends. Default: true.
    bool disk_stalls = true;
    /// How long a disk stall lasts, drawn from [min_stall, max_stall].
    /// Defaults: 100 ms and 2 s.
    std::chrono::microseconds min_stall{100'000};
    std::chrono::microseconds max_stall{2'000'000};
    /// The worst link a fault may set up. Defaults: 30% loss, 20% duplicates, 40 ms delay.
    double max_loss = 0.3;
    double max_duplicate = 0.2;
    std::chrono::microseconds max_delay{40'000};
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
template <class StateMachine>
class fault_injector {
public:
    /// REQUIRES: the injector outlives every later step of `c`.
    fault_injector(cluster<StateMachine>& c, fault_config config = {}) : cluster_(c), config_(config) {}

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
        default: return config_.disk_stalls ? stall_disk() : block_one_way();
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

    static std::string list(const std::vector<node_id>& ids)
    {
        std::string s = "{";
        for (std::size_t i = 0; i < ids.size(); ++i)
            s += (i ? "," : "") + std::to_string(ids[i]);
        return s + "}";
    }

    void note(std::string what) { log_.push_back(fault_record{cluster_.now(), std::move(what)}); }

    cluster<StateMachine>& cluster_;
    fault_config config_;
    std::chrono::microseconds until_{};
    std::vector<fault_record> log_;
    /// Numbers each disk stall, so the end scheduled for one cannot end a later one.
    std::uint64_t stalls_ = 0;
    std::map<node_id, std::uint64_t> stall_of_;
};

} // namespace raftkv::sim

#endif
