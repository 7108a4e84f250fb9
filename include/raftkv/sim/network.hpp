#ifndef RAFTKV_SIM_NETWORK_HPP
#define RAFTKV_SIM_NETWORK_HPP

// The simulated network's model: which links are up, and how each link delays, loses
// and duplicates messages. It decides a message's fate; the cluster delivers it.

#include <raftkv/sim/random.hpp>
#include <raftkv/types.hpp>

#include <chrono>
#include <cstdint>
#include <map>
#include <set>
#include <utility>
#include <vector>

namespace raftkv::sim {

/// How one directed link behaves. Reordering needs no knob: it follows from each
/// message drawing its own delay.
struct link_config {
    /// Each copy of a message is delivered after a delay drawn uniformly from
    /// [min_delay, max_delay]. REQUIRES: min_delay <= max_delay.
    /// Default: 1 ms to 5 ms.
    std::chrono::microseconds min_delay{1000};
    std::chrono::microseconds max_delay{5000};
    /// The probability that a message is lost. Default: 0.
    double loss = 0.0;
    /// The probability that a message that is not lost arrives twice. Default: 0.
    double duplicate = 0.0;
    /// The probability that a copy is held up a further delay drawn from
    /// [0, max_slow_delay]: a heavy tail that reorders messages across whole election
    /// timeouts while most messages still arrive quickly. Default: 0 (never).
    double slow = 0.0;
    std::chrono::microseconds max_slow_delay{0};

    friend bool operator==(const link_config&, const link_config&) = default;
};

/** Connectivity and link behaviour between simulated nodes.

    Connectivity has three layers, all undone by `heal()`: a symmetric partition into
    groups (nodes in different groups cannot talk), isolated nodes (each alone in its
    own group) and blocked directed links (a -> b blocked leaves b -> a up). Link
    behaviour (delay, loss, duplication) is separate: `heal()` keeps it, and
    `set_default_link()` resets it.

    @par Thread Safety
    Distinct objects: safe. Shared objects: unsafe.
*/
class network {
public:
    explicit network(link_config defaults = {}) : default_link_(defaults) {}

    /// Makes `config` the behaviour of every link, dropping per-link settings.
    void set_default_link(const link_config& config)
    {
        default_link_ = config;
        links_.clear();
    }

    /// Sets the behaviour of the directed link `from` -> `to` only.
    void set_link(node_id from, node_id to, const link_config& config) { links_[{from, to}] = config; }

    /// The behaviour of the directed link `from` -> `to`.
    const link_config& link(node_id from, node_id to) const
    {
        const auto it = links_.find({from, to});
        return it == links_.end() ? default_link_ : it->second;
    }

    /// Splits the nodes into `groups`: a node can reach only the nodes of its own group.
    /// A node listed in no group is alone. Replaces any earlier partition and isolation.
    void partition(const std::vector<std::vector<node_id>>& groups)
    {
        group_.clear();
        partitioned_ = true;
        unlisted_alone_ = true;
        for (const auto& group : groups) {
            const std::uint64_t label = next_label_++;
            for (node_id id : group)
                group_[id] = label;
        }
    }

    /// Cuts `id` off from every other node, on top of any partition.
    void isolate(node_id id)
    {
        partitioned_ = true;
        group_[id] = next_label_++;
    }

    /// Undoes isolate(id): `id` rejoins the nodes that no partition() or isolate() named.
    void reconnect(node_id id) { group_.erase(id); }

    /// Blocks the directed link `from` -> `to` only.
    void block(node_id from, node_id to) { blocked_.insert({from, to}); }
    void unblock(node_id from, node_id to) { blocked_.erase({from, to}); }

    /// Undoes every partition, isolation and block. Link behaviour is kept.
    void heal()
    {
        partitioned_ = false;
        unlisted_alone_ = false;
        group_.clear();
        blocked_.clear();
    }

    /// Whether a message sent now from `from` to `to` can arrive.
    bool connected(node_id from, node_id to) const
    {
        if (from == to)
            return true;
        if (blocked_.contains({from, to}))
            return false;
        return !partitioned_ || group_of(from) == group_of(to);
    }

    /// Decides the fate of one message sent now: the delay of each copy to deliver, so
    /// none when it is lost or the link is down, two when it is duplicated. The number
    /// of draws from `rng` depends only on the link's state, so runs replay.
    std::vector<std::chrono::microseconds> route(node_id from, node_id to, random_generator& rng) const
    {
        std::vector<std::chrono::microseconds> delays;
        if (!connected(from, to))
            return delays;
        const link_config& l = link(from, to);
        if (rng.chance(l.loss))
            return delays;
        delays.push_back(draw_delay(l, rng));
        if (rng.chance(l.duplicate))
            delays.push_back(draw_delay(l, rng));
        return delays;
    }

private:
    // Nodes without a label share group 0, unless partition() left them alone.
    std::uint64_t group_of(node_id id) const
    {
        const auto it = group_.find(id);
        if (it != group_.end())
            return it->second;
        return unlisted_alone_ ? (std::uint64_t{1} << 63) | id : 0;
    }

    static std::chrono::microseconds draw_delay(const link_config& l, random_generator& rng)
    {
        const auto lo = static_cast<std::uint64_t>(l.min_delay.count());
        const auto hi = static_cast<std::uint64_t>(l.max_delay.count());
        std::uint64_t d = rng.uniform(lo, hi < lo ? lo : hi);
        if (rng.chance(l.slow))
            d += rng.uniform(0, static_cast<std::uint64_t>(l.max_slow_delay.count()));
        return std::chrono::microseconds(static_cast<std::int64_t>(d));
    }

    link_config default_link_;
    std::map<std::pair<node_id, node_id>, link_config> links_;
    bool partitioned_ = false;
    bool unlisted_alone_ = false;
    std::map<node_id, std::uint64_t> group_;
    std::uint64_t next_label_ = 1;
    std::set<std::pair<node_id, node_id>> blocked_;
};

} // namespace raftkv::sim

#endif
