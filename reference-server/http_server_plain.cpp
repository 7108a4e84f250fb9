// http_server's connection code over plain TCP (http_server.ipp).

#include "http_server.ipp"

namespace raftkv::server {

namespace http_server_detail {

// Nothing to agree on over plain TCP.
asio::awaitable<bool> handshake(beast::tcp_stream&, const http_server_options&)
{
    co_return true;
}

template <>
beast::tcp_stream open_stream<beast::tcp_stream>(tcp::socket socket, tls_context*)
{
    return beast::tcp_stream(std::move(socket));
}

} // namespace http_server_detail

template class http_server::state::connection<beast::tcp_stream>;
template void http_server::state::serve<beast::tcp_stream>(tcp::socket socket);

} // namespace raftkv::server
