#ifndef RAFTKV_SERVER_API_HPP
#define RAFTKV_SERVER_API_HPP

// raftkv-server's HTTP API: routing, validation, JSON, and forwarding to the leader.
//
//   PUT /kv/{key}  {"value": "..."}    GET /kv/{key}    DELETE /kv/{key}
//   GET /kv?prefix=p&after=k&limit=n&keys_only=true    (a page of keys in byte order)
//   GET /status                        GET /health     GET /livez     GET /readyz
//   GET /version                       GET /metrics                   GET /cluster/status    GET /ui
//   GET /cluster/members               POST /cluster/members  {"id": N, "raft": "h:p", ...}
//   DELETE /cluster/members/{id}       POST /cluster/members/{id}/promote
//   POST /cluster/leader  {"id": N}
//   GET /cluster/status                GET, HEAD /ui  (the cluster page, ui.hpp)
//   GET /watch/{key}?prefix=true&from=N  (a stream of changes, watch.hpp; never forwarded)
//
// Any node accepts any request. A node that is not the leader forwards it to the leader's
// HTTP address (which the leader published in the replicated log, see kv_service) with a
// header "X-Raftkv-Forwarded: <its id> <mac>" (auth.hpp), and relays the answer. A node
// that receives a forwarded request whose marker verifies while not the leader answers 503
// rather than forwarding again. With tokens (auth.hpp), every route but /health, /livez,
// /readyz and /ui needs one.
// docs/server.md lists every status code.
//
// The requests a client pipelines on one connection run concurrently, except that those
// naming the same key run one after another, in the order they arrived (a scan, GET /kv,
// names no key and runs alongside the others).

#include "auth.hpp"
#include "http_server.hpp"
#include "metrics.hpp"
#include "request_parsing.hpp"

#include <raftkv/types.hpp>

#include <boost/beast/http/status.hpp>
#include <boost/beast/http/verb.hpp>
#include <boost/json/object.hpp>

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace raftkv::server {

class kv_service;
struct storage_status;
class leader_address_cache;
class read_coalescer;

/// The header that marks a request forwarded by another node; its value is that node's id
/// and a MAC (forward_marker()).
inline constexpr std::string_view forwarded_header = "X-Raftkv-Forwarded";

/// A response with body {"error": message}, Content-Type application/json, and
/// "Retry-After: 1" when the status is 503.
http_response error_response(boost::beast::http::status status, std::string_view message);

/// The answer to an internal failure: 500 with {"error": "internal error", "error_id": id}.
/// The details belong in the log, under the same id, never in the answer.
http_response internal_error_response(std::string_view error_id);

/// The 400 for a request whose framing HTTP/1.1 forbids (RFC 9112): no Host header in an
/// HTTP/1.1 request, more than one, or a Transfer-Encoding other than chunked; nothing for
/// the others. The HTTP server has already refused (and closed the connection of) a request
/// whose last coding is not chunked; a coding before chunked ("gzip, chunked") reaches this.
std::optional<http_response> framing_refusal(const http_request& req);

/// Whether a request to `m` (a route found) with `method` changes state, so that it needs a
/// write token: every method but GET.
bool changes_state(const route_match& m, boost::beast::http::verb method);

/// The refusal of `req`, routed to `m`, under `auth`: 401 with "WWW-Authenticate: Bearer"
/// when it carries no known bearer token, 403 when a read token asks for a change; nothing
/// when it may proceed. GET /health, /livez and /readyz (the probes of load balancers and
/// orchestrators) and the page's files (/ui) need no token: the page asks for one when its
/// own requests are refused. An unknown route or method needs one (of either kind) before
/// it is answered 404 or 405.
std::optional<http_response> authorization_refusal(const authorizer& auth, const http_request& req,
                                                   const route_match& m);

/// Whether a failed request was a write (PUT, DELETE), whose outcome may be unknown, or
/// a read, which never changes anything.
enum class request_kind { write, read };

/// How a put, delete or read that failed with a raftkv::errc (other than not_leader, which
/// is forwarded) is answered: 503 with a message that says whether a write took effect
/// (overloaded, proposal_dropped: no; leadership_lost, timeout, node_failed: unknown), 500
/// for anything unexpected (internal_error_response(), the error code logged).
http_response failure_response(std::error_code ec, request_kind kind);

/// How a request that failed with raftkv::errc::node_failed is answered: 503 with a
/// message naming the storage failure and saying that this node serves nothing until its
/// storage recovers; for a write that began before the failure (`started` earlier than
/// storage.since_steady), that its outcome is unknown, and for one made afterwards that
/// it did not take effect.
http_response storage_failure_response(const storage_status& storage, request_kind kind,
                                       std::chrono::steady_clock::time_point started);

/// The body of GET /status: `service`'s view of the cluster (docs/server.md).
boost::json::object status_json(const kv_service& service);

/// The "storage" object of GET /status: {"state": "ok"}, or {"state": "failed", "error":
/// "...", "since": <Unix time in ms>, "retrying": true or false}.
boost::json::object storage_json(const storage_status& storage);

struct api_options {
    /// How long a forwarded request may take, connecting included, before 503. A little
    /// longer than the leader's own request timeout, so that its answer gets through.
    /// Default: 6 s.
    std::chrono::milliseconds forward_timeout{6000};

    /// The tokens every request but the health checks must carry (server_config::auth_tokens).
    /// Default: none, no authorization.
    std::vector<auth_token> auth_tokens;

    /// The key of the forwarding marker: derive_forwarding_key() of the cluster id and
    /// `auth_tokens`, the same on every member.
    forwarding_key forward_key{};

    /// Forward over TLS with this client context (make_client_tls()), which must trust the
    /// other nodes' HTTPS certificates. Default: none, plain HTTP.
    std::shared_ptr<tls_context> forward_tls;

    /// How long GET /health waits for its linearizable read when the request names no
    /// ?timeout= (server_config::health_timeout_ms). Default: 1 s.
    std::chrono::milliseconds health_timeout{1000};

    /// How long the result of a health check's read answers later checks
    /// (server_config::health_reuse_ms, read_coalescer). Default: 100 ms.
    std::chrono::milliseconds health_reuse{100};

    /// How far a watch blocked in a write may fall behind before it is closed
    /// (server_config::watch_buffer_bytes, watch_stream). Default: 8 MiB.
    std::size_t watch_buffer_bytes = std::size_t{8} << 20;
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

    /// Sets where GET /metrics reads the HTTP server's connection counters. Call before
    /// the handlers serve; without it they show as zero.
    void count_connections(std::function<connection_counts()> source);

    /// Counts a response the HTTP server sent itself, before routing, in GET /metrics
    /// (http_server_options::on_refusal). Safe from any thread.
    void count_refusal(boost::beast::http::verb method, unsigned status) noexcept;

    /// What GET /metrics reports besides the service, shared by every handler.
    struct metrics_state {
        http_metrics http;
        std::function<connection_counts()> connections;
        std::chrono::system_clock::time_point started = std::chrono::system_clock::now();
    };

    /// The TLS context of forwarding to the leader: api_options::forward_tls, until
    /// set_forward_tls() replaces it for the connections accepted from then on (renewed
    /// certificate files, reloaded). Safe from any thread.
    std::shared_ptr<tls_context> forward_tls() const;
    void set_forward_tls(std::shared_ptr<tls_context> tls);

private:
    kv_service* service_;
    api_options options_;
    mutable std::mutex forward_tls_mutex_;
    std::shared_ptr<tls_context> forward_tls_; // under forward_tls_mutex_
    // Set when options_.auth_tokens is not empty.
    std::optional<authorizer> authorizer_;
    // The leader's HTTP address, shared by every handler.
    std::unique_ptr<leader_address_cache> leader_addresses_;
    // The reads of GET /health, shared by every handler.
    std::unique_ptr<read_coalescer> health_reads_;
    std::unique_ptr<metrics_state> metrics_;
};

} // namespace raftkv::server

#endif
