#ifndef RAFTKV_SERVER_CLI_CLIENT_HPP
#define RAFTKV_SERVER_CLI_CLIENT_HPP

// The HTTP side of raftkv, the command-line client: a list of endpoints tried in turn,
// plain HTTP or HTTPS, bearer tokens, one deadline per request. Beast, Asio's SSL and the
// forwarding client's connection (../client_stream.hpp) stay in client.cpp; this header
// includes only the standard library.
//
//     client c{options};
//     answer a = c.request("GET", "/kv/color", "", retry_policy::idempotent);

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace raftkv::cli {

/// One server's HTTP API.
struct endpoint {
    /// As given, for messages: "http://10.0.0.1:8080".
    std::string url;
    bool https = false;
    std::string host;
    std::uint16_t port = 0;
};

/// Parses "http://host:port" or "https://host:port" (a trailing '/' allowed) or a bare
/// "host:port" (plain HTTP); nothing otherwise.
std::optional<endpoint> parse_endpoint(std::string_view text);

struct client_options {
    /// Asked in this order. At least one.
    std::vector<endpoint> endpoints;
    /// For https:// endpoints: the CAs (PEM) that the servers' certificates must chain to
    /// (default: the system's), and a client certificate and key to present (default: none).
    std::string cacert, cert, key;
    /// Sent as "Authorization: Bearer <token>" unless empty.
    std::string token;
    /// How long one request may take, every endpoint and retry included.
    std::chrono::milliseconds timeout{10000};
};

/// A server's answer, or none.
struct answer {
    /// The HTTP status; 0 when no endpoint answered (body then says why).
    int status = 0;
    std::string body;
    /// The endpoint that answered (or, with status 0, the last one tried).
    std::string from;
    /// With status 0: the request reached a server but no answer came back, so a change
    /// it asked for may or may not have happened.
    bool outcome_unknown = false;
    /// For stream(): the X-Raftkv-Watch-From header of a 200 answer (the log index a watch
    /// started at), empty when there was none.
    std::string watch_from;
    /// With status 0: TLS failed in a way trying again does not mend (the server refused
    /// this client's certificate, this client refused the server's, or the port does not
    /// speak TLS).
    bool tls_refused = false;
};

/// Whether a request may be sent again to another endpoint after it may have reached one.
enum class retry_policy {
    /// Reads, puts and leader transfers: repeating them changes nothing more.
    idempotent,
    /// Deletes and membership changes: sent again only where the first server said it did
    /// not act (it could not be reached, or answered 503 without an unknown outcome).
    once,
};

/** Sends requests to a cluster's HTTP API.

    A request goes to the endpoints in order; on a connection failure, or a 503 (no leader
    yet, a node shutting down), it moves on to the next, and after the last it starts over,
    about a second later, while some endpoint answered 503 and the timeout has not passed.
    A repeatable request (retry_policy::idempotent) waits for each endpoint only its share
    of the time left (at least a second, or an equal share of the timeout when that is less), so
    a node that never answers does not hold it.
    Any other answer is returned as is: raftkv-server forwards a request to the leader
    itself, so any member serves any request.

    @par Thread Safety
    Distinct objects: safe. Shared objects: unsafe.
*/
class client {
public:
    /// Throws std::runtime_error, one line naming the file, when a TLS file cannot be read.
    explicit client(client_options options);
    ~client();
    client(const client&) = delete;
    client& operator=(const client&) = delete;

    /// `target` is sent as is (percent-encode keys); a non-empty `body` is sent as JSON;
    /// `headers` (name, value) are added to each attempt.
    answer request(std::string_view method, const std::string& target, const std::string& body,
                   retry_policy policy, const std::vector<std::pair<std::string, std::string>>& headers = {});

    /// One request to `e` alone, without retries, within the client's timeout; with
    /// `endpoints_left` > 1, within the share of the timeout left since `started` that is
    /// this endpoint's when `endpoints_left` (this one included) are still to be asked in
    /// turn (at least a second, or an equal share of the timeout when that is less), so that
    /// one that never answers does not hold the others.
    /// Once the timeout has run out since `started`, `e` is not asked: status 0, and a body
    /// that says so.
    answer request_one(const endpoint& e, std::string_view method, const std::string& target,
                       std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now(),
                       std::size_t endpoints_left = 1);

    /// GET `target` from `e` alone, passing each piece of a 200 answer's body to `on_data`
    /// as it arrives, until the server ends the body, the connection fails, or nothing
    /// arrives for `silence`. Connecting and the answer's header must come by `answer_by`
    /// (default: the client's timeout from now). The answer's body holds the body of any
    /// other status, and for status 0 (or 200 cut short) why it ended.
    answer stream(const endpoint& e, const std::string& target, std::chrono::milliseconds silence,
                  const std::function<void(std::string_view)>& on_data,
                  std::optional<std::chrono::steady_clock::time_point> answer_by = std::nullopt);

    /// When an endpoint asked now must have answered, with `endpoints_left` (it included)
    /// still to be asked in turn before `deadline`: its share of the time left, as
    /// request_one() gives it.
    std::chrono::steady_clock::time_point share_of(std::chrono::steady_clock::time_point deadline,
                                                   std::size_t endpoints_left) const;

    /// --timeout.
    std::chrono::milliseconds timeout() const noexcept;

    const std::vector<endpoint>& endpoints() const noexcept;

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

/// Percent-encodes every byte but the RFC 3986 unreserved characters.
std::string url_encode(std::string_view text);

} // namespace raftkv::cli

#endif
