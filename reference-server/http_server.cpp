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
#include <deque>
#include <optional>
#include <stdexcept>
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

// Half-closes, then discards what the client still sends until it closes too, so that
// it reads our last response rather than a connection reset.
asio::awaitable<void> close_gracefully(beast::tcp_stream& stream)
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

} // namespace

struct http_server::state : std::enable_shared_from_this<state> {
    class connection;

    state(asio::any_io_executor executor, handler_factory factory, error_responder responder,
          http_server_options opts)
        : ex(std::move(executor)), acceptor(asio::make_strand(ex)), make_handler(std::move(factory)),
          make_error(std::move(responder)), options(opts)
    {
    }

    asio::awaitable<void> accept_loop();
    asio::awaitable<http_response> respond(request_handler& handler, http_request req);
    std::optional<http_response> rejection(const beast::error_code& ec) const;

    asio::any_io_executor ex;
    tcp::acceptor acceptor;
    handler_factory make_handler;
    error_responder make_error;
    http_server_options options;
    tcp::endpoint local;
    std::atomic<bool> stopping{false};
};

/// One client connection: a reader that parses requests ahead of their answers, one
/// coroutine per request that handles it, and a writer that sends the responses in request
/// order. All of them run on the connection's strand and share the object, which lives
/// until the last of them ends.
class http_server::state::connection : public std::enable_shared_from_this<connection> {
public:
    connection(std::shared_ptr<state> server, tcp::socket socket);

    /// Serves the connection until it is done, then closes it. `self` is this.
    asio::awaitable<void> run(std::shared_ptr<connection> self);

private:
    /// A request read and not yet answered, and its response once it is ready.
    struct slot {
        unsigned version = 11;
        bool keep_alive = false;
        std::optional<http_response> response;
    };

    asio::awaitable<void> read_requests();
    asio::awaitable<bool> read_request();
    asio::awaitable<bool> send_continue(unsigned version);
    void admit(http_request req, bool keep_alive);
    void reject(const beast::error_code& ec);
    asio::awaitable<void> handle(std::shared_ptr<connection> self, slot& s, http_request req);
    asio::awaitable<void> write_responses(std::shared_ptr<connection> self);
    asio::awaitable<void> next_change();
    void changed();
    void arm(asio::steady_timer& deadline);
    static void disarm(asio::steady_timer& deadline);

    std::shared_ptr<state> server_;
    const http_server_options& options_;
    beast::tcp_stream stream_;
    beast::flat_buffer buffer_;
    std::unique_ptr<request_handler> handler_;

    // Requests read and not yet answered, oldest first; at most options_.pipeline_depth.
    // The writer pops the front once written; only then does a slot's address change.
    std::deque<slot> pipeline_;
    bool reading_ = true; // the reader may still add to the pipeline
    bool writing_ = true; // the writer still runs

    // Never expires: cancelled to wake the coroutines waiting for the state above to change.
    asio::steady_timer change_;
    // Close the connection when they expire: idle_ while the pipeline is empty and the
    // reader waits for a request, write_ while a response is being written.
    asio::steady_timer idle_;
    asio::steady_timer write_;
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
        auto conn = std::make_shared<connection>(self, std::move(socket));
        asio::co_spawn(socket_ex, conn->run(conn), asio::detached);
    }
}

// An exception's text may name files, addresses or other internals: it goes to the log
// under an error id, and the client gets only the id.
asio::awaitable<http_response> http_server::state::respond(request_handler& handler, http_request req)
{
    const std::string request = std::string(req.method_string()) + " " + std::string(req.target());
    std::string what;
    try {
        co_return co_await handler.handle(std::move(req));
    } catch (const std::exception& e) {
        what = e.what();
    } catch (...) {
        what = "an unknown exception";
    }
    const std::string id = new_error_id();
    log(log_level::error, request + " failed (error id " + id + "): " + what);
    co_return make_error(http::status::internal_server_error, "internal error (error id " + id + ")");
}

// The answer to a request that could not be read, if it was malformed or oversized rather
// than cut off by a closed or silent connection.
std::optional<http_response> http_server::state::rejection(const beast::error_code& ec) const
{
    if (!is_http_error(ec) || ec == http::error::end_of_stream || ec == http::error::partial_message)
        return std::nullopt;
    const bool too_large = ec == http::error::body_limit || ec == http::error::header_limit;
    http_response res =
        too_large ? make_error(http::status::payload_too_large, "request too large: " + ec.message())
                  : make_error(http::status::bad_request, "malformed request: " + ec.message());
    res.version(11);
    res.keep_alive(false);
    res.prepare_payload();
    return res;
}

http_server::state::connection::connection(std::shared_ptr<state> server, tcp::socket socket)
    : server_(std::move(server)), options_(server_->options), stream_(std::move(socket)),
      handler_(server_->make_handler(stream_.get_executor())),
      change_(stream_.get_executor(), asio::steady_timer::time_point::max()),
      idle_(stream_.get_executor(), asio::steady_timer::time_point::max()),
      write_(stream_.get_executor(), asio::steady_timer::time_point::max())
{
}

asio::awaitable<void> http_server::state::connection::run(std::shared_ptr<connection> self)
{
    arm(idle_);
    asio::co_spawn(stream_.get_executor(), write_responses(self), asio::detached);
    co_await read_requests();
    while (writing_)
        co_await next_change();
    disarm(idle_);
    disarm(write_);
    co_await close_gracefully(stream_);
}

asio::awaitable<void> http_server::state::connection::read_requests()
{
    for (bool more = true; more;)
        more = co_await read_request();
    reading_ = false;
    changed();
}

// Reads one request and starts handling it. False when nothing more is to be read: the
// connection failed or closed, the request was bad, or it asked to close.
asio::awaitable<bool> http_server::state::connection::read_request()
{
    while (writing_ && pipeline_.size() >= options_.pipeline_depth)
        co_await next_change();
    if (!writing_)
        co_return false;
    http::request_parser<http::string_body> parser;
    parser.header_limit(options_.header_limit);
    parser.body_limit(options_.body_limit);
    if (auto [ec, n] = co_await http::async_read_header(stream_, buffer_, parser, nothrow_awaitable); ec) {
        reject(ec);
        co_return false;
    }
    if (expects_continue(parser.get()) && !parser.is_done()) {
        // The interim response belongs to this request: it follows the earlier responses.
        while (writing_ && !pipeline_.empty())
            co_await next_change();
        if (!writing_)
            co_return false;
        const bool sent = co_await send_continue(parser.get().version());
        if (!sent)
            co_return false;
    }
    if (!parser.is_done()) {
        if (auto [ec, n] = co_await http::async_read(stream_, buffer_, parser, nothrow_awaitable); ec) {
            reject(ec);
            co_return false;
        }
    }
    http_request req = parser.release();
    const bool keep_alive = req.keep_alive() && !server_->stopping;
    admit(std::move(req), keep_alive);
    co_return keep_alive;
}

// REQUIRES: the pipeline is empty, so the writer is not writing.
asio::awaitable<bool> http_server::state::connection::send_continue(unsigned version)
{
    http::response<http::empty_body> go_on{http::status::continue_, version};
    arm(write_);
    auto [ec, n] = co_await http::async_write(stream_, go_on, nothrow_awaitable);
    disarm(write_);
    co_return !ec;
}

void http_server::state::connection::admit(http_request req, bool keep_alive)
{
    disarm(idle_);
    slot& s = pipeline_.emplace_back(slot{req.version(), keep_alive, std::nullopt});
    asio::co_spawn(stream_.get_executor(), handle(shared_from_this(), s, std::move(req)), asio::detached);
}

void http_server::state::connection::reject(const beast::error_code& ec)
{
    if (std::optional<http_response> res = server_->rejection(ec)) {
        disarm(idle_);
        pipeline_.push_back(slot{11, false, std::move(res)});
        changed();
    }
}

// `s` stays in place until the writer has written the response this puts there.
asio::awaitable<void> http_server::state::connection::handle(std::shared_ptr<connection>, slot& s,
                                                             http_request req)
{
    http_response res = co_await server_->respond(*handler_, std::move(req));
    res.version(s.version);
    res.keep_alive(s.keep_alive);
    res.prepare_payload();
    s.response = std::move(res);
    changed();
}

// Writes the responses in request order, each once it is ready, until the reader is done
// and every response is written, one said "Connection: close", or a write fails.
asio::awaitable<void> http_server::state::connection::write_responses(std::shared_ptr<connection>)
{
    for (;;) {
        while (pipeline_.empty() ? reading_ : !pipeline_.front().response)
            co_await next_change();
        if (pipeline_.empty())
            break;
        slot& s = pipeline_.front();
        arm(write_);
        auto [ec, n] = co_await http::async_write(stream_, *s.response, nothrow_awaitable);
        disarm(write_);
        const bool last = ec || !s.keep_alive;
        pipeline_.pop_front();
        if (last) {
            if (ec)
                stream_.close(); // ends a read in progress: nothing more can be answered
            break;
        }
        if (pipeline_.empty() && reading_)
            arm(idle_);
        changed();
    }
    writing_ = false;
    changed();
}

asio::awaitable<void> http_server::state::connection::next_change()
{
    co_await change_.async_wait(nothrow_awaitable);
}

void http_server::state::connection::changed()
{
    change_.cancel();
}

void http_server::state::connection::arm(asio::steady_timer& deadline)
{
    deadline.expires_after(options_.idle_timeout);
    deadline.async_wait([self = shared_from_this(), &deadline](const beast::error_code& ec) {
        // Re-armed or disarmed since: a stale expiry closes nothing.
        if (!ec && deadline.expiry() <= asio::steady_timer::clock_type::now())
            self->stream_.close();
    });
}

void http_server::state::connection::disarm(asio::steady_timer& deadline)
{
    deadline.expires_at(asio::steady_timer::time_point::max());
}

http_server::http_server(asio::any_io_executor ex, const tcp::endpoint& listen_on,
                         handler_factory make_handler, error_responder make_error,
                         http_server_options options)
    : state_(std::make_shared<state>(std::move(ex), std::move(make_handler), std::move(make_error), options))
{
    if (options.pipeline_depth == 0)
        throw std::invalid_argument("http_server_options::pipeline_depth must be at least 1");
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
