#include <raftkv/sim/cluster.hpp>

#define BOOST_TEST_MODULE sim_snapshot
#include <boost/test/unit_test.hpp>

#include "sim/support.hpp"

#include <raftkv/sim/fault_injector.hpp>
#include <raftkv/sim/kv_workload.hpp>
#include <raftkv/sim/linearizability.hpp>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <variant>

// Snapshots and log compaction in simulated clusters: followers that fall behind the
// leader's log, transfers cut short by crashes and leader changes, compaction racing a
// slow follower, restarts from a snapshot, and handlers that call back into the node.

using namespace raftkv;
using namespace raftkv::sim;
using namespace raftkv::sim::testing;

namespace {

cluster_config snapshotting(std::uint64_t seed, std::size_t nodes = 3)
{
    cluster_config cfg{.nodes = nodes, .seed = seed};
    cfg.node_options.snapshot_entries = 10;
    cfg.node_options.snapshot_catchup_entries = 2;
    cfg.node_options.snapshot_chunk_bytes = 16;
    cfg.node_options.max_snapshot_inflight_bytes = 64;
    return cfg;
}

// Writes `n` distinct keys, each committed on at least `expected` nodes.
void write_keys(kv_cluster& c, int from, int n, std::size_t expected)
{
    for (int k = from; k < from + n; ++k) {
        // Not "key" + std::to_string(k): GCC 12 at -O3 reports a false -Wrestrict on it.
        const std::string number = std::to_string(k);
        std::string key = "key";
        key += number;
        std::string value = "v";
        value += number;
        BOOST_TEST_REQUIRE(one(c, encode_put(key, value), expected) > 0u);
    }
}

void check_all_machines_agree(kv_cluster& c)
{
    const node_id l = *c.leader();
    for (node_id id : c.ids()) {
        BOOST_TEST_CONTEXT("node " << id)
        {
            BOOST_TEST((c.machine(id).data() == c.machine(l).data()));
            BOOST_TEST(c.node(id).applied_index() == c.node(l).applied_index());
        }
    }
}

// Calls `action` (once) when node `to` first receives a snapshot chunk past offset 0.
template <class F>
void on_mid_transfer(kv_cluster& c, node_id to, F action)
{
    auto fired = std::make_shared<bool>(false);
    c.on_deliver([&c, to, fired, action](const message& m) {
        const auto* r = std::get_if<install_snapshot_request>(&m.body);
        if (*fired || !r || m.to != to || r->offset == 0)
            return;
        *fired = true;
        c.schedule(std::chrono::microseconds(0), [action, from = m.from] { action(from); });
    });
}

// Cuts a follower off while 60 keys are written past it, reconnects it, and calls
// `action(follower)` once its snapshot transfer is under way; returns the follower.
template <class F>
node_id lag_then_act_mid_transfer(kv_cluster& c, F action)
{
    BOOST_TEST_REQUIRE(wait_leader(c).has_value());
    const node_id lagging = *c.leader() % 3 + 1;
    c.isolate(lagging);
    write_keys(c, 0, 60, 2);
    on_mid_transfer(c, lagging, [action, lagging](node_id) { action(lagging); });
    c.reconnect(lagging);
    return lagging;
}

// Appends of 8 entries, 4 in flight: 32 entries per round trip.
cluster_config narrow_windows(std::uint64_t seed)
{
    cluster_config cfg = snapshotting(seed);
    cfg.node_options.max_entries_per_append = 8;
    cfg.node_options.max_inflight_appends = 4;
    return cfg;
}

// Cuts a follower off while 60 keys are written past it, then reconnects it over links of
// 10 ms each way to the leader: it needs a snapshot. Returns the follower.
node_id lag_behind_a_slow_link(kv_cluster& c)
{
    const node_id leader = *c.leader();
    const node_id slow = leader % 3 + 1;
    c.isolate(slow);
    write_keys(c, 0, 60, 2);
    c.net().set_link(leader, slow, {.min_delay = 10ms, .max_delay = 10ms});
    c.net().set_link(slow, leader, {.min_delay = 10ms, .max_delay = 10ms});
    c.reconnect(slow);
    return slow;
}

// Writes key `k` at `leader`, which must still lead, and lets 2 ms pass.
void write_then_wait_2ms(kv_cluster& c, node_id leader, int k)
{
    BOOST_TEST_REQUIRE((c.leader() == std::optional<node_id>(leader)));
    BOOST_TEST_REQUIRE(!c.propose(leader, encode_put("key" + std::to_string(k), "v")).ec);
    c.run_for(2ms);
}

} // namespace

BOOST_AUTO_TEST_CASE(a_lagging_follower_catches_up_by_snapshot_under_loss_and_reordering)
{
    kv_cluster c{snapshotting(101)};
    BOOST_TEST_REQUIRE(wait_leader(c).has_value());
    const node_id lagging = *c.leader() % 3 + 1;
    c.isolate(lagging);
    write_keys(c, 0, 60, 2);
    BOOST_TEST_REQUIRE(c.node(*c.leader()).first_index() > c.node(lagging).last_index() + 1);
    c.net().set_default_link({.min_delay = 1ms, .max_delay = 15ms, .loss = 0.2, .duplicate = 0.1});
    c.reconnect(lagging);
    BOOST_TEST(wait_converged(c, 30s));
    BOOST_TEST(c.stats().snapshots_installed >= 1u);
    c.net().set_default_link({});
    BOOST_TEST(wait_converged(c, 10s));
    check_all_machines_agree(c);
}

BOOST_AUTO_TEST_CASE(a_follower_that_crashes_in_the_middle_of_an_install_starts_over)
{
    kv_cluster c{snapshotting(102)};
    const node_id lagging = lag_then_act_mid_transfer(c, [&c](node_id lagging) {
        c.crash(lagging);
        c.schedule(50ms, [&c, lagging] { c.restart(lagging); });
    });
    BOOST_TEST_REQUIRE(c.run_until([&] { return c.incarnation(lagging) == 1 && c.is_up(lagging); }, 10s));
    BOOST_TEST(wait_converged(c, 30s));
    BOOST_TEST(c.incarnation(lagging) == 1u);
    BOOST_TEST(c.stats().snapshots_installed >= 1u);
    check_all_machines_agree(c);
}

// A follower that crashes mid-install and stays down must not hold the leader's log: the
// transfer is given up once it has answered nothing for 20 election timeouts (2 s here),
// the log is compacted as usual, and the follower gets a fresh transfer when it comes back.
BOOST_AUTO_TEST_CASE(a_follower_that_stays_down_in_the_middle_of_an_install_does_not_pin_the_log)
{
    kv_cluster c{snapshotting(106)};
    const node_id lagging = lag_then_act_mid_transfer(c, [&c](node_id lagging) { c.crash(lagging); });
    const node_id leader = *c.leader();
    BOOST_TEST_REQUIRE(c.run_until([&] { return !c.is_up(lagging); }, 10s));
    const index_t pinned = c.node(leader).first_index();
    write_keys(c, 60, 50, 2);
    BOOST_TEST(c.node(leader).last_index() + 1 - c.node(leader).first_index() >= 50u,
               "a silence shorter than 2 s let the transfer go: the log holds "
                   << c.node(leader).first_index() << " to " << c.node(leader).last_index());
    c.run_for(2s);
    write_keys(c, 110, 50, 2);
    BOOST_TEST(c.node(leader).first_index() > pinned + 50,
               "the log still starts at " << c.node(leader).first_index() << ", pinned at " << pinned);
    BOOST_TEST(c.node(leader).last_index() - c.node(leader).first_index() < 40u);
    BOOST_TEST(c.node(leader).metrics().snapshot_transfers_given_up_silent == 1u);
    c.restart(lagging);
    BOOST_TEST(wait_converged(c, 30s));
    BOOST_TEST(c.stats().snapshots_installed >= 1u);
    check_all_machines_agree(c);
}

// A follower that answers nothing for a while during its install (a disk busy with the
// snapshot's writes blocks it for seconds) keeps its transfer: starting over would cost it
// everything it had received. Here its answers are lost for 10 election timeouts.
BOOST_AUTO_TEST_CASE(a_follower_silent_for_a_while_in_the_middle_of_an_install_keeps_its_transfer)
{
    kv_cluster c{snapshotting(110)};
    auto transfers = std::make_shared<std::set<std::uint64_t>>();
    node_id follower = no_node;
    c.on_deliver([&follower, transfers](const message& m) {
        if (const auto* r = std::get_if<install_snapshot_request>(&m.body); r && m.to == follower)
            transfers->insert(r->transfer);
    });
    follower = lag_then_act_mid_transfer(c, [&c](node_id lagging) {
        const node_id leader = *c.leader();
        c.net().set_link(lagging, leader, {.loss = 1.0});
        c.schedule(1s, [&c, lagging, leader] { c.net().set_link(lagging, leader, {}); });
    });
    BOOST_TEST(wait_converged(c, 30s));
    BOOST_TEST(c.stats().snapshots_installed == 1u);
    BOOST_TEST(transfers->size() == 1u, transfers->size() << " transfers were started");
    BOOST_TEST(c.node(*c.leader()).metrics().snapshot_transfers_given_up_silent == 0u);
    check_all_machines_agree(c);
}

BOOST_AUTO_TEST_CASE(a_leader_change_in_the_middle_of_a_chunked_install)
{
    kv_cluster c{snapshotting(103, 5)};
    BOOST_TEST_REQUIRE(wait_leader(c).has_value());
    const node_id lagging = *c.leader() % 5 + 1;
    c.isolate(lagging);
    write_keys(c, 0, 60, 4);
    on_mid_transfer(c, lagging, [&c](node_id leader) {
        c.crash(leader);
        c.schedule(300ms, [&c, leader] { c.restart(leader); });
    });
    const node_id first_leader = *c.leader();
    c.reconnect(lagging);
    BOOST_TEST_REQUIRE(
        c.run_until([&] { return c.incarnation(first_leader) == 1 && c.is_up(first_leader); }, 10s));
    BOOST_TEST(wait_converged(c, 30s));
    write_keys(c, 60, 5, 5);
    BOOST_TEST(wait_converged(c, 10s));
    check_all_machines_agree(c);
}

BOOST_AUTO_TEST_CASE(compaction_racing_a_slow_follower_never_starves_it)
{
    kv_cluster c{snapshotting(104)};
    BOOST_TEST_REQUIRE(wait_leader(c).has_value());
    const node_id leader = *c.leader();
    const node_id slow = leader % 3 + 1;
    c.isolate(slow);
    write_keys(c, 0, 40, 2);
    // Its link is slow, and writes go on while it receives snapshots: the leader takes
    // newer snapshots meanwhile but never drops the entries after the one being sent.
    c.net().set_link(leader, slow, {.min_delay = 20ms, .max_delay = 40ms});
    c.net().set_link(slow, leader, {.min_delay = 20ms, .max_delay = 40ms});
    c.reconnect(slow);
    for (int k = 40; k < 140; ++k) {
        const propose_result r = c.propose(*c.leader(), encode_put("key" + std::to_string(k), "v"));
        BOOST_TEST_REQUIRE(!r.ec);
        c.run_for(3ms);
    }
    BOOST_TEST(wait_converged(c, 30s));
    BOOST_TEST(c.stats().snapshots_installed >= 1u);
    check_all_machines_agree(c);
}

// Writes go on faster than one append window per round trip drains while a follower
// installs a snapshot: the entries written meanwhile are more than one window. The leader
// keeps them after the transfer while the follower catches up from them; dropping them
// at its next compaction would send the follower snapshot after snapshot, each one
// outlasted by the writes, until the writes stop.
BOOST_AUTO_TEST_CASE(a_follower_catches_up_after_its_snapshot_while_writes_go_on)
{
    kv_cluster c{narrow_windows(107)};
    BOOST_TEST_REQUIRE(wait_leader(c).has_value());
    const node_id leader = *c.leader();
    const node_id slow = lag_behind_a_slow_link(c);
    // One write every 2 ms: 10 entries per round trip, against 32 a window carries.
    bool caught_up = false;
    for (int k = 60; k < 1560 && !caught_up; ++k) {
        write_then_wait_2ms(c, leader, k);
        caught_up = c.node(slow).applied_index() + 64 >= c.node(leader).commit_index() &&
                    c.stats().snapshots_installed >= 1;
    }
    BOOST_TEST(caught_up, "the follower was " << c.node(leader).commit_index() - c.node(slow).applied_index()
                                              << " entries behind when the writes stopped");
    BOOST_TEST(c.node(leader).metrics().snapshots_sent == 1u);
    BOOST_TEST(c.stats().snapshots_installed == 1u);
    // What it held for the follower, the leader drops once it has caught up.
    write_keys(c, 1560, 30, 3);
    BOOST_TEST(c.node(leader).last_index() - c.node(leader).first_index() < 40u);
    BOOST_TEST(wait_converged(c, 10s));
    check_all_machines_agree(c);
}

// The catch-up in a variant: writes go on as above, and the follower's answers are lost
// for five election timeouts right after its install (as when its disk stalls). The leader
// probes it again, and still keeps the log it needs.
BOOST_AUTO_TEST_CASE(a_follower_silent_for_a_while_after_its_snapshot_still_catches_up_from_the_log)
{
    kv_cluster c{narrow_windows(111)};
    BOOST_TEST_REQUIRE(wait_leader(c).has_value());
    const node_id leader = *c.leader();
    const node_id slow = lag_behind_a_slow_link(c);
    bool silenced = false;
    bool caught_up = false;
    for (int k = 60; k < 1560 && !caught_up; ++k) {
        write_then_wait_2ms(c, leader, k);
        if (!silenced && c.stats().snapshots_installed == 1) {
            silenced = true;
            c.net().set_link(slow, leader, {.loss = 1.0});
            c.schedule(500ms, [&c, slow, leader] {
                c.net().set_link(slow, leader, {.min_delay = 10ms, .max_delay = 10ms});
            });
        }
        caught_up = silenced && c.node(slow).applied_index() + 64 >= c.node(leader).commit_index();
    }
    BOOST_TEST_REQUIRE(silenced);
    BOOST_TEST(caught_up, "the follower was " << c.node(leader).commit_index() - c.node(slow).applied_index()
                                              << " entries behind when the writes stopped");
    BOOST_TEST(c.node(leader).metrics().snapshots_sent == 1u);
    c.net().set_link(slow, leader, {});
    c.net().set_link(leader, slow, {});
    BOOST_TEST(wait_converged(c, 10s));
    check_all_machines_agree(c);
}

// The catch-up once more, but the follower's link slows down once its snapshot is in: it
// cannot keep up with the writes, and the leader stops holding its log for it once it has
// fallen twice as far behind as the transfer left it (plus one window), not for ever.
BOOST_AUTO_TEST_CASE(a_follower_slower_than_the_writes_after_its_snapshot_does_not_hold_the_log)
{
    kv_cluster c{narrow_windows(108)};
    BOOST_TEST_REQUIRE(wait_leader(c).has_value());
    const node_id leader = *c.leader();
    const node_id slow = lag_behind_a_slow_link(c);
    const auto progress = [&] {
        for (const peer_metrics& p : c.node(leader).metrics().peers)
            if (p.id == slow)
                return p;
        BOOST_FAIL("no progress for the follower");
        return peer_metrics{};
    };
    index_t behind_at_install = 0; // how far behind the leader's log the transfer left it
    index_t most_held = 0;         // the longest log the leader kept for it after that
    bool released = false;         // the leader went on to send it another snapshot
    for (int k = 60; k < 2060 && !released; ++k) {
        write_then_wait_2ms(c, leader, k);
        const index_t last = c.node(leader).last_index();
        if (behind_at_install == 0 && c.node(leader).metrics().snapshots_sent == 1) {
            behind_at_install = last - progress().match;
            // 32 entries per 200 ms round trip from now on, against 100 written.
            c.net().set_link(leader, slow, {.min_delay = 100ms, .max_delay = 100ms});
            c.net().set_link(slow, leader, {.min_delay = 100ms, .max_delay = 100ms});
        } else if (behind_at_install != 0) {
            released = progress().state == peer_metrics::mode::snapshot;
            if (!released)
                most_held = std::max(most_held, last - c.node(leader).first_index());
        }
    }
    BOOST_TEST_REQUIRE(behind_at_install > 0u);
    BOOST_TEST(released, "the leader held its log for the follower until the writes stopped");
    // Twice the lag, one window, and the entries of one snapshot interval.
    BOOST_TEST(most_held <= 2 * behind_at_install + 32 + 10);
    BOOST_TEST(most_held > behind_at_install, "the follower was never held for");
    c.net().set_link(leader, slow, {});
    c.net().set_link(slow, leader, {});
    BOOST_TEST(wait_converged(c, 30s));
    check_all_machines_agree(c);
}

// snapshot_hold_bytes bounds what a transfer holds: a follower whose transfer outlasts
// that many bytes of writes gets a newer snapshot instead, and the leader's log stays
// within the budget (it holds its log in memory, too); once the writes slow down, a
// transfer finishes within it.
BOOST_AUTO_TEST_CASE(a_transfer_holds_at_most_snapshot_hold_bytes_of_log)
{
    cluster_config cfg = snapshotting(109);
    const std::string value(100, 'v'); // about 110 payload bytes a write
    cfg.node_options.snapshot_hold_bytes = 20 * 110;
    cfg.node_options.snapshot_chunk_bytes = 1024; // a transfer takes about 30 round trips
    cfg.node_options.max_snapshot_inflight_bytes = 4096;
    kv_cluster c{cfg};
    BOOST_TEST_REQUIRE(wait_leader(c).has_value());
    const node_id leader = *c.leader();
    const node_id slow = leader % 3 + 1;
    c.isolate(slow);
    for (int k = 0; k < 60; ++k)
        BOOST_TEST_REQUIRE(one(c, encode_put("key" + std::to_string(k), value), 2) > 0u);
    c.net().set_link(leader, slow, {.min_delay = 20ms, .max_delay = 20ms});
    c.net().set_link(slow, leader, {.min_delay = 20ms, .max_delay = 20ms});
    c.reconnect(slow);
    index_t most_held = 0;
    for (int k = 60; k < 1060; ++k) {
        BOOST_TEST_REQUIRE((c.leader() == std::optional<node_id>(leader)));
        BOOST_TEST_REQUIRE(!c.propose(leader, encode_put("key" + std::to_string(k), value)).ec);
        c.run_for(2ms);
        most_held = std::max(most_held, c.node(leader).last_index() - c.node(leader).first_index());
    }
    // The budget's 20 entries, the 10 of a snapshot interval, and one apply batch.
    BOOST_TEST(most_held <= 20u + 10u + 10u);
    BOOST_TEST(c.node(leader).metrics().snapshots_sent == 0u, "a transfer finished within 20 writes");
    BOOST_TEST(c.node(leader).metrics().snapshot_transfers_given_up_hold_bytes > 0u);
    BOOST_TEST(c.node(leader).metrics().snapshot_transfers_given_up_silent == 0u);
    BOOST_TEST(wait_converged(c, 30s));
    BOOST_TEST(c.node(leader).metrics().snapshots_sent >= 1u);
    check_all_machines_agree(c);
}

BOOST_AUTO_TEST_CASE(a_restarted_node_loads_its_snapshot_and_replays_only_the_tail)
{
    kv_cluster c{snapshotting(105)};
    BOOST_TEST_REQUIRE(wait_leader(c).has_value());
    write_keys(c, 0, 55, 3);
    BOOST_TEST(wait_converged(c, 10s));
    const node_id follower = *c.leader() % 3 + 1;
    c.crash(follower);
    c.restart(follower);
    const index_t from_snapshot = c.machine(follower).applied_index();
    BOOST_TEST(from_snapshot >= 50u);
    BOOST_TEST(from_snapshot + 1 >= c.node(follower).first_index());
    BOOST_TEST(c.node(follower).last_index() - from_snapshot < 15u); // only the tail is replayed
    BOOST_TEST(wait_converged(c, 10s));
    check_all_machines_agree(c);
}

namespace {

// Payload bytes of node `id`'s log entries from..to (inclusive).
std::uint64_t log_bytes(kv_cluster& c, node_id id, index_t from, index_t to)
{
    std::uint64_t bytes = 0;
    if (from <= to) {
        for (const log_entry& e : c.store(id).entries(from, to + 1, std::numeric_limits<std::size_t>::max()))
            bytes += e.data.size();
    }
    return bytes;
}

// Small snapshots that keep up to 1000 entries behind them, and `bytes` of them at most.
cluster_config catching_up(std::uint64_t seed, std::uint64_t bytes)
{
    cluster_config cfg = snapshotting(seed);
    cfg.node_options.snapshot_catchup_entries = 1000;
    cfg.node_options.snapshot_catchup_bytes = bytes;
    return cfg;
}

// Writes `n` keys with 200-byte values once a leader is elected, each committed on every
// node, and waits until every node applied them.
void write_large(kv_cluster& c, int n)
{
    BOOST_TEST_REQUIRE(wait_leader(c).has_value());
    for (int k = 0; k < n; ++k)
        BOOST_TEST_REQUIRE(one(c, encode_put("key" + std::to_string(k % 7), std::string(200, 'v')), 3) > 0u);
    BOOST_TEST(wait_converged(c, 10s));
}

} // namespace

BOOST_AUTO_TEST_CASE(the_log_behind_a_snapshot_keeps_at_most_snapshot_catchup_bytes)
{
    // Entries are about 210 bytes: 1000 catch-up entries would keep the whole log, 700
    // bytes keep three of them at most.
    kv_cluster c{catching_up(108, 700)};
    write_large(c, 95);
    for (node_id id : c.ids()) {
        BOOST_TEST_CONTEXT("node " << id)
        {
            const index_t first = c.node(id).first_index();
            const index_t snapshot = c.node(id).snapshot_index();
            BOOST_TEST(snapshot >= 90u);
            BOOST_TEST(first > 1u); // compacted
            const std::uint64_t kept = log_bytes(c, id, first, snapshot);
            BOOST_TEST(kept <= 700u);
            // Dropped no more than the budget asks, but for the rest of an apply batch:
            // three more entries would not have fit.
            const std::uint64_t entry = log_bytes(c, id, snapshot, snapshot);
            BOOST_TEST(entry > 200u);
            BOOST_TEST(kept + 3 * entry > 700u);
        }
    }
    check_all_machines_agree(c);

    // A restarted follower does not know the sizes of what it applied before it started:
    // it bounds its log again once it applied the budget's worth since.
    const node_id follower = *c.leader() % 3 + 1;
    c.crash(follower);
    c.restart(follower);
    write_large(c, 30);
    BOOST_TEST(log_bytes(c, follower, c.node(follower).first_index(), c.node(follower).snapshot_index()) <=
               700u);
    check_all_machines_agree(c);
}

BOOST_AUTO_TEST_CASE(without_snapshot_catchup_bytes_the_entry_count_alone_bounds_the_log)
{
    kv_cluster c{catching_up(109, 0)};
    write_large(c, 95);
    for (node_id id : c.ids())
        BOOST_TEST(c.node(id).first_index() == 1u, "node " << id);
}

BOOST_AUTO_TEST_CASE(handlers_that_call_back_into_their_node_keep_it_safe)
{
    cluster_config cfg = snapshotting(106);
    cfg.sync_on_append = false;
    kv_cluster c{cfg};
    // Every hook calls back into the node that ran it, which the node allows (its
    // handlers run once its state is settled): applies propose more, reads start reads,
    // drops propose again. Bounded so the run ends.
    int budget = 300;
    std::uint64_t next_read = 1'000'000;
    c.on_apply([&](node_id id, index_t, term_t, kv_result&) {
        if (budget > 0 && c.node(id).role() == role::leader && !c.node(id).propose(command(budget--)).ec)
            c.node(id).on_log_durable();
    });
    c.on_read([&](node_id id, std::uint64_t, std::error_code) {
        if (budget-- > 0)
            (void)c.node(id).read_index(next_read++);
    });
    c.on_drop([&](node_id id, index_t, term_t, std::error_code) {
        if (budget-- > 0)
            (void)c.node(id).propose(command(budget));
    });
    fault_injector<kv_state_machine> faults{c, {.min_gap = 50ms, .max_gap = 300ms}};
    BOOST_TEST_REQUIRE(wait_leader(c).has_value());
    BOOST_TEST(!c.read_index(*c.leader(), 1).value()); // starts the read chain
    write_keys(c, 0, 5, 2);
    faults.start(3s);
    c.run_for(3s);
    faults.heal_all();
    budget = 0;
    BOOST_TEST(wait_converged(c, 20s));
    check_all_machines_agree(c);
}

BOOST_AUTO_TEST_CASE(late_syncs_after_a_truncation_never_cover_the_new_entries)
{
    cluster_config cfg = snapshotting(107);
    cfg.sync_on_append = false;
    cfg.min_sync_delay = 5ms;
    cfg.max_sync_delay = 60ms; // syncs complete late and out of order
    kv_cluster c{cfg};
    BOOST_TEST_REQUIRE(wait_leader(c).has_value());
    write_keys(c, 0, 5, 3);
    for (int round = 0; round < 5; ++round) {
        const node_id old = *c.leader();
        c.isolate(old);
        for (int k = 0; k < 5; ++k)
            (void)c.propose(old, command(1000 + round * 10 + k)); // appended, syncs pending
        c.run_until([&] { return c.leader().has_value() && *c.leader() != old; }, 5s);
        write_keys(c, 100 * (round + 1), 3, 2);
        c.reconnect(old); // its unsynced suffix is replaced while its syncs are in flight
        BOOST_TEST(wait_converged(c, 10s));
    }
    check_all_machines_agree(c);
}

BOOST_AUTO_TEST_CASE(a_node_whose_machine_lost_its_snapshot_gets_one_from_the_leader)
{
    // Each node's snapshots live on a disk of its own; node 2's is lost in a crash, as
    // when a crash cuts an install short between the log reset and the state switch.
    auto disks = std::make_shared<std::map<node_id, std::shared_ptr<kv_state_machine::disk>>>();
    kv_cluster c{snapshotting(108), [disks](node_id id) {
                     auto& d = (*disks)[id];
                     if (!d)
                         d = std::make_shared<kv_state_machine::disk>();
                     return std::make_unique<kv_state_machine>(d);
                 }};
    BOOST_TEST_REQUIRE(wait_leader(c).has_value());
    write_keys(c, 0, 40, 3);
    BOOST_TEST_REQUIRE(wait_converged(c, 10s));
    c.crash(2);
    (*disks)[2] = std::make_shared<kv_state_machine::disk>();
    c.restart(2);
    BOOST_TEST(c.node(2).applied_index() + 1 < c.node(2).first_index()); // behind its own log
    write_keys(c, 40, 3, 2);
    BOOST_TEST(wait_converged(c, 20s));
    BOOST_TEST(c.stats().snapshots_installed >= 1u);
    check_all_machines_agree(c);
}
