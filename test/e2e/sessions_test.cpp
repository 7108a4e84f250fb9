// Exactly-once writes with client sessions (Raftkv-Client-Id, Raftkv-Sequence) against a
// real three-node cluster: a write retried after the leader was killed, against another
// node, is applied once and answers as the first time; so does a compare-and-set; clients
// with distinct ids do not disturb each other.
#define BOOST_TEST_MODULE raftkv_e2e_sessions
#include <boost/test/unit_test.hpp>

#include "harness.hpp"
#include "three_nodes.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

namespace {

using namespace raftkv::e2e;
namespace json = boost::json;
using namespace std::chrono_literals;

std::uint64_t version_in(const http_response& r)
{
    const json::value doc = json::parse(r.body);
    return doc.at("version").to_number<std::uint64_t>();
}

header_list session(std::uint64_t client, std::uint64_t sequence, header_list more = {})
{
    more.emplace_back("Raftkv-Client-Id", std::to_string(client));
    more.emplace_back("Raftkv-Sequence", std::to_string(sequence));
    return more;
}

bool replayed(const http_response& r)
{
    const auto it = r.headers.find("raftkv-replayed");
    return it != r.headers.end() && it->second == "true";
}

/// Sends the request again while the cluster answers 503 or nothing (no leader yet), as a
/// client retrying a write whose outcome it does not know would, for up to 30 s.
http_response until_answered(std::uint16_t port, std::string_view method, const std::string& target,
                             const std::string& body, const header_list& headers)
{
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    for (;;) {
        http_response r = request(port, method, target, body, headers);
        if ((r.status != 503 && r.status != 0) || std::chrono::steady_clock::now() >= deadline)
            return r;
        std::this_thread::sleep_for(100ms);
    }
}

} // namespace

BOOST_FIXTURE_TEST_SUITE(sessions, three_nodes)

BOOST_AUTO_TEST_CASE(retries_across_a_leader_change_apply_once)
{
    const std::uint64_t client = 0x5eed5eed12345678u;
    const std::uint16_t first_port = c.http_port(followers()[0]);
    const std::uint16_t other_port = c.http_port(followers()[1]);

    // A put, and a compare-and-set, each through a follower.
    const http_response original =
        request(first_port, "PUT", kv_target("k"), value_body("one"), session(client, 1));
    BOOST_TEST_REQUIRE(original.status == 200, describe(original));
    BOOST_TEST(!replayed(original));
    const std::uint64_t v = version_in(original);
    const http_response base = put(first_port, "cas", "zero");
    BOOST_TEST_REQUIRE(base.status == 200, describe(base));
    const header_list cas_headers =
        session(client, 2, {{"If-Match", "\"" + std::to_string(version_in(base)) + "\""}});
    const http_response swapped =
        request(first_port, "PUT", kv_target("cas"), value_body("one"), cas_headers);
    BOOST_TEST_REQUIRE(swapped.status == 200, describe(swapped));
    const http_response deleted = request(first_port, "DELETE", kv_target("cas"), {}, session(client, 3));
    BOOST_TEST_REQUIRE(deleted.status == 200, describe(deleted));

    // The leader dies; the client, not knowing whether its writes happened, sends them again
    // to another node, which answers once a new leader is elected.
    c.kill9(leader);
    const http_response retried =
        until_answered(other_port, "PUT", kv_target("k"), value_body("one"), session(client, 1));
    BOOST_TEST_REQUIRE(retried.status == 200, describe(retried));
    BOOST_TEST(replayed(retried));
    BOOST_TEST(retried.body == original.body);
    BOOST_TEST(retried.headers.at("etag") == original.headers.at("etag"));
    const http_response read = until_answered(other_port, "GET", kv_target("k"), {}, {});
    BOOST_TEST_REQUIRE(read.status == 200, describe(read));
    BOOST_TEST(version_in(read) == v); // not written again

    // The compare-and-set answers its success, not 412 (its version is gone by now); the
    // delete answers 200, not 404.
    const http_response cas_again =
        until_answered(other_port, "PUT", kv_target("cas"), value_body("one"), cas_headers);
    BOOST_TEST(cas_again.status == 200, describe(cas_again));
    BOOST_TEST(replayed(cas_again));
    BOOST_TEST(cas_again.body == swapped.body);
    const http_response del_again =
        until_answered(first_port, "DELETE", kv_target("cas"), {}, session(client, 3));
    BOOST_TEST(del_again.status == 200, describe(del_again));
    BOOST_TEST(replayed(del_again));
    BOOST_TEST(del_again.body == deleted.body);

    // The killed node comes back with its table (from its own storage and log) and answers
    // alike.
    const std::uint64_t old_leader = leader;
    c.restart(old_leader);
    BOOST_TEST_REQUIRE(c.wait_healthy(old_leader, 20s));
    const http_response from_restarted =
        until_answered(c.http_port(old_leader), "PUT", kv_target("k"), value_body("one"), session(client, 1));
    BOOST_TEST(from_restarted.status == 200, describe(from_restarted));
    BOOST_TEST(replayed(from_restarted));
    BOOST_TEST(from_restarted.body == original.body);

    // A new sequence applies.
    const http_response next =
        until_answered(other_port, "PUT", kv_target("k"), value_body("two"), session(client, 4));
    BOOST_TEST_REQUIRE(next.status == 200, describe(next));
    BOOST_TEST(!replayed(next));
    BOOST_TEST(version_in(next) > v);
}

BOOST_AUTO_TEST_CASE(bad_session_headers_and_forgotten_sequences_are_refused)
{
    const std::uint16_t port = c.http_port(followers()[0]);
    for (const header_list& headers :
         std::vector<header_list>{{{"Raftkv-Client-Id", "7"}},
                                  {{"Raftkv-Sequence", "1"}},
                                  {{"Raftkv-Client-Id", "0"}, {"Raftkv-Sequence", "1"}},
                                  {{"Raftkv-Client-Id", "7"}, {"Raftkv-Sequence", "x"}}}) {
        const http_response r = request(port, "PUT", kv_target("bad"), value_body("v"), headers);
        BOOST_TEST(is_error(r, 400), describe(r));
    }
    BOOST_TEST(get(port, "bad").status == 404);

    // 40 sequences: the session remembers the 32 highest; the first is refused, not applied.
    for (std::uint64_t s = 1; s <= 40; ++s) {
        const http_response r =
            request(port, "PUT", kv_target("w"), value_body(std::to_string(s)), session(77, s));
        BOOST_TEST_REQUIRE(r.status == 200, describe(r));
    }
    const http_response stale = request(port, "PUT", kv_target("w"), value_body("1"), session(77, 1));
    BOOST_TEST(is_error(stale, 409), describe(stale));
    BOOST_TEST(parse_json(get(port, "w").body).string("value").value_or("<none>") == "40");
    BOOST_TEST(replayed(request(port, "PUT", kv_target("w"), value_body("40"), session(77, 40))));

    // Sequence 40 reused for another value, another key, a delete, a precondition: 422, not
    // applied, at the follower and at the leader alike.
    for (const auto& [p, method, key, body, more] :
         std::vector<std::tuple<std::uint16_t, std::string, std::string, std::string, header_list>>{
             {port, "PUT", "w", value_body("41"), {}},
             {c.http_port(leader), "PUT", "other", value_body("40"), {}},
             {port, "DELETE", "w", "", {}},
             {port, "PUT", "w", value_body("40"), {{"If-None-Match", "*"}}}}) {
        const http_response r = request(p, method, kv_target(key), body, session(77, 40, more));
        BOOST_TEST(is_error(r, 422), describe(r));
        BOOST_TEST(r.body.find("was applied for another request") != std::string::npos, r.body);
        BOOST_TEST(parse_json(r.body).string("client_id").value_or("") == "77");
        BOOST_TEST(!replayed(r));
    }
    BOOST_TEST(parse_json(get(port, "w").body).string("value").value_or("<none>") == "40");
    BOOST_TEST(get(port, "other").status == 404);
    BOOST_TEST(replayed(request(port, "PUT", kv_target("w"), value_body("40"), session(77, 40))));

    const http_response metrics = request(port, "GET", "/metrics");
    BOOST_TEST(metrics.body.find("\nraftkv_session_replays_total 2\n") != std::string::npos);
    BOOST_TEST(metrics.body.find("\nraftkv_session_sequence_reuses_total 3\n") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(concurrent_clients_with_distinct_ids_do_not_disturb_each_other)
{
    // Each client writes its own keys and sends every request twice, to two nodes: the first
    // answer is the write, the second its replay with the same version; the same sequence
    // numbers in other clients are theirs.
    constexpr int clients = 4;
    constexpr int writes = 10;
    std::mutex mutex;
    std::vector<std::string> failures;
    std::vector<std::thread> threads;
    for (int t = 0; t < clients; ++t) {
        threads.emplace_back([&, t] {
            const std::uint64_t client = 1000 + static_cast<std::uint64_t>(t);
            const std::uint16_t port_a = c.http_port(static_cast<std::uint64_t>(t % 3 + 1));
            const std::uint16_t port_b = c.http_port(static_cast<std::uint64_t>((t + 1) % 3 + 1));
            for (std::uint64_t s = 1; s <= writes; ++s) {
                const std::string key = "c" + std::to_string(t) + "-" + std::to_string(s);
                const std::string body = value_body("v" + std::to_string(s));
                const http_response a = request(port_a, "PUT", kv_target(key), body, session(client, s));
                const http_response b = request(port_b, "PUT", kv_target(key), body, session(client, s));
                std::lock_guard lock(mutex);
                if (a.status != 200 || replayed(a) || b.status != 200 || !replayed(b) || a.body != b.body)
                    failures.push_back(key + ": " + describe(a) + " / " + describe(b));
            }
        });
    }
    for (auto& t : threads)
        t.join();
    BOOST_TEST(failures.empty(), failures.size()
                                     << " failures, first: " << (failures.empty() ? "" : failures[0]));
    for (int t = 0; t < clients; ++t) {
        const http_response r =
            get(c.http_port(leader), "c" + std::to_string(t) + "-" + std::to_string(writes));
        BOOST_TEST(r.status == 200, describe(r));
    }
}

BOOST_AUTO_TEST_SUITE_END()
