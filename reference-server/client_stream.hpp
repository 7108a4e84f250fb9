#ifndef RAFTKV_SERVER_CLIENT_STREAM_HPP
#define RAFTKV_SERVER_CLIENT_STREAM_HPP

// The connection one node opens to another node's HTTP API (to forward a request to the
// leader): plain TCP, or TLS when the cluster's HTTP API uses it. Callers see one type
// either way, and Asio's SSL stays in client_stream.cpp.
//
//     http_client_stream stream{ex, tls};   // tls: nullptr for plain HTTP
//     auto ec = co_await stream.connect(endpoints, "10.0.0.2", deadline);
//     ec = co_await stream.write(req);
//     ec = co_await stream.read(buffer, parser);

#include "http_server.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>

#include <chrono>
#include <memory>
#include <string>

namespace raftkv::server {

class tls_context;

/** One client connection to an HTTP server, plain or TLS.

    @par Thread Safety
    Used by one coroutine at a time, on its executor.
*/
class http_client_stream {
public:
    /// A TLS connection with `tls` (make_client_tls()), a plain one when it is null.
    http_client_stream(boost::asio::any_io_executor ex, std::shared_ptr<tls_context> tls);
    ~http_client_stream();
    http_client_stream(const http_client_stream&) = delete;
    http_client_stream& operator=(const http_client_stream&) = delete;

    /// Connects to the first of `endpoints` that accepts and, over TLS, does the handshake,
    /// which fails unless the server's certificate is trusted and names `host` (a name or
    /// an IP address); everything by `deadline` (then beast::error::timeout).
    boost::asio::awaitable<boost::beast::error_code>
    connect(const boost::asio::ip::tcp::resolver::results_type& endpoints, const std::string& host,
            std::chrono::steady_clock::time_point deadline);

    /// After connect() failed because the server's certificate was not accepted, why: the
    /// verification's reason ("certificate has expired", "unable to get local issuer
    /// certificate"), or that the certificate does not name the host. Empty otherwise.
    std::string verify_failure() const;

    /// Every operation from now on fails with beast::error::timeout once `deadline` passes.
    void expires_at(std::chrono::steady_clock::time_point deadline);
    void expires_never();

    boost::asio::awaitable<boost::beast::error_code> write(const http_request& req);

    /// Reads one response into `parser`; bytes read beyond it stay in `buffer`.
    boost::asio::awaitable<boost::beast::error_code>
    read(boost::beast::flat_buffer& buffer,
         boost::beast::http::response_parser<boost::beast::http::string_body>& parser);

    /// Reads only the header of one response into `parser`; read() goes on with the body.
    boost::asio::awaitable<boost::beast::error_code>
    read_header(boost::beast::flat_buffer& buffer,
                boost::beast::http::response_parser<boost::beast::http::string_body>& parser);

    /// Closes the socket (over TLS without a close_notify: the server needs none).
    void close();

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

} // namespace raftkv::server

#endif
