#ifndef RAFTKV_SERVER_API_HPP
#define RAFTKV_SERVER_API_HPP

// raftkv-server's HTTP API: routing, validation, JSON, and forwarding to the leader.
//
//   PUT /kv/{key}  {"value": "..."}    GET /kv/{key}    DELETE /kv/{key}
//   GET /status                        GET /health
//   GET /cluster/members               POST /cluster/members  {"id": N, "raft": "h:p", ...}
//   DELETE /cluster/members/{id}       POST /cluster/members/{id}/promote
//   POST /cluster/leader  {"id": N}
//
// Any node accepts any request. A node that is not the leader forwards it to the leader's
// HTTP address (which the leader published in the replicated log, see kv_service) with a
// header "X-Raftkv-Forwarded: <its id>", and relays the answer. A node that receives a
// forwarded request while not the leader answers 503 rather than forwarding again.
// docs/server.md lists every status code.
//
// The requests a client pipelines on one connection run concurrently, except that those
// naming the same key run one after another, in the order they arrived.

#include "http_server.hpp"

#include <raftkv/types.hpp>

#include <boost/beast/http/status.hpp>
#include <boost/beast/http/verb.hpp>

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

namespace raftkv::server {

class kv_service;
class leader_address_cache;

/// The longest key, in bytes after percent-decoding.
inline constexpr std::size_t max_key_bytes = 1024;

/// The longest value, in bytes (UTF-8, after JSON unescaping).
inline constexpr std::size_t max_value_bytes = std::size_t{1} << 20;

/// The header that marks a request forwarded by another node; its value is that node's id.
inline constexpr std::string_view forwarded_header = "X-Raftkv-Forwarded";

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

/// A response with body {"error": message}, Content-Type application/json, and
/// "Retry-After: 1" when the status is 503.
http_response error_response(boost::beast::http::status status, std::string_view message);

/// Whether a failed request was a write (PUT, DELETE), whose outcome may be unknown, or
/// a read, which never changes anything.
enum class request_kind { write, read };

/// How a put, delete or read that failed with a raftkv::errc (other than not_leader, which
/// is forwarded) is answered: 503 with a message that says whether a write took effect
/// (overloaded, proposal_dropped: no; leadership_lost, timeout: unknown), 500 for
/// anything unexpected.
http_response failure_response(std::error_code ec, request_kind kind);

struct api_options {
    /// How long a forwarded request may take, connecting included, before 503. A little
    /// longer than the leader's own request timeout, so that its answer gets through.
    /// Default: 6 s.
    std::chrono::milliseconds forward_timeout{6000};

    /// Forward over TLS with this client context (make_client_tls()), which must trust the
    /// other nodes' HTTPS certificates. Default: none, plain HTTP.
    std::shared_ptr<tls_context> forward_tls;
};

/** The request handlers of raftkv-server.

    @par Thread Safety
    make_handler() may be called from any thread. A handler serves one connection; its
    requests may be in progress concurrently, on the strand it was made for.
*/
class api {
public:
    /// `service`, and this api, must outlive every request the handlers serve.
    explicit api(kv_service& service, api_options options = {});
    ~api();

    api(const api&) = delete;
    api& operator=(const api&) = delete;

    /// A handler for one connection (an http_server handler_factory); `ex` is the
    /// connection's strand. Its forwarded requests go over keep-alive connections to the
    /// leader of its own, one per request in progress, a few of them kept for reuse.
    std::unique_ptr<request_handler> make_handler(boost::asio::any_io_executor ex);

private:
    kv_service* service_;
    api_options options_;
    // The leader's HTTP address, shared by every handler.
    std::unique_ptr<leader_address_cache> leader_addresses_;
};

} // namespace raftkv::server

#endif
