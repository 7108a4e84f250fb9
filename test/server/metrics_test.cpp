#include "metrics.hpp"

#define BOOST_TEST_MODULE server_metrics
#include <boost/test/unit_test.hpp>

#include "support/prometheus_text.hpp"

#include <chrono>
#include <cmath>
#include <sstream>
#include <string>

namespace {

namespace http = boost::beast::http;
using namespace raftkv::server;
using raftkv::test::parse_prometheus_text;
using raftkv::test::prometheus_text;

std::string all_errors(const prometheus_text& t)
{
    std::ostringstream out;
    for (const std::string& e : t.errors)
        out << e << "\n";
    return out.str();
}

// A leader of three with some history, as kv_service would report it.
metrics_inputs leader_inputs()
{
    metrics_inputs in;
    in.status.id = 1;
    in.status.role = raftkv::role::leader;
    in.status.leader = 1;
    in.status.term = 7;
    in.status.commit_index = 40;
    in.status.applied_index = 40;
    in.status.first_index = 1;
    in.status.last_index = 42;
    in.status.snapshot_index = 20;
    in.status.members.voters = {1, 2, 3};
    in.status.malformed_dropped = 3;
    raftkv::node_metrics m;
    m.leader_changes = 2;
    m.step_downs[static_cast<std::size_t>(raftkv::step_down_reason::log_stalled)] = 7;
    m.proposals_committed = 39;
    m.proposals_refused_overloaded = 4;
    m.snapshot_transfers_given_up_silent = 5;
    m.snapshot_transfers_given_up_hold_bytes = 6;
    m.apply_batch_entries.record(1);
    m.apply_batch_entries.record(30);
    m.peers.push_back({.id = 2, .match = 42, .next = 43, .state = raftkv::peer_metrics::mode::replicate});
    m.peers.push_back({.id = 3,
                       .match = 30,
                       .next = 35,
                       .state = raftkv::peer_metrics::mode::replicate,
                       .inflight_messages = 2,
                       .inflight_bytes = 512});
    in.node = m;
    raftkv::wal::log_store_stats w;
    for (std::uint64_t ns : {50'000u, 2'000'000u, 900'000'000u})
        w.sync_ns.record(ns);
    w.group_entries.record(10);
    w.groups = 3;
    in.wal = w;
    in.apply_ns = raftkv::log2_histogram{};
    in.checkpoint_ns = raftkv::log2_histogram{};
    in.connections = {5, 1, 2, 0, 3};
    in.write_retries = 6;
    in.process.resident_bytes = 1 << 20;
    in.process.start_time_seconds = 1.7e9;
    return in;
}

} // namespace

BOOST_AUTO_TEST_CASE(values_print_as_prometheus_reads_them)
{
    BOOST_TEST(format_value(0) == "0");
    BOOST_TEST(format_value(42) == "42");
    BOOST_TEST(format_value(0.25) == "0.25");
    BOOST_TEST(format_value(1e-9) == "1e-09");
    BOOST_TEST(format_value(HUGE_VAL) == "+Inf");
    BOOST_TEST(format_value(-HUGE_VAL) == "-Inf");
    BOOST_TEST(format_value(std::nan("")) == "NaN");
}

BOOST_AUTO_TEST_CASE(writer_escapes_help_and_label_values)
{
    exposition_writer w;
    w.family("x_total", "counter", "a \\ b\nc");
    w.sample("x_total", {{"path", "a\"b\\c\nd"}, {"m", "GET"}}, std::uint64_t{3});
    BOOST_TEST(w.text() == "# HELP x_total a \\\\ b\\nc\n# TYPE x_total counter\n"
                           "x_total{path=\"a\\\"b\\\\c\\nd\",m=\"GET\"} 3\n");
    const prometheus_text t = parse_prometheus_text(w.text());
    BOOST_TEST(t.errors.empty(), all_errors(t));
    BOOST_TEST(t.value("x_total", {{"path", "a\"b\\c\nd"}, {"m", "GET"}}) == 3);
}

BOOST_AUTO_TEST_CASE(log2_histograms_render_cumulative_buckets_ending_in_inf)
{
    raftkv::log2_histogram h;
    for (std::uint64_t v : {1u, 3u, 3u, 9u, 1000u})
        h.record(v);
    exposition_writer w;
    w.family("h", "histogram", "test");
    w.histogram("h", {}, h, 0, 4, 2, 1); // bounds 1, 4, 16
    BOOST_TEST(w.text() == "# HELP h test\n# TYPE h histogram\n"
                           "h_bucket{le=\"1\"} 1\nh_bucket{le=\"4\"} 3\nh_bucket{le=\"16\"} 4\n"
                           "h_bucket{le=\"+Inf\"} 5\nh_sum 1016\nh_count 5\n");
}

BOOST_AUTO_TEST_CASE(duration_histogram_counts_each_duration_in_its_first_bucket)
{
    duration_histogram h;
    h.record(std::chrono::microseconds(100)); // exactly the first bound
    h.record(std::chrono::milliseconds(3));
    h.record(std::chrono::seconds(60));
    const duration_histogram::snapshot s = h.read();
    BOOST_TEST(s.cumulative[0] == 1u);
    BOOST_TEST(s.cumulative[4] == 1u); // 2.5 ms
    BOOST_TEST(s.cumulative[5] == 2u); // 5 ms
    BOOST_TEST(s.cumulative[duration_histogram::bounds.size() - 1] == 2u);
    BOOST_TEST(s.count() == 3u);
    BOOST_TEST(std::abs(s.sum_seconds - 60.0031) < 1e-9);
}

BOOST_AUTO_TEST_CASE(rendered_metrics_pass_the_format_check_and_carry_the_inputs)
{
    http_metrics requests;
    for (int k = 0; k < 3; ++k)
        requests.record(route_label_of(route::kv), http::verb::put, 200, std::chrono::milliseconds(2));
    requests.record(route_label_of(route::kv), http::verb::get, 404, std::chrono::microseconds(300));
    requests.record(route_label_of(route::kv), http::verb::head, 304, std::chrono::microseconds(300));
    requests.record(unmatched_route, http::verb::options, 418, std::chrono::microseconds(10));
    requests.record(route_label_of(route::kv), http::verb::put, 507, std::chrono::microseconds(10));
    requests.record(route_label_of(route::member), http::verb::patch, 200, std::chrono::microseconds(10));
    requests.record_replay();
    requests.record_replay();

    const std::string text = render_metrics(leader_inputs(), requests);
    const prometheus_text t = parse_prometheus_text(text);
    BOOST_TEST_REQUIRE(t.errors.empty(), all_errors(t) << text);

    BOOST_TEST(t.types.at("raftkv_http_requests_total") == "counter");
    BOOST_TEST(t.types.at("raftkv_http_request_duration_seconds") == "histogram");
    BOOST_TEST(t.value("raftkv_is_leader") == 1);
    BOOST_TEST(t.value("raftkv_role", {{"role", "leader"}}) == 1);
    BOOST_TEST(t.value("raftkv_role", {{"role", "follower"}}) == 0);
    BOOST_TEST(t.value("raftkv_term") == 7);
    BOOST_TEST(t.value("raftkv_commit_index") == 40);
    BOOST_TEST(t.value("raftkv_last_index") == 42);
    BOOST_TEST(t.value("raftkv_malformed_dropped_total") == 3);
    BOOST_TEST(t.value("raftkv_leader_changes_total") == 2);
    BOOST_TEST(t.value("raftkv_leader_step_downs_total", {{"reason", "log_stalled"}}) == 7);
    BOOST_TEST(t.value("raftkv_leader_step_downs_total", {{"reason", "newer_term"}}) == 0);
    BOOST_TEST(t.types.at("raftkv_leader_step_downs_total") == "counter");
    BOOST_TEST(text.find("raftkv_leader_step_downs_total{reason=\"none\"}") == std::string::npos);
    BOOST_TEST(t.value("raftkv_proposals_committed_total") == 39);
    BOOST_TEST(t.value("raftkv_proposals_refused_total", {{"reason", "overloaded"}}) == 4);
    BOOST_TEST(t.value("raftkv_snapshot_transfers_given_up_total", {{"reason", "silent"}}) == 5);
    BOOST_TEST(t.value("raftkv_snapshot_transfers_given_up_total", {{"reason", "hold_bytes"}}) == 6);
    BOOST_TEST(t.value("raftkv_peer_match_index", {{"peer", "3"}}) == 30);
    BOOST_TEST(t.value("raftkv_peer_lag_entries", {{"peer", "3"}}) == 12);
    BOOST_TEST(t.value("raftkv_peer_lag_entries", {{"peer", "2"}}) == 0);
    BOOST_TEST(t.value("raftkv_peer_inflight_bytes", {{"peer", "3"}}) == 512);
    BOOST_TEST(t.value("raftkv_peer_state", {{"peer", "3"}, {"state", "replicate"}}) == 1);
    BOOST_TEST(t.value("raftkv_wal_fsync_duration_seconds_count") == 3);
    BOOST_TEST(t.value("raftkv_wal_fsync_duration_seconds_bucket", {{"le", "+Inf"}}) == 3);
    BOOST_TEST(t.value("raftkv_wal_sync_entries_bucket", {{"le", "16"}}) == 1);
    BOOST_TEST(t.value("raftkv_apply_batch_entries_count") == 2);
    BOOST_TEST(t.value("raftkv_http_requests_total", {{"route", "kv"}, {"method", "PUT"}, {"code", "200"}}) ==
               3);
    BOOST_TEST(t.value("raftkv_http_requests_total", {{"route", "kv"}, {"method", "GET"}, {"code", "404"}}) ==
               1);
    BOOST_TEST(
        t.value("raftkv_http_requests_total", {{"route", "kv"}, {"method", "HEAD"}, {"code", "304"}}) == 1);
    BOOST_TEST(t.value("raftkv_http_requests_total",
                       {{"route", "unmatched"}, {"method", "other"}, {"code", "other"}}) == 1);
    // A quota refusal and a member update under their own labels.
    BOOST_TEST(t.value("raftkv_http_requests_total", {{"route", "kv"}, {"method", "PUT"}, {"code", "507"}}) ==
               1);
    BOOST_TEST(t.value("raftkv_http_requests_total",
                       {{"route", "member"}, {"method", "PATCH"}, {"code", "200"}}) == 1);
    BOOST_TEST(t.value("raftkv_http_request_duration_seconds_count", {{"route", "kv"}}) == 6);
    BOOST_TEST(t.value("raftkv_http_request_duration_seconds_bucket", {{"route", "kv"}, {"le", "0.001"}}) ==
               3);
    BOOST_TEST(t.value("raftkv_http_open_connections") == 5);
    BOOST_TEST(t.value("raftkv_http_connections_rejected_total") == 1);
    BOOST_TEST(t.value("raftkv_http_connections_unread_responses_closed_total") == 3);
    BOOST_TEST(t.types.at("raftkv_session_replays_total") == "counter");
    BOOST_TEST(t.value("raftkv_session_replays_total") == 2);
    BOOST_TEST(t.types.at("raftkv_write_retries_total") == "counter");
    BOOST_TEST(t.value("raftkv_write_retries_total") == 6);
    BOOST_TEST(t.value("process_resident_memory_bytes") == 1 << 20);
    BOOST_TEST(t.value("process_start_time_seconds") == 1.7e9);
}

BOOST_AUTO_TEST_CASE(a_node_whose_storage_failed_shows_no_role_and_no_counters)
{
    metrics_inputs in = leader_inputs();
    in.storage_failed = true;
    in.node.reset();
    in.wal.reset();
    const prometheus_text t = parse_prometheus_text(render_metrics(in, http_metrics{}));
    BOOST_TEST_REQUIRE(t.errors.empty(), all_errors(t));
    BOOST_TEST(t.value("raftkv_storage_failed") == 1);
    BOOST_TEST(t.value("raftkv_is_leader") == 0);
    BOOST_TEST(t.value("raftkv_role", {{"role", "follower"}}) == 1);
    BOOST_TEST(!t.find("raftkv_proposals_committed_total"));
}

BOOST_AUTO_TEST_CASE(the_membership_gauge_says_voter_learner_or_removed_and_nothing_while_unsure)
{
    const auto membership_of = [](const metrics_inputs& in) -> std::string {
        const prometheus_text t = parse_prometheus_text(render_metrics(in, http_metrics{}));
        BOOST_TEST_REQUIRE(t.errors.empty(), all_errors(t));
        for (const char* place : {"voter", "learner", "removed"})
            if (t.find("raftkv_membership", {{"role", place}}).value_or(0) == 1)
                return place;
        return t.find("raftkv_membership", {{"role", "voter"}}) ? "none" : "absent";
    };
    metrics_inputs in = leader_inputs();
    BOOST_TEST(membership_of(in) == "voter");
    in.status.role = raftkv::role::follower;
    in.status.leader = 2;
    in.status.members.learners = {1};
    in.status.members.voters = {2, 3};
    BOOST_TEST(membership_of(in) == "learner");
    in.status.members.learners.clear(); // a configuration without it, while it follows a leader
    BOOST_TEST(membership_of(in) == "absent");
    in.status.leader = raftkv::no_node; // and following none: not known removed yet (a joiner)
    BOOST_TEST(membership_of(in) == "absent");
    in.removed = true; // the service says it was removed
    BOOST_TEST(membership_of(in) == "removed");
    in.status.members.voters = {1, 2, 3}; // a member in its log, removed as a member's list says
    BOOST_TEST(membership_of(in) == "removed");
    in.removed = false;
    in.status.members = {}; // joined, no configuration yet
    BOOST_TEST(membership_of(in) == "absent");
}

// The checker itself must be able to fail, or the tests above prove nothing.
BOOST_AUTO_TEST_CASE(format_check_rejects_what_prometheus_rejects)
{
    const auto rejected = [](const std::string& text) { return !parse_prometheus_text(text).errors.empty(); };
    BOOST_TEST(!rejected("# HELP a x\n# TYPE a gauge\na 1\n"));
    BOOST_TEST(rejected("# TYPE a gauge\na 1"));                        // no final newline
    BOOST_TEST(rejected("# TYPE a gauge\n# TYPE a gauge\na 1\n"));      // TYPE twice
    BOOST_TEST(rejected("a 1\n"));                                      // no TYPE
    BOOST_TEST(rejected("# TYPE a gauge\na{x=\"1\\t\"} 1\n"));          // bad escape
    BOOST_TEST(rejected("# TYPE a gauge\na{x=\"1\",x=\"2\"} 1\n"));     // label twice
    BOOST_TEST(rejected("# TYPE a gauge\na{1x=\"1\"} 1\n"));            // bad label name
    BOOST_TEST(rejected("# TYPE a gauge\na one\n"));                    // bad value
    BOOST_TEST(rejected("# TYPE a gauge\na 1\na 2\n"));                 // sample twice
    BOOST_TEST(rejected("# TYPE a counter\na -1\n"));                   // negative counter
    BOOST_TEST(rejected("# TYPE a gauge\n# TYPE b gauge\nb 1\na 1\n")); // family split
    const std::string h = "# TYPE h histogram\n";
    BOOST_TEST(!rejected(h + "h_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3\nh_count 2\n"));
    BOOST_TEST(rejected(
        h + "h_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 3\nh_count 1\n")); // not cumulative
    BOOST_TEST(rejected(h + "h_bucket{le=\"1\"} 1\nh_sum 3\nh_count 1\n"));          // no +Inf
    BOOST_TEST(
        rejected(h + "h_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3\nh_count 3\n")); // count differs
    BOOST_TEST(rejected(
        h + "h_bucket{le=\"2\"} 1\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 1\nh_sum 3\nh_count 1\n"));
}
