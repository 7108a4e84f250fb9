// GET /metrics of real raftkv-server processes: every line of the text is checked against
// the Prometheus text format, and the counters move with the work the nodes do.
#define BOOST_TEST_MODULE raftkv_e2e_metrics
#include <boost/test/unit_test.hpp>

#include "harness.hpp"
#include "support/prometheus_text.hpp"
#include "three_nodes.hpp"

#include <sstream>
#include <string>

namespace {

using namespace raftkv::e2e;
using raftkv::test::parse_prometheus_text;
using raftkv::test::prometheus_text;

/// GET /metrics on `port`, checked: 200, the 0.0.4 Content-Type, no format error.
prometheus_text scrape(std::uint16_t port)
{
    const http_response r = request(port, "GET", "/metrics");
    BOOST_TEST_REQUIRE(r.status == 200, describe(r));
    const auto type = r.headers.find("content-type");
    BOOST_TEST((type != r.headers.end() && type->second == "text/plain; version=0.0.4; charset=utf-8"));
    prometheus_text t = parse_prometheus_text(r.body);
    std::ostringstream errors;
    for (const std::string& e : t.errors)
        errors << e << "\n";
    BOOST_TEST_REQUIRE(t.errors.empty(), "format errors:\n" << errors.str() << "in:\n" << r.body);
    return t;
}

double put_200(const prometheus_text& t)
{
    return t.value("raftkv_http_requests_total", {{"route", "kv"}, {"method", "PUT"}, {"code", "200"}});
}

} // namespace

BOOST_AUTO_TEST_CASE(one_node_counts_puts_syncs_and_requests)
{
    cluster c(1);
    BOOST_TEST_REQUIRE(c.wait_healthy(1, 20s));
    const std::uint16_t port = c.http_port(1);
    const prometheus_text before = scrape(port);
    BOOST_TEST(before.value("raftkv_is_leader") == 1);
    BOOST_TEST(before.value("raftkv_role", {{"role", "leader"}}) == 1);

    constexpr int n = 25;
    http_client client(port);
    for (int k = 0; k < n; ++k) {
        std::string key = "m"; // not "m" + std::to_string(k): a false -Wrestrict (GCC 12, -O3)
        key += std::to_string(k);
        const http_response r = client.request("PUT", kv_target(key), value_body("v"));
        BOOST_TEST_REQUIRE(r.status == 200, describe(r));
    }
    BOOST_TEST(client.request("GET", kv_target("absent")).status == 404);

    const prometheus_text after = scrape(port);
    BOOST_TEST(after.value("raftkv_proposals_committed_total") -
                   before.value("raftkv_proposals_committed_total") >=
               n);
    BOOST_TEST(put_200(after) - put_200(before) >= n);
    BOOST_TEST(after.value("raftkv_http_requests_total",
                           {{"route", "kv"}, {"method", "GET"}, {"code", "404"}}) == 1);
    BOOST_TEST(after.value("raftkv_http_requests_total",
                           {{"route", "metrics"}, {"method", "GET"}, {"code", "200"}}) >= 1);
    BOOST_TEST(after.value("raftkv_http_request_duration_seconds_count", {{"route", "kv"}}) >= n + 1);
    BOOST_TEST(after.value("raftkv_wal_fsync_duration_seconds_count") >
               before.value("raftkv_wal_fsync_duration_seconds_count"));
    BOOST_TEST(after.value("raftkv_wal_sync_entries_sum") - before.value("raftkv_wal_sync_entries_sum") >= n);
    BOOST_TEST(
        after.value("raftkv_apply_batch_entries_sum") - before.value("raftkv_apply_batch_entries_sum") >= n);
    BOOST_TEST(after.value("raftkv_apply_duration_seconds_count") >
               before.value("raftkv_apply_duration_seconds_count"));
    BOOST_TEST(after.value("raftkv_applied_index") >= before.value("raftkv_applied_index") + n);
    BOOST_TEST(after.value("raftkv_commit_index") == after.value("raftkv_applied_index"));
    BOOST_TEST(after.value("raftkv_leader_changes_total") >= 1);
    BOOST_TEST(after.value("raftkv_malformed_dropped_total") == 0);
    BOOST_TEST(after.value("raftkv_http_open_connections") >= 2); // the client's and the scrape's
    BOOST_TEST(after.value("process_resident_memory_bytes") > 0);
    BOOST_TEST(after.value("process_open_fds") > 0);
    BOOST_TEST(after.value("process_start_time_seconds") > 1.5e9);
    BOOST_TEST(after.family("raftkv_peer_match_index").empty(), "a single node has no peers");
}

BOOST_AUTO_TEST_CASE(requests_the_http_server_refuses_before_routing_count_as_unmatched)
{
    cluster c(1);
    BOOST_TEST_REQUIRE(c.wait_healthy(1, 20s));
    const std::uint16_t port = c.http_port(1);
    const auto status_of = [port](const std::string& bytes) {
        const std::vector<http_response> r = parse_responses(send_raw(port, bytes).received);
        return r.empty() ? 0 : r.front().status;
    };
    BOOST_TEST(status_of("NOT-HTTP\r\n\r\n") == 400);
    // Over the body limit by its Content-Length alone: refused before the body is sent.
    BOOST_TEST(status_of("PUT /kv/big HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n") == 413);
    BOOST_TEST(status_of("GET /status HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(70 * 1024, 'a') +
                         "\r\n\r\n") == 431);

    const prometheus_text t = scrape(port);
    const auto unmatched = [&t](const std::string& method, const std::string& code) {
        return t.value("raftkv_http_requests_total",
                       {{"route", "unmatched"}, {"method", method}, {"code", code}});
    };
    BOOST_TEST(unmatched("other", "400") == 1);
    BOOST_TEST(unmatched("PUT", "413") == 1);
    BOOST_TEST(unmatched("GET", "431") == 1); // its request line was read
    // Counted, not timed: no handler ran.
    BOOST_TEST(t.value("raftkv_http_request_duration_seconds_count", {{"route", "unmatched"}}) == 0);
}

BOOST_FIXTURE_TEST_CASE(three_nodes_leader_shows_each_followers_match_index, three_nodes)
{
    const std::uint16_t leader_port = c.http_port(leader);
    for (int k = 0; k < 10; ++k)
        BOOST_TEST_REQUIRE(put(leader_port, "k" + std::to_string(k), "v").status == 200);
    // A write through a follower goes to the leader over Raft.
    const std::uint64_t follower = followers().front();
    const double forwarded_before = scrape(c.http_port(follower)).value("raftkv_proposals_forwarded_total");
    BOOST_TEST_REQUIRE(put(c.http_port(follower), "via-follower", "v").status == 200);

    // Followers acknowledge what they hold within a heartbeat or two.
    prometheus_text t;
    const bool caught_up = wait_until(
        [&] {
            t = scrape(leader_port);
            const double last = t.value("raftkv_last_index");
            for (const std::uint64_t id : followers())
                if (t.value("raftkv_peer_match_index", {{"peer", std::to_string(id)}}) != last)
                    return false;
            return true;
        },
        5s);
    BOOST_TEST(caught_up, "the followers' match indexes never reached the leader's last index");
    BOOST_TEST(t.value("raftkv_is_leader") == 1);
    BOOST_TEST(t.family("raftkv_peer_match_index").size() == 2u);
    for (const std::uint64_t id : followers()) {
        const std::string peer = std::to_string(id);
        BOOST_TEST(t.value("raftkv_peer_match_index", {{"peer", peer}}) >= 11);
        BOOST_TEST(t.value("raftkv_peer_lag_entries", {{"peer", peer}}) == 0);
        BOOST_TEST(t.value("raftkv_peer_state", {{"peer", peer}, {"state", "replicate"}}) == 1);
        BOOST_TEST(t.value("raftkv_peer_active", {{"peer", peer}}) == 1);
    }
    BOOST_TEST(t.value("raftkv_proposals_committed_total") >= 11);

    const prometheus_text f = scrape(c.http_port(follower));
    BOOST_TEST(f.value("raftkv_is_leader") == 0);
    BOOST_TEST(f.value("raftkv_role", {{"role", "follower"}}) == 1);
    BOOST_TEST(f.value("raftkv_leader_id") == static_cast<double>(leader));
    BOOST_TEST(f.value("raftkv_term") == t.value("raftkv_term"));
    BOOST_TEST(f.family("raftkv_peer_match_index").empty(), "a follower shows no peers");
    BOOST_TEST(f.value("raftkv_proposals_forwarded_total") - forwarded_before >= 1);
}
