#include <raftkv/sim/cluster.hpp>

#define BOOST_TEST_MODULE sim_read_index
#include <boost/test/unit_test.hpp>

#include "sim/support.hpp"

#include <map>
#include <optional>
#include <string>
#include <system_error>
#include <utility>

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

BOOST_AUTO_TEST_CASE(a_follower_refuses_reads_and_names_the_leader)
{
    kv_cluster c{{.nodes = 3, .seed = 43}};
    BOOST_TEST_REQUIRE(one(c, encode_put("k", "v"), 3) > 0u);
    const node_id l = *c.leader();
    const node_id f = l == 1 ? 2 : 1;
    BOOST_TEST(c.read_index(f, 1) == errc::not_leader);
    BOOST_TEST(c.node(f).leader() == l);
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
