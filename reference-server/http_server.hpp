#ifndef RAFTKV_SERVER_HTTP_SERVER_HPP
#define RAFTKV_SERVER_HTTP_SERVER_HPP

// A small HTTP/1.x server on Boost.Beast, generic over what it serves: it accepts
// connections, reads requests (keep-alive, HTTP/1.0 and 1.1, "Expect: 100-continue"),
// hands each to a request_handler and writes the response. Each connection runs on its
// own strand, so any number of clients are served at once on however many threads run
// the executor.
//
// A connection reads ahead: the requests of a client that pipelines (sends several without
// waiting for the answers) are handled concurrently, up to a bounded depth, and their
// responses are written strictly in request order, as HTTP/1.1 requires.
//
// A request that cannot be parsed is answered by the error_responder (400; 413 for a body
// over its limit, 431 for a request line and header fields over theirs), after the
// responses to the requests before it, and its connection closed; the server goes on
// serving.
//
// What a client can hold is bounded (http_server_options): the number of connections, the
// memory of request bodies still being received (over all connections), the memory of
// responses built and not yet written (per connection and over all connections), and the
// time a request's header and body may take to arrive. Beyond those limits the client gets a 503
// or its connection is closed, and the others are served meanwhile. At the connection limit
// the longest-idle connection is closed to admit a new one.
//
// The same connection code serves plain TCP or, given a tls_context (tls.hpp), TLS only.
//
//     http_server server{strand, endpoint,
//                        [&](auto ex) { return std::make_unique<my_handler>(ex); },
//                        [](http::status s, std::string_view msg) { return make_error(s, msg); }};
//     server.start();

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/status.hpp>
#include <boost/beast/http/string_body.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string_view>

namespace raftkv::server {

class tls_context;

using http_request = boost::beast::http::request<boost::beast::http::string_body>;
using http_response = boost::beast::http::response<boost::beast::http::string_body>;

/** Writes the body of a streamed response (response_stream) to its connection.

    @par Thread Safety
    On the connection's strand only, while response_stream::run() runs.
*/
class stream_writer {
public:
    virtual ~stream_writer() = default;

    /// Sends `data` (not empty) as the next part of the body: a chunk, or for an HTTP/1.0
    /// client the bytes themselves. A write must complete within
    /// http_server_options::idle_timeout, else the connection is closed. So is a connection
    /// whose client has taken no byte for idle_timeout while some were waiting for it (its
    /// receive buffer full, the kernel's send buffer holding the rest), found when the next
    /// write begins. False once the connection failed or closed: the stream should end.
    virtual boost::asio::awaitable<bool> write(std::string_view data) = 0;

    /// Whether the connection is gone: a write failed, the client closed its side, or
    /// abort() was called.
    virtual bool closed() const = 0;

    /// Whether the server is stopping (http_server::stop()): the stream should end soon.
    virtual bool stopping() const = 0;

    /// Has `f` called, on the executor the stream runs on, when the client is found gone
    /// (closed() turns true) while the stream waits between writes, so that a stream idle
    /// for long ends at once rather than at its next write. Replaces the function given
    /// before; an empty one removes it.
    virtual void when_closed(std::function<void()> f) = 0;

    /// Closes the connection at once, without ending the body, and drops what the kernel
    /// still holds for the client (a TCP reset): for a client that stopped reading (counted
    /// in http_server::stalled_streams()). A write in progress fails.
    virtual void abort() = 0;
};

/** The body of a response that is written as it is produced (Transfer-Encoding: chunked),
    such as a stream of events: see request_handler::handle_streamed().
*/
class response_stream {
public:
    virtual ~response_stream() = default;

    /// Produces the body with `out`, on the connection's strand, once the response's header
    /// was written; returns when the body is complete. An exception ends the body where it
    /// is and closes the connection.
    virtual boost::asio::awaitable<void> run(stream_writer& out) = 0;
};

/// A response, and when `stream` is set the stream producing its body in place of the
/// response's own.
struct handled_request {
    http_response response;
    std::shared_ptr<response_stream> stream;
};

/** Answers the requests of one connection.

    @par Thread Safety
    handle() is called once per request, on the connection's strand, in the order the
    requests arrived; each call runs until it first suspends before the next one starts.
    Up to http_server_options::pipeline_depth calls may be in progress at once (a client
    that pipelines), so what they share must tolerate interleaving at their suspension points.
*/
class request_handler {
public:
    virtual ~request_handler() = default;

    /// Returns the response to `req`. The server sets its version, keep-alive and
    /// Content-Length, and writes it after the responses to the earlier requests (to a HEAD
    /// request without its body, which the handler may leave in). An exception becomes a
    /// 500 response (and a log line).
    virtual boost::asio::awaitable<http_response> handle(http_request req) = 0;

    /// Whether `req` goes to handle_streamed() rather than handle(). Cheap: called for every
    /// request. Default: none does.
    virtual bool streams(const http_request& req) const;

    /// The answer to a request whose client waits for "100 Continue" before it sends the
    /// body (Expect: 100-continue), from its header alone (`header` has no body), when it
    /// is refused whatever the body would be: an unknown route, a method the route does not
    /// take, a missing token. The server then sends it without reading the body, and closes
    /// the connection. Default: none (the body is asked for, and handle() answers).
    virtual std::optional<http_response> refuse_before_body(const http_request& header) const;

    /// Answers a request for which streams() is true, possibly with a streamed body
    /// (handled_request::stream): the server then writes the response's status and fields
    /// with "Transfer-Encoding: chunked" (for HTTP/1.0: no length, and the connection
    /// closes after the body) and runs the stream; requests after it on the connection
    /// wait until its body is complete. Default: handle(), without a stream.
    virtual boost::asio::awaitable<handled_request> handle_streamed(http_request req);
};

/// Makes the handler of a new connection; `ex` is the connection's strand, where the
/// handler's coroutines run.
using handler_factory = std::function<std::unique_ptr<request_handler>(boost::asio::any_io_executor ex)>;

/// Builds the response to a request the server rejects itself, with its status and a
/// one-line reason.
using error_responder =
    std::function<http_response(boost::beast::http::status status, std::string_view message)>;

struct http_server_options {
    /// The largest request body accepted; a larger one is answered 413. Big enough for a
    /// 1 MiB value written with JSON escapes (up to 6 bytes per byte): the value limit itself
    /// is checked on the decoded value.
    /// Default: 6 MiB + 64 KiB.
    std::size_t body_limit = (std::size_t{6} << 20) + 64 * 1024;

    /// The largest request line and header fields accepted (together); larger is answered
    /// 431 (Request Header Fields Too Large). Also what a connection's read buffer holds, so
    /// the most trailer fields a chunked body may end with; at most 64 KiB (Beast stores a
    /// field in at most 65,533 bytes).
    /// Default: 64 KiB.
    std::size_t header_limit = 64 * 1024;

    /// A connection with no request in progress (every request read has been answered)
    /// whose client sends no first byte of a next request within this long is closed; also
    /// the limit on writing one response (one write of a streamed one), and on how long the
    /// client of a streamed response may take no byte of it while some wait in the kernel's
    /// send buffer (stream_writer::write()). While requests are in progress there is no
    /// limit on the wait for the next one: the handler bounds how long they take.
    /// Default: 60 s.
    std::chrono::milliseconds idle_timeout{60'000};

    /// A request's header (request line and fields) must have arrived whole within this
    /// long of its first byte, whether or not earlier requests of the connection are in
    /// progress; otherwise the connection is closed without an answer.
    /// Default: 10 s.
    std::chrono::milliseconds header_timeout{10'000};

    /// A request's body must have arrived whole within this long of the end of its header
    /// (of the "100 Continue" when the client asked for one), whether or not earlier
    /// requests are in progress; otherwise the connection is closed without an answer.
    /// Default: 60 s.
    std::chrono::milliseconds body_timeout{60'000};

    /// The most connections open at once. A connection beyond it is admitted by closing the
    /// connection that has been idle longest (waiting for the first byte of its next request
    /// with every earlier one answered, as HTTP allows at any time); connections in the
    /// middle of a request are never closed for it. When none is idle, the new connection
    /// is sent a fixed "503 Service Unavailable" with "Retry-After: 1" and
    /// "Connection: close" (nothing over TLS, where it could not be read) without reading
    /// its request, and closed. Each
    /// connection takes a file descriptor, so the process's descriptor limit (RLIMIT_NOFILE)
    /// must allow this many besides those of Raft and storage. REQUIRES: at least 1.
    /// Default: 4096.
    std::size_t max_connections = 4096;

    /// The most bytes of request bodies being received at once, over all connections. A
    /// body holds its bytes as they arrive (not what its Content-Length announces) and
    /// releases them when the whole request is handed to the handler or its connection
    /// ends. A request whose Content-Length does not fit what is left is answered 503 (with
    /// "Retry-After: 1") in its place, its body left unread; one whose bytes stop fitting as
    /// they arrive (a chunked body, say) likewise; either connection is then closed.
    /// REQUIRES: at least body_limit, so that any one request can fit.
    /// Default: 64 MiB.
    std::size_t max_pending_body_bytes = std::size_t{64} << 20;

    /// Serve HTTPS only, with this context (make_server_tls()): each connection starts with
    /// a TLS handshake, which must complete within handshake_timeout. A client that sends
    /// plain HTTP instead is answered a plain 400 saying so, and closed.
    /// Default: none, plain HTTP.
    std::shared_ptr<tls_context> tls;

    /// Default: 10 s.
    std::chrono::milliseconds handshake_timeout{10'000};

    /// The kernel send buffer (SO_SNDBUF, which Linux doubles) of a connection once it
    /// writes a streamed response: the most a client that stopped reading pins in the
    /// kernel until idle_timeout closes it. Left to the kernel, it grows to 4 MiB (Linux's
    /// default tcp_wmem). A write of the stream that fits in it does not wait for the
    /// client. 0 leaves the kernel's own.
    /// Default: 256 KiB.
    int stream_send_buffer = 256 * 1024;

    /// How many requests of one connection may be read and not yet answered. The server
    /// reads this far ahead of a pipelining client and handles these requests
    /// concurrently; it then stops reading until the oldest response is written. So a
    /// connection holds at most this many requests and responses. 1 serves one request at
    /// a time. REQUIRES: at least 1.
    /// Default: 16.
    std::size_t pipeline_depth = 16;

    /// A connection that holds at least this many bytes of responses built and not yet
    /// written (the memory each one's body takes, its capacity, plus an estimate of its
    /// status line and header fields, from when the handler returns it until its write
    /// completes; streamed responses do not count) reads no next request until writing
    /// them brings it below: a client that
    /// pipelines requests for large responses gets read no further ahead than it takes the
    /// answers. Small responses never reach it. REQUIRES: at least 1.
    /// Default: 1 MiB.
    std::size_t held_response_bytes_read_gate = std::size_t{1} << 20;

    /// The most bytes of such responses one connection may hold while it holds more than
    /// one: a response that brings it over this while others of the connection are not yet
    /// written is not sent, and the connection is reset at once (a client that pipelines and
    /// does not read), counted in http_server::held_response_closes(). One response alone
    /// may be larger. REQUIRES: at least held_response_bytes_read_gate.
    /// Default: 32 MiB.
    std::size_t max_held_response_bytes = std::size_t{32} << 20;

    /// The most bytes of such responses all connections together may hold. A response that
    /// brings the total over it has the connection holding the most reset (it may be the
    /// one that just got this response), and the next, until the others fit; counted in
    /// http_server::held_response_closes(). REQUIRES: at least max_held_response_bytes.
    /// Default: 256 MiB.
    std::size_t max_held_response_bytes_total = std::size_t{256} << 20;

    /// Whether each connection runs on a strand of its own, so that threads running the
    /// executor's context concurrently never run two handlers of one connection at once.
    /// Turn it off only when a single thread runs that context: there the strand serializes
    /// nothing and costs every completion a lock, a queue and a type-erased executor copy
    /// (raftkv-server --threads 1 spends about 8% less CPU per read without it;
    /// docs/benchmarks.md).
    /// Default: true.
    bool strand_per_connection = true;

    /// Called for each response the server sends itself, no handler involved: a request it
    /// could not read or refused (400, 413, 431, 503 over max_pending_body_bytes), a handler
    /// that failed with an exception (500), a connection turned away at max_connections
    /// (503) and plain HTTP sent to a TLS port (400). `method` is the request's, or
    /// verb::unknown when it was not read that far. Called on any thread, possibly
    /// concurrently; must not throw. A connection closed without an answer (a timeout, a
    /// client gone) calls nothing.
    /// Default: none.
    std::function<void(boost::beast::http::verb method, unsigned status)> on_refusal;
};

/** Accepts HTTP connections and serves them with a request_handler each.

    @par Thread Safety
    stop() and local_endpoint() may be called from any thread.
*/
class http_server {
public:
    /// Binds and listens on `listen_on`; accepts nothing until start(). Connections run on
    /// strands of `ex` (on `ex` itself without options.strand_per_connection). Throws
    /// std::invalid_argument if options.pipeline_depth, options.max_connections or
    /// options.held_response_bytes_read_gate is 0, options.max_pending_body_bytes is less
    /// than options.body_limit, options.max_held_response_bytes less than
    /// options.held_response_bytes_read_gate or options.max_held_response_bytes_total less
    /// than options.max_held_response_bytes, and boost::system::system_error if the address
    /// cannot be bound.
    http_server(boost::asio::any_io_executor ex, const boost::asio::ip::tcp::endpoint& listen_on,
                handler_factory make_handler, error_responder make_error, http_server_options options = {});
    ~http_server();

    http_server(const http_server&) = delete;
    http_server& operator=(const http_server&) = delete;

    void start();

    /// Stops accepting. Each open connection answers the requests it has read, answers
    /// the next one it reads with "Connection: close", and closes.
    void stop();

    /// Where the server listens (the actual port when bound to port 0).
    boost::asio::ip::tcp::endpoint local_endpoint() const;

    /// How many idle connections have been closed so far to admit new ones over
    /// http_server_options::max_connections.
    std::uint64_t idle_evictions() const;

    /// How many connections are open now, and how many were turned away with a 503 at
    /// http_server_options::max_connections because none was idle. Safe from any thread.
    std::uint64_t open_connections() const;
    std::uint64_t turned_away() const;

    /// How many streamed responses were closed because their client stopped reading: it
    /// took no byte for idle_timeout, or the stream called stream_writer::abort(). Safe from
    /// any thread.
    std::uint64_t stalled_streams() const;

    /// How many connections were reset for holding too many bytes of responses not yet
    /// written (http_server_options::max_held_response_bytes and
    /// max_held_response_bytes_total), and how many such bytes all connections hold now.
    /// Safe from any thread.
    std::uint64_t held_response_closes() const;
    std::size_t held_response_bytes() const;

    /// Makes `tls` the context of the connections accepted from now on (renewed certificate
    /// files, reloaded); those open keep theirs. Safe from any thread. Throws
    /// std::logic_error unless the server serves HTTPS (options.tls) and `tls` is not null.
    void set_tls(std::shared_ptr<tls_context> tls);

private:
    struct state;
    std::shared_ptr<state> state_;
};

} // namespace raftkv::server

#endif
