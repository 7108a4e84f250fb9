#include <raftkv/sim/cluster.hpp>

#define BOOST_TEST_MODULE sim_persistence
#include <boost/test/unit_test.hpp>

#include "sim/support.hpp"

#include <raftkv/sim/kv_workload.hpp>
#include <raftkv/sim/linearizability.hpp>

#include <vector>

// Crashes, restarts and Figure 8 of the Raft paper, after MIT 6.824's lab 2C tests.

using namespace raftkv;
using namespace raftkv::sim;
using namespace raftkv::sim::testing;

namespace {
void crash_all(kv_cluster& c)
{
    for (node_id id : c.ids())
        c.crash(id);
}

void restart_all(kv_cluster& c)
{
    for (node_id id : c.ids())
        c.restart(id);
}

std::size_t up_count(kv_cluster& c)
{
    std::size_t n = 0;
    for (node_id id : c.ids())
        n += c.is_up(id) ? 1 : 0;
    return n;
}

// A command whose value comes from the cluster's generator, so runs replay.
std::string random_command(kv_cluster& c)
{
    return command(c.rng().uniform(0, 1'000'000'000));
}
} // namespace

BOOST_AUTO_TEST_CASE(committed_state_survives_crashes_and_restarts_of_every_node)
{
    kv_cluster c{{.nodes = 3, .seed = 31}};
    BOOST_TEST_REQUIRE(one(c, command(11), 3) > 0u);
    crash_all(c);
    restart_all(c);
    BOOST_TEST_REQUIRE(one(c, command(12), 3) > 0u);
    const node_id l1 = *c.leader();
    c.crash(l1);
    c.restart(l1);
    BOOST_TEST_REQUIRE(one(c, command(13), 3) > 0u);
    const node_id l2 = *c.leader();
    c.crash(l2);
    BOOST_TEST_REQUIRE(one(c, command(14), 2) > 0u);
    c.restart(l2);
    const index_t last = one(c, command(15), 3);
    BOOST_TEST_REQUIRE(last > 0u);
    BOOST_TEST_REQUIRE(wait_converged(c));
    // Every restarted state machine replayed the log to the same state.
    for (node_id id : c.ids())
        BOOST_TEST(c.machine(id).get("k").value_or("-") == "v15");
}

BOOST_AUTO_TEST_CASE(committed_entries_survive_a_crash_of_every_node_when_syncs_lag)
{
    kv_cluster c{{.nodes = 5, .seed = 32, .sync_on_append = false}};
    std::vector<std::pair<index_t, std::string>> committed;
    for (std::size_t round = 0; round < 5; ++round) {
        for (std::size_t i = 0; i < 5; ++i) {
            const std::string cmd = command(round * 10 + i);
            const index_t index = one(c, cmd, 3);
            BOOST_TEST_REQUIRE(index > 0u);
            committed.emplace_back(index, cmd);
        }
        // Crash everyone at once: unsynced entries are lost, committed ones must not be.
        crash_all(c);
        restart_all(c);
    }
    BOOST_TEST_REQUIRE(one(c, command(999), 5) > 0u);
    BOOST_TEST_REQUIRE(wait_converged(c));
    for (const auto& [index, cmd] : committed) {
        const auto n = n_committed(c, index);
        BOOST_TEST(n.nodes == 5u);
        BOOST_TEST((n.data == cmd));
    }
}

BOOST_AUTO_TEST_CASE(agreement_survives_repeated_loss_and_return_of_a_majority)
{
    kv_cluster c{{.nodes = 5, .seed = 33}};
    std::size_t n = 10;
    for (int iter = 0; iter < 5; ++iter) {
        BOOST_TEST_REQUIRE(one(c, command(n++), 5) > 0u);
        const node_id l1 = *c.leader();
        const node_id a = l1 % 5 + 1, b = a % 5 + 1;
        c.crash(a);
        c.crash(b);
        BOOST_TEST_REQUIRE(one(c, command(n++), 3) > 0u);
        const node_id x = b % 5 + 1, y = x % 5 + 1;
        c.crash(l1);
        c.crash(x);
        c.crash(y);
        c.restart(a);
        c.restart(b);
        c.run_for(1s);
        c.restart(x);
        BOOST_TEST_REQUIRE(one(c, command(n++), 3) > 0u);
        c.restart(l1);
        c.restart(y);
    }
    BOOST_TEST(one(c, command(1000), 5) > 0u);
}

namespace {
// One entry per append_request, so a new leader's noop travels apart from the older
// entries it re-replicates: the window in which counting replicas would commit them.
options one_entry_per_append()
{
    options o;
    o.max_entries_per_append = 1;
    return o;
}
} // namespace

// Raft paper, Figure 8: a leader must not count replicas to commit an entry of an earlier
// term. Leaders are crashed right after accepting proposals, again and again, so entries
// of old terms get replicated by later leaders; the invariant checker would catch an
// entry committed, then overwritten.
BOOST_AUTO_TEST_CASE(figure_8_leaders_never_commit_old_term_entries_by_counting_replicas)
{
    kv_cluster c{{.nodes = 5, .seed = 34, .node_options = one_entry_per_append()}};
    BOOST_TEST_REQUIRE(one(c, random_command(c), 1) > 0u);
    std::size_t up = 5;
    for (int iter = 0; iter < 1000; ++iter) {
        std::optional<node_id> leader;
        for (node_id id : c.ids()) {
            if (c.is_up(id) && !c.propose(id, random_command(c)).ec)
                leader = id;
        }
        const bool long_pause = c.rng().uniform(0, 999) < 100;
        c.run_for(std::chrono::microseconds(c.rng().uniform(0, long_pause ? 500'000 : 13'000)));
        if (leader) {
            c.crash(*leader);
            --up;
        }
        if (up < 3) {
            const node_id s = c.rng().uniform(1, 5);
            if (!c.is_up(s)) {
                c.restart(s);
                ++up;
            }
        }
    }
    restart_all(c);
    BOOST_TEST(one(c, random_command(c), 5) > 0u);
    BOOST_TEST_MESSAGE("figure 8: " << c.invariants().leaders().size() << " terms had a leader");
}

BOOST_AUTO_TEST_CASE(figure_8_on_an_unreliable_network_with_long_reordering)
{
    kv_cluster c{{.nodes = 5,
                  .seed = 35,
                  .link = {.min_delay = 1ms, .max_delay = 27ms, .loss = 0.1},
                  .node_options = one_entry_per_append()}};
    BOOST_TEST_REQUIRE(one(c, random_command(c), 1) > 0u);
    std::vector<bool> connected(6, true);
    std::size_t up = 5;
    for (int iter = 0; iter < 1000; ++iter) {
        if (iter == 200)
            c.net().set_default_link(
                {.min_delay = 1ms, .max_delay = 27ms, .loss = 0.1, .slow = 0.3, .max_slow_delay = 2200ms});
        std::optional<node_id> leader;
        for (node_id id : c.ids()) {
            if (!c.propose(id, random_command(c)).ec && connected[id])
                leader = id;
        }
        const bool long_pause = c.rng().uniform(0, 999) < 100;
        c.run_for(std::chrono::microseconds(c.rng().uniform(0, long_pause ? 500'000 : 13'000)));
        if (leader && c.rng().uniform(0, 999) < 500) {
            c.isolate(*leader);
            connected[*leader] = false;
            --up;
        }
        if (up < 3) {
            const node_id s = c.rng().uniform(1, 5);
            if (!connected[s]) {
                c.reconnect(s);
                connected[s] = true;
                ++up;
            }
        }
    }
    c.heal();
    BOOST_TEST(one(c, random_command(c), 5) > 0u);
}

namespace {
// Clients write and read while nodes crash, restart and get cut off at random. Every
// write a client saw acknowledged must be in the final log, and the history linearizable.
void churn(std::uint64_t seed, const link_config& link)
{
    kv_cluster c{{.nodes = 5, .seed = seed, .link = link, .sync_on_append = seed % 2 == 0}};
    kv_workload<> w{c, {.clients = 5, .keys = 4}};
    w.start();
    for (int iter = 0; iter < 40; ++iter) {
        random_generator& rng = c.rng();
        const node_id victim = rng.uniform(1, 5);
        if (rng.chance(0.2))
            c.crash(victim);
        if (rng.chance(0.5))
            c.restart(rng.uniform(1, 5));
        if (rng.chance(0.2))
            c.isolate(rng.uniform(1, 5));
        if (rng.chance(0.3))
            c.heal();
        c.run_for(std::chrono::microseconds(rng.uniform(50'000, 250'000)));
    }
    w.stop();
    c.heal();
    c.net().set_default_link({});
    restart_all(c);
    BOOST_TEST_REQUIRE(c.run_until([&] { return w.idle(); }, 5s));
    BOOST_TEST_REQUIRE(one(c, command(424242), 5) > 0u);
    BOOST_TEST_REQUIRE(wait_converged(c));
    const node_id l = *c.leader();
    const auto& log = c.store(l).all_entries();
    BOOST_TEST(w.acknowledged().size() > 20u);
    for (const acknowledged_write& a : w.acknowledged()) {
        BOOST_TEST_REQUIRE(a.index <= c.node(l).commit_index());
        BOOST_TEST(log[a.index - 1].data == a.command);
    }
    const check_result r = check_kv_history(w.history(), std::chrono::seconds(10));
    BOOST_TEST((r.outcome == check_outcome::ok), r.explanation);
    BOOST_TEST_MESSAGE("churn seed " << seed << ": " << w.history().size() << " operations, "
                                     << w.stats().indeterminate << " indeterminate, up " << up_count(c));
}
} // namespace

BOOST_AUTO_TEST_CASE(churn_keeps_every_acknowledged_write)
{
    churn(36, link_config{});
    churn(37, link_config{});
}

BOOST_AUTO_TEST_CASE(churn_on_an_unreliable_network_keeps_every_acknowledged_write)
{
    churn(38, link_config{.min_delay = 1ms, .max_delay = 27ms, .loss = 0.1, .duplicate = 0.05});
    churn(39, link_config{.min_delay = 1ms, .max_delay = 27ms, .loss = 0.1, .duplicate = 0.05});
}
