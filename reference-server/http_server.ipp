#ifndef RAFTKV_SERVER_HTTP_SERVER_IPP
#define RAFTKV_SERVER_HTTP_SERVER_IPP

// http_server's implementation, shared by its translation units: the connection code is a
// template over the stream (plain TCP or TLS), explicitly instantiated once per stream in
// http_server_plain.cpp and http_server_tls.cpp so that the two compile in parallel;
// http_server_common.cpp holds the acceptor and what does not depend on the stream.
// Include it only there.

#include "http_server.hpp"
#include "log.hpp"
#include "send_progress.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/chunk_encode.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <boost/intrusive/list.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace raftkv::server {

namespace http_server_detail {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using tls_stream = beast::ssl_stream<beast::tcp_stream>;

// Completion token for coroutines that handle errors as values rather than exceptions.
constexpr auto nothrow_awaitable = asio::as_tuple(asio::use_awaitable);

/// The responses a connection writes in one go: each one's status line and header fields
/// (what Beast's serializer would produce), with small bodies copied after them and large ones
/// referenced where they are, as one buffer sequence for a single gathered write.
class response_batch {
public:
    /// Adds `res`, whose payload is prepared (Content-Length set) and not chunked. It must
    /// stay in place until the write of buffers() completes.
    void add(const http_response& res);

    /// The bytes of every response added, in order. Valid until the next add() or clear().
    const std::vector<asio::const_buffer>& buffers();

    bool empty() const { return pieces_.empty(); }
    void clear();

private:
    // A run of bytes of text_, or a body referenced in place.
    struct piece {
        std::size_t offset;
        std::size_t size;
        const char* body; // null: the piece is text_[offset, offset + size)
    };

    std::string text_;
    std::vector<piece> pieces_;
    std::vector<asio::const_buffer> buffers_;
};

// After a connection is done, how long its client may take to finish sending (and read our
// last response) before the socket is closed, and how much of what it sends is discarded.
constexpr std::chrono::seconds linger_time{2};
constexpr std::size_t linger_bytes = std::size_t{16} << 20;

// The same for a connection turned away over max_connections (which holds a descriptor
// while it lingers: at most turned_away_lingering of them linger at once, the others are
// closed at once), and for plain HTTP sent to a TLS port.
constexpr std::chrono::milliseconds turned_away_linger_time{500};
constexpr std::size_t turned_away_linger_bytes = 64 * 1024;
constexpr int turned_away_lingering = 256;

// How much the wait for a request's first byte reads.
constexpr std::size_t first_read_size = 4096;

// The most a connection's read buffer holds: the header limit, within these bounds. A
// body and its chunks are consumed as they arrive, so only what the parser must see whole
// has to fit: the request line and header fields, a chunk's size line, and the trailer
// fields after the last chunk, which Beast counts against no limit (they would otherwise
// pile up without bound) and stores as header fields, throwing on a value over 65,533 bytes.
// Trailer fields that do not fit are answered 431.
constexpr std::size_t max_read_buffer = 64 * 1024;

// What a connection over max_connections is sent: fixed, so it costs no handler.
constexpr std::string_view too_many_connections = "HTTP/1.1 503 Service Unavailable\r\n"
                                                  "Content-Type: application/json\r\n"
                                                  "Content-Length: 32\r\n"
                                                  "Retry-After: 1\r\n"
                                                  "Connection: close\r\n"
                                                  "\r\n"
                                                  "{\"error\":\"too many connections\"}";

// What a client that speaks plain HTTP to a TLS port is sent instead of a handshake.
constexpr std::string_view plain_http_to_tls = "HTTP/1.1 400 Bad Request\r\n"
                                               "Content-Type: application/json\r\n"
                                               "Content-Length: 53\r\n"
                                               "Connection: close\r\n"
                                               "\r\n"
                                               "{\"error\":\"this port serves HTTPS: use https:// URLs\"}";

bool is_http_error(const beast::error_code& ec);

bool expects_continue(const http::request_header<>& req);

// The expectation of an HTTP/1.1 request other than 100-continue, which this server does not
// meet (RFC 9110 10.1.1: it may answer 417), if the request has one.
std::optional<std::string> unmet_expectation(const http::request_header<>& req);

// Rewrites an absolute-form target ("http://host:port/path?query", RFC 9112 3.2.2: what a
// client configured with a proxy sends, and a server must accept) to its origin form
// ("/path?query"), so that routing and everything after it see one form. False for one
// whose authority is empty or carries user information (RFC 9110 4.2.1, 4.2.4), and for any
// target with a '#' (a fragment is not part of a request target, RFC 9112 3.2; in a key it
// is sent as %23): a bad request.
bool to_origin_form(http_request& req);

// Half-closes, then discards what the client still sends until it closes too (for at most
// `time` and `bytes`), so that it reads our last response rather than a connection reset.
asio::awaitable<void> close_gracefully(beast::tcp_stream& stream,
                                       std::chrono::milliseconds time = linger_time,
                                       std::size_t bytes = linger_bytes);

// Sends the client TLS's close_notify and waits (at most linger_time) for its own.
asio::awaitable<void> close_gracefully(tls_stream& stream);

// Nothing to agree on over plain TCP.
asio::awaitable<bool> handshake(beast::tcp_stream&, const http_server_options&);

// The server side of the TLS handshake, within options.handshake_timeout. A client that
// spoke plain HTTP instead is told so in plain HTTP; any failure closes the connection.
asio::awaitable<bool> handshake(tls_stream& stream, const http_server_options& options);

template <class Stream>
Stream open_stream(tcp::socket socket, tls_context* tls);

template <>
beast::tcp_stream open_stream<beast::tcp_stream>(tcp::socket socket, tls_context*);

template <>
tls_stream open_stream<tls_stream>(tcp::socket socket, tls_context* tls);

/// The bytes of the server's pending-body budget one request holds while its body is
/// received; they return to the budget when it is destroyed or released.
class body_reservation {
public:
    body_reservation(std::atomic<std::size_t>& pending, std::size_t limit) : pending_(pending), limit_(limit)
    {
    }
    ~body_reservation() { release(); }
    body_reservation(const body_reservation&) = delete;
    body_reservation& operator=(const body_reservation&) = delete;

    /// Takes `n` more bytes, unless the budget has not that many left; then false, and
    /// refused() is true from then on.
    bool add(std::uint64_t n)
    {
        std::size_t current = pending_.load();
        do {
            if (n > limit_ - current) {
                refused_ = true;
                return false;
            }
        } while (!pending_.compare_exchange_weak(current, current + static_cast<std::size_t>(n)));
        held_ += static_cast<std::size_t>(n);
        return true;
    }

    void release()
    {
        pending_ -= held_;
        held_ = 0;
    }

    bool refused() const { return refused_; }

    /// Whether the budget has `n` bytes left now (taking none).
    bool has_room_for(std::uint64_t n) const { return n <= limit_ - pending_.load(); }

private:
    std::atomic<std::size_t>& pending_;
    std::size_t limit_;
    std::size_t held_ = 0;
    bool refused_ = false;
};

/// A request body read into a string that takes its bytes from a body_reservation as they
/// arrive: the budget holds what the bodies being received hold, not what their headers
/// announce (a few connections that announce large bodies and send nothing would take the
/// whole budget, and every other body would be refused until they time out). Unlike
/// http::string_body, the string does not reserve the announced length up front.
struct reserved_string_body {
    struct value_type {
        std::string text;
        body_reservation* reservation = nullptr; // set before the body is read
    };

    class reader {
    public:
        template <bool isRequest, class Fields>
        reader(http::header<isRequest, Fields>&, value_type& body) : body_(body)
        {
        }

        void init(const boost::optional<std::uint64_t>& length, beast::error_code& ec)
        {
            if (length)
                body_.text.reserve(static_cast<std::size_t>(std::min<std::uint64_t>(*length, 64 * 1024)));
            ec = {};
        }

        template <class ConstBufferSequence>
        std::size_t put(const ConstBufferSequence& buffers, beast::error_code& ec)
        {
            const std::size_t n = asio::buffer_size(buffers);
            if (body_.reservation && !body_.reservation->add(n)) {
                ec = asio::error::no_buffer_space;
                return 0;
            }
            const std::size_t at = body_.text.size();
            body_.text.resize(at + n);
            asio::buffer_copy(asio::buffer(body_.text.data() + at, n), buffers);
            ec = {};
            return n;
        }

        void finish(beast::error_code& ec) { ec = {}; }

    private:
        value_type& body_;
    };
};
using request_parser = http::request_parser<reserved_string_body>;

/// A connection as the idle list sees it: linked while it waits for the first byte of its
/// next request with nothing in progress, in the order it began to wait.
class idle_member : public boost::intrusive::list_base_hook<> {
public:
    virtual ~idle_member() = default;

    /// The connection, unless it is being destroyed.
    virtual std::shared_ptr<idle_member> keep() = 0;

    /// Closes the connection, on its own strand. Called once the acceptor has claimed it.
    virtual void evict(std::shared_ptr<idle_member> self) = 0;

    // Set, under the idle list's mutex, when the acceptor claims the connection: from then
    // on it reads no request, even if the first byte of one has arrived.
    bool evicted = false;
};

struct response_holder_tag;

/// A connection as the cap on held response bytes over all connections sees it: linked into
/// the server's list for its whole life.
class response_holder : public boost::intrusive::list_base_hook<boost::intrusive::tag<response_holder_tag>> {
public:
    virtual ~response_holder() = default;

    /// The connection, unless it is being destroyed.
    virtual std::shared_ptr<response_holder> keep_holder() = 0;

    /// Resets the connection, on its own strand, for the response bytes it holds.
    virtual void drop(std::shared_ptr<response_holder> self) = 0;

    // The bytes of responses the connection has built and not yet written (on its strand;
    // read from any thread).
    std::atomic<std::size_t> held{0};
    // Set, under the list's mutex, once chosen to be reset over the cap; read by the
    // connection too, which then resets at once rather than when the posted reset runs.
    std::atomic<bool> dropped{false};
};

using response_holder_list =
    boost::intrusive::list<response_holder, boost::intrusive::base_hook<boost::intrusive::list_base_hook<
                                                boost::intrusive::tag<response_holder_tag>>>>;

// The bytes a response holds until written: its body, and its status line and header fields
// as response_batch writes them.
std::size_t held_size(const http_response& res);

} // namespace http_server_detail

using namespace http_server_detail;

struct http_server::state : std::enable_shared_from_this<state> {
    template <class Stream>
    class connection;
    using time_point = asio::steady_timer::time_point;

    state(asio::any_io_executor executor, handler_factory factory, error_responder responder,
          http_server_options opts)
        : ex(std::move(executor)), acceptor(asio::make_strand(ex)), make_handler(std::move(factory)),
          make_error(std::move(responder)), options(opts), tls_now(options.tls)
    {
    }

    asio::awaitable<void> accept_loop();
    template <class Stream>
    void serve(tcp::socket socket);
    void turn_away(tcp::socket socket);
    bool evict_longest_idle();
    void become_idle(idle_member& c);
    bool become_busy(idle_member& c);
    void drop_biggest_holders();
    static asio::awaitable<void> linger(std::shared_ptr<state> self, beast::tcp_stream stream);
    asio::awaitable<handled_request> respond(request_handler& handler, http_request req);
    std::optional<http_response> rejection(const beast::error_code& ec) const;
    void refused(http::verb method, unsigned status) const;
    http_response busy() const;
    http_response unframed(std::string_view why) const;
    http_response expectation_failed(std::string_view expectation) const;

    asio::any_io_executor ex;
    tcp::acceptor acceptor;
    handler_factory make_handler;
    error_responder make_error;
    http_server_options options;
    // The TLS context new connections use: options.tls until set_tls() replaces it.
    mutable std::mutex tls_mutex;
    std::shared_ptr<tls_context> tls_now; // under tls_mutex
    std::shared_ptr<tls_context> current_tls() const
    {
        std::lock_guard lock(tls_mutex);
        return tls_now;
    }
    tcp::endpoint local;
    std::atomic<bool> stopping{false};
    // Connections open, counted by the accept loop and by each connection's destructor.
    std::atomic<std::size_t> connections{0};
    // Connections turned away over max_connections that still linger.
    std::atomic<int> lingering{0};
    // Bytes reserved by the request bodies being received (body_reservation).
    std::atomic<std::size_t> pending_body_bytes{0};
    // The idle connections, longest idle first. The acceptor claims from the front, each
    // connection links and unlinks itself on its strand: all under idle_mutex.
    std::mutex idle_mutex;
    boost::intrusive::list<idle_member> idle;
    // Idle connections closed to admit new ones over max_connections.
    std::atomic<std::uint64_t> evictions{0};
    // Connections turned away with a 503 over max_connections.
    std::atomic<std::uint64_t> turned_away{0};
    // Streamed responses closed because their client stopped reading.
    std::atomic<std::uint64_t> stalled_streams{0};
    // Bytes of responses built and not yet written, over all connections (response_holder).
    std::atomic<std::size_t> held_response_bytes{0};
    // Every connection, for max_held_response_bytes_total: under holders_mutex.
    std::mutex holders_mutex;
    response_holder_list holders;
    // Connections reset over max_held_response_bytes or max_held_response_bytes_total.
    std::atomic<std::uint64_t> held_response_closes{0};
};

/// One client connection: a reader that parses requests ahead of their answers, one
/// coroutine per request that handles it, and a writer that sends the responses in request
/// order. All of them run on the connection's strand and share the object, which lives
/// until the last of them ends.
template <class Stream>
class http_server::state::connection : public idle_member,
                                       public response_holder,
                                       public std::enable_shared_from_this<connection<Stream>> {
public:
    connection(std::shared_ptr<state> server, tcp::socket socket);
    ~connection() override;
    connection(const connection&) = delete;
    connection& operator=(const connection&) = delete;

    /// Serves the connection until it is done, then closes it. `self` is this.
    asio::awaitable<void> run(std::shared_ptr<connection> self);

    std::shared_ptr<idle_member> keep() override { return this->weak_from_this().lock(); }
    void evict(std::shared_ptr<idle_member> self) override;

    std::shared_ptr<response_holder> keep_holder() override { return this->weak_from_this().lock(); }
    void drop(std::shared_ptr<response_holder> self) override;

private:
    /// A request read and not yet answered, and its response once it is ready.
    struct slot {
        unsigned version = 11;
        bool keep_alive = false;
        std::optional<http_response> response;
        // Produces the response's body after its header (request_handler::handle_streamed).
        std::shared_ptr<response_stream> stream;
        // The bytes `response` counts in `held` (hold()) until it is written.
        std::size_t held = 0;
    };

    class body_writer;

    asio::awaitable<void> read_requests();
    asio::awaitable<bool> read_request();
    asio::awaitable<bool> await_request();
    std::size_t skip_empty_lines(std::size_t limit);
    static constexpr std::size_t max_skipped_empty_line_bytes = 8;
    beast::error_code parse_buffered(request_parser& parser, bool header_only);
    asio::awaitable<bool> send_continue(unsigned version);
    void admit(http_request req, bool keep_alive);
    void reject(const beast::error_code& ec, http::verb method);
    /// `version`: the request's, when its header was read (an HTTP/1.0 client is answered
    /// in 1.0).
    void refuse(http_response res, http::verb method, unsigned version = 11);
    asio::awaitable<void> handle(std::shared_ptr<connection> self, slot& s, http_request req);
    void hold(slot& s);
    void release(slot& s);
    void release_all();
    void reset_for_held();
    asio::awaitable<void> write_responses(std::shared_ptr<connection> self);
    asio::awaitable<bool> write_streamed(slot& s);
    asio::awaitable<void> next_change();
    void changed();
    void go_idle();
    void arm(time_point& deadline, std::chrono::milliseconds timeout);
    static void disarm(time_point& deadline);
    void watch_deadlines(time_point at);
    void check_deadlines(const beast::error_code& ec);

    std::shared_ptr<state> server_;
    const http_server_options& options_;
    std::shared_ptr<tls_context> tls_; // null for plain HTTP; outlives stream_, which uses it
    Stream stream_;
    beast::flat_buffer buffer_;
    std::unique_ptr<request_handler> handler_;

    // Requests read and not yet answered, oldest first; at most options_.pipeline_depth.
    // The writer pops the front once written; only then does a slot's address change.
    std::deque<slot> pipeline_;
    response_batch batch_;                 // the responses being written (write_responses)
    bool reading_ = true;                  // the reader may still add to the pipeline
    bool writing_ = true;                  // the writer still runs
    bool awaiting_ = false;                // the reader waits for the first byte of a request
    bool idle_listed_ = false;             // linked into the server's idle list (become_idle)
    bool closed_idle_ = false;             // evicted: closed at once, without lingering
    bool peer_closed_ = false;             // the wait for a request's first byte failed: the client is gone
    bool reset_held_ = false;              // reset for the response bytes it held (reset_for_held())
    std::size_t in_write_ = 0;             // the front slots a write in progress reads from
    std::function<void()> on_peer_closed_; // the streamed response's (stream_writer::when_closed())

    // Never expires: cancelled to wake the coroutines waiting for the state above to change.
    asio::steady_timer change_;
    // Close the connection when they pass (time_point::max(): not running): idle_ while the
    // pipeline is empty and the reader waits for the first byte of a request, read_ while it
    // reads a request's header or body, write_ while a response is being written.
    time_point idle_ = time_point::max();
    time_point read_ = time_point::max();
    time_point write_ = time_point::max();
    // Checks the deadlines above. Arming or disarming one only stores a time point; the
    // timer wakes at the earliest deadline but never later than deadline_step_ after it was
    // set, so a deadline armed meanwhile (always at least deadline_step_ away) is never
    // earlier than the wake already scheduled, and the timer is never re-armed per request.
    asio::steady_timer deadline_timer_;
    bool deadline_watched_ = false; // deadline_timer_ has a wait pending
    std::chrono::milliseconds deadline_step_;
};

template <class Stream>
void http_server::state::serve(tcp::socket socket)
{
    const auto socket_ex = socket.get_executor();
    auto conn = std::make_shared<connection<Stream>>(shared_from_this(), std::move(socket));
    asio::co_spawn(socket_ex, conn->run(conn), asio::detached);
}

template <class Stream>
http_server::state::connection<Stream>::connection(std::shared_ptr<state> server, tcp::socket socket)
    : server_(std::move(server)), options_(server_->options), tls_(server_->current_tls()),
      stream_(open_stream<Stream>(std::move(socket), tls_.get())),
      buffer_(std::clamp(options_.header_limit, first_read_size, max_read_buffer)),
      handler_(server_->make_handler(stream_.get_executor())),
      change_(stream_.get_executor(), time_point::max()), deadline_timer_(stream_.get_executor()),
      deadline_step_(std::min({options_.idle_timeout, options_.header_timeout, options_.body_timeout}))
{
    std::lock_guard lock(server_->holders_mutex);
    server_->holders.push_back(*this);
}

template <class Stream>
http_server::state::connection<Stream>::~connection()
{
    if (idle_listed_)
        server_->become_busy(*this);
    {
        std::lock_guard lock(server_->holders_mutex);
        server_->holders.erase(server_->holders.iterator_to(*this));
    }
    server_->held_response_bytes -= held.exchange(0);
    --server_->connections;
}

// Ends the wait for a first byte (await_request() then sees `evicted`); the connection closes
// without lingering, as there is no response for its client to read.
template <class Stream>
void http_server::state::connection<Stream>::evict(std::shared_ptr<idle_member> self)
{
    asio::post(stream_.get_executor(), [this, self = std::move(self)] {
        closed_idle_ = true;
        beast::error_code ignored;
        beast::get_lowest_layer(stream_).socket().close(ignored);
    });
}

template <class Stream>
void http_server::state::connection<Stream>::drop(std::shared_ptr<response_holder> self)
{
    asio::post(stream_.get_executor(), [this, self = std::move(self)] { reset_for_held(); });
}

template <class Stream>
asio::awaitable<void> http_server::state::connection<Stream>::run(std::shared_ptr<connection> self)
{
    const bool secured = co_await handshake(stream_, options_);
    if (!secured)
        co_return;
    asio::co_spawn(stream_.get_executor(), write_responses(self), asio::detached);
    co_await read_requests();
    while (writing_)
        co_await next_change();
    disarm(idle_);
    disarm(read_);
    disarm(write_);
    deadline_timer_.cancel(); // its wait holds this connection
    if (closed_idle_ || reset_held_) {
        beast::error_code ignored;
        beast::get_lowest_layer(stream_).socket().close(ignored);
        co_return;
    }
    co_await close_gracefully(stream_);
}

template <class Stream>
asio::awaitable<void> http_server::state::connection<Stream>::read_requests()
{
    for (bool more = true; more;)
        more = co_await read_request();
    reading_ = false;
    changed();
}

// Reads one request and starts handling it. False when nothing more is to be read: the
// connection failed, closed or missed a deadline, the request was bad or refused, or it
// asked to close.
template <class Stream>
asio::awaitable<bool> http_server::state::connection<Stream>::read_request()
{
    while (writing_ && (pipeline_.size() >= options_.pipeline_depth ||
                        held.load() >= options_.held_response_bytes_read_gate))
        co_await next_change();
    if (!writing_ || reset_held_)
        co_return false;
    const bool arrived = co_await await_request();
    if (!arrived)
        co_return false;
    body_reservation reservation(server_->pending_body_bytes, options_.max_pending_body_bytes);
    request_parser parser;
    parser.header_limit(options_.header_limit);
    parser.body_limit(options_.body_limit);
    parser.get().body().reservation = &reservation;
    // Most requests arrive whole with their first bytes: parsed from the buffer, they cost
    // no asynchronous read (and no trip through the strand's queue).
    if (beast::error_code ec = parse_buffered(parser, true); ec) {
        reject(ec, parser.get().method());
        co_return false;
    }
    if (!parser.is_header_done()) {
        arm(read_, options_.header_timeout);
        auto [ec, n] = co_await http::async_read_header(stream_, buffer_, parser, nothrow_awaitable);
        disarm(read_);
        if (ec) {
            reject(ec, parser.get().method());
            co_return false;
        }
    }
    // A coding other than chunked last leaves the body's length unknown (RFC 9112 6.1): what
    // follows the header cannot be told apart from a next request, so nothing more is read.
    // HTTP/1.0 has no Transfer-Encoding at all: a proxy ahead of this server may have framed
    // the message by its Content-Length, or as ending with the connection (RFC 9112 6.1 says
    // to treat such framing as faulty): the same.
    if (parser.get().count(http::field::transfer_encoding) != 0) {
        if (!parser.chunked()) {
            refuse(server_->unframed("unsupported Transfer-Encoding (only chunked)"), parser.get().method(),
                   parser.get().version());
            co_return false;
        }
        if (parser.get().version() < 11) {
            refuse(server_->unframed("Transfer-Encoding in an HTTP/1.0 request"), parser.get().method(),
                   parser.get().version());
            co_return false;
        }
    }
    if (const std::optional<std::string> expectation = unmet_expectation(parser.get())) {
        refuse(server_->expectation_failed(*expectation), parser.get().method(), parser.get().version());
        co_return false;
    }
    // A body the budget has no room for now is refused before it is sent (before a 100
    // Continue); the bytes are taken as they arrive.
    if (const auto length = parser.content_length(); length && !reservation.has_room_for(*length)) {
        refuse(server_->busy(), parser.get().method(), parser.get().version());
        co_return false;
    }
    if (expects_continue(parser.get()) && !parser.is_done()) {
        // A request refused whatever its body is answered without asking for the body (one
        // whose target is bad is refused once read, as any other).
        http_request header(http::request_header<>(parser.get().base()), std::string());
        if (to_origin_form(header))
            if (std::optional<http_response> early = handler_->refuse_before_body(header)) {
                refuse(std::move(*early), parser.get().method(), parser.get().version());
                co_return false;
            }
        // The interim response belongs to this request: it follows the earlier responses.
        while (writing_ && !pipeline_.empty())
            co_await next_change();
        if (!writing_)
            co_return false;
        const bool sent = co_await send_continue(parser.get().version());
        if (!sent)
            co_return false;
    }
    beast::error_code body_ec = parse_buffered(parser, false);
    if (!body_ec && !parser.is_done()) {
        arm(read_, options_.body_timeout);
        auto [ec, n] = co_await http::async_read(stream_, buffer_, parser, nothrow_awaitable);
        disarm(read_);
        body_ec = ec;
    }
    if (body_ec) {
        if (reservation.refused())
            refuse(server_->busy(), parser.get().method(), parser.get().version());
        else
            reject(body_ec, parser.get().method());
        co_return false;
    }
    auto parsed = parser.release();
    http_request req(std::move(parsed.base()), std::move(parsed.body().text));
    reservation.release();
    if (!to_origin_form(req)) {
        reject(http::make_error_code(http::error::bad_target), req.method());
        co_return false;
    }
    const bool keep_alive = req.keep_alive() && !server_->stopping;
    admit(std::move(req), keep_alive);
    co_return keep_alive;
}

// Parses what the buffer already holds, without waiting for more: up to the end of the
// header, or of the whole request. Stops short of it when the buffer runs out (the caller
// reads the rest, under its deadline); returns the parser's error, if any.
template <class Stream>
beast::error_code http_server::state::connection<Stream>::parse_buffered(request_parser& parser,
                                                                         bool header_only)
{
    beast::error_code ec;
    while (buffer_.size() != 0 && !(header_only ? parser.is_header_done() : parser.is_done())) {
        const std::size_t n = parser.put(buffer_.data(), ec);
        buffer_.consume(n);
        if (ec == http::error::need_more)
            return {};
        if (ec || n == 0)
            break;
    }
    return ec;
}

// Waits for the first byte of a request, unless one is already buffered: without a limit
// while earlier requests are in progress (their handlers bound how long they take), for
// idle_timeout while every one is answered. False if the connection closed or timed out.
// Empty lines ahead of a request line are skipped (RFC 9112 2.2: some clients send a CRLF
// after a body), a few bytes of them: more are the parser's to refuse.
template <class Stream>
asio::awaitable<bool> http_server::state::connection<Stream>::await_request()
{
    std::size_t skipped = 0;
    for (;;) {
        skipped += skip_empty_lines(max_skipped_empty_line_bytes - skipped);
        if (buffer_.size() != 0)
            co_return true;
        awaiting_ = true;
        if (pipeline_.empty())
            go_idle();
        auto [ec, n] = co_await stream_.async_read_some(buffer_.prepare(first_read_size), nothrow_awaitable);
        awaiting_ = false;
        if (ec) {
            peer_closed_ = true;
            if (const std::function<void()> f = std::exchange(on_peer_closed_, nullptr))
                f();
        }
        disarm(idle_);
        if (idle_listed_) {
            idle_listed_ = false;
            if (!server_->become_busy(*this))
                closed_idle_ = true;
        }
        if (ec || closed_idle_)
            co_return false;
        buffer_.commit(n);
    }
}

// Drops the CRLFs (or bare LFs) at the front of the buffer, at most `limit` bytes of them;
// returns how many bytes it dropped.
template <class Stream>
std::size_t http_server::state::connection<Stream>::skip_empty_lines(std::size_t limit)
{
    const auto* bytes = static_cast<const char*>(buffer_.data().data());
    const std::size_t size = buffer_.size();
    std::size_t at = 0;
    for (;;) {
        const std::size_t line = at < size && bytes[at] == '\n'                                ? 1
                                 : at + 1 < size && bytes[at] == '\r' && bytes[at + 1] == '\n' ? 2
                                                                                               : 0;
        if (line == 0 || at + line > limit)
            break;
        at += line;
    }
    buffer_.consume(at);
    return at;
}

// REQUIRES: the pipeline is empty, so the writer is not writing.
template <class Stream>
asio::awaitable<bool> http_server::state::connection<Stream>::send_continue(unsigned version)
{
    http::response<http::empty_body> go_on{http::status::continue_, version};
    arm(write_, options_.idle_timeout);
    auto [ec, n] = co_await http::async_write(stream_, go_on, nothrow_awaitable);
    disarm(write_);
    co_return !ec;
}

template <class Stream>
void http_server::state::connection<Stream>::admit(http_request req, bool keep_alive)
{
    slot& s = pipeline_.emplace_back(slot{req.version(), keep_alive, std::nullopt, nullptr});
    asio::co_spawn(stream_.get_executor(), handle(this->shared_from_this(), s, std::move(req)),
                   asio::detached);
}

template <class Stream>
void http_server::state::connection<Stream>::reject(const beast::error_code& ec, http::verb method)
{
    if (std::optional<http_response> res = server_->rejection(ec))
        refuse(std::move(*res), method);
}

// Answers the request being read with `res` in its place; nothing more is read.
template <class Stream>
void http_server::state::connection<Stream>::refuse(http_response res, http::verb method, unsigned version)
{
    server_->refused(method, res.result_int());
    res.version(version == 10 ? 10u : 11u);
    res.keep_alive(false); // the connection closes after it
    res.prepare_payload();
    pipeline_.push_back(slot{res.version(), false, std::move(res), nullptr});
    changed();
}

// `s` stays in place until the writer has written the response this puts there.
template <class Stream>
asio::awaitable<void> http_server::state::connection<Stream>::handle(std::shared_ptr<connection>, slot& s,
                                                                     http_request req)
{
    const bool head = req.method() == http::verb::head;
    handled_request handled = co_await server_->respond(*handler_, std::move(req));
    // Chosen to be reset over the server's cap by another connection: now, not once the
    // reset posted here runs, which may be after a burst of handlers like this one.
    if (dropped.load(std::memory_order_relaxed))
        reset_for_held();
    // Nothing will write it: the writer stopped, or the connection was reset for what it
    // held. Kept in its slot it would stay uncounted until the connection's last request
    // is handled (a client pipelining scans it never reads, on many connections, held
    // gigabytes so); dropped here, it goes now.
    if (!writing_ || reset_held_)
        co_return;
    http_response& res = handled.response;
    if (handled.stream) {
        res.version(s.version);
        s.stream = std::move(handled.stream);
        s.response = std::move(res);
        changed();
        co_return;
    }
    res.version(s.version);
    res.keep_alive(s.keep_alive);
    res.prepare_payload();
    // A 204 has no Content-Length, nor a 304 (whose one would have to be the 200's: RFC 9110 8.6).
    if (res.result() == http::status::no_content || res.result() == http::status::not_modified)
        res.erase(http::field::content_length);
    // A HEAD answer's Content-Length is the GET answer's, but no body follows (RFC 9110 9.3.2).
    if (head && res.has_content_length()) {
        const std::size_t length = res.body().size();
        res.body().clear();
        res.content_length(length);
    }
    s.response = std::move(res);
    hold(s);
    changed();
}

// Counts `s`'s response in the bytes the connection and the server hold, and resets the
// connection if that takes it over max_held_response_bytes (holding others too) or the server
// over max_held_response_bytes_total. Nothing counts once the writer is done or the connection
// reset: nothing will write it.
template <class Stream>
void http_server::state::connection<Stream>::hold(slot& s)
{
    if (!writing_ || reset_held_)
        return;
    s.held = held_size(*s.response);
    const std::size_t mine = held.load() + s.held;
    held.store(mine);
    const std::size_t total = server_->held_response_bytes += s.held;
    if (mine > options_.max_held_response_bytes && mine > s.held) {
        reset_for_held();
    } else if (total > options_.max_held_response_bytes_total) {
        server_->drop_biggest_holders();
        if (dropped.load(std::memory_order_relaxed)) // chosen itself: at once
            reset_for_held();
    }
}

template <class Stream>
void http_server::state::connection<Stream>::release(slot& s)
{
    held.store(held.load() - s.held);
    server_->held_response_bytes -= s.held;
    s.held = 0;
}

template <class Stream>
void http_server::state::connection<Stream>::release_all()
{
    for (slot& t : pipeline_)
        release(t);
}

// Resets the connection (once) for the response bytes it holds: what the kernel holds for the
// client is dropped, a write in progress fails and the reader's read too; the writer, woken if
// it waits for the front response, writes nothing more.
template <class Stream>
void http_server::state::connection<Stream>::reset_for_held()
{
    if (reset_held_)
        return;
    reset_held_ = true;
    const std::uint64_t n = ++server_->held_response_closes;
    log(log_level::debug, "reset an HTTP connection holding " + std::to_string(held.load()) +
                              " bytes of responses its client has not read (" + std::to_string(n) +
                              " so far)");
    release_all();
    // What nothing will write goes now, not once the writer runs again: behind a burst of
    // handlers that complete together (many connections' pipelined scans), that could be
    // long after every reset connection kept its last responses. Not what a write in
    // progress reads from.
    for (std::size_t k = in_write_; k < pipeline_.size(); ++k) {
        pipeline_[k].response.reset();
        pipeline_[k].stream.reset();
    }
    beast::error_code ignored;
    auto& socket = beast::get_lowest_layer(stream_).socket();
    socket.set_option(asio::socket_base::linger(true, 0), ignored);
    socket.close(ignored);
    changed();
}

// Writes the responses in request order, each once it is ready, until the reader is done
// and every response is written, one said "Connection: close", or a write fails.
template <class Stream>
asio::awaitable<void> http_server::state::connection<Stream>::write_responses(std::shared_ptr<connection>)
{
    for (;;) {
        while (!reset_held_ && (pipeline_.empty() ? reading_ : !pipeline_.front().response))
            co_await next_change();
        if (pipeline_.empty() || reset_held_)
            break;
        slot& s = pipeline_.front();
        beast::error_code ec;
        bool last = false;
        if (s.stream) {
            in_write_ = 1;
            const bool complete = co_await write_streamed(s);
            in_write_ = 0;
            if (!complete)
                ec = asio::error::connection_aborted;
            last = ec || !s.keep_alive;
            pipeline_.pop_front();
        } else {
            // Every response ready at the front goes out in one write: pipelined requests
            // answered together cost one system call, not one each.
            std::size_t written = 0;
            for (const slot& t : pipeline_) {
                if (!t.response || t.stream)
                    break;
                batch_.add(*t.response);
                ++written;
                if (!t.keep_alive) {
                    last = true;
                    break;
                }
            }
            arm(write_, options_.idle_timeout);
            in_write_ = written;
            auto [write_ec, n] = co_await asio::async_write(stream_, batch_.buffers(), nothrow_awaitable);
            in_write_ = 0;
            disarm(write_);
            batch_.clear();
            ec = write_ec;
            last = last || ec;
            for (; written > 0; --written) {
                release(pipeline_.front());
                pipeline_.pop_front();
            }
        }
        if (last) {
            if (ec)
                beast::get_lowest_layer(stream_)
                    .close(); // ends a read in progress: nothing more can be answered
            break;
        }
        if (pipeline_.empty() && awaiting_)
            go_idle();
        changed();
    }
    // Nothing more is written: the responses still here are dropped.
    release_all();
    for (slot& t : pipeline_)
        t.response.reset();
    writing_ = false;
    changed();
}

/// The stream_writer of a streamed response: chunks (for HTTP/1.0, the bare bytes) written
/// under the write deadline, to a client that must go on taking them (client_stalled()).
template <class Stream>
class http_server::state::connection<Stream>::body_writer final : public stream_writer {
public:
    body_writer(connection& c, bool chunked)
        : c_(c), chunked_(chunked), last_taken_(asio::steady_timer::clock_type::now())
    {
    }

    asio::awaitable<bool> write(std::string_view data) override
    {
        if (failed_)
            co_return false;
        if (client_stalled()) {
            abort();
            co_return false;
        }
        const asio::const_buffer bytes(data.data(), data.size());
        beast::error_code ec;
        c_.arm(c_.write_, c_.options_.idle_timeout);
        if (chunked_) {
            const auto chunk = http::make_chunk(bytes);
            auto [write_ec, n] = co_await asio::async_write(c_.stream_, chunk, nothrow_awaitable);
            ec = write_ec;
        } else {
            auto [write_ec, n] = co_await asio::async_write(c_.stream_, bytes, nothrow_awaitable);
            ec = write_ec;
        }
        // check_deadlines() closed the connection: the write was blocked for idle_timeout.
        const bool timed_out = ec && asio::steady_timer::clock_type::now() >= c_.write_;
        c_.disarm(c_.write_);
        if (ec && !failed_) {
            failed_ = true;
            if (timed_out)
                ++c_.server_->stalled_streams;
        }
        co_return !failed_;
    }

    bool closed() const override { return failed_ || c_.peer_closed_; }
    bool stopping() const override { return c_.server_->stopping; }
    void when_closed(std::function<void()> f) override { c_.on_peer_closed_ = std::move(f); }

    void abort() override
    {
        if (!failed_)
            ++c_.server_->stalled_streams;
        failed_ = true;
        // A reset rather than a close: the kernel drops at once what it still holds for a
        // client that does not read it, rather than trying to deliver it for minutes.
        beast::error_code ignored;
        auto& socket = beast::get_lowest_layer(c_.stream_).socket();
        socket.set_option(asio::socket_base::linger(true, 0), ignored);
        socket.close(ignored);
    }

    bool failed() const { return failed_; }

private:
    // Whether the client has taken no byte for idle_timeout although some wait for it. A
    // write to such a client completes (the kernel's send buffer takes it) and never meets
    // the write deadline. Unknown to the kernel (not Linux): false.
    bool client_stalled()
    {
        const time_point now = asio::steady_timer::clock_type::now();
        const int fd = beast::get_lowest_layer(c_.stream_).socket().native_handle();
        const std::optional<send_progress> p = read_send_progress(fd);
        if (!p)
            return false;
        if (p->outstanding == 0 || p->acked != acked_) {
            acked_ = p->acked;
            last_taken_ = now;
            return false;
        }
        return now - last_taken_ >= c_.options_.idle_timeout;
    }

    connection& c_;
    bool chunked_;
    bool failed_ = false;
    // The bytes the client had acknowledged when last seen, and since when it has taken
    // none (or when nothing was waiting for it).
    std::uint64_t acked_ = 0;
    time_point last_taken_;
};

// Writes a streamed response: its header, the body its stream produces, and the last chunk.
// False if the connection failed meanwhile or must close after it (HTTP/1.0).
template <class Stream>
asio::awaitable<bool> http_server::state::connection<Stream>::write_streamed(slot& s)
{
    const bool chunked = s.version >= 11;
    http::response<http::empty_body> head{s.response->result(), s.version};
    for (const auto& field : s.response->base())
        head.insert(field.name_string(), field.value());
    head.keep_alive(s.keep_alive && chunked);
    if (chunked)
        head.chunked(true);
    http::response_serializer<http::empty_body> serializer{head};
    if (options_.stream_send_buffer > 0)
        cap_send_buffer(beast::get_lowest_layer(stream_).socket().native_handle(),
                        options_.stream_send_buffer);
    arm(write_, options_.idle_timeout);
    auto [ec, n] = co_await http::async_write_header(stream_, serializer, nothrow_awaitable);
    disarm(write_);
    if (ec)
        co_return false;
    body_writer out{*this, chunked};
    std::string failure;
    try {
        co_await s.stream->run(out);
    } catch (const std::exception& e) {
        failure = e.what();
    }
    on_peer_closed_ = nullptr;
    s.stream.reset();
    if (!failure.empty()) {
        log(log_level::error, "a streamed response failed: " + failure);
        co_return false;
    }
    if (out.failed() || !chunked)
        co_return false;
    const auto last_chunk = http::make_chunk_last();
    arm(write_, options_.idle_timeout);
    auto [last_ec, last_n] = co_await asio::async_write(stream_, last_chunk, nothrow_awaitable);
    disarm(write_);
    co_return !last_ec;
}

// The reader waits for the first byte of a request and every earlier one is answered: the
// idle deadline runs, and the acceptor may evict the connection.
template <class Stream>
void http_server::state::connection<Stream>::go_idle()
{
    arm(idle_, options_.idle_timeout);
    idle_listed_ = true;
    server_->become_idle(*this);
}

template <class Stream>
asio::awaitable<void> http_server::state::connection<Stream>::next_change()
{
    co_await change_.async_wait(nothrow_awaitable);
}

template <class Stream>
void http_server::state::connection<Stream>::changed()
{
    change_.cancel();
}

template <class Stream>
void http_server::state::connection<Stream>::arm(time_point& deadline, std::chrono::milliseconds timeout)
{
    const time_point now = asio::steady_timer::clock_type::now();
    deadline = now + timeout;
    if (!deadline_watched_)
        watch_deadlines(std::min(deadline, now + deadline_step_));
}

template <class Stream>
void http_server::state::connection<Stream>::disarm(time_point& deadline)
{
    deadline = time_point::max();
}

template <class Stream>
void http_server::state::connection<Stream>::watch_deadlines(time_point at)
{
    deadline_watched_ = true;
    deadline_timer_.expires_at(at);
    deadline_timer_.async_wait(
        [self = this->shared_from_this()](const beast::error_code& ec) { self->check_deadlines(ec); });
}

// Closes the connection if a deadline has passed; otherwise waits for the next one, at most
// deadline_step_ ahead (see deadline_timer_), unless none is armed: arm() starts it again.
template <class Stream>
void http_server::state::connection<Stream>::check_deadlines(const beast::error_code& ec)
{
    deadline_watched_ = false;
    if (ec)
        return; // cancelled: the connection is done
    const time_point now = asio::steady_timer::clock_type::now();
    const time_point next = std::min({idle_, read_, write_});
    if (next <= now) {
        beast::get_lowest_layer(stream_).close();
        return;
    }
    if (next != time_point::max())
        watch_deadlines(std::min(next, now + deadline_step_));
}

// Each stream's connection code is compiled once, in its own translation unit.
extern template class http_server::state::connection<beast::tcp_stream>;
extern template void http_server::state::serve<beast::tcp_stream>(tcp::socket socket);
extern template class http_server::state::connection<tls_stream>;
extern template void http_server::state::serve<tls_stream>(tcp::socket socket);

} // namespace raftkv::server

#endif
