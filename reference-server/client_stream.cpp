#include "client_stream.hpp"

#include "tls.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

#include <optional>

namespace raftkv::server {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using tls_stream = beast::ssl_stream<beast::tcp_stream>;

constexpr auto nothrow_awaitable = asio::as_tuple(asio::use_awaitable);

bool is_ip_address(const std::string& host)
{
    beast::error_code ec;
    asio::ip::make_address(host, ec);
    return !ec;
}

} // namespace

// Exactly one of `plain` and `secure` is set.
struct http_client_stream::impl {
    std::optional<beast::tcp_stream> plain;
    std::optional<tls_stream> secure;
    std::string verify_failure;

    beast::tcp_stream& tcp() { return plain ? *plain : secure->next_layer(); }
};

http_client_stream::http_client_stream(asio::any_io_executor ex, std::shared_ptr<tls_context> tls)
    : impl_(std::make_unique<impl>())
{
    if (tls)
        impl_->secure.emplace(ex, tls->native());
    else
        impl_->plain.emplace(ex);
}

http_client_stream::~http_client_stream() = default;

asio::awaitable<beast::error_code> http_client_stream::connect(const tcp::resolver::results_type& endpoints,
                                                               const std::string& host,
                                                               std::chrono::steady_clock::time_point deadline)
{
    beast::tcp_stream& tcp = impl_->tcp();
    tcp.expires_at(deadline);
    auto [ec, endpoint] = co_await tcp.async_connect(endpoints, nothrow_awaitable);
    if (ec)
        co_return ec;
    tcp.socket().set_option(tcp::no_delay(true));
    if (!impl_->secure)
        co_return beast::error_code{};
    tls_stream& s = *impl_->secure;
    // SNI carries names only.
    if (!is_ip_address(host) && SSL_set_tlsext_host_name(s.native_handle(), host.c_str()) != 1)
        co_return asio::error::make_error_code(asio::error::invalid_argument);
    s.set_verify_callback(asio::ssl::host_name_verification(host));
    auto [handshake_ec] = co_await s.async_handshake(asio::ssl::stream_base::client, nothrow_awaitable);
    if (handshake_ec.category() == asio::error::get_ssl_category() &&
        ERR_GET_REASON(static_cast<unsigned long>(handshake_ec.value())) == SSL_R_CERTIFICATE_VERIFY_FAILED) {
        // OpenSSL's own checks record their reason; the host name check, a callback that
        // fails the chain without one, leaves "unspecified".
        const long result = SSL_get_verify_result(s.native_handle());
        impl_->verify_failure = result != X509_V_OK && result != X509_V_ERR_UNSPECIFIED
                                    ? X509_verify_cert_error_string(result)
                                    : "the certificate does not name " + host;
        // What OpenSSL says when the chain ends at a CA it was not given.
        if (result == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY ||
            result == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT || result == X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN)
            impl_->verify_failure += ": the CA that signed it is not among the trusted ones";
        else if (result == X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT)
            impl_->verify_failure += ": it is not among the trusted certificates";
    }
    co_return handshake_ec;
}

std::string http_client_stream::verify_failure() const
{
    return impl_->verify_failure;
}

void http_client_stream::expires_at(std::chrono::steady_clock::time_point deadline)
{
    impl_->tcp().expires_at(deadline);
}

void http_client_stream::expires_never()
{
    impl_->tcp().expires_never();
}

asio::awaitable<beast::error_code> http_client_stream::write(const http_request& req)
{
    if (impl_->secure) {
        auto [ec, n] = co_await http::async_write(*impl_->secure, req, nothrow_awaitable);
        co_return ec;
    }
    auto [ec, n] = co_await http::async_write(*impl_->plain, req, nothrow_awaitable);
    co_return ec;
}

asio::awaitable<beast::error_code> http_client_stream::read(beast::flat_buffer& buffer,
                                                            http::response_parser<http::string_body>& parser)
{
    if (impl_->secure) {
        auto [ec, n] = co_await http::async_read(*impl_->secure, buffer, parser, nothrow_awaitable);
        co_return ec;
    }
    auto [ec, n] = co_await http::async_read(*impl_->plain, buffer, parser, nothrow_awaitable);
    co_return ec;
}

asio::awaitable<beast::error_code>
http_client_stream::read_header(beast::flat_buffer& buffer, http::response_parser<http::string_body>& parser)
{
    if (impl_->secure) {
        auto [ec, n] = co_await http::async_read_header(*impl_->secure, buffer, parser, nothrow_awaitable);
        co_return ec;
    }
    auto [ec, n] = co_await http::async_read_header(*impl_->plain, buffer, parser, nothrow_awaitable);
    co_return ec;
}

void http_client_stream::close()
{
    beast::error_code ignored;
    impl_->tcp().socket().close(ignored);
}

} // namespace raftkv::server
