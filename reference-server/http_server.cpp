#include "http_server.hpp"

#include "log.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>

#include <array>
#include <atomic>
#include <string>
#include <utility>

namespace raftkv::server {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

// Completion token for coroutines that handle errors as values rather than exceptions.
constexpr auto nothrow_awaitable = asio::as_tuple(asio::use_awaitable);

// After a connection is done, how long its client may take to finish sending (and read our
// last response) before the socket is closed, and how much of what it sends is discarded.
constexpr std::chrono::seconds linger_time{2};
constexpr std::size_t linger_bytes = std::size_t{16} << 20;

bool is_http_error(const beast::error_code& ec)
{
    return &ec.category() == &http::make_error_code(http::error::bad_target).category();
}

bool expects_continue(const http_request& req)
{
    const auto expect = req.find(http::field::expect);
    return expect != req.end() && beast::iequals(expect->value(), "100-continue");
}

} // namespace

struct http_server::state : std::enable_shared_from_this<state> {
    state(asio::any_io_executor executor, handler_factory factory, error_responder responder,
          http_server_options opts)
        : ex(std::move(executor)), acceptor(asio::make_strand(ex)), make_handler(std::move(factory)),
          make_error(std::move(responder)), options(opts)
    {
    }

    asio::awaitable<void> accept_loop();
    asio::awaitable<void> session(tcp::socket socket);
    asio::awaitable<void> serve(beast::tcp_stream& stream, beast::flat_buffer& buffer,
                                request_handler& handler);
    asio::awaitable<http_response> respond(request_handler& handler, http_request req);
    asio::awaitable<void> reject(beast::tcp_stream& stream, const beast::error_code& ec);
    static asio::awaitable<void> close_gracefully(beast::tcp_stream& stream);

    asio::any_io_executor ex;
    tcp::acceptor acceptor;
    handler_factory make_handler;
    error_responder make_error;
    http_server_options options;
    tcp::endpoint local;
    std::atomic<bool> stopping{false};
};

asio::awaitable<void> http_server::state::accept_loop()
{
    const auto self = shared_from_this();
    for (;;) {
        auto [ec, socket] = co_await acceptor.async_accept(asio::make_strand(ex), nothrow_awaitable);
        if (ec == asio::error::operation_aborted || stopping || !acceptor.is_open())
            co_return;
        if (ec) {
            // Out of file descriptors, most likely: wait for connections to close.
            log(log_level::warn, "accepting an HTTP connection failed: " + ec.message());
            asio::steady_timer pause(acceptor.get_executor(), std::chrono::milliseconds(100));
            co_await pause.async_wait(nothrow_awaitable);
            continue;
        }
        const auto socket_ex = socket.get_executor();
        asio::co_spawn(socket_ex, self->session(std::move(socket)), asio::detached);
    }
}

asio::awaitable<void> http_server::state::session(tcp::socket socket)
{
    const auto self = shared_from_this();
    beast::tcp_stream stream(std::move(socket));
    beast::flat_buffer buffer;
    const std::unique_ptr<request_handler> handler = make_handler(stream.get_executor());
    co_await serve(stream, buffer, *handler);
    co_await close_gracefully(stream);
}

asio::awaitable<void> http_server::state::serve(beast::tcp_stream& stream, beast::flat_buffer& buffer,
                                                request_handler& handler)
{
    for (;;) {
        http::request_parser<http::string_body> parser;
        parser.header_limit(options.header_limit);
        parser.body_limit(options.body_limit);
        stream.expires_after(options.idle_timeout);
        if (auto [ec, n] = co_await http::async_read_header(stream, buffer, parser, nothrow_awaitable); ec) {
            co_await reject(stream, ec);
            co_return;
        }
        if (expects_continue(parser.get()) && !parser.is_done()) {
            http::response<http::empty_body> go_on{http::status::continue_, parser.get().version()};
            if (auto [ec, n] = co_await http::async_write(stream, go_on, nothrow_awaitable); ec)
                co_return;
        }
        if (!parser.is_done()) {
            if (auto [ec, n] = co_await http::async_read(stream, buffer, parser, nothrow_awaitable); ec) {
                co_await reject(stream, ec);
                co_return;
            }
        }
        http_request req = parser.release();
        const unsigned version = req.version();
        const bool keep_alive = req.keep_alive() && !stopping;
        stream.expires_never();
        http_response res = co_await respond(handler, std::move(req));
        res.version(version);
        res.keep_alive(keep_alive);
        res.prepare_payload();
        stream.expires_after(options.idle_timeout);
        if (auto [ec, n] = co_await http::async_write(stream, res, nothrow_awaitable); ec || !keep_alive)
            co_return;
    }
}

asio::awaitable<http_response> http_server::state::respond(request_handler& handler, http_request req)
{
    std::string what;
    try {
        co_return co_await handler.handle(std::move(req));
    } catch (const std::exception& e) {
        what = e.what();
    }
    log(log_level::error, "request failed: " + what);
    co_return make_error(http::status::internal_server_error, "internal error: " + what);
}

// Answers a request that could not be read, if it was a malformed or oversized request
// rather than a closed or silent connection.
asio::awaitable<void> http_server::state::reject(beast::tcp_stream& stream, const beast::error_code& ec)
{
    if (!is_http_error(ec) || ec == http::error::end_of_stream || ec == http::error::partial_message)
        co_return;
    const bool too_large = ec == http::error::body_limit || ec == http::error::header_limit;
    http_response res =
        too_large ? make_error(http::status::payload_too_large, "request too large: " + ec.message())
                  : make_error(http::status::bad_request, "malformed request: " + ec.message());
    res.version(11);
    res.keep_alive(false);
    res.prepare_payload();
    stream.expires_after(options.idle_timeout);
    co_await http::async_write(stream, res, nothrow_awaitable);
}

// Half-closes, then discards what the client still sends until it closes too, so that
// it reads our last response rather than a connection reset.
asio::awaitable<void> http_server::state::close_gracefully(beast::tcp_stream& stream)
{
    beast::error_code ec;
    stream.socket().shutdown(tcp::socket::shutdown_send, ec);
    if (!ec) {
        stream.expires_after(linger_time);
        std::array<char, 16 * 1024> sink;
        for (std::size_t drained = 0; drained < linger_bytes;) {
            auto [read_ec, n] = co_await stream.async_read_some(asio::buffer(sink), nothrow_awaitable);
            if (read_ec)
                break;
            drained += n;
        }
    }
    stream.socket().close(ec);
}

http_server::http_server(asio::any_io_executor ex, const tcp::endpoint& listen_on,
                         handler_factory make_handler, error_responder make_error,
                         http_server_options options)
    : state_(std::make_shared<state>(std::move(ex), std::move(make_handler), std::move(make_error), options))
{
    tcp::acceptor& a = state_->acceptor;
    a.open(listen_on.protocol());
    a.set_option(asio::socket_base::reuse_address(true));
    a.bind(listen_on);
    a.listen(asio::socket_base::max_listen_connections);
    state_->local = a.local_endpoint();
}

http_server::~http_server()
{
    stop();
}

void http_server::start()
{
    asio::co_spawn(state_->acceptor.get_executor(), state_->accept_loop(), asio::detached);
}

void http_server::stop()
{
    if (state_->stopping.exchange(true))
        return;
    asio::post(state_->acceptor.get_executor(), [s = state_] {
        beast::error_code ec;
        s->acceptor.close(ec);
    });
}

tcp::endpoint http_server::local_endpoint() const
{
    return state_->local;
}

} // namespace raftkv::server
