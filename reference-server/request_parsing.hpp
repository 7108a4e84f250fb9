#ifndef RAFTKV_SERVER_REQUEST_PARSING_HPP
#define RAFTKV_SERVER_REQUEST_PARSING_HPP

// The pure part of raftkv-server's key-value API: routing a request by method and target,
// and checking the key in the target and the JSON body of a PUT. Nothing here needs a
// running node, so these functions are unit-tested and fuzzed on their own
// (test/fuzz/http_request.cpp); api.hpp declares the handlers that use them.

#include <boost/beast/http/status.hpp>
#include <boost/beast/http/verb.hpp>

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace raftkv::server {

/// The longest key, in bytes after percent-decoding.
inline constexpr std::size_t max_key_bytes = 1024;

/// The longest value, in bytes (UTF-8, after JSON unescaping).
inline constexpr std::size_t max_value_bytes = std::size_t{1} << 20;

enum class route {
    kv,
    status,
    health,
    /// /cluster/members
    members,
    /// /cluster/members/{id}
    member,
    /// /cluster/members/{id}/promote
    promote,
    /// /cluster/leader
    leader,
    /// /metrics (Prometheus text format, metrics.hpp); the last route
    metrics,
};

/// Where a request goes, decided from its method and target alone.
struct route_match {
    enum class outcome { found, not_found, method_not_allowed };
    outcome result = outcome::not_found;
    /// The route, unless not_found.
    server::route route = route::kv;
    /// The methods the route allows ("GET, PUT, DELETE"), unless not_found.
    std::string_view allow;
    /// For route::kv: the key as it appears in the target, still percent-encoded (may be
    /// empty). A view into the target.
    std::string_view raw_key;
    /// For route::member and route::promote: the {id} as it appears in the target (not
    /// checked yet). A view into the target.
    std::string_view raw_id;
};

/// Matches `target` (its query string ignored) to a route, then `method` to the route.
route_match match_route(boost::beast::http::verb method, std::string_view target);

/// Decodes %XX escapes (either case of hex digit). Nothing if an escape is malformed.
/// '+' stays '+': in a path it is not a space.
std::optional<std::string> percent_decode(std::string_view text);

/// A validated input, or the status and message to answer with.
struct checked_input {
    std::optional<std::string> value;
    boost::beast::http::status status = boost::beast::http::status::ok;
    std::string error;
};

/// Decodes and checks a key from the target: a malformed escape, an empty key or one
/// that is not UTF-8 is 400; over max_key_bytes is 413.
checked_input check_key(std::string_view raw_key);

/// Extracts the value of a PUT body `{"value": "..."}`: malformed JSON, a body that is not
/// an object, or a missing or non-string "value" is 400; over max_value_bytes is 413.
checked_input check_put_body(std::string_view body);

} // namespace raftkv::server

#endif
