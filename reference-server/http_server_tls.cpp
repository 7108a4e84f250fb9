// http_server's connection code over TLS (http_server.ipp).

#include "http_server.ipp"

#include "log.hpp"
#include "tls.hpp"

#include <boost/asio/ssl/error.hpp>

#include <openssl/ssl.h>

namespace raftkv::server {

namespace http_server_detail {

// Sends the client TLS's close_notify and waits (at most linger_time) for its own.
asio::awaitable<void> close_gracefully(tls_stream& stream)
{
    beast::tcp_stream& tcp = stream.next_layer();
    tcp.expires_after(linger_time);
    // Whether the client answered or not, the socket is closed.
    co_await stream.async_shutdown(nothrow_awaitable);
    beast::error_code ignored;
    tcp.socket().close(ignored);
}

bool is_plain_http(const beast::error_code& ec)
{
    return ec.category() == asio::error::get_ssl_category() &&
           ERR_GET_REASON(ec.value()) == SSL_R_HTTP_REQUEST;
}

// The server side of the TLS handshake, within options.handshake_timeout. A client that
// spoke plain HTTP instead is told so in plain HTTP; any failure closes the connection.
asio::awaitable<bool> handshake(tls_stream& stream, const http_server_options& options)
{
    beast::tcp_stream& tcp = stream.next_layer();
    tcp.expires_after(options.handshake_timeout);
    auto [ec] = co_await stream.async_handshake(asio::ssl::stream_base::server, nothrow_awaitable);
    tcp.expires_never();
    if (!ec)
        co_return true;
    log(log_level::debug, "TLS handshake failed: " + ec.message());
    if (is_plain_http(ec)) {
        beast::error_code ignored;
        tcp.socket().non_blocking(true, ignored);
        tcp.socket().write_some(asio::buffer(plain_http_to_tls), ignored);
        if (options.on_refusal)
            options.on_refusal(http::verb::unknown, 400);
        co_await close_gracefully(tcp, turned_away_linger_time, turned_away_linger_bytes);
    }
    beast::error_code ignored;
    tcp.socket().close(ignored);
    co_return false;
}

template <>
tls_stream open_stream<tls_stream>(tcp::socket socket, tls_context* tls)
{
    return tls_stream(std::move(socket), tls->native());
}

} // namespace http_server_detail

template class http_server::state::connection<tls_stream>;
template void http_server::state::serve<tls_stream>(tcp::socket socket);

} // namespace raftkv::server
