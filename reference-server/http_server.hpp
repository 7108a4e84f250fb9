#ifndef RAFTKV_SERVER_HTTP_SERVER_HPP
#define RAFTKV_SERVER_HTTP_SERVER_HPP

// A small HTTP/1.x server on Boost.Beast, generic over what it serves: it accepts
// connections, reads requests (keep-alive, HTTP/1.0 and 1.1, "Expect: 100-continue"),
// hands each to a request_handler and writes the response. Each connection is one
// coroutine on its own strand, so any number of clients are served at once on however
// many threads run the executor.
//
// A request that cannot be parsed is answered by the error_responder (400, or 413 when
// it is over a size limit) and its connection closed; the server goes on serving.
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
#include <functional>
#include <memory>
#include <string_view>

namespace raftkv::server {

using http_request = boost::beast::http::request<boost::beast::http::string_body>;
using http_response = boost::beast::http::response<boost::beast::http::string_body>;

/// Answers the requests of one connection, one at a time, in order.
class request_handler {
public:
    virtual ~request_handler() = default;

    /// Returns the response to `req`. The server sets its version, keep-alive and
    /// Content-Length. An exception becomes a 500 response (and a log line).
    virtual boost::asio::awaitable<http_response> handle(http_request req) = 0;
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

    /// The largest request line and header fields accepted; larger is answered 413.
    /// Default: 64 KiB.
    std::size_t header_limit = 64 * 1024;

    /// A connection that sends no request for this long is closed; also the limit on
    /// reading one request's body and on writing one response.
    /// Default: 60 s.
    std::chrono::milliseconds idle_timeout{60'000};
};

/** Accepts HTTP connections and serves them with a request_handler each.

    @par Thread Safety
    stop() and local_endpoint() may be called from any thread.
*/
class http_server {
public:
    /// Binds and listens on `listen_on`; accepts nothing until start(). Connections run on
    /// strands of `ex`. Throws boost::system::system_error if the address cannot be bound.
    http_server(boost::asio::any_io_executor ex, const boost::asio::ip::tcp::endpoint& listen_on,
                handler_factory make_handler, error_responder make_error, http_server_options options = {});
    ~http_server();

    http_server(const http_server&) = delete;
    http_server& operator=(const http_server&) = delete;

    void start();

    /// Stops accepting. Open connections finish the request in progress, answer it with
    /// "Connection: close" and close.
    void stop();

    /// Where the server listens (the actual port when bound to port 0).
    boost::asio::ip::tcp::endpoint local_endpoint() const;

private:
    struct state;
    std::shared_ptr<state> state_;
};

} // namespace raftkv::server

#endif
