#include <raftkv/sim/cluster.hpp>

#define BOOST_TEST_MODULE sim_read_index
#include <boost/test/unit_test.hpp>

#include "sim/support.hpp"

#include <raftkv/sim/kv_workload.hpp>
#include <raftkv/sim/linearizability.hpp>

#include <map>
#include <optional>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

// ReadIndex reads (Raft thesis §6.4): linearizable reads that never touch the log.

using namespace raftkv;
using namespace raftkv::sim;
using namespace raftkv::sim::testing;

namespace {
struct read_outcome {
    std::error_code ec;
    /// The value of "k" when the read was allowed to proceed.
    std::optional<std::string> value;
};

// Records what every read handler reports, keyed by (node, read id).
struct read_log {
    std::map<std::pair<node_id, std::uint64_t>, read_outcome> outcomes;
    explicit read_log(kv_cluster& c)
    {
        c.on_read([this, &c](node_id n, std::uint64_t id, std::error_code ec) {
            outcomes[{n, id}] = read_outcome{ec, ec ? std::nullopt : c.machine(n).get("k")};
        });
    }
    const read_outcome* find(node_id n, std::uint64_t id) const
    {
        const auto it = outcomes.find({n, id});
        return it == outcomes.end() ? nullptr : &it->second;
    }
    /// Reads at node `n` (ids from `id` on) until a read is served, for up to `timeout`:
    /// what a client that retries sees.
    std::optional<std::string> read_until_served(kv_cluster& c, node_id n, std::uint64_t id,
                                                 std::chrono::microseconds timeout)
    {
        const auto deadline = c.now() + timeout;
        for (; c.now() < deadline; ++id) {
            if (c.read_index(n, id)) {
                c.run_for(20ms);
                continue;
            }
            c.run_until([&] { return find(n, id) != nullptr; }, deadline - c.now());
            if (const read_outcome* r = find(n, id); r && !r->ec)
                return r->value.value_or("(none)");
        }
        return std::nullopt;
    }
};
} // namespace

BOOST_AUTO_TEST_CASE(a_partitioned_old_leader_never_serves_a_read_and_the_new_leader_sees_the_latest_write)
{
    kv_cluster c{{.nodes = 5, .seed = 41}};
    read_log reads{c};
    BOOST_TEST_REQUIRE(one(c, encode_put("k", "v1"), 5) > 0u);
    const node_id l1 = *c.leader();
    const node_id f = l1 == 1 ? 2 : 1;
    std::vector<node_id> rest;
    for (node_id id : c.ids()) {
        if (id != l1 && id != f)
            rest.push_back(id);
    }
    c.partition({{l1, f}, rest});
    // The old leader still believes it leads and accepts the read...
    BOOST_TEST_REQUIRE(!c.read_index(l1, 1));
    BOOST_TEST_REQUIRE(c.run_until([&] { return c.leader() && *c.leader() != l1; }, 5s));
    const node_id l2 = *c.leader();
    BOOST_TEST_REQUIRE(commit_at(c, l2, encode_put("k", "v2"), 3) > 0u);
    c.run_for(2s);
    // ...but can never confirm it: it fails when the old leader steps down, or never returns.
    const read_outcome* stale = reads.find(l1, 1);
    BOOST_TEST((!stale || stale->ec == errc::leadership_lost));
    BOOST_TEST(c.node(l1).role() != role::leader);
    BOOST_TEST(c.read_index(l1, 2) == errc::not_leader);
    // The new leader's read sees the latest write.
    BOOST_TEST_REQUIRE(!c.read_index(l2, 3));
    BOOST_TEST_REQUIRE(c.run_until([&] { return reads.find(l2, 3) != nullptr; }, 2s));
    BOOST_TEST(!reads.find(l2, 3)->ec);
    BOOST_TEST(reads.find(l2, 3)->value.value_or("-") == "v2");
}

BOOST_AUTO_TEST_CASE(a_read_on_a_new_leader_reflects_writes_committed_by_its_predecessor)
{
    kv_cluster c{{.nodes = 3, .seed = 42}};
    read_log reads{c};
    BOOST_TEST_REQUIRE(one(c, encode_put("k", "before"), 3) > 0u);
    const node_id l1 = *c.leader();
    c.crash(l1);
    BOOST_TEST_REQUIRE(c.run_until([&] { return c.leader().has_value(); }, 5s));
    const node_id l2 = *c.leader();
    // At once: the new leader's commit index may still be behind until its noop commits.
    BOOST_TEST_REQUIRE(!c.read_index(l2, 1));
    BOOST_TEST_REQUIRE(c.run_until([&] { return reads.find(l2, 1) != nullptr; }, 2s));
    BOOST_TEST(!reads.find(l2, 1)->ec);
    BOOST_TEST(reads.find(l2, 1)->value.value_or("-") == "before");
}

// ---- reads at followers (thesis §6.4) ----------------------------------------------

namespace {
// A follower of `leader` other than `except`.
node_id follower_of(kv_cluster& c, node_id leader, node_id except = no_node)
{
    for (node_id id : c.ids()) {
        if (id != leader && id != except)
            return id;
    }
    return no_node;
}
} // namespace

BOOST_AUTO_TEST_CASE(a_follower_read_sees_a_write_acknowledged_before_it_started)
{
    kv_cluster c{{.nodes = 5, .seed = 45}};
    read_log reads{c};
    BOOST_TEST_REQUIRE(one(c, encode_put("k", "v1"), 5) > 0u);
    const node_id l = *c.leader();
    const node_id f = follower_of(c, l);
    c.net().set_link(l, f, {.min_delay = 40ms, .max_delay = 60ms}); // f hears of writes late
    // Acknowledged: the leader applied it. f has not even received it yet.
    const propose_result w = c.propose(l, encode_put("k", "v2"));
    BOOST_TEST_REQUIRE(!w.ec);
    BOOST_TEST_REQUIRE(c.run_until([&] { return c.node(l).applied_index() >= w.index; }, 1s));
    BOOST_TEST_REQUIRE(c.node(f).applied_index() < w.index);
    BOOST_TEST_REQUIRE(!c.read_index(f, 1));
    BOOST_TEST_REQUIRE(c.run_until([&] { return reads.find(f, 1) != nullptr; }, 1s));
    BOOST_TEST(!reads.find(f, 1)->ec);
    BOOST_TEST(reads.find(f, 1)->value.value_or("-") == "v2");
}

BOOST_AUTO_TEST_CASE(a_follower_cut_off_with_the_old_leader_never_serves_a_stale_read)
{
    // Without CheckQuorum the old leader never steps down: its follower keeps asking it.
    options o;
    o.check_quorum = false;
    kv_cluster c{{.nodes = 5, .seed = 46, .node_options = o}};
    read_log reads{c};
    BOOST_TEST_REQUIRE(one(c, encode_put("k", "v1"), 5) > 0u);
    const node_id l1 = *c.leader();
    const node_id f = follower_of(c, l1);
    std::vector<node_id> rest;
    for (node_id id : c.ids()) {
        if (id != l1 && id != f)
            rest.push_back(id);
    }
    c.partition({{l1, f}, rest});
    BOOST_TEST_REQUIRE(c.run_until([&] { return c.leader() && *c.leader() != l1; }, 5s));
    BOOST_TEST_REQUIRE(commit_at(c, *c.leader(), encode_put("k", "v2"), 3) > 0u);
    // f still follows the old leader, which cannot confirm any round.
    BOOST_TEST_REQUIRE(c.node(l1).role() == role::leader);
    BOOST_TEST_REQUIRE(c.node(f).leader() == l1);
    std::uint64_t id = 0;
    for (int k = 0; k < 30; ++k) {
        if (!c.read_index(f, ++id))
            c.run_for(50ms);
        else
            c.run_for(10ms);
    }
    c.run_for(1s);
    std::size_t failed = 0;
    for (std::uint64_t k = 1; k <= id; ++k) {
        if (const read_outcome* r = reads.find(f, k)) {
            BOOST_TEST(r->ec == errc::leadership_lost); // never served, least of all with "v1"
            ++failed;
        }
    }
    BOOST_TEST(failed > 0u);
    BOOST_TEST(c.node(l1).role() == role::leader);
    // Back with the majority, f serves reads again, with the latest write.
    c.heal();
    BOOST_TEST(reads.read_until_served(c, f, 1000, 5s).value_or("-") == "v2");
}

BOOST_AUTO_TEST_CASE(a_follower_alone_fails_its_reads_and_then_refuses_them)
{
    kv_cluster c{{.nodes = 3, .seed = 47}};
    read_log reads{c};
    BOOST_TEST_REQUIRE(one(c, encode_put("k", "v1"), 3) > 0u);
    const node_id l = *c.leader();
    const node_id f = follower_of(c, l);
    c.isolate(f);
    BOOST_TEST_REQUIRE(commit_at(c, l, encode_put("k", "v2"), 2) > 0u);
    BOOST_TEST_REQUIRE(!c.read_index(f, 1)); // it still believes in its leader
    BOOST_TEST_REQUIRE(c.run_until([&] { return reads.find(f, 1) != nullptr; }, 2s));
    BOOST_TEST(reads.find(f, 1)->ec == errc::leadership_lost);
    c.run_for(1s); // its election timer fired: it knows no leader now
    BOOST_TEST(c.read_index(f, 2) == errc::not_leader);
}

BOOST_AUTO_TEST_CASE(
    a_leader_change_in_the_middle_of_a_follower_read_fails_it_and_a_retry_sees_the_new_leaders_writes)
{
    kv_cluster c{{.nodes = 5, .seed = 48}};
    read_log reads{c};
    BOOST_TEST_REQUIRE(one(c, encode_put("k", "v1"), 5) > 0u);
    const node_id l1 = *c.leader();
    const node_id f = follower_of(c, l1);
    BOOST_TEST_REQUIRE(!c.read_index(f, 1));
    c.crash(l1); // before it answers
    BOOST_TEST_REQUIRE(c.run_until([&] { return reads.find(f, 1) != nullptr; }, 2s));
    BOOST_TEST(reads.find(f, 1)->ec == errc::leadership_lost);
    BOOST_TEST_REQUIRE(c.run_until([&] { return c.leader().has_value(); }, 5s));
    const node_id l2 = *c.leader();
    BOOST_TEST_REQUIRE(commit_at(c, l2, encode_put("k", "v2"), 1) > 0u); // acknowledged by l2
    const node_id f2 = follower_of(c, l2, l1);
    BOOST_TEST(reads.read_until_served(c, f2, 2, 2s).value_or("-") == "v2");
}

BOOST_AUTO_TEST_CASE(follower_reads_stay_linearizable_when_messages_are_lost_duplicated_and_reordered)
{
    kv_cluster c{{.nodes = 5,
                  .seed = 49,
                  .link = {.min_delay = 1ms,
                           .max_delay = 20ms,
                           .loss = 0.15,
                           .duplicate = 0.2,
                           .slow = 0.1,
                           .max_slow_delay = 300ms}}};
    kv_workload<> w{c,
                    {.clients = 5,
                     .keys = 2,
                     .get_share = 0.6,
                     .put_share = 0.35,
                     .follower_reads = 1.0,
                     .follower_writes = 0}};
    w.start();
    for (int round = 0; round < 8; ++round) {
        c.run_for(400ms);
        if (const auto l = c.leader())
            c.isolate(*l);
        c.run_for(200ms);
        c.heal();
    }
    w.stop();
    c.net().set_default_link({});
    BOOST_TEST_REQUIRE(c.run_until([&] { return w.idle(); }, 10s));
    std::size_t gets = 0;
    for (const kv_op& op : w.history())
        gets += op.kind == kv_op_kind::get ? 1 : 0;
    BOOST_TEST(gets > 100u);
    const check_result r = check_kv_history(w.history(), std::chrono::seconds(10));
    BOOST_TEST((r.outcome == check_outcome::ok), r.explanation);
    BOOST_TEST_MESSAGE(w.history().size() << " operations, " << gets << " reads at random nodes");
}

BOOST_AUTO_TEST_CASE(many_reads_started_together_share_a_few_heartbeat_rounds)
{
    kv_cluster c{{.nodes = 5, .seed = 44}};
    read_log reads{c};
    BOOST_TEST_REQUIRE(one(c, encode_put("k", "v"), 5) > 0u);
    c.run_for(100ms);
    const node_id l = *c.leader();
    std::uint64_t heartbeats = 0;
    c.on_deliver([&](const message& m) { heartbeats += std::holds_alternative<heartbeat>(m.body) ? 1 : 0; });
    for (std::uint64_t id = 1; id <= 100; ++id)
        BOOST_TEST_REQUIRE(!c.read_index(l, id));
    BOOST_TEST_REQUIRE(c.run_until([&] { return reads.outcomes.size() == 100; }, 1s));
    for (const auto& [key, outcome] : reads.outcomes)
        BOOST_TEST(outcome.value.value_or("-") == "v");
    BOOST_TEST_MESSAGE("100 reads took " << heartbeats << " heartbeats");
    // One round per read would be 400 heartbeats; a shared round plus the periodic ones
    // that happen to go out meanwhile is a handful of rounds to four followers.
    BOOST_TEST(heartbeats <= 4u * 5);
}

namespace {
// Starts a read at `reader` (the leader, or a follower) every `every` for `span` of virtual
// time, with messages delayed 1 to 5 ms, and returns the mean time a read took to be served.
std::chrono::microseconds mean_read_latency(std::size_t nodes, std::uint32_t max_read_rounds, bool at_leader,
                                            std::chrono::microseconds every, std::chrono::microseconds span)
{
    options o;
    o.max_read_rounds = max_read_rounds;
    kv_cluster c{{.nodes = nodes, .seed = 50, .node_options = o}};
    BOOST_TEST_REQUIRE(one(c, encode_put("k", "v"), nodes) > 0u);
    c.run_for(100ms);
    const node_id l = *c.leader();
    const node_id reader = at_leader ? l : (l % nodes) + 1;
    std::map<std::uint64_t, std::chrono::microseconds> started;
    std::chrono::microseconds total{0};
    std::size_t served = 0;
    c.on_read([&](node_id n, std::uint64_t id, std::error_code ec) {
        BOOST_TEST(!ec);
        if (n == reader && started.contains(id)) {
            total += c.now() - started[id];
            ++served;
        }
    });
    const std::uint64_t reads = static_cast<std::uint64_t>(span / every);
    for (std::uint64_t id = 1; id <= reads; ++id) {
        c.schedule(every * id, [&c, &started, reader, id] {
            started[id] = c.now();
            BOOST_TEST(!c.read_index(reader, id));
        });
    }
    BOOST_TEST_REQUIRE(c.run_until([&] { return served == reads; }, span + 1s));
    BOOST_TEST((c.leader() == l));
    return total / served;
}
} // namespace

BOOST_AUTO_TEST_CASE(reads_that_arrive_while_a_round_is_out_do_not_wait_for_its_answer)
{
    // A read needs a round (or, at a follower, a request to the leader) that starts after
    // it arrives. With one in flight, a read that arrives just after one started waits for
    // its answer and then for a whole round of its own; with several, it starts one at once.
    for (const auto& [nodes, at_leader] : {std::pair{3u, true}, std::pair{3u, false}, std::pair{5u, false}}) {
        const auto one_round = mean_read_latency(nodes, 1, at_leader, 1ms, 500ms);
        const auto pipelined = mean_read_latency(nodes, 4, at_leader, 1ms, 500ms);
        BOOST_TEST_MESSAGE(nodes << " nodes, reads at " << (at_leader ? "the leader" : "a follower")
                                 << ": mean latency " << one_round.count() << " us with one round in flight, "
                                 << pipelined.count() << " us with four");
        BOOST_TEST(pipelined.count() * 4 < one_round.count() * 3);
    }
}
