#ifndef RAFTKV_TEST_SIM_SUPPORT_HPP
#define RAFTKV_TEST_SIM_SUPPORT_HPP

// Helpers shared by the simulator scenario tests, in the spirit of MIT 6.824's
// config.go: wait for a leader, count how many nodes committed an index, and `one()`,
// which gets a command committed on a given number of nodes.

#include "instances.hpp"

#include <raftkv/kv_command.hpp>
#include <raftkv/sim/cluster.hpp>

#include <chrono>
#include <cstddef>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

namespace raftkv {
/// Lets BOOST_TEST print roles.
inline std::ostream& boost_test_print_type(std::ostream& os, role r)
{
    return os << to_string(r);
}
} // namespace raftkv

namespace raftkv::sim::testing {

using namespace std::chrono_literals;
using kv_cluster = cluster<kv_state_machine>;

/// Runs until some node leads with the highest term; returns it.
inline std::optional<node_id> wait_leader(kv_cluster& c, std::chrono::microseconds timeout = 5s)
{
    c.run_until([&] { return c.leader().has_value(); }, timeout);
    return c.leader();
}

/// A put whose value is unique to `n`.
inline std::string command(std::size_t n)
{
    // Not "v" + std::to_string(n): GCC 12 at -O3 reports a false -Wrestrict on it.
    std::string value = "v";
    value += std::to_string(n);
    return encode_put("k", value);
}

struct committed_count {
    std::size_t nodes = 0;
    /// The data committed at the index (all nodes agree, or the invariant checker threw).
    std::optional<std::string> data;
};

/// How many live nodes have committed `index`, and what (from a node whose log still
/// holds it: nothing if every one compacted it away).
inline committed_count n_committed(kv_cluster& c, index_t index)
{
    committed_count out;
    for (node_id id : c.ids()) {
        if (!c.is_up(id) || c.node(id).commit_index() < index)
            continue;
        ++out.nodes;
        const auto& store = c.store(id);
        if (index >= store.first_index() && index <= store.last_index())
            out.data = store.entries(index, index + 1, 0).front().data;
    }
    return out;
}

/// Gets `cmd` committed on at least `expected` live nodes: proposes it at whichever node
/// accepts (trying each in turn), then waits up to 2 s for the commit. With `retry`,
/// tries again for up to 10 s of virtual time if the entry is lost. Returns its index,
/// or 0 if it never committed.
inline index_t one(kv_cluster& c, const std::string& cmd, std::size_t expected, bool retry = true)
{
    const auto deadline = c.now() + 10s;
    while (c.now() < deadline) {
        std::optional<index_t> index;
        for (node_id id : c.ids()) {
            const propose_result r = c.propose(id, cmd);
            if (!r.ec) {
                index = r.index;
                break;
            }
        }
        if (!index) {
            c.run_for(50ms);
            continue;
        }
        const bool done = c.run_until(
            [&] {
                const auto n = n_committed(c, *index);
                return n.nodes >= expected && n.data == cmd;
            },
            2s);
        if (done)
            return *index;
        if (!retry)
            return 0;
    }
    return 0;
}

/// Proposes `cmd` at node `id` and waits up to `timeout` for `expected` live nodes to
/// commit it. Returns its index, or 0 if the node refused or it did not commit.
inline index_t commit_at(kv_cluster& c, node_id id, const std::string& cmd, std::size_t expected,
                         std::chrono::microseconds timeout = 2s)
{
    const propose_result r = c.propose(id, cmd);
    if (r.ec)
        return 0;
    const bool done = c.run_until(
        [&] {
            const auto n = n_committed(c, r.index);
            return n.nodes >= expected && n.data == cmd;
        },
        timeout);
    return done ? r.index : 0;
}

/// Runs until every live node has applied up to the leader's last index.
inline bool wait_converged(kv_cluster& c, std::chrono::microseconds timeout = 10s)
{
    return c.run_until(
        [&] {
            const auto l = c.leader();
            if (!l)
                return false;
            const index_t last = c.node(*l).last_index();
            for (node_id id : c.ids()) {
                if (c.is_up(id) && c.node(id).applied_index() != last)
                    return false;
            }
            return true;
        },
        timeout);
}

} // namespace raftkv::sim::testing

#endif
