// raftkv-server as one node: the HTTP API, bad input, concurrency, command line, signals, and
// durability across kill -9.
#define BOOST_TEST_MODULE raftkv_e2e_single_node
#include <boost/test/unit_test.hpp>

#include "harness.hpp"
#include "pipelined_kv.hpp"

#include <signal.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace {

using namespace raftkv::e2e;

/// `prefix` followed by `n`. Not "v" + std::to_string(n): GCC 12 at -O3 reports a false
/// -Wrestrict on operator+(const char*, std::string&&).
std::string numbered(const char* prefix, int n)
{
    std::string s = prefix;
    s += std::to_string(n);
    return s;
}

constexpr std::size_t mib = 1024 * 1024;

/// One running node (id 1, its own ports and data directory), healthy before the test starts.
struct one_node {
    cluster c{1};
    std::uint16_t port = c.http_port(1);

    one_node() { BOOST_TEST_REQUIRE(c.wait_healthy(1, 20s), "the node never reported /health 200"); }

    /// The node still stores and serves data after whatever the test just did to it.
    void check_still_serving(const std::string& after)
    {
        static int n = 0;
        const std::string key = "sentinel-" + std::to_string(++n);
        auto p = put(port, key, after);
        BOOST_TEST(p.status == 200, "PUT after " << after << ": " << describe(p));
        auto g = get(port, key);
        BOOST_TEST(g.status == 200, "GET after " << after << ": " << describe(g));
        BOOST_TEST(parse_json(g.body).string("value").value_or("<none>") == after);
        BOOST_TEST_REQUIRE(c.running(1), "the server died after " << after);
    }
};

std::string repeat(std::string_view s, std::size_t n)
{
    std::string out;
    out.reserve(s.size() * n);
    for (std::size_t i = 0; i < n; ++i)
        out += s;
    return out;
}

} // namespace

// ---------------------------------------------------------------------------------------
BOOST_FIXTURE_TEST_SUITE(api, one_node)

BOOST_AUTO_TEST_CASE(put_get_delete_round_trip_with_spec_bodies)
{
    auto p = put(port, "alpha", "one");
    BOOST_TEST_REQUIRE(p.status == 200, describe(p));
    auto pj = parse_json(p.body);
    BOOST_TEST(pj.is_object);
    BOOST_TEST(pj.string("key").value_or("<none>") == "alpha");
    BOOST_TEST(pj.string("value").value_or("<none>") == "one");
    BOOST_TEST(pj.string("message").value_or("<none>") == "Key-value pair stored successfully");
    BOOST_TEST(p.headers["content-type"].find("application/json") != std::string::npos,
               "PUT Content-Type: " << p.headers["content-type"]);

    auto g = get(port, "alpha");
    BOOST_TEST_REQUIRE(g.status == 200, describe(g));
    auto gj = parse_json(g.body);
    BOOST_TEST(gj.string("key").value_or("<none>") == "alpha");
    BOOST_TEST(gj.string("value").value_or("<none>") == "one");
    BOOST_TEST(g.headers["content-type"].find("application/json") != std::string::npos);

    auto d = del(port, "alpha");
    BOOST_TEST_REQUIRE(d.status == 200, describe(d));
    auto dj = parse_json(d.body);
    BOOST_TEST(dj.string("key").value_or("<none>") == "alpha");
    BOOST_TEST(dj.string("message").has_value(), "DELETE body has no string \"message\": " << d.body);

    auto g2 = get(port, "alpha");
    BOOST_TEST(is_error(g2, 404), "GET after DELETE: " << describe(g2));
}

BOOST_AUTO_TEST_CASE(absent_key_gets_404_with_json_error_for_get_and_delete)
{
    auto g = get(port, "never-written");
    BOOST_TEST(is_error(g, 404), describe(g));
    auto d = del(port, "never-written");
    BOOST_TEST(is_error(d, 404), describe(d));
    BOOST_TEST(put(port, "twice", "x").status == 200);
    BOOST_TEST(del(port, "twice").status == 200);
    auto d2 = del(port, "twice");
    BOOST_TEST(is_error(d2, 404), "second DELETE: " << describe(d2));
}

BOOST_AUTO_TEST_CASE(overwrite_returns_latest_value)
{
    for (int i = 0; i < 5; ++i) {
        auto p = put(port, "k", numbered("v", i));
        BOOST_TEST_REQUIRE(p.status == 200, describe(p));
        auto g = get(port, "k");
        BOOST_TEST(parse_json(g.body).string("value").value_or("<none>") == numbered("v", i));
    }
    BOOST_TEST(put(port, "k", "").status == 200);
    auto g = get(port, "k");
    BOOST_TEST(g.status == 200, describe(g));
    BOOST_TEST(parse_json(g.body).string("value").value_or("<none>") == "", "empty value: " << g.body);
}

BOOST_AUTO_TEST_CASE(url_encoded_keys_with_spaces_unicode_and_slashes_round_trip)
{
    const std::vector<std::string> keys = {
        "with space",     "a/b/c",
        "/leading-slash", "trailing/",
        "ключ-键-🔑",      "per%cent",
        "plus+sign",      "query?x=1&y=2",
        "hash#frag",      "quote\"and'apostrophe",
        "tab\there",      "colon:semi;comma,",
        "~.-_",
    };
    for (const auto& k : keys) {
        const std::string v = "value of " + k;
        auto p = put(port, k, v);
        BOOST_TEST(p.status == 200, "PUT " << kv_target(k) << ": " << describe(p));
        BOOST_TEST(parse_json(p.body).string("key").value_or("<none>") == k, "PUT echo key: " << p.body);
    }
    for (const auto& k : keys) {
        auto g = get(port, k);
        BOOST_TEST(g.status == 200, "GET " << kv_target(k) << ": " << describe(g));
        auto j = parse_json(g.body);
        BOOST_TEST(j.string("key").value_or("<none>") == k, "GET " << kv_target(k) << ": " << g.body);
        BOOST_TEST(j.string("value").value_or("<none>") == "value of " + k);
    }
    // Keys are stored decoded: the same key spelled with needless percent-escapes is the same key.
    auto g = request(port, "GET", "/kv/%61%6C%70%68%61-%73%70%61%63%65"); // "alpha-space"
    BOOST_TEST(is_error(g, 404), describe(g));
    BOOST_TEST(put(port, "alpha-space", "x").status == 200);
    g = request(port, "GET", "/kv/%61%6C%70%68%61-%73%70%61%63%65");
    BOOST_TEST(g.status == 200, describe(g));
    // An unencoded slash is part of the key too: /kv/dir/file is the key "dir/file".
    BOOST_TEST(request(port, "PUT", "/kv/dir/file", value_body("raw slash")).status == 200);
    g = get(port, "dir/file");
    BOOST_TEST(parse_json(g.body).string("value").value_or("<none>") == "raw slash", describe(g));
    for (const auto& k : keys) {
        auto d = del(port, k);
        BOOST_TEST(d.status == 200, "DELETE " << kv_target(k) << ": " << describe(d));
        BOOST_TEST(is_error(get(port, k), 404), "GET after DELETE " << kv_target(k));
    }
}

BOOST_AUTO_TEST_CASE(values_with_json_escapes_and_unicode_round_trip)
{
    const std::vector<std::string> values = {
        "quote \" backslash \\ slash /", "newline\nreturn\rtab\t", std::string("nul\0byte", 8),
        "\x01\x02\x1f control",          "unicode é ключ 键 🔑",    "{\"looks\": \"like json\"}",
        std::string(1000, 'x'),
    };
    for (std::size_t i = 0; i < values.size(); ++i) {
        const std::string key = "escaped-" + std::to_string(i);
        auto p = put(port, key, values[i]);
        BOOST_TEST(p.status == 200, "value #" << i << ": " << describe(p));
        auto g = get(port, key);
        BOOST_TEST(g.status == 200, describe(g));
        BOOST_TEST(parse_json(g.body).string("value").value_or("<none>") == values[i], "value #" << i);
    }
}

BOOST_AUTO_TEST_CASE(key_limit_is_1024_decoded_bytes)
{
    const std::string k1024(1024, 'k');
    const std::string k1025(1025, 'k');
    auto p = put(port, k1024, "ok");
    BOOST_TEST(p.status == 200, "1024-byte key: " << describe(p));
    BOOST_TEST(get(port, k1024).status == 200);
    BOOST_TEST(del(port, k1024).status == 200);

    auto too_long = put(port, k1025, "no");
    BOOST_TEST(is_error(too_long, 413), "PUT 1025-byte key: " << describe(too_long));
    auto g = get(port, k1025);
    BOOST_TEST(is_error(g, 413), "GET 1025-byte key: " << describe(g));
    auto d = del(port, k1025);
    BOOST_TEST(is_error(d, 413), "DELETE 1025-byte key: " << describe(d));

    // 512 two-byte characters: 1024 bytes decoded, 3072 characters in the URL.
    const std::string wide = repeat("é", 512);
    auto pw = put(port, wide, "wide");
    BOOST_TEST(pw.status == 200, "1024-byte UTF-8 key (3072 URL characters): " << describe(pw));
    auto gw = get(port, wide);
    BOOST_TEST(gw.status == 200, describe(gw));
    auto pw2 = put(port, wide + "x", "no");
    BOOST_TEST(is_error(pw2, 413), "1025-byte UTF-8 key: " << describe(pw2));
    check_still_serving("long keys");
}

BOOST_AUTO_TEST_CASE(value_of_exactly_1mib_is_stored_and_one_byte_more_is_413)
{
    std::string v(mib, 'v');
    v.front() = '<';
    v.back() = '>';
    auto p = put(port, "big", v, 20s);
    BOOST_TEST_REQUIRE(p.status == 200, "1 MiB value: " << describe(p));
    auto g = get(port, "big", 20s);
    BOOST_TEST_REQUIRE(g.status == 200, describe(g));
    BOOST_TEST((parse_json(g.body).string("value").value_or("") == v), "1 MiB value did not round-trip");

    auto over = put(port, "too-big", v + "!", 20s);
    BOOST_TEST(is_error(over, 413), "1 MiB + 1 value: " << describe(over));
    BOOST_TEST(is_error(get(port, "too-big"), 404), "a refused value was stored");
    auto way_over = put(port, "too-big", std::string(4 * mib, 'w'), 20s);
    BOOST_TEST((way_over.status == 413 || way_over.status == 0), "4 MiB value: " << describe(way_over));
    BOOST_TEST(is_error(get(port, "too-big"), 404), "a refused value was stored");
    // The 1 MiB value is still intact.
    BOOST_TEST((parse_json(get(port, "big", 20s).body).string("value").value_or("") == v));
    check_still_serving("oversize values");
}

BOOST_AUTO_TEST_CASE(value_limit_counts_value_bytes_not_json_text)
{
    // 1 MiB of '"' is 2 MiB of JSON ("\""), and 1 MiB of U+0001 is 6 MiB ("\u0001"):
    // both values are exactly at the limit and must be accepted.
    for (const char c : {'"', '\x01'}) {
        const std::string v(mib, c);
        auto p = put(port, "escaped-big", v, 30s);
        BOOST_TEST(p.status == 200, "1 MiB value of char " << int(c) << " (" << value_body(v).size()
                                                           << " bytes of JSON): " << describe(p));
        auto g = get(port, "escaped-big", 30s);
        if (p.status == 200)
            BOOST_TEST((parse_json(g.body).string("value").value_or("") == v));
    }
    check_still_serving("escaped big values");
}

BOOST_AUTO_TEST_CASE(malformed_bodies_get_400_and_the_server_keeps_serving)
{
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"empty body", ""},
        {"truncated JSON", "{\"value\": "},
        {"not JSON", "value=abc"},
        {"trailing garbage", "{\"value\": \"a\"} x"},
        {"array", "[\"value\", \"a\"]"},
        {"string", "\"a\""},
        {"number", "42"},
        {"null", "null"},
        {"missing value", "{}"},
        {"wrong member", "{\"val\": \"a\"}"},
        {"number value", "{\"value\": 5}"},
        {"null value", "{\"value\": null}"},
        {"bool value", "{\"value\": true}"},
        {"object value", "{\"value\": {\"a\": \"b\"}}"},
        {"array value", "{\"value\": [\"a\"]}"},
        {"invalid UTF-8 escape", "{\"value\": \"\\uZZZZ\"}"},
        {"deep nesting", std::string(100000, '[') + std::string(100000, ']')},
    };
    for (const auto& [name, body] : cases) {
        auto r = request(port, "PUT", "/kv/malformed", body);
        BOOST_TEST(is_error(r, 400), name << ": " << describe(r));
        BOOST_TEST_REQUIRE(c.running(1), "the server died on: " << name);
    }
    BOOST_TEST(is_error(get(port, "malformed"), 404), "a malformed PUT stored something");
    check_still_serving("malformed bodies");
}

BOOST_AUTO_TEST_CASE(empty_key_is_refused)
{
    for (const char* method : {"PUT", "GET", "DELETE"}) {
        auto r = request(port, method, "/kv/", method == std::string("PUT") ? value_body("x") : "");
        BOOST_TEST((is_error(r, 400) || is_error(r, 404)), method << " /kv/: " << describe(r));
    }
    check_still_serving("empty keys");
}

BOOST_AUTO_TEST_CASE(unknown_routes_get_404)
{
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"GET", "/"},        {"GET", "/nope"},     {"GET", "/kvs"},     {"GET", "/kvx/a"},
        {"GET", "/statusx"}, {"GET", "/status/x"}, {"GET", "/healthz"}, {"POST", "/nope"},
        {"DELETE", "/nope"}, {"GET", "/KV/a"},
    };
    for (const auto& [method, target] : cases) {
        auto r = request(port, method, target);
        BOOST_TEST(is_error(r, 404), method << " " << target << ": " << describe(r));
    }
    check_still_serving("unknown routes");
}

BOOST_AUTO_TEST_CASE(wrong_method_on_known_route_gets_405)
{
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"POST", "/kv/a"},   {"PATCH", "/kv/a"},    {"PUT", "/status"},
        {"POST", "/status"}, {"DELETE", "/status"}, {"PUT", "/health"},
        {"POST", "/health"}, {"DELETE", "/health"}, {"POST", "/kv"},
    };
    for (const auto& [method, target] : cases) {
        auto r = request(port, method, target, method == "GET" ? "" : value_body("x"));
        BOOST_TEST(is_error(r, 405), method << " " << target << ": " << describe(r));
        BOOST_TEST(r.headers.count("allow") == 1u, method << " " << target << ": 405 without Allow");
    }
    BOOST_TEST(is_error(get(port, "a"), 404), "a POST/PATCH stored a value");
    check_still_serving("wrong methods");
}

BOOST_AUTO_TEST_CASE(removing_the_only_voter_is_refused_and_says_why)
{
    const http_response r = request(port, "DELETE", "/cluster/members/1");
    BOOST_TEST(is_error(r, 409), describe(r));
    BOOST_TEST(r.body.find("is the only voter") != std::string::npos, describe(r));
    check_still_serving("removing the only voter");
}

BOOST_AUTO_TEST_CASE(garbage_on_http_port_gets_400_or_close_and_the_server_keeps_serving)
{
    std::mt19937_64 rng(42);
    std::string random_bytes(64 * 1024, '\0');
    for (auto& ch : random_bytes)
        ch = static_cast<char>(rng());
    const std::string put_head = "PUT /kv/lie HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n";
    struct garbage {
        std::string name, bytes;
        bool half_close;
    };
    const std::vector<garbage> cases = {
        {"random bytes", random_bytes, false},
        {"binary then blank line", std::string("\x00\x01\x02\xff garbage\r\n\r\n", 17), false},
        {"not HTTP", "hello there\r\n\r\n", false},
        {"bad HTTP version", "GET /status HTTP/9.9\r\n\r\n", false},
        {"non-numeric Content-Length", "PUT /kv/lie HTTP/1.1\r\nContent-Length: abc\r\n\r\n", false},
        {"Content-Length longer than the body", put_head + "Content-Length: 1000\r\n\r\n{\"value\": \"a\"}",
         true},
        {"Content-Length shorter than the body", put_head + "Content-Length: 5\r\n\r\n{\"value\": \"a\"}",
         true},
        {"huge Content-Length", put_head + "Content-Length: 99999999999999\r\n\r\n{\"value\": \"a\"}", true},
        {"bad chunk size", put_head + "Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n", true},
        {"1 MiB header", "GET /status HTTP/1.1\r\nX-Big: " + std::string(mib, 'a') + "\r\n\r\n", false},
        {"request line without end", "PUT /kv/lie HTTP/1.1", true},
        {"headers without end", put_head + "Content-Length: 14", true},
        {"body without headers end", put_head + "Content-Length: 14\r\n{\"value\": \"a\"}", true},
    };
    for (const auto& g : cases) {
        auto r = send_raw(port, g.bytes, 5s, g.half_close);
        BOOST_TEST(r.connected, g.name << ": could not connect");
        // Either nothing came back, or every response is a 4xx/505, and then the server closed.
        bool only_errors = true;
        for (std::size_t at = r.received.find("HTTP/1."); at != std::string::npos;
             at = r.received.find("HTTP/1.", at + 1)) {
            const auto code = r.received.substr(at + 9, 3);
            if (!(code[0] == '4' || code == "505"))
                only_errors = false;
        }
        BOOST_TEST(only_errors, g.name << ": got " << r.received.substr(0, 300));
        BOOST_TEST(r.closed,
                   g.name << ": connection still open after 5 s; got " << r.received.substr(0, 300));
        BOOST_TEST_REQUIRE(c.running(1), "the server died on: " << g.name);
    }
    BOOST_TEST(is_error(get(port, "lie"), 404), "a lying request stored a value");
    check_still_serving("garbage on the HTTP port");
}

BOOST_AUTO_TEST_CASE(pipelined_chunked_and_expect_continue_requests_are_served)
{
    const std::string pipelined =
        "GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
        "PUT /kv/pipe HTTP/1.1\r\nHost: x\r\nContent-Length: 16\r\n\r\n{\"value\":\"pipe\"}"
        "GET /kv/pipe HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    auto r = send_raw(port, pipelined, 5s);
    std::size_t oks = 0;
    for (auto at = r.received.find("HTTP/1.1 200"); at != std::string::npos;
         at = r.received.find("HTTP/1.1 200", at + 1))
        ++oks;
    BOOST_TEST(oks == 3u, "three pipelined requests: " << r.received);
    BOOST_TEST(r.received.find("\"value\":\"pipe\"") != std::string::npos, r.received);
    BOOST_TEST(r.closed, "Connection: close was not honoured");

    const std::string chunked = "PUT /kv/chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                                "Connection: close\r\n\r\n8\r\n{\"value\"\r\nb\r\n:\"chunked\"}\r\n0\r\n\r\n";
    r = send_raw(port, chunked, 5s);
    BOOST_TEST(r.received.rfind("HTTP/1.1 200", 0) == 0u, "chunked PUT: " << r.received);
    BOOST_TEST(parse_json(get(port, "chunked").body).string("value").value_or("<none>") == "chunked");

    const std::string body = value_body(std::string(5000, 'e'));
    const std::string expect =
        "PUT /kv/expect HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: " +
        std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
    r = send_raw(port, expect, 5s);
    BOOST_TEST(r.received.find("HTTP/1.1 200") != std::string::npos, "Expect: 100-continue: " << r.received);
    BOOST_TEST(parse_json(get(port, "expect").body).string("value").value_or("") == std::string(5000, 'e'));

    // Refused whatever the body: answered at once, without a 100 Continue (the header alone
    // is sent, as a client waiting for the 100 does).
    for (const auto& [request, status] : std::vector<std::pair<std::string, std::string>>{
             {"PUT /kv/x?ttl=5", "400"}, {"POST /kv/x", "405"}, {"PUT /nowhere", "404"}}) {
        r = send_raw(
            port, request + " HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 13\r\n\r\n", 5s);
        BOOST_TEST(r.received.rfind("HTTP/1.1 " + status, 0) == 0u, request << ": " << r.received);
        BOOST_TEST(r.received.find("100 Continue") == std::string::npos, request << ": " << r.received);
        BOOST_TEST(r.closed, request);
    }
    // HTTP/1.0 knows no interim responses: the body is sent with the header, and only the
    // answer comes back.
    r = send_raw(
        port, "PUT /kv/old HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 15\r\n\r\n{\"value\":\"old\"}",
        5s);
    BOOST_TEST(r.received.rfind("HTTP/1.0 200", 0) == 0u, "HTTP/1.0 with Expect: " << r.received);
    BOOST_TEST(r.received.find("100 Continue") == std::string::npos, r.received);
    // A 1.0 request refused by the server itself is answered in 1.0 too.
    r = send_raw(port, "PUT /kv/old HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 5s);
    BOOST_TEST(r.received.rfind("HTTP/1.0 400", 0) == 0u, "HTTP/1.0 with Transfer-Encoding: " << r.received);
}

BOOST_AUTO_TEST_CASE(twenty_pipelined_requests_and_a_malformed_one_are_answered_in_order)
{
    const pipelined_kv scenario("pipe20-");
    auto r = send_raw(port, scenario.bytes(), 10s);
    for (const auto& problem : scenario.check(parse_responses(r.received)))
        BOOST_ERROR(problem);
    BOOST_TEST(r.closed, "the connection stayed open after the malformed request");
    check_still_serving("twenty pipelined requests");
}

// Each PUT is answered once its entry is durable. Sixteen PUTs sent one after another on a
// keep-alive connection wait for sixteen syncs of the log; pipelined on one connection and
// handled concurrently, they share one or two. Timing on a shared machine is noisy, so the
// bound is loose (half the one-at-a-time time) and the best of three tries counts.
BOOST_AUTO_TEST_CASE(sixteen_pipelined_puts_take_about_one_commit_round_not_sixteen)
{
    using std::chrono::duration;
    using std::chrono::steady_clock;
    constexpr int puts = 16;
    http_client client(port);
    BOOST_TEST_REQUIRE(client.request("PUT", kv_target("warm-up"), value_body("x")).status == 200);
    double best_ratio = 1e9;
    for (int attempt = 0; attempt < 3 && best_ratio >= 0.5; ++attempt) {
        const auto key = [&](int i) { return "round-" + std::to_string(attempt) + "-" + std::to_string(i); };
        auto start = steady_clock::now();
        for (int i = 0; i < puts; ++i)
            BOOST_TEST_REQUIRE(client.request("PUT", kv_target(key(i) + "-seq"), value_body("v")).status ==
                               200);
        const duration<double, std::milli> one_at_a_time = steady_clock::now() - start;

        std::string pipeline;
        for (int i = 0; i < puts; ++i) {
            const std::string body = value_body("v");
            pipeline += "PUT " + kv_target(key(i) + "-pipe") +
                        " HTTP/1.1\r\nHost: x\r\nContent-Length: " + std::to_string(body.size()) +
                        (i + 1 == puts ? "\r\nConnection: close" : "") + "\r\n\r\n" + body;
        }
        start = steady_clock::now();
        const raw_result r = send_raw(port, pipeline, 10s);
        const duration<double, std::milli> pipelined = steady_clock::now() - start;
        const auto responses = parse_responses(r.received);
        BOOST_TEST_REQUIRE(responses.size() == std::size_t{puts}, r.received.substr(0, 300));
        for (const auto& res : responses)
            BOOST_TEST_REQUIRE(res.status == 200, describe(res));
        BOOST_TEST_MESSAGE("16 PUTs one at a time: " << one_at_a_time.count()
                                                     << " ms; pipelined: " << pipelined.count() << " ms");
        best_ratio = std::min(best_ratio, pipelined / one_at_a_time);
    }
    BOOST_TEST(best_ratio < 0.5,
               "pipelined PUTs took " << best_ratio << " of the time of PUTs one at a time: not concurrent");
}

BOOST_AUTO_TEST_CASE(idle_and_half_sent_connections_do_not_block_other_clients)
{
    std::vector<raw_connection> idle;
    for (int i = 0; i < 100; ++i) {
        idle.emplace_back(port);
        if (i % 2 == 0)
            idle.back().send("PUT /kv/slow HTTP/1.1\r\nContent-Length: 100\r\n\r\n{\"val");
    }
    int connected = 0;
    for (const auto& conn : idle)
        connected += conn.connected() ? 1 : 0;
    BOOST_TEST(connected == 100);
    const auto start = std::chrono::steady_clock::now();
    check_still_serving("100 idle connections");
    BOOST_TEST((std::chrono::steady_clock::now() - start < 3s));
}

BOOST_AUTO_TEST_CASE(status_and_health_have_the_spec_shape)
{
    auto h = request(port, "GET", "/health");
    BOOST_TEST(h.status == 200, describe(h));

    auto r = request(port, "GET", "/status");
    BOOST_TEST_REQUIRE(r.status == 200, describe(r));
    BOOST_TEST(r.headers["content-type"].find("application/json") != std::string::npos);
    std::string why;
    auto st = parse_status(r.body, &why);
    BOOST_TEST_REQUIRE(st.has_value(), why);
    BOOST_TEST(st->id == 1u);
    BOOST_TEST(st->role == "leader");
    BOOST_TEST(st->leader.value_or(0) == 1);
    BOOST_TEST(st->term >= 1u);
    BOOST_TEST(st->applied_index <= st->commit_index);
    BOOST_TEST(st->commit_index <= st->last_index);
    BOOST_TEST_REQUIRE(st->members.size() == 1u, r.body);
    BOOST_TEST(st->members[0].id == 1u);
    BOOST_TEST(st->members[0].raft == c.spec(1).raft_address());
    BOOST_TEST(st->members[0].http.value_or("<null>") == c.spec(1).http_address());
}

BOOST_AUTO_TEST_CASE(version_answers_what_the_binary_was_built_from)
{
    auto r = request(port, "GET", "/version");
    BOOST_TEST_REQUIRE(r.status == 200, describe(r));
    BOOST_TEST(r.headers["content-type"].find("application/json") != std::string::npos);
    const json_body body = parse_json(r.body);
    BOOST_TEST_REQUIRE(body.is_object, r.body);
    BOOST_TEST(body.kind.size() == 3u, r.body);
    const std::string version = body.string("version").value_or("");
    const std::string commit = body.string("commit").value_or("");
    BOOST_TEST(!version.empty(), r.body);
    BOOST_TEST(!commit.empty(), r.body);
    BOOST_TEST(!body.string("build_type").value_or("").empty(), r.body);

    // The same build as --version reports.
    temp_dir dir;
    auto v = run_server({"--version"}, 10s, dir.path());
    BOOST_TEST_REQUIRE(v.status.has_value(), "--version did not exit within 10 s");
    BOOST_TEST((v.status->exited && v.status->code == 0), *v.status);
    BOOST_TEST(v.out == "raftkv-server " + version + " (" + commit + ")\n");
    BOOST_TEST(v.err.empty(), v.err);

    for (const char* method : {"PUT", "POST", "DELETE"}) {
        auto w = request(port, method, "/version");
        BOOST_TEST(is_error(w, 405), method << ": " << describe(w));
        BOOST_TEST(w.headers["allow"] == "GET, HEAD", method);
    }
}

// Every route that answers GET answers HEAD (RFC 9110 9.3.2): a load balancer's health check
// or a monitor that looks at the status alone.
BOOST_AUTO_TEST_CASE(head_answers_every_get_route_without_the_body)
{
    BOOST_TEST_REQUIRE(put(port, "h", "value").status == 200);
    for (const char* target : {"/status", "/health", "/livez", "/readyz", "/version", "/metrics",
                               "/kv?prefix=h", "/kv/h", "/cluster/members", "/cluster/status", "/ui"}) {
        http_response head = request(port, "HEAD", target);
        BOOST_TEST(head.status == 200, target << ": " << describe(head));
        BOOST_TEST(head.body.empty(), target);
        BOOST_TEST(!head.headers["content-length"].empty(), target);
        BOOST_TEST(head.headers["content-type"] == request(port, "GET", target).headers["content-type"],
                   target);
    }
    // Answers that do not change between two requests have the GET's length.
    for (const char* target : {"/livez", "/version", "/kv/h"})
        BOOST_TEST(request(port, "HEAD", target).headers["content-length"] ==
                       std::to_string(request(port, "GET", target).body.size()),
                   target);
    http_response watch = request(port, "HEAD", "/watch/h");
    BOOST_TEST(watch.status == 405, describe(watch));
    BOOST_TEST(watch.headers["allow"] == "GET");
    check_still_serving("HEAD requests");
}

BOOST_AUTO_TEST_CASE(threads_are_named_for_top_and_perf)
{
    // The default two I/O threads: the first keeps the process's name (pgrep matches it),
    // the other is raftkv-io; the log syncs on raftkv-wal. LevelDB's own thread, once
    // started, has the name of the thread that started it.
    std::multiset<std::string> names;
    for (const auto& task :
         std::filesystem::directory_iterator("/proc/" + std::to_string(c.pid(1)) + "/task")) {
        std::ifstream comm(task.path() / "comm");
        std::string name;
        std::getline(comm, name);
        names.insert(name);
    }
    BOOST_TEST(names.count("raftkv-server") >= 1u);
    BOOST_TEST(names.count("raftkv-io") >= 1u);
    BOOST_TEST(names.count("raftkv-wal") == 1u);
    BOOST_TEST(names.size() <= 4u);
}

BOOST_AUTO_TEST_CASE(commit_and_applied_indexes_advance_with_writes)
{
    auto before = get_status(port);
    BOOST_TEST_REQUIRE(before.has_value());
    for (int i = 0; i < 10; ++i)
        BOOST_TEST_REQUIRE(put(port, "idx-" + std::to_string(i), "v").status == 200);
    auto after = get_status(port);
    BOOST_TEST_REQUIRE(after.has_value());
    BOOST_TEST(after->commit_index >= before->commit_index + 10);
    BOOST_TEST(after->applied_index >= before->applied_index + 10, "a 200 PUT must be applied");
    BOOST_TEST(after->last_index >= after->commit_index);
}

BOOST_AUTO_TEST_CASE(sixteen_keep_alive_clients_times_fifty_requests_all_succeed)
{
    constexpr int threads = 16, rounds = 25; // each round: one PUT and one GET
    std::atomic<int> ok{0};
    std::mutex m;
    std::vector<std::string> failures;
    std::vector<int> connections(threads);
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t) {
        pool.emplace_back([&, t] {
            http_client client(port);
            for (int i = 0; i < rounds; ++i) {
                const auto key = "conc-" + std::to_string(t) + "-" + std::to_string(i % 5);
                const auto value = numbered("v", i);
                auto p = client.request("PUT", kv_target(key), value_body(value), 10s);
                auto g = client.request("GET", kv_target(key), {}, 10s);
                const bool good = p.status == 200 && g.status == 200 &&
                                  parse_json(g.body).string("value").value_or("") == value;
                if (good) {
                    ok += 2;
                } else {
                    std::lock_guard lock(m);
                    failures.push_back(key + ": PUT " + describe(p) + "; GET " + describe(g));
                }
            }
            connections[t] = client.connections_opened();
        });
    }
    for (auto& th : pool)
        th.join();
    BOOST_TEST(ok.load() == threads * rounds * 2);
    for (const auto& f : failures)
        BOOST_TEST_MESSAGE("failed: " << f);
    int reconnects = 0;
    for (int n : connections)
        reconnects += n - 1;
    BOOST_WARN_MESSAGE(reconnects == 0,
                       "the server closed kept-alive connections " << reconnects << " times");
}

BOOST_AUTO_TEST_SUITE_END()

// ---------------------------------------------------------------------------------------
BOOST_AUTO_TEST_SUITE(command_line)

namespace {

/// Flags that keep a run away from the default ports and the working directory.
std::vector<std::string> safe_flags(const temp_dir& dir)
{
    const auto ports = free_ports(2);
    return {"--data-dir", (dir / "data").string(),
            "--http",     "127.0.0.1:" + std::to_string(ports[0]),
            "--raft",     "127.0.0.1:" + std::to_string(ports[1])};
}

void check_exit_2_with_one_line(const std::string& name, const std::vector<std::string>& args,
                                const temp_dir& dir)
{
    auto r = run_server(args, 10s, dir.path());
    BOOST_TEST_REQUIRE(r.status.has_value(), name << ": still running after 10 s (bad value accepted?)");
    BOOST_TEST((r.status->exited && r.status->code == 2), name << ": " << *r.status << ", stderr: " << r.err);
    const auto newlines = std::count(r.err.begin(), r.err.end(), '\n');
    BOOST_TEST((newlines == 1 && r.err.size() > 1 && r.err.back() == '\n'),
               name << ": stderr is not exactly one line: [" << r.err << "]");
}

} // namespace

BOOST_AUTO_TEST_CASE(help_exits_0_and_prints_usage)
{
    temp_dir dir;
    auto r = run_server({"--help"}, 10s, dir.path());
    BOOST_TEST_REQUIRE(r.status.has_value(), "--help did not exit within 10 s");
    BOOST_TEST((r.status->exited && r.status->code == 0), *r.status);
    const auto text = r.out + r.err;
    for (const char* flag : {"--id", "--data-dir", "--http", "--raft", "--peers", "--config", "--help"})
        BOOST_TEST(text.find(flag) != std::string::npos, "--help does not mention " << flag << ": " << text);
    BOOST_TEST(!std::filesystem::exists(dir / "raftkv-data"), "--help created a data directory");
}

BOOST_AUTO_TEST_CASE(version_exits_0_with_one_line_even_after_a_bad_flag)
{
    temp_dir dir;
    auto r = run_server({"--bogus", "--version"}, 10s, dir.path());
    BOOST_TEST_REQUIRE(r.status.has_value(), "--version did not exit within 10 s");
    BOOST_TEST((r.status->exited && r.status->code == 0), *r.status);
    BOOST_TEST(r.out.starts_with("raftkv-server "), r.out);
    BOOST_TEST(std::count(r.out.begin(), r.out.end(), '\n') == 1, r.out);
    BOOST_TEST(!std::filesystem::exists(dir / "raftkv-data"), "--version created a data directory");
}

BOOST_AUTO_TEST_CASE(bad_flags_exit_2_with_one_line_on_stderr)
{
    temp_dir dir;
    const auto safe = safe_flags(dir);
    const auto raft = safe[5];
    auto with = [&](std::vector<std::string> extra) {
        auto args = safe;
        args.insert(args.end(), extra.begin(), extra.end());
        return args;
    };
    const std::vector<std::pair<std::string, std::vector<std::string>>> cases = {
        {"unknown flag", with({"--bogus"})},
        {"unknown flag with value", with({"--bogus", "1"})},
        {"positional argument", with({"extra"})},
        {"--id without value", with({"--id"})},
        {"--id not a number", with({"--id", "abc"})},
        {"--id negative", with({"--id", "-3"})},
        {"--id zero", with({"--id", "0"})},
        {"--id with trailing junk", with({"--id", "1x"})},
        {"--http without port", {"--data-dir", (dir / "d").string(), "--http", "127.0.0.1", "--raft", raft}},
        {"--http port out of range",
         {"--data-dir", (dir / "d").string(), "--http", "127.0.0.1:99999", "--raft", raft}},
        {"--http port not a number",
         {"--data-dir", (dir / "d").string(), "--http", "127.0.0.1:http", "--raft", raft}},
        {"--http bad address",
         {"--data-dir", (dir / "d").string(), "--http", "999.1.2.3:8080", "--raft", raft}},
        {"--raft without port", with({"--raft", "127.0.0.1:"})},
        {"--peers garbage", with({"--peers", "garbage"})},
        {"--peers bad port", with({"--peers", "1=127.0.0.1:x"})},
        {"--peers duplicate id", with({"--peers", "1=" + raft + ",1=127.0.0.1:1"})},
        {"--peers without this node", with({"--id", "2", "--peers", "1=" + raft})},
        {"--snapshot-entries negative", with({"--snapshot-entries", "-1"})},
        {"--snapshot-entries too large", with({"--snapshot-entries", "1000000001"})},
        {"--snapshot-catchup-entries not a number", with({"--snapshot-catchup-entries", "some"})},
        {"--config missing file", with({"--config", (dir / "nope.yaml").string()})},
        {"--data-dir without value", {"--data-dir"}},
    };
    for (const auto& [name, args] : cases)
        check_exit_2_with_one_line(name, args, dir);
}

BOOST_AUTO_TEST_CASE(bad_config_files_exit_2_with_one_line_on_stderr)
{
    temp_dir dir;
    const auto ports = free_ports(2);
    const std::string good = "data-dir: " + (dir / "data").string() +
                             "\nhttp: 127.0.0.1:" + std::to_string(ports[0]) +
                             "\nraft: 127.0.0.1:" + std::to_string(ports[1]) + "\n";
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"YAML syntax error", good + "id: [unclosed\n"},
        {"bad indentation", good + "id: 1\n  bad: indent\n x: y\n"},
        {"a list, not a map", "- id\n- 1\n"},
        {"id not a number", good + "id: abc\n"},
        {"id a list", good + "id: [1, 2]\n"},
        {"http without port", "id: 1\ndata-dir: " + (dir / "data").string() +
                                  "\nhttp: nonsense\nraft: 127.0.0.1:" + std::to_string(ports[1]) + "\n"},
        {"unknown key", good + "id: 1\nbogus: 1\n"},
        {"snapshot-entries not a number", good + "snapshot-entries: often\n"},
        {"binary junk", std::string("\x00\xff\xfe garbage \x01", 13)},
    };
    int i = 0;
    for (const auto& [name, text] : cases) {
        const auto file = dir / ("config-" + std::to_string(i++) + ".yaml");
        std::ofstream(file, std::ios::binary) << text;
        check_exit_2_with_one_line("config with " + name, {"--config", file.string()}, dir);
    }
}

BOOST_AUTO_TEST_CASE(config_file_sets_every_key)
{
    temp_dir dir;
    const auto ports = free_ports(2);
    const auto file = dir / "raftkv.yaml";
    std::ofstream(file) << "# raftkv-server configuration\n"
                        << "id: 1\n"
                        << "data-dir: " << (dir / "data").string() << "\n"
                        << "http: 127.0.0.1:" << ports[0] << "\n"
                        << "raft: 127.0.0.1:" << ports[1] << "\n"
                        << "peers: 1=127.0.0.1:" << ports[1] << "\n";
    process p({"--config", file.string()},
              {.program = {}, .stdout_file = dir / "log", .stderr_file = {}, .cwd = dir.path()});
    const bool healthy =
        wait_until([&] { return request(ports[0], "GET", "/health", {}, 1s).status == 200; }, 20s);
    BOOST_TEST(healthy, "not healthy on the configured port; log: " << read_tail(dir / "log"));
    if (healthy) {
        BOOST_TEST(put(ports[0], "from-config", "yes").status == 200);
        auto st = get_status(ports[0]);
        BOOST_TEST_REQUIRE(st.has_value());
        BOOST_TEST(st->id == 1u);
        BOOST_TEST_REQUIRE(st->members.size() == 1u);
        BOOST_TEST(st->members[0].raft == "127.0.0.1:" + std::to_string(ports[1]));
    }
    BOOST_TEST(std::filesystem::exists(dir / "data"), "data-dir from the config file was not used");
    BOOST_TEST(!std::filesystem::exists(dir / "raftkv-data"), "the default data dir was used");
}

BOOST_AUTO_TEST_CASE(flags_without_peers_run_a_one_member_cluster)
{
    temp_dir dir;
    auto args = safe_flags(dir);
    const auto port = static_cast<std::uint16_t>(std::stoi(args[3].substr(args[3].rfind(':') + 1)));
    process p(args, {.program = {}, .stdout_file = dir / "log", .stderr_file = {}, .cwd = dir.path()});
    const bool healthy =
        wait_until([&] { return request(port, "GET", "/health", {}, 1s).status == 200; }, 20s);
    BOOST_TEST(healthy, "log: " << read_tail(dir / "log"));
    if (healthy) {
        auto r = put(port, "k", "v");
        BOOST_TEST(r.status == 200, describe(r));
    }
}

BOOST_AUTO_TEST_CASE(no_flags_uses_default_ports_and_data_dir)
{
    if (!port_is_free(8080) || !port_is_free(9080)) {
        BOOST_WARN_MESSAGE(false, "127.0.0.1:8080 or :9080 is in use; cannot check the defaults here");
        return;
    }
    temp_dir dir;
    process p({}, {.program = {}, .stdout_file = dir / "log", .stderr_file = {}, .cwd = dir.path()});
    const bool healthy =
        wait_until([&] { return request(8080, "GET", "/health", {}, 1s).status == 200; }, 20s);
    BOOST_TEST(healthy, "no /health 200 on 127.0.0.1:8080; log: " << read_tail(dir / "log"));
    if (healthy) {
        BOOST_TEST(put(8080, "default", "yes").status == 200);
        auto st = get_status(8080);
        BOOST_TEST_REQUIRE(st.has_value());
        BOOST_TEST(st->id == 1u);
        BOOST_TEST_REQUIRE(st->members.size() == 1u);
        BOOST_TEST(st->members[0].raft == "127.0.0.1:9080");
        BOOST_TEST(st->members[0].http.value_or("<null>") == "127.0.0.1:8080");
    }
    BOOST_TEST(std::filesystem::is_directory(dir / "raftkv-data"), "./raftkv-data was not created");
    p.signal(SIGTERM);
    auto st = p.wait(10s);
    BOOST_TEST((st && st->exited && st->code == 0));
}

BOOST_AUTO_TEST_SUITE_END()

// ---------------------------------------------------------------------------------------
BOOST_AUTO_TEST_SUITE(lifecycle)

BOOST_AUTO_TEST_CASE(sigterm_and_sigint_exit_0_and_keep_the_data)
{
    cluster c(1);
    BOOST_TEST_REQUIRE(c.wait_healthy(1, 20s));
    BOOST_TEST_REQUIRE(put(c.http_port(1), "survives", "sigterm").status == 200);
    auto st = c.terminate(1, SIGTERM, 10s);
    BOOST_TEST_REQUIRE(st.has_value(), "no exit within 10 s of SIGTERM");
    BOOST_TEST((st->exited && st->code == 0), "SIGTERM: " << *st);

    c.start(1);
    BOOST_TEST_REQUIRE(c.wait_healthy(1, 20s));
    auto g = get(c.http_port(1), "survives");
    BOOST_TEST(parse_json(g.body).string("value").value_or("<none>") == "sigterm", describe(g));
    BOOST_TEST_REQUIRE(put(c.http_port(1), "survives", "sigint").status == 200);
    st = c.terminate(1, SIGINT, 10s);
    BOOST_TEST_REQUIRE(st.has_value(), "no exit within 10 s of SIGINT");
    BOOST_TEST((st->exited && st->code == 0), "SIGINT: " << *st);

    c.start(1);
    BOOST_TEST_REQUIRE(c.wait_healthy(1, 20s));
    g = get(c.http_port(1), "survives");
    BOOST_TEST(parse_json(g.body).string("value").value_or("<none>") == "sigint", describe(g));
}

BOOST_AUTO_TEST_CASE(sigterm_while_serving_clients_exits_0)
{
    cluster c(1);
    BOOST_TEST_REQUIRE(c.wait_healthy(1, 20s));
    std::atomic<bool> stop{false};
    std::vector<std::thread> writers;
    for (int t = 0; t < 4; ++t)
        writers.emplace_back([&, t] {
            http_client client(c.http_port(1));
            for (int i = 0; !stop; ++i)
                client.request("PUT", kv_target("busy-" + std::to_string(t)), value_body(std::to_string(i)),
                               2s);
        });
    std::this_thread::sleep_for(500ms);
    auto st = c.terminate(1, SIGTERM, 10s);
    stop = true;
    for (auto& w : writers)
        w.join();
    BOOST_TEST_REQUIRE(st.has_value(), "no exit within 10 s of SIGTERM under load");
    BOOST_TEST((st->exited && st->code == 0), *st);
}

BOOST_AUTO_TEST_CASE(a_busy_port_or_a_locked_data_dir_fails_the_second_node_not_the_first)
{
    cluster c(1);
    BOOST_TEST_REQUIRE(c.wait_healthy(1, 20s));
    BOOST_TEST_REQUIRE(put(c.http_port(1), "first", "still here").status == 200);
    temp_dir dir;
    const auto ports = free_ports(2);
    const auto http = "127.0.0.1:" + std::to_string(ports[0]);
    const auto raft = "127.0.0.1:" + std::to_string(ports[1]);
    const std::string in_use = "is in use by another process (its log is locked): is node 1 already running, "
                               "or raftkv-server --inspect?";
    struct start {
        std::string name;
        std::vector<std::string> args;
        std::string says;
    };
    const std::vector<start> cases = {
        {"same data dir",
         {"--data-dir", c.spec(1).data_dir.string(), "--http", http, "--raft", raft},
         in_use},
        // The same command run twice: the directory is named, not a port.
        {"same command", c.args(1), in_use},
        {"same HTTP port",
         {"--data-dir", (dir / "a").string(), "--http", c.spec(1).http_address(), "--raft", raft},
         "cannot listen for HTTP on " + c.spec(1).http_address()},
        {"same Raft port",
         {"--data-dir", (dir / "b").string(), "--http", http, "--raft", c.spec(1).raft_address()},
         "cannot listen for Raft on " + c.spec(1).raft_address()},
    };
    for (const auto& [name, args, says] : cases) {
        auto r = run_server(args, 10s, dir.path());
        BOOST_TEST_REQUIRE(r.status.has_value(), name << ": the second node is still running after 10 s");
        BOOST_TEST((r.status->exited && r.status->code != 0), name << ": " << *r.status);
        BOOST_TEST(r.err.find(says) != std::string::npos, name << ": " << r.err);
        auto g = get(c.http_port(1), "first");
        BOOST_TEST(parse_json(g.body).string("value").value_or("<none>") == "still here",
                   name << ": " << describe(g));
    }
    // A start that failed wrote nothing: the same directory starts later with other flags.
    BOOST_TEST(!std::filesystem::exists(dir / "a"));
    BOOST_TEST(!std::filesystem::exists(dir / "b"));
    // A data directory that is a link to nothing (a disk not mounted): refused, the link
    // left as it is and nothing created, also when the link is a directory above it.
    std::filesystem::create_symlink(dir / "unmounted" / "disk", dir / "link");
    for (const std::filesystem::path& data : {dir / "link", dir / "link" / "node1"}) {
        auto r = run_server({"--data-dir", data.string(), "--http", http, "--raft", raft}, 10s, dir.path());
        BOOST_TEST_REQUIRE(r.status.has_value(), data << ": still running after 10 s");
        BOOST_TEST((r.status->exited && r.status->code != 0), data << ": " << *r.status);
        BOOST_TEST(r.err.find("a symbolic link to " + (dir / "unmounted" / "disk").string() +
                              ", which does not exist (a file system not mounted?): nothing was created") !=
                       std::string::npos,
                   data << ": " << r.err);
        BOOST_TEST(std::filesystem::is_symlink(std::filesystem::symlink_status(dir / "link")));
        BOOST_TEST(!std::filesystem::exists(dir / "unmounted"));
    }
    // --http and --raft on one port: a configuration error, before anything is written.
    for (const std::string& raft_address : {http, "0.0.0.0:" + std::to_string(ports[0])}) {
        auto r = run_server({"--data-dir", (dir / "c").string(), "--http", http, "--raft", raft_address}, 10s,
                            dir.path());
        BOOST_TEST_REQUIRE(r.status.has_value());
        BOOST_TEST(r.status->code == 2, *r.status);
        BOOST_TEST(r.err.find("are one address") != std::string::npos, r.err);
        BOOST_TEST(!std::filesystem::exists(dir / "c"));
    }
}

BOOST_AUTO_TEST_CASE(kill9_and_restart_keeps_every_acknowledged_write)
{
    cluster c(1);
    const auto port = c.http_port(1);
    BOOST_TEST_REQUIRE(c.wait_healthy(1, 20s));

    // Batch 1: 200 keys from 8 writers, all acknowledged.
    constexpr int writers = 8;
    std::mutex m;
    std::map<std::string, std::string> acked;
    auto write_batch = [&](const std::string& prefix, int per_writer, std::atomic<bool>* stop) {
        std::vector<std::thread> pool;
        for (int t = 0; t < writers; ++t)
            pool.emplace_back([&, t] {
                http_client client(port);
                for (int i = 0; i < per_writer; ++i) {
                    const auto key = prefix + std::to_string(t) + "-" + std::to_string(i);
                    const auto value = "value-" + key;
                    auto r = client.request("PUT", kv_target(key), value_body(value), 5s);
                    if (r.status == 200) {
                        std::lock_guard lock(m);
                        acked[key] = value;
                    } else if (stop && *stop) {
                        return;
                    }
                }
            });
        for (auto& th : pool)
            th.join();
    };
    write_batch("a-", 25, nullptr);
    BOOST_TEST_REQUIRE(acked.size() == 200u);

    // Batch 2: kill -9 while it is under way.
    std::atomic<bool> killed{false};
    std::thread batch2([&] { write_batch("b-", 1000, &killed); });
    const bool midway = wait_until(
        [&] {
            std::lock_guard lock(m);
            return acked.size() >= 300;
        },
        20s, 1ms);
    c.kill9(1);
    killed = true;
    batch2.join();
    BOOST_TEST_REQUIRE(midway, "batch 2 made no progress");
    BOOST_TEST_MESSAGE(acked.size() << " writes acknowledged before kill -9");

    c.start(1);
    BOOST_TEST_REQUIRE(c.wait_healthy(1, 30s), "no /health 200 after restart");
    std::size_t lost = 0;
    http_client client(port);
    for (const auto& [key, value] : acked) {
        auto g = client.request("GET", kv_target(key), {}, 5s);
        const auto got = parse_json(g.body).string("value");
        if (g.status != 200 || got != value) {
            if (++lost <= 10)
                BOOST_TEST_MESSAGE("lost acknowledged write " << key << ": " << describe(g));
        }
    }
    BOOST_TEST(lost == 0u, lost << " of " << acked.size() << " acknowledged writes lost after kill -9");
}

BOOST_AUTO_TEST_SUITE_END()

// --quota-bytes: past it, writes are 507 while reads and deletes go on; deletes (and the
// compaction the node runs over the quota) bring the state back under, and writes resume.
BOOST_AUTO_TEST_CASE(writes_past_the_quota_are_507_until_deletes_bring_the_state_back_under)
{
    cluster c(1, true, {"--quota-bytes", std::to_string(2 * mib)});
    BOOST_TEST_REQUIRE(c.wait_healthy(1, 20s));
    const std::uint16_t port = c.http_port(1);
    // Letters at random: LevelDB compresses its tables, and a run of one letter would take
    // almost nothing on disk.
    std::mt19937 random(7);
    std::string value(100'000, 'a');
    for (char& ch : value)
        ch = static_cast<char>('a' + random() % 26);
    int stored = 0;
    http_response refused;
    for (int k = 0; k < 200 && refused.status == 0; ++k) {
        const http_response r = put(port, numbered("quota-", k), value, 10s);
        if (r.status == 200)
            ++stored;
        else
            refused = r;
        std::this_thread::sleep_for(20ms); // the node measures its state each second
    }
    BOOST_TEST_REQUIRE(refused.status == 507, describe(refused));
    BOOST_TEST(refused.body.find("--quota-bytes") != std::string::npos, describe(refused));
    BOOST_TEST(stored >= 15, stored << " values of 100 kB stored under a 2 MiB quota");
    const json_body status = parse_json(request(port, "GET", "/status").body);
    BOOST_TEST(std::stoull(status.text.at("state_bytes")) > 2 * mib);
    BOOST_TEST(status.text.at("quota_bytes") == std::to_string(2 * mib));
    BOOST_TEST(get(port, "quota-0").status == 200, "reads go on");
    const std::string metrics = request(port, "GET", "/metrics").body;
    BOOST_TEST(metrics.find("\nraftkv_quota_refusals_total 1") != std::string::npos);

    for (int k = 0; k < stored; ++k)
        BOOST_TEST_REQUIRE(del(port, numbered("quota-", k)).status == 200);
    BOOST_TEST(wait_until([&] { return put(port, "after", "x").status == 200; }, 30s),
               "writes never resumed: " << request(port, "GET", "/status").body);
    BOOST_TEST(get(port, "after").status == 200);
}
