#ifndef RAFTKV_BENCH_LOADGEN_RESPONSE_PARSER_HPP
#define RAFTKV_BENCH_LOADGEN_RESPONSE_PARSER_HPP

/// A minimal HTTP/1.1 response parser for the load generator: the status line, Content-Length
/// and Connection: close, nothing else. It parses one response at the start of a buffer and
/// keeps no state, so a caller that has received only part of a response calls it again once
/// more bytes have arrived (responses of the servers measured are a few hundred bytes and
/// arrive whole almost always).
///
/// Refused, with a one-line reason: chunked or any other transfer coding, a body without
/// Content-Length (read until close), interim 1xx responses, malformed status lines and
/// Content-Length values, and headers or bodies beyond the limits.
///
/// @par Thread Safety
/// A pure function; safe from any thread.

#include <cstddef>
#include <cstring>
#include <string_view>

namespace raftkv::loadgen {

/// What parse_response() found.
enum class parse_status {
    complete,   ///< a whole response is at the start of the buffer
    incomplete, ///< a prefix of a valid response: call again with more bytes
    error,      ///< not a response this parser accepts; `error` says why
};

/// One parsed response; offsets are from the start of the buffer given to parse_response().
struct http_response {
    int status = 0;              ///< the status code, 200..599
    std::size_t body_offset = 0; ///< where the body starts (just after the blank line)
    std::size_t body_size = 0;   ///< Content-Length (0 for 204 and 304)
    std::size_t size = 0;        ///< bytes of the whole response: headers and body
    bool close = false;          ///< the server sent `Connection: close`
};

struct parse_result {
    parse_status status = parse_status::incomplete;
    http_response response; ///< valid when status == complete
    const char* error = ""; ///< a static one-line reason when status == error
};

/// Limits of parse_response(); the defaults are far above what the servers measured send.
struct parse_limits {
    std::size_t max_header_bytes = 64 * 1024;
    std::size_t max_body_bytes = 64 * 1024 * 1024;
};

namespace detail {

inline bool equals_lower(std::string_view s, std::string_view lower)
{
    if (s.size() != lower.size())
        return false;
    for (std::size_t i = 0; i < s.size(); ++i) {
        char c = s[i];
        if (c >= 'A' && c <= 'Z')
            c = static_cast<char>(c - 'A' + 'a');
        if (c != lower[i])
            return false;
    }
    return true;
}

inline std::string_view trim(std::string_view s)
{
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
        s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
        s.remove_suffix(1);
    return s;
}

/// Whether the comma-separated header value `value` holds the token `lower`, ignoring case.
inline bool has_token(std::string_view value, std::string_view lower)
{
    while (!value.empty()) {
        const std::size_t comma = value.find(',');
        if (equals_lower(trim(value.substr(0, comma)), lower))
            return true;
        if (comma == std::string_view::npos)
            break;
        value.remove_prefix(comma + 1);
    }
    return false;
}

} // namespace detail

/// Parses the response at the start of `data`.
inline parse_result parse_response(std::string_view data, const parse_limits& limits = {})
{
    parse_result r;
    auto fail = [&r](const char* why) {
        r.status = parse_status::error;
        r.error = why;
        return r;
    };

    // Status line: "HTTP/1.x NNN reason".
    constexpr std::string_view prefix = "HTTP/1.";
    const std::size_t check = data.size() < prefix.size() ? data.size() : prefix.size();
    if (data.substr(0, check) != prefix.substr(0, check))
        return fail("not an HTTP/1.x status line");
    const std::size_t header_end = data.find("\r\n\r\n");
    if (header_end == std::string_view::npos) {
        if (data.size() > limits.max_header_bytes)
            return fail("response header too large");
        return r; // incomplete
    }
    if (header_end + 4 > limits.max_header_bytes)
        return fail("response header too large");
    const std::size_t line_end = data.find("\r\n");
    const std::string_view status_line = data.substr(0, line_end);
    if (status_line.size() < 12 || (status_line[7] != '0' && status_line[7] != '1') ||
        status_line[8] != ' ' || (status_line.size() > 12 && status_line[12] != ' '))
        return fail("malformed status line");
    int status = 0;
    for (std::size_t i = 9; i < 12; ++i) {
        const char c = status_line[i];
        if (c < '0' || c > '9')
            return fail("malformed status code");
        status = status * 10 + (c - '0');
    }
    if (status < 100 || status > 599)
        return fail("malformed status code");
    if (status < 200)
        return fail("interim 1xx responses are not supported");

    // Headers: only Content-Length, Transfer-Encoding and Connection matter.
    bool have_length = false;
    std::size_t length = 0;
    std::size_t pos = line_end + 2;
    while (pos < header_end + 2) {
        const std::size_t eol = data.find("\r\n", pos);
        const std::string_view line = data.substr(pos, eol - pos);
        pos = eol + 2;
        const std::size_t colon = line.find(':');
        if (colon == std::string_view::npos || colon == 0)
            return fail("malformed header line");
        const std::string_view name = line.substr(0, colon);
        const std::string_view value = detail::trim(line.substr(colon + 1));
        switch (name[0]) {
        case 'C':
        case 'c':
            if (detail::equals_lower(name, "content-length")) {
                if (value.empty() || value.size() > 15)
                    return fail("malformed Content-Length");
                std::size_t n = 0;
                for (const char c : value) {
                    if (c < '0' || c > '9')
                        return fail("malformed Content-Length");
                    n = n * 10 + static_cast<std::size_t>(c - '0');
                }
                if (have_length && n != length)
                    return fail("conflicting Content-Length headers");
                have_length = true;
                length = n;
            } else if (detail::equals_lower(name, "connection")) {
                r.response.close = r.response.close || detail::has_token(value, "close");
            }
            break;
        case 'T':
        case 't':
            if (detail::equals_lower(name, "transfer-encoding") && !detail::equals_lower(value, "identity"))
                return fail(
                    "Transfer-Encoding (chunked) is not supported: the server must send Content-Length");
            break;
        default: break;
        }
    }
    if (!have_length) {
        if (status != 204 && status != 304)
            return fail("response without Content-Length (a body read until close is not supported)");
        length = 0;
    }
    if (length > limits.max_body_bytes)
        return fail("response body too large");

    r.response.status = status;
    r.response.body_offset = header_end + 4;
    r.response.body_size = length;
    r.response.size = header_end + 4 + length;
    if (data.size() < r.response.size)
        return r; // incomplete: the body has not all arrived
    r.status = parse_status::complete;
    return r;
}

} // namespace raftkv::loadgen

#endif // RAFTKV_BENCH_LOADGEN_RESPONSE_PARSER_HPP
