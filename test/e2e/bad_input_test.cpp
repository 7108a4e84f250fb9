// A catalogue of bad input against real raftkv-server processes: malformed, oversized and
// ill-framed requests, and forged forwarding markers. Each case expects a clear 4xx with a
// JSON error body (or, where the client gave up mid-request, a closed connection), and then
// that the server still serves, with the data written before it intact.
#define BOOST_TEST_MODULE raftkv_e2e_bad_input
#include <boost/test/unit_test.hpp>

#include "auth.hpp"
#include "harness.hpp"

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

namespace {

using namespace raftkv::e2e;
using clock_type = std::chrono::steady_clock;

constexpr std::size_t mib = 1024 * 1024;

/// Data written once, which every case checks afterwards.
const std::map<std::string, std::string>& seed()
{
    static const std::map<std::string, std::string> data{{"a", "the value of a"},
                                                         {"plain", "plain"},
                                                         {"with space", "spaced"},
                                                         {"\xc3\xa9t\xc3\xa9", "summer"},
                                                         {"a/b", "slashed"},
                                                         {"cls", "cls"},
                                                         {"c", "chunk"}};
    return data;
}

/// The servers the cases share: started on first use (from the test's main thread, as the
/// harness requires) and stopped when the test program ends.
struct servers {
    std::unique_ptr<cluster> single;
    std::unique_ptr<cluster> three;
    std::uint64_t leader = 0;
};

servers& shared()
{
    static servers s;
    return s;
}

struct stop_servers {
    ~stop_servers()
    {
        shared().three.reset();
        shared().single.reset();
    }
};
BOOST_TEST_GLOBAL_FIXTURE(stop_servers);

void write_seed(std::uint16_t port)
{
    for (const auto& [key, value] : seed()) {
        const http_response r = put(port, key, value);
        BOOST_TEST_REQUIRE(r.status == 200, "seeding " << key << ": " << describe(r));
    }
}

/// The single node's HTTP port, seeded.
std::uint16_t single_node()
{
    servers& s = shared();
    if (!s.single) {
        s.single = std::make_unique<cluster>(1);
        BOOST_TEST_REQUIRE(s.single->wait_healthy(1, 20s), "the node never reported /health 200");
        write_seed(s.single->http_port(1));
    }
    return s.single->http_port(1);
}

/// Three nodes with a leader, seeded.
cluster& three_nodes()
{
    servers& s = shared();
    if (!s.three) {
        s.three = std::make_unique<cluster>(3);
        const auto leader = s.three->wait_ready(20s);
        BOOST_TEST_REQUIRE(leader.has_value(), "no leader every node forwards to within 20 s");
        s.leader = *leader;
        write_seed(s.three->http_port(s.leader));
    }
    return *s.three;
}

std::uint64_t a_follower()
{
    return shared().leader == 1 ? 2 : 1;
}

/// `r` is a `status` with a JSON body {"error": "..."} whose message contains `fragment`.
void expect_error(const http_response& r, int status, std::string_view fragment, const std::string& what)
{
    BOOST_TEST(is_error(r, status), what << ": " << describe(r));
    const std::string message = parse_json(r.body).string("error").value_or("");
    BOOST_TEST(message.find(fragment) != std::string::npos,
               what << ": the message '" << message << "' lacks '" << fragment << "'");
}

/// The server at `port` is up, answers at once, and still holds the seed data.
void expect_intact(std::uint16_t port, const std::string& after)
{
    http_client client(port);
    for (const auto& [key, value] : seed()) {
        const http_response r = client.request("GET", kv_target(key), {}, 5s);
        BOOST_TEST(r.status == 200, "GET " << key << " after " << after << ": " << describe(r));
        BOOST_TEST(parse_json(r.body).string("value").value_or("<none>") == value,
                   key << " changed after " << after << ": " << describe(r));
    }
    const http_response p = client.request("PUT", kv_target("sentinel"), value_body(after), 5s);
    BOOST_TEST(p.status == 200, "PUT after " << after << ": " << describe(p));
}

void expect_single_intact(const std::string& after)
{
    BOOST_TEST_REQUIRE(shared().single->running(1), "the server died after " << after);
    expect_intact(single_node(), after);
}

/// A raw request: the request line, a Host header, `headers` (each ending in CRLF), then
/// the body with its Content-Length.
std::string raw_request(std::string_view method, std::string_view target, std::string_view body = {},
                        std::string_view headers = {})
{
    std::string out = std::string(method) + " " + std::string(target) + " HTTP/1.1\r\nHost: x\r\n";
    out += headers;
    if (!body.empty() || method == "PUT")
        out += "Content-Length: " + std::to_string(body.size()) + "\r\n";
    return out + "\r\n" + std::string(body);
}

/// The JSON error of each response in `r`, for checks on raw exchanges.
std::vector<http_response> responses_of(const raw_result& r)
{
    return parse_responses(r.received);
}

} // namespace

// ---- Bodies -----------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(malformed_json_bodies_are_400_and_store_nothing)
{
    const std::uint16_t port = single_node();
    for (const std::string body : {"", "{", "{\"value\":", "{\"value\": \"x\"} trailing", "{'value': 'x'}",
                                   "not json", "[", "{\"value\": \"x\",}", "{\"value\" \"x\"}", "\"x\""}) {
        expect_error(request(port, "PUT", kv_target("fresh"), body), 400, "", "body '" + body + "'");
    }
    expect_error(request(port, "PUT", kv_target("fresh"), R"({"value": 5})"), 400,
                 "\"value\" must be a string", "a number value");
    expect_error(get(port, "fresh"), 404, "key not found", "a malformed body stored something");
    expect_single_intact("malformed JSON");
}

BOOST_AUTO_TEST_CASE(deeply_nested_json_is_400_not_a_stack_overflow)
{
    const std::uint16_t port = single_node();
    const std::string brackets(100'000, '[');
    std::string objects;
    for (int i = 0; i < 50'000; ++i)
        objects += "{\"a\":";
    for (const auto& [name, body] : std::vector<std::pair<std::string, std::string>>{
             {"100000 '['", brackets},
             {"a value of 100000 '['", "{\"value\": " + brackets},
             {"50000 nested objects", objects},
             {"100000 balanced brackets", brackets + std::string(100'000, ']')}})
        expect_error(request(port, "PUT", kv_target("deep"), body), 400, "malformed JSON body", name);
    expect_single_intact("deeply nested JSON");
}

BOOST_AUTO_TEST_CASE(json_over_the_limits_is_413)
{
    const std::uint16_t port = single_node();
    // Within the body limit, over the value limit.
    expect_error(put(port, "big", std::string(mib + 1, 'v')), 413, "value too large", "a 1 MiB + 1 value");
    // Over the body limit (6 MiB + 64 KiB): refused from its Content-Length, before the body.
    std::string huge = "{\"value\": \"x\", \"pad\": [";
    while (huge.size() < 6 * mib + 64 * 1024 + 16)
        huge += "1,";
    huge += "1]}";
    expect_error(request(port, "PUT", kv_target("big"), huge, 10s), 413, "request too large",
                 "a 6.1 MiB body");
    expect_error(get(port, "big"), 404, "key not found", "an oversized body stored something");
    expect_single_intact("JSON over the limits");
}

// ---- Keys -------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(malformed_percent_escapes_in_keys_are_400)
{
    const std::uint16_t port = single_node();
    for (const char* target : {"/kv/%G1", "/kv/a%4", "/kv/%", "/kv/%%", "/kv/%zz", "/kv/a%2", "/kv/%4g"}) {
        for (const char* method : {"GET", "PUT", "DELETE"})
            expect_error(request(port, method, target, std::string(method) == "PUT" ? value_body("x") : ""),
                         400, "malformed percent-encoding in the key", std::string(method) + " " + target);
    }
    expect_single_intact("malformed escapes");
}

// Keys are bytes of UTF-8, and U+0000 is UTF-8: a NUL is part of the key, never its end.
BOOST_AUTO_TEST_CASE(a_nul_byte_in_a_key_is_a_key_of_its_own_not_a_truncated_one)
{
    const std::uint16_t port = single_node();
    const http_response p = request(port, "PUT", "/kv/a%00b", value_body("nul"));
    BOOST_TEST_REQUIRE(p.status == 200, describe(p));
    BOOST_TEST(parse_json(p.body).string("key").value_or("") == std::string("a\0b", 3));
    BOOST_TEST(parse_json(request(port, "GET", "/kv/a%00b").body).string("value").value_or("") == "nul");
    BOOST_TEST(parse_json(get(port, "a").body).string("value").value_or("") == seed().at("a"));
    expect_error(request(port, "GET", "/kv/a%00"), 404, "key not found", "a\\0");
    BOOST_TEST(request(port, "DELETE", "/kv/a%00b").status == 200);
    expect_single_intact("a NUL in a key");
}

BOOST_AUTO_TEST_CASE(invalid_utf8_in_keys_and_values_is_400)
{
    const std::uint16_t port = single_node();
    for (const char* target : {"/kv/%FF", "/kv/%C0%AF", "/kv/%ED%A0%80", "/kv/%F4%90%80%80", "/kv/a%E2%9C",
                               "/kv/\xff", "/kv/\xc3"}) {
        for (const char* method : {"GET", "PUT"})
            expect_error(request(port, method, target, std::string(method) == "PUT" ? value_body("x") : ""),
                         400, "the key is not valid UTF-8", std::string(method) + " " + target);
    }
    for (const auto& [name, body] : std::vector<std::pair<std::string, std::string>>{
             {"a raw 0xFF", "{\"value\": \"\xff\"}"},
             {"an overlong '/'", "{\"value\": \"\xc0\xaf\"}"},
             {"a lone surrogate escape", R"({"value": "\ud800"})"},
             {"a truncated sequence", "{\"value\": \"\xe2\x9c\"}"}})
        expect_error(request(port, "PUT", kv_target("utf8"), body), 400, "malformed JSON body", name);
    expect_error(get(port, "utf8"), 404, "key not found", "an invalid value stored something");
    expect_single_intact("invalid UTF-8");
}

BOOST_AUTO_TEST_CASE(an_empty_key_is_400_and_an_over_long_one_413)
{
    const std::uint16_t port = single_node();
    for (const char* method : {"GET", "PUT", "DELETE"}) {
        const std::string body = std::string(method) == "PUT" ? value_body("x") : "";
        expect_error(request(port, method, "/kv/", body), 400, "missing key", std::string(method) + " /kv/");
        expect_error(request(port, method, "/kv/?k=v", body), 400, "missing key",
                     std::string(method) + " /kv/?");
        expect_error(request(port, method, kv_target(std::string(1025, 'k')), body), 413, "key too long",
                     std::string(method) + " a 1025-byte key");
    }
    std::string escaped;
    for (int i = 0; i < 1025; ++i)
        escaped += "%41";
    expect_error(request(port, "PUT", "/kv/" + escaped, value_body("x")), 413, "key too long: 1025 bytes",
                 "1025 escaped bytes");
    BOOST_TEST(put(port, std::string(1024, 'k'), "max").status == 200);
    expect_single_intact("empty and long keys");
}

// ---- Routes and methods -----------------------------------------------------------------

BOOST_AUTO_TEST_CASE(query_parameters_a_route_does_not_take_are_400_and_change_nothing)
{
    const std::uint16_t port = single_node();
    BOOST_TEST_REQUIRE(put(port, "q", "before").status == 200);
    expect_error(request(port, "PUT", "/kv/q?ttl=10", value_body("after")), 400,
                 "unknown parameter 'ttl' (PUT /kv/{key} takes none)", "PUT with ?ttl");
    expect_error(request(port, "DELETE", "/kv/q?prefix=true", ""), 400, "unknown parameter 'prefix'",
                 "DELETE with ?prefix");
    expect_error(request(port, "GET", "/kv/q?consitency=stale", ""), 400,
                 "unknown parameter 'consitency' (GET /kv/{key} takes consistency)",
                 "a misspelt consistency");
    expect_error(request(port, "GET", "/health?timout=1s", ""), 400, "unknown parameter 'timout'",
                 "a misspelt health timeout");
    const auto got = get(port, "q");
    BOOST_TEST(got.status == 200);
    BOOST_TEST(got.body.find("before") != std::string::npos, got.body);
    BOOST_TEST(request(port, "GET", "/kv/q?consistency=stale", "").status == 200);
    BOOST_TEST(request(port, "GET", "/health?timeout=2s", "").status == 200);
    expect_single_intact("unknown query parameters");
}

BOOST_AUTO_TEST_CASE(unknown_routes_are_404_and_wrong_methods_405_with_allow)
{
    const std::uint16_t port = single_node();
    for (const char* target :
         {"/", "/kvs", "/KV/a", "/status/x", "/cluster", "/cluster/members/2/demote", "/v2/kv/a"})
        expect_error(request(port, "GET", target), 404, "not found", target);
    expect_error(request(port, "BREW", "/coffee"), 404, "not found", "an unknown method on an unknown route");
    for (const auto& [method, target, allow] : std::vector<std::tuple<std::string, std::string, std::string>>{
             {"POST", "/kv/a", "GET, HEAD, PUT, DELETE"},
             {"PATCH", "/kv/a", "GET, HEAD, PUT, DELETE"},
             {"BREW", "/kv/a", "GET, HEAD, PUT, DELETE"},
             {"HEAD", "/watch/a", "GET"},
             {"PUT", "/kv", "GET, HEAD"},
             {"PUT", "/status", "GET, HEAD"},
             {"DELETE", "/health", "GET, HEAD"},
             {"PUT", "/cluster/members", "GET, HEAD, POST"},
             {"GET", "/cluster/leader", "POST"}}) {
        const http_response r = request(port, method, target, method == "HEAD" ? "" : value_body("x"));
        if (method == "HEAD") // a HEAD answer has no body
            BOOST_TEST(r.status == 405, method << " " << target << ": " << describe(r));
        else
            expect_error(r, 405, "not allowed", method + " " + target);
        BOOST_TEST((r.headers.count("allow") ? r.headers.at("allow") : "<none>") == allow,
                   method << " " << target);
    }
    BOOST_TEST(parse_json(get(port, "a").body).string("value").value_or("") == seed().at("a"),
               "a POST, PATCH or BREW changed the key");
    expect_single_intact("unknown routes and methods");
}

// ---- Framing ----------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(a_body_over_the_limit_is_413_before_it_is_sent)
{
    const std::uint16_t port = single_node();
    const auto start = clock_type::now();
    const raw_result r =
        send_raw(port, "PUT /kv/a HTTP/1.1\r\nHost: x\r\nContent-Length: 7000000\r\n\r\n{\"value\": ", 20s);
    const auto answers = responses_of(r);
    BOOST_TEST_REQUIRE(answers.size() == 1u, r.received.substr(0, 300));
    expect_error(answers[0], 413, "request too large", "Content-Length 7000000");
    BOOST_TEST(r.closed, "the connection stayed open");
    // Waiting for the body would last until the 20 s wait ends; the bound is loose for a busy machine.
    BOOST_TEST((clock_type::now() - start < 10s), "the 413 waited for a body that never came");
    expect_single_intact("a body over the limit");
}

BOOST_AUTO_TEST_CASE(a_content_length_longer_than_the_body_stalls_no_one)
{
    const std::uint16_t port = single_node();
    // One client promises 100 bytes, sends 13 and goes quiet; another does the same and
    // then closes its sending side.
    raw_connection quiet(port);
    BOOST_TEST_REQUIRE(quiet.connected());
    BOOST_TEST(quiet.send("PUT /kv/cls HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"value\":\"x\"}"));
    const raw_result closed = send_raw(
        port, "PUT /kv/cls HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"value\":\"y\"}", 3s, true);
    BOOST_TEST(closed.closed, "a half-closed request with a short body kept its connection");
    for (const http_response& r : responses_of(closed))
        BOOST_TEST(r.status / 100 == 4, describe(r));
    // Meanwhile everyone else is served at once.
    const auto start = clock_type::now();
    http_client other(port);
    for (int i = 0; i < 20; ++i)
        BOOST_TEST(other.request("GET", kv_target("plain"), {}, 5s).status == 200);
    // A stall would last the idle timeout (60 s); the bound is loose for a busy machine.
    BOOST_TEST((clock_type::now() - start < 10s), "other clients waited for the stalled one");
    BOOST_TEST(parse_json(get(port, "cls").body).string("value").value_or("") == seed().at("cls"),
               "a request with a short body was applied");
    expect_single_intact("a Content-Length longer than the body");
}

BOOST_AUTO_TEST_CASE(a_content_length_shorter_than_the_body_makes_the_rest_a_bad_request)
{
    const std::uint16_t port = single_node();
    // The first 5 bytes are the body; the rest is read as the next request, which is no
    // request: 400, and the connection closes.
    const raw_result r = send_raw(
        port, "PUT /kv/cls HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n{\"value\":\"short\"}", 3s);
    const auto answers = responses_of(r);
    BOOST_TEST_REQUIRE(answers.size() == 2u, r.received.substr(0, 400));
    expect_error(answers[0], 400, "malformed JSON body", "the 5-byte body");
    expect_error(answers[1], 400, "malformed request", "the rest of the body");
    BOOST_TEST(r.closed, "the connection stayed open");
    BOOST_TEST(parse_json(get(port, "cls").body).string("value").value_or("") == seed().at("cls"));
    expect_single_intact("a Content-Length shorter than the body");
}

BOOST_AUTO_TEST_CASE(chunked_bodies_are_read_when_valid_and_400_when_malformed)
{
    const std::uint16_t port = single_node();
    const std::string head = "PUT /kv/chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n";
    const raw_result ok = send_raw(
        port, head + "Connection: close\r\n\r\n8\r\n{\"value\"\r\nb\r\n:\"chunked\"}\r\n0\r\n\r\n", 3s);
    const auto answers = responses_of(ok);
    BOOST_TEST_REQUIRE(answers.size() == 1u, ok.received.substr(0, 300));
    BOOST_TEST(answers[0].status == 200, describe(answers[0]));
    BOOST_TEST(parse_json(get(port, "chunked").body).string("value").value_or("") == "chunked");

    for (const auto& [name, bytes] : std::vector<std::pair<std::string, std::string>>{
             {"a chunk size that is not hex", head + "\r\nzz\r\n{\"value\":\"a\"}\r\n0\r\n\r\n"},
             {"a chunk longer than its size", head + "\r\n2\r\n{\"value\":\"a\"}\r\n0\r\n\r\n"},
             {"a chunk size over 64 bits", head + "\r\n10000000000000000\r\n{\"value\":\"a\"}\r\n0\r\n\r\n"},
             {"chunked and Content-Length", head + "Content-Length: 5\r\n\r\n5\r\n{\"val\r\n0\r\n\r\n"}}) {
        const raw_result r = send_raw(port, bytes, 3s, true);
        const auto bad = responses_of(r);
        BOOST_TEST_REQUIRE(bad.size() == 1u, name << ": " << r.received.substr(0, 300));
        expect_error(bad[0], 400, "malformed request", name);
        BOOST_TEST(r.closed, name << ": the connection stayed open");
    }
    // A chunked body cut off by a close gets no answer and changes nothing.
    const raw_result cut = send_raw(port, head + "\r\n5\r\n{\"val\r\n", 3s, true);
    BOOST_TEST(cut.closed);
    BOOST_TEST(parse_json(get(port, "chunked").body).string("value").value_or("") == "chunked");
    expect_single_intact("chunked bodies");
}

// RFC 9112 6.1: the body's length is unknown, so the bytes after the header (here a PUT of
// their own) are not taken for a request, and the connection closes. HTTP/1.0 has no
// Transfer-Encoding: a chunked one there is as ambiguous.
BOOST_AUTO_TEST_CASE(a_transfer_encoding_other_than_chunked_or_in_http_1_0_is_400)
{
    const std::uint16_t port = single_node();
    const std::string body = value_body("s");
    const std::string smuggled =
        "PUT /kv/smuggled HTTP/1.1\r\nHost: x\r\nContent-Length: " + std::to_string(body.size()) +
        "\r\n\r\n" + body;
    const std::string chunk = std::to_string(body.size()) + "\r\n" + body + "\r\n0\r\n\r\n";
    for (const auto& [name, head, error] : std::vector<std::tuple<std::string, std::string, std::string>>{
             {"Transfer-Encoding: gzip", "PUT /kv/te HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
              "unsupported Transfer-Encoding (only chunked)"},
             {"HTTP/1.0 chunked", "PUT /kv/te HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk,
              "Transfer-Encoding in an HTTP/1.0 request"}}) {
        const raw_result r = send_raw(port, head + smuggled, 3s);
        const auto answers = responses_of(r);
        BOOST_TEST_REQUIRE(answers.size() == 1u, name << ": " << r.received.substr(0, 300));
        expect_error(answers[0], 400, error, name);
        BOOST_TEST(r.closed, name << ": the connection stayed open");
        expect_error(get(port, "te"), 404, "key not found", name + ": the PUT stored something");
        expect_error(get(port, "smuggled"), 404, "key not found",
                     name + ": the bytes after the header were a request");
        expect_single_intact(name);
    }
}

// The header limit covers the request line: a 70 KB target is refused as a whole, with the
// status for a request whose head is too large, and the connection closes.
BOOST_AUTO_TEST_CASE(a_request_line_or_header_over_the_limit_is_refused_and_closed)
{
    const std::uint16_t port = single_node();
    for (const auto& [name, bytes] : std::vector<std::pair<std::string, std::string>>{
             {"a 70 KB request line", "GET /kv/" + std::string(70'000, 'a') + " HTTP/1.1\r\nHost: x\r\n\r\n"},
             {"a 70 KB header",
              "GET /kv/a HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(70'000, 'b') + "\r\n\r\n"}}) {
        const raw_result r = send_raw(port, bytes, 3s);
        const auto answers = responses_of(r);
        BOOST_TEST_REQUIRE(answers.size() == 1u, name << ": " << r.received.substr(0, 300));
        // 431 Request Header Fields Too Large for both: the limit is on the request line and
        // the header fields together.
        expect_error(answers[0], 431, "request header fields too large: header limit", name);
        BOOST_TEST(r.closed, name << ": the connection stayed open");
    }
    expect_single_intact("an over-long request line");
}

BOOST_AUTO_TEST_CASE(http10_without_host_is_served_and_http11_without_host_is_400)
{
    const std::uint16_t port = single_node();
    const raw_result old = send_raw(port, "GET /kv/plain HTTP/1.0\r\n\r\n", 3s);
    const auto answers = responses_of(old);
    BOOST_TEST_REQUIRE(answers.size() == 1u, old.received.substr(0, 300));
    BOOST_TEST(old.received.starts_with("HTTP/1.0 200"), old.received.substr(0, 100));
    BOOST_TEST(parse_json(answers[0].body).string("value").value_or("") == "plain");
    BOOST_TEST(old.closed, "an HTTP/1.0 request without keep-alive left the connection open");

    const raw_result eleven = send_raw(port, "GET /kv/plain HTTP/1.1\r\nConnection: close\r\n\r\n", 3s);
    const auto refused = responses_of(eleven);
    BOOST_TEST_REQUIRE(refused.size() == 1u, eleven.received.substr(0, 300));
    expect_error(refused[0], 400, "missing Host header", "HTTP/1.1 without Host");
    const raw_result twice =
        send_raw(port, "GET /kv/plain HTTP/1.1\r\nHost: x\r\nHost: y\r\nConnection: close\r\n\r\n", 3s);
    const auto two = responses_of(twice);
    BOOST_TEST_REQUIRE(two.size() == 1u, twice.received.substr(0, 300));
    expect_error(two[0], 400, "more than one Host header", "two Host headers");
    expect_single_intact("requests without Host");
}

BOOST_AUTO_TEST_CASE(garbage_pipelined_after_a_good_request_is_400_after_the_good_answer)
{
    const std::uint16_t port = single_node();
    for (const auto& [name, garbage] : std::vector<std::pair<std::string, std::string>>{
             {"binary", std::string("\x00\x01\x02\xff garbage\r\n\r\n", 17)},
             {"text", "hello there\r\n\r\n"},
             {"a bad version", "GET /kv/a HTTP/7.1\r\nHost: x\r\n\r\n"},
             {"HTTP/2's preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"},
             {"a NUL in a header", std::string("GET /kv/a HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\n\r\n", 41)}}) {
        const raw_result r = send_raw(port, raw_request("GET", kv_target("plain")) + garbage, 3s);
        const auto answers = responses_of(r);
        BOOST_TEST_REQUIRE(answers.size() == 2u, name << ": " << r.received.substr(0, 300));
        BOOST_TEST(answers[0].status == 200, name << ": " << describe(answers[0]));
        BOOST_TEST(parse_json(answers[0].body).string("value").value_or("") == "plain", name);
        expect_error(answers[1], 400, "malformed request", name);
        BOOST_TEST(r.closed, name << ": the connection stayed open");
    }
    expect_single_intact("pipelined garbage");
}

// --http-header-timeout-ms and --http-body-timeout-ms shorten the deadlines that close a
// connection whose request arrives too slowly. The default node keeps such a connection open
// (its deadlines are 10 s and 60 s), so the quick close below is the flags' doing.
BOOST_AUTO_TEST_CASE(the_header_and_body_deadlines_are_set_by_flags)
{
    const std::string half_header = "GET /kv/a HTTP/1.1\r\nHost: x\r\nX-Slow: ";
    const std::string half_body = "PUT /kv/cls HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"value\"";
    const std::uint16_t defaults = single_node();
    for (const std::string& bytes : {half_header, half_body}) {
        const raw_result kept = send_raw(defaults, bytes, 1500ms);
        BOOST_TEST(kept.connected);
        BOOST_TEST(!kept.closed, "the default deadlines closed a connection within 1.5 s: " << bytes);
    }

    cluster quick(1, true, {"--http-header-timeout-ms", "300", "--http-body-timeout-ms", "300"});
    BOOST_TEST_REQUIRE(quick.wait_healthy(1, 20s), "the node never reported /health 200");
    const std::uint16_t port = quick.http_port(1);
    for (const std::string& bytes : {half_header, half_body}) {
        const auto start = clock_type::now();
        const raw_result r = send_raw(port, bytes, 5s);
        const auto took = clock_type::now() - start;
        BOOST_TEST(r.connected);
        BOOST_TEST(r.closed, "a 300 ms deadline kept the connection open for 5 s: " << bytes);
        BOOST_TEST(r.received.empty(), "the connection was answered rather than closed: " << r.received);
        // Not before the deadline; the upper bound is loose for a busy machine.
        BOOST_TEST((took >= 250ms), "closed before the 300 ms deadline: " << bytes);
        BOOST_TEST((took < 3s), "closed long after the 300 ms deadline: " << bytes);
    }
    // A request that arrives whole in time is served as ever.
    BOOST_TEST(put(port, "quick", "served").status == 200);
    BOOST_TEST(parse_json(get(port, "quick").body).string("value").value_or("") == "served");
}

// ---- At a follower ----------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(a_follower_refuses_bad_input_itself_with_the_same_answers)
{
    cluster& c = three_nodes();
    const std::uint16_t port = c.http_port(a_follower());
    expect_error(request(port, "PUT", kv_target("f"), "{\"value\":"), 400, "malformed JSON body",
                 "malformed JSON");
    expect_error(request(port, "PUT", kv_target("f"), std::string(100'000, '[')), 400, "malformed JSON body",
                 "nested JSON");
    expect_error(request(port, "PUT", "/kv/%G1", value_body("x")), 400, "malformed percent-encoding", "%G1");
    expect_error(request(port, "PUT", "/kv/%FF", value_body("x")), 400, "not valid UTF-8", "%FF");
    expect_error(request(port, "PUT", kv_target(std::string(1025, 'k')), value_body("x")), 413,
                 "key too long", "a long key");
    expect_error(request(port, "POST", "/cluster/members", "{\"id\": 0}"), 400, "\"id\" must be",
                 "member id 0");
    expect_error(request(port, "POST", "/cluster/leader", "[["), 400, "malformed JSON body", "leader body");
    expect_intact(port, "bad input at a follower");
    expect_intact(c.http_port(shared().leader), "bad input at a follower");
}

// Anyone can send the forwarding header; only a member can make it verify. A forged one is
// ignored: the request is forwarded like any other, rather than refused with a 503.
BOOST_AUTO_TEST_CASE(a_forged_forwarding_marker_is_ignored_and_a_members_still_stops_a_second_hop)
{
    cluster& c = three_nodes();
    const std::uint64_t leader = shared().leader;
    const std::uint64_t follower = a_follower();
    const std::uint16_t port = c.http_port(follower);
    const std::string body = "{\"id\": " + std::to_string(leader) + "}";
    // POST /cluster/leader goes to the leader over HTTP (kv writes travel over Raft).
    for (const std::string& forged : std::vector<std::string>{std::to_string(leader == 3 ? 2 : 3),
                                                              "3 " + std::string(64, '0'), "x", ""}) {
        const http_response r =
            request(port, "POST", "/cluster/leader", body, header_list{{"X-Raftkv-Forwarded", forged}});
        BOOST_TEST(r.status == 200, "marker '" << forged << "': " << describe(r));
        BOOST_TEST(parse_json(r.body).text["leader"] == std::to_string(leader), describe(r));
    }
    const http_response w = request(port, "PUT", kv_target("forged"), value_body("applied"),
                                    header_list{{"X-Raftkv-Forwarded", "1"}});
    BOOST_TEST(w.status == 200, describe(w));
    BOOST_TEST(parse_json(get(c.http_port(leader), "forged").body).string("value").value_or("") == "applied");

    // A marker made with the cluster's key (no tokens here: the cluster id alone) is a
    // member's: a follower that receives it does not forward again.
    const http_response members = request(c.http_port(leader), "GET", "/cluster/members");
    const std::string cluster_id = parse_json(members.body).string("cluster_id").value_or("");
    BOOST_TEST_REQUIRE(cluster_id.size() == 16u, describe(members));
    const auto key = raftkv::server::derive_forwarding_key(std::stoull(cluster_id, nullptr, 16), {});
    const std::string genuine = raftkv::server::forward_marker(key, leader, "POST", "/cluster/leader");
    const http_response hop =
        request(port, "POST", "/cluster/leader", body, header_list{{"X-Raftkv-Forwarded", genuine}});
    expect_error(hop, 503, "not the leader (request forwarded by node " + std::to_string(leader) + ")",
                 "a member's marker at a follower");
    expect_intact(port, "forged markers");
}
