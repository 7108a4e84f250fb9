// GET /health, /livez and /readyz on real processes: /health is 200 only while a
// linearizable read through the cluster succeeds, /livez while the process serves HTTP,
// /readyz while the node is caught up with a leader; concurrent health checks share one
// ReadIndex round.
#define BOOST_TEST_MODULE raftkv_e2e_health
#include <boost/test/unit_test.hpp>

#include "harness.hpp"
#include "three_nodes.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include <signal.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace raftkv::e2e;
using clock_type = std::chrono::steady_clock;

/// The "reason" of a 503 from the health routes, "" when it has none.
std::string reason_of(const http_response& r)
{
    return parse_json(r.body).string("reason").value_or("");
}

struct check_counts {
    std::uint64_t checks = 0;
    std::uint64_t rounds = 0;
    std::uint64_t joined = 0;
    std::uint64_t reused = 0;
};

/// The "health_checks" counters of GET /status.
std::optional<check_counts> counts_of(std::uint16_t port)
{
    const http_response r = request(port, "GET", "/status");
    if (r.status != 200)
        return std::nullopt;
    boost::system::error_code ec;
    const boost::json::value v = boost::json::parse(r.body, ec);
    const boost::json::object* body = ec ? nullptr : v.if_object();
    const boost::json::value* h = body ? body->if_contains("health_checks") : nullptr;
    if (!h || !h->is_object())
        return std::nullopt;
    const auto& o = h->get_object();
    const auto n = [&o](const char* name) { return o.at(name).to_number<std::uint64_t>(); };
    return check_counts{n("checks"), n("rounds"), n("joined"), n("reused")};
}

} // namespace

// A long election timeout (3-6 s) keeps a leader that lost its followers leading for a
// while, so that /health is seen to fail on the read, not only for want of a leader.
BOOST_AUTO_TEST_CASE(health_needs_a_quorum_while_livez_needs_only_the_process)
{
    three_nodes n({"--election-ticks", "300"});
    cluster& c = n.c;
    for (std::uint64_t id = 1; id <= 3; ++id) {
        const http_response h = request(c.http_port(id), "GET", "/health");
        BOOST_TEST(h.status == 200, "node " << id << ": " << describe(h));
        BOOST_TEST(parse_json(h.body).string("status").value_or("") == "ok");
        BOOST_TEST(parse_json(h.body).text["leader"] == std::to_string(n.leader));
        BOOST_TEST(request(c.http_port(id), "GET", "/livez").status == 200, "node " << id);
        const http_response ready = request(c.http_port(id), "GET", "/readyz");
        BOOST_TEST(ready.status == 200, "node " << id << ": " << describe(ready));
    }
    const auto f = n.followers();
    const std::uint16_t leader_port = c.http_port(n.leader);

    // One follower stopped: the other two are a quorum, and stay healthy.
    c.signal(f[0], SIGSTOP);
    std::this_thread::sleep_for(std::chrono::milliseconds(300)); // past the reuse of earlier results
    BOOST_TEST(request(leader_port, "GET", "/health").status == 200);
    BOOST_TEST(request(c.http_port(f[1]), "GET", "/health").status == 200);

    // Both stopped: the leader still leads (its election timeout has not passed), but no
    // read gets through.
    c.signal(f[1], SIGSTOP);
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    const auto asked = clock_type::now();
    const http_response h = request(leader_port, "GET", "/health?timeout=300ms");
    const auto took = clock_type::now() - asked;
    BOOST_TEST(h.status == 503, describe(h));
    BOOST_TEST(reason_of(h) == "read index timed out", describe(h));
    BOOST_TEST(parse_json(h.body).text["leader"] == std::to_string(n.leader), describe(h));
    BOOST_TEST(h.headers.count("retry-after") == 1u);
    BOOST_TEST(took < std::chrono::seconds(5), "a health check outlived its timeout by far");
    const http_response live = request(leader_port, "GET", "/livez");
    BOOST_TEST(live.status == 200, describe(live));

    // Once it steps down (CheckQuorum), it knows no leader: neither healthy nor ready.
    const bool unready =
        wait_until([&] { return request(leader_port, "GET", "/readyz", {}, 2s).status == 503; }, 20s, 100ms);
    BOOST_TEST(unready, "a node alone still reports /readyz 200");
    const http_response no_leader = request(leader_port, "GET", "/health");
    BOOST_TEST(no_leader.status == 503, describe(no_leader));
    BOOST_TEST(reason_of(no_leader) == "no leader", describe(no_leader));
    BOOST_TEST(reason_of(request(leader_port, "GET", "/readyz")) == "no leader");
    BOOST_TEST(request(leader_port, "GET", "/livez").status == 200);

    c.signal(f[0], SIGCONT);
    c.signal(f[1], SIGCONT);
    for (std::uint64_t id = 1; id <= 3; ++id)
        BOOST_TEST(c.wait_healthy(id, 30s), "node " << id << " not healthy again");
}

// A follower checks through its leader: with the leader and the other follower stopped,
// it still knows the leader for a while, but no read gets through.
BOOST_AUTO_TEST_CASE(a_follower_is_unhealthy_when_its_leader_does_not_answer)
{
    three_nodes n({"--election-ticks", "300"});
    cluster& c = n.c;
    const auto f = n.followers();
    BOOST_TEST_REQUIRE(request(c.http_port(f[0]), "GET", "/health").status == 200);
    c.signal(n.leader, SIGSTOP);
    c.signal(f[1], SIGSTOP);
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    const http_response h = request(c.http_port(f[0]), "GET", "/health?timeout=300");
    BOOST_TEST(h.status == 503, describe(h));
    BOOST_TEST(reason_of(h) == "read index timed out", describe(h));
    BOOST_TEST(request(c.http_port(f[0]), "GET", "/livez").status == 200);
    c.signal(n.leader, SIGCONT);
    c.signal(f[1], SIGCONT);
    BOOST_TEST(c.wait_healthy(f[0], 30s));
}

BOOST_AUTO_TEST_CASE(a_single_node_is_healthy_and_ready)
{
    cluster c(1);
    BOOST_TEST_REQUIRE(c.wait_healthy(1, 20s), "a single node never reported /health 200");
    const std::uint16_t port = c.http_port(1);
    const http_response h = request(port, "GET", "/health?timeout=5s");
    BOOST_TEST(h.status == 200, describe(h));
    BOOST_TEST(parse_json(h.body).text["leader"] == "1");
    BOOST_TEST(request(port, "GET", "/readyz").status == 200);
    const http_response live = request(port, "GET", "/livez");
    BOOST_TEST(live.status == 200, describe(live));
    BOOST_TEST(live.body == R"({"status":"ok"})");
    BOOST_TEST(live.headers.at("content-type") == "application/json");

    // /status counts the Raft messages dropped as malformed: none here.
    const http_response status = request(port, "GET", "/status");
    BOOST_TEST(parse_json(status.body).text["malformed_dropped"] == "0", describe(status));

    const http_response bad = request(port, "GET", "/health?timeout=1h");
    BOOST_TEST(is_error(bad, 400), describe(bad));
    for (const char* target : {"/livez", "/readyz", "/health"}) {
        const http_response wrong = request(port, "POST", target, "{}");
        BOOST_TEST(is_error(wrong, 405), target << ": " << describe(wrong));
        BOOST_TEST((wrong.headers.count("allow") && wrong.headers.at("allow") == "GET, HEAD"), target);
    }
}

// With results reused for a minute, any number of concurrent checks costs one round: they
// join the round in flight or take its result. Deterministic: a round takes milliseconds.
BOOST_AUTO_TEST_CASE(concurrent_health_checks_share_one_read_index_round)
{
    three_nodes n({"--health-reuse-ms", "60000", "--election-ticks", "100"});
    const std::uint16_t port = n.c.http_port(n.followers()[0]);
    const std::optional<check_counts> before = counts_of(port);
    BOOST_TEST_REQUIRE(before.has_value(), "no health_checks in /status");
    BOOST_TEST(before->checks == 0u);

    constexpr int clients = 40;
    std::atomic<int> ok{0};
    std::atomic<bool> go{false};
    std::vector<std::thread> threads;
    for (int i = 0; i < clients; ++i)
        threads.emplace_back([&] {
            while (!go.load())
                std::this_thread::yield();
            if (request(port, "GET", "/health").status == 200)
                ++ok;
        });
    go = true;
    for (auto& t : threads)
        t.join();
    BOOST_TEST(ok.load() == clients);
    const std::optional<check_counts> after = counts_of(port);
    BOOST_TEST_REQUIRE(after.has_value());
    BOOST_TEST(after->checks == before->checks + clients);
    BOOST_TEST(after->rounds == before->rounds + 1, "rounds: " << after->rounds);
    BOOST_TEST(after->joined + after->reused == before->joined + before->reused + clients - 1);
}
