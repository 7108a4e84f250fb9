// Fuzz target: what raftkv-server does with the bytes of an HTTP connection before any
// Raft work: Beast's request parser (with the server's size limits), then the routing and
// input checks of reference-server/request_parsing.hpp (the key from the target,
// percent-decoded and validated, the JSON body of a PUT, a GET's If-Match and
// If-None-Match).
//
// The input is read as a connection's bytes: up to 8 pipelined requests, each parsed
// twice, from bytes that arrive in pieces and all at once. Then the whole input also goes
// straight to check_key(), check_put_body() and check_read_condition(), so they are
// explored without a well-formed request around them. Properties:
// - nothing crashes, throws or allocates without bound;
// - a request parses the same however its bytes are split;
// - every check answers either a value and 200, or no value, an error status and a
//   one-line message;
// - an accepted key is the percent-decoding of the target's key, non-empty, within
//   max_key_bytes; an accepted value is within max_value_bytes;
// - percent_decode() inverts percent-encoding, for any bytes.

// Before any Boost header: Boost's assertions in this file go through
// boost::assertion_failed() below, which fails on every one but a known false one.
#define BOOST_ENABLE_ASSERT_HANDLER

#include "check.hpp"

#include "http_server.hpp"
#include "request_parsing.hpp"

#include <boost/asio/buffer.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>

#include <string>
#include <string_view>

#include <cstring>

namespace boost {

// Boost 1.81's chunked-body parser asserts `n >= 5` when the last chunk "0\r\n" arrived in
// one read and the next read brings fewer than two bytes (a client that trickles its
// bytes): an assertion stricter than the code after it, which then asks for more bytes as
// it should (boostorg/beast#2861, fixed in later Boost versions). Release builds, where
// assertions are off, behave correctly; this target checks that behaviour and stops on
// every other assertion.
void assertion_failed(const char* expr, const char* function, const char* file, long line)
{
    const std::string_view f = file;
    if (std::strcmp(expr, "n >= 5") == 0 && f.ends_with("boost/beast/http/impl/basic_parser.ipp"))
        return;
    std::fprintf(stderr, "%s:%ld: %s: assertion failed: %s\n", file, line, function, expr);
    std::abort();
}

void assertion_failed_msg(const char* expr, const char* msg, const char* function, const char* file,
                          long line)
{
    std::fprintf(stderr, "%s:%ld: %s: assertion failed: %s (%s)\n", file, line, function, expr, msg);
    std::abort();
}

} // namespace boost

namespace {

namespace http = boost::beast::http;
using namespace raftkv::server;

void check_answer(const checked_input& in)
{
    if (in.value) {
        FUZZ_CHECK(in.status == http::status::ok);
        FUZZ_CHECK(in.error.empty());
    } else {
        FUZZ_CHECK(in.status == http::status::bad_request || in.status == http::status::payload_too_large);
        FUZZ_CHECK(!in.error.empty() && in.error.find('\n') == std::string::npos);
    }
}

void check_key_of(std::string_view raw_key)
{
    const checked_input key = check_key(raw_key);
    check_answer(key);
    if (!key.value)
        return;
    FUZZ_CHECK(!key.value->empty() && key.value->size() <= max_key_bytes);
    FUZZ_CHECK(percent_decode(raw_key) == key.value);
}

void check_body(std::string_view body)
{
    const checked_input value = check_put_body(body);
    check_answer(value);
    if (value.value)
        FUZZ_CHECK(value.value->size() <= max_value_bytes);
}

// The conditions of a GET of one key: a value, or a 400 and a one-line message. An
// If-None-Match field that parses keeps parsing when repeated (a list of lists).
void check_conditions(const std::vector<std::string_view>& if_match,
                      const std::vector<std::string_view>& if_none_match)
{
    const checked_read_condition c = check_read_condition(if_match, if_none_match);
    if (c.value) {
        FUZZ_CHECK(c.status == http::status::ok && c.error.empty());
        FUZZ_CHECK(if_match.empty() == !c.value->match.has_value());
        for (const std::uint64_t v : c.value->none_match) // 304, or 412 under another If-Match
            FUZZ_CHECK(c.value->evaluate(true, v) != read_condition::outcome::serve);
        FUZZ_CHECK(c.value->evaluate(false, 0) != read_condition::outcome::not_modified);
        std::vector<std::string_view> twice = if_none_match;
        twice.insert(twice.end(), if_none_match.begin(), if_none_match.end());
        FUZZ_CHECK(check_read_condition(if_match, twice).value.has_value());
    } else {
        FUZZ_CHECK(c.status == http::status::bad_request);
        FUZZ_CHECK(!c.error.empty() && c.error.find('\n') == std::string::npos);
    }
}

std::vector<std::string_view> values_of(const http_request& req, http::field f)
{
    std::vector<std::string_view> out;
    for (auto [it, end] = req.equal_range(f); it != end; ++it)
        out.push_back(it->value());
    return out;
}

std::string percent_encode(std::string_view bytes)
{
    static constexpr char hex[] = "0123456789ABCDEF";
    std::string out;
    for (const char c : bytes) {
        const auto u = static_cast<unsigned char>(c);
        out.append({'%', hex[u >> 4], hex[u & 15]});
    }
    return out;
}

void check_request(const http_request& req)
{
    const std::string_view target = req.target();
    const route_match m = match_route(req.method(), target);
    if (m.result == route_match::outcome::not_found)
        return;
    FUZZ_CHECK(!m.allow.empty());
    if (m.route == route::kv) {
        FUZZ_CHECK(m.raw_key.data() >= target.data() &&
                   m.raw_key.data() + m.raw_key.size() <= target.data() + target.size());
        if (m.result == route_match::outcome::found) {
            check_key_of(m.raw_key);
            if (req.method() == http::verb::put)
                check_body(req.body());
            if (req.method() == http::verb::get || req.method() == http::verb::head)
                check_conditions(values_of(req, http::field::if_match),
                                 values_of(req, http::field::if_none_match));
        }
    }
    if (m.route == route::scan && m.result == route_match::outcome::found) {
        const checked_scan_query q = check_scan_query(target);
        FUZZ_CHECK(q.value.has_value() != !q.error.empty());
        if (q.value)
            FUZZ_CHECK(q.value->limit >= 1 && q.value->limit <= max_scan_limit &&
                       q.value->prefix.size() <= max_key_bytes && q.value->after.size() <= max_key_bytes);
    }
}

// Parses one request from the start of `bytes` as the server does: a fresh parser per
// request with the server's limits, fed the way Beast's read loop feeds it, as the bytes
// arrive (`step` at a time here) and, after need_more, only once more have arrived.
// Returns how many bytes the request took, or nothing when it is malformed, over a
// limit, cut off, or framed by a Transfer-Encoding other than chunked.
std::optional<std::size_t> parse_one(std::string_view bytes, std::size_t step,
                                     const http_server_options& limits, std::optional<http_request>& out)
{
    http::request_parser<http::string_body> parser;
    parser.header_limit(limits.header_limit);
    parser.body_limit(limits.body_limit);
    parser.eager(true);
    std::size_t arrived = std::min(step, bytes.size());
    std::size_t used = 0;
    boost::beast::error_code ec;
    while (!parser.is_done()) {
        const std::size_t n = parser.put(boost::asio::buffer(bytes.data() + used, arrived - used), ec);
        used += n;
        FUZZ_CHECK(used <= arrived);
        // The server refuses a Transfer-Encoding that does not end with chunked as soon as
        // the header is read, and closes the connection: the body's length is unknown, so
        // nothing after the header is a request.
        if (parser.is_header_done() && parser.get().count(http::field::transfer_encoding) != 0 &&
            !parser.chunked())
            return std::nullopt;
        if (parser.is_done())
            break;
        if (ec && ec != http::error::need_more)
            return std::nullopt;
        if (!ec && n > 0 && used < arrived)
            continue; // more of what arrived to parse
        if (arrived == bytes.size()) {
            // The connection ends here.
            ec = {};
            parser.put_eof(ec);
            if (ec || !parser.is_done())
                return std::nullopt;
            break;
        }
        arrived = std::min(arrived + step, bytes.size());
    }
    out.emplace(parser.release());
    return used;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    const std::string_view input = raftkv::fuzz::as_chars(data, size);
    const http_server_options limits;

    // Bytes arrive in pieces of 1 to 256: a request split anywhere parses the same.
    const std::size_t step = 1 + size % 256;
    std::string_view rest = input;
    for (int k = 0; k < 8 && !rest.empty(); ++k) {
        std::optional<http_request> req;
        const std::optional<std::size_t> used = parse_one(rest, step, limits, req);
        std::optional<http_request> whole;
        const std::optional<std::size_t> whole_used = parse_one(rest, rest.size(), limits, whole);
        FUZZ_CHECK(used == whole_used);
        if (!used)
            break;
        FUZZ_CHECK(req->method_string() == whole->method_string() && req->target() == whole->target() &&
                   req->body() == whole->body() && req->version() == whole->version());
        check_request(*req);
        if (!req->keep_alive() || *used == 0)
            break;
        rest.remove_prefix(*used);
    }

    check_key_of(input);
    check_body(input);
    check_conditions({}, {input});
    check_conditions({input}, {});
    FUZZ_CHECK(percent_decode(percent_encode(input)) == input);
    return 0;
}
