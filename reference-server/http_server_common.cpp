// http_server: the acceptor, the answers the server gives itself and the public interface;
// the connection code is in http_server.ipp, compiled per stream in http_server_plain.cpp
// and http_server_tls.cpp.

#include "http_server.ipp"

#include "log.hpp"

// GCC 12 reports Asio's coroutine frame allocation, once one coroutine's start is inlined
// into another, as a mismatched new and delete (GCC PR 109224): a false positive, which
// the asan preset's -O1 brings out here (close_gracefully).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

namespace raftkv::server {

namespace http_server_detail {

bool is_http_error(const beast::error_code& ec)
{
    return &ec.category() == &http::make_error_code(http::error::bad_target).category();
}

namespace {

// Calls `f` with each expectation of `req` (RFC 9110 10.1.1: a comma-separated list, over
// any number of Expect fields; empty elements count for nothing) until it returns true.
template <class F>
bool any_expectation(const http::request_header<>& req, F f)
{
    const auto [first, last] = req.equal_range(http::field::expect);
    for (auto field = first; field != last; ++field) {
        std::string_view rest = field->value();
        while (!rest.empty()) {
            const std::size_t comma = rest.find(',');
            std::string_view item = rest.substr(0, comma);
            rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
            while (!item.empty() && (item.front() == ' ' || item.front() == '\t'))
                item.remove_prefix(1);
            while (!item.empty() && (item.back() == ' ' || item.back() == '\t'))
                item.remove_suffix(1);
            if (!item.empty() && f(item))
                return true;
        }
    }
    return false;
}

} // namespace

bool expects_continue(const http::request_header<>& req)
{
    // An HTTP/1.0 client knows no interim responses: its expectation is ignored, and no
    // 1xx is sent to it (RFC 9110 10.1.1, 15.2).
    return req.version() >= 11 &&
           any_expectation(req, [](std::string_view e) { return beast::iequals(e, "100-continue"); });
}

std::optional<std::string> unmet_expectation(const http::request_header<>& req)
{
    std::optional<std::string> unmet;
    if (req.version() >= 11)
        any_expectation(req, [&](std::string_view e) {
            if (beast::iequals(e, "100-continue"))
                return false;
            unmet = std::string(e);
            return true;
        });
    return unmet;
}

bool to_origin_form(http_request& req)
{
    const std::string_view target = req.target();
    if (target.find('#') != std::string_view::npos)
        return false;
    std::size_t authority = 0;
    for (const std::string_view scheme : {"http://", "https://"})
        if (target.size() >= scheme.size() && beast::iequals(target.substr(0, scheme.size()), scheme))
            authority = scheme.size();
    if (authority == 0)
        return true;
    const std::size_t path = target.find_first_of("/?", authority);
    const std::string_view host =
        target.substr(authority, path == std::string_view::npos ? target.npos : path - authority);
    if (host.empty() || host.find('@') != std::string_view::npos)
        return false;
    std::string origin = path != std::string_view::npos && target[path] == '/' ? "" : "/";
    if (path != std::string_view::npos)
        origin.append(target.substr(path));
    req.target(origin);
    return true;
}

asio::awaitable<void> close_gracefully(beast::tcp_stream& stream, std::chrono::milliseconds time,
                                       std::size_t bytes)
{
    beast::error_code ec;
    stream.socket().shutdown(tcp::socket::shutdown_send, ec);
    if (!ec) {
        stream.expires_after(time);
        std::array<char, 16 * 1024> sink;
        for (std::size_t drained = 0; drained < bytes;) {
            auto [read_ec, n] = co_await stream.async_read_some(asio::buffer(sink), nothrow_awaitable);
            if (read_ec)
                break;
            drained += n;
        }
    }
    stream.socket().close(ec);
}

namespace {

// Bodies up to this size are copied after their header (one contiguous run of bytes for the
// kernel); larger ones are written from where they are.
constexpr std::size_t copied_body_limit = 4096;

void append_decimal(std::string& out, unsigned n)
{
    char digits[10];
    char* end = digits + sizeof digits;
    char* p = end;
    do {
        *--p = static_cast<char>('0' + n % 10);
        n /= 10;
    } while (n != 0);
    out.append(p, end);
}

} // namespace

void response_batch::add(const http_response& res)
{
    const std::size_t start = text_.size();
    text_ += "HTTP/";
    append_decimal(text_, res.version() / 10);
    text_ += '.';
    append_decimal(text_, res.version() % 10);
    text_ += ' ';
    append_decimal(text_, res.result_int());
    text_ += ' ';
    text_ += res.reason();
    text_ += "\r\n";
    for (const auto& field : res.base()) {
        text_ += field.name_string();
        text_ += ": ";
        text_ += field.value();
        text_ += "\r\n";
    }
    text_ += "\r\n";
    const std::string& body = res.body();
    if (body.size() <= copied_body_limit)
        text_ += body;
    // Consecutive runs of text_ are one piece.
    if (!pieces_.empty() && pieces_.back().body == nullptr)
        pieces_.back().size += text_.size() - start;
    else
        pieces_.push_back({start, text_.size() - start, nullptr});
    if (body.size() > copied_body_limit)
        pieces_.push_back({0, body.size(), body.data()});
}

std::size_t held_size(const http_response& res)
{
    // "HTTP/1.1 200 " and the reason, the fields each with ": " and CRLF, and the blank line.
    std::size_t size = 16 + res.reason().size();
    for (const auto& field : res.base())
        size += field.name_string().size() + field.value().size() + 4;
    // The body's capacity, not its size: what it takes in memory.
    return size + 2 + res.body().capacity();
}

const std::vector<asio::const_buffer>& response_batch::buffers()
{
    buffers_.clear();
    for (const piece& p : pieces_)
        buffers_.emplace_back(p.body != nullptr ? p.body : text_.data() + p.offset, p.size);
    return buffers_;
}

void response_batch::clear()
{
    // An idle connection keeps a buffer of a few responses, not the largest batch it wrote.
    if (text_.capacity() > 4 * copied_body_limit)
        std::string().swap(text_);
    text_.clear();
    pieces_.clear();
    buffers_.clear();
}

} // namespace http_server_detail

asio::awaitable<void> http_server::state::accept_loop()
{
    const auto self = shared_from_this();
    bool failing = false; // logged once per run of failures, not ten times a second
    for (;;) {
        const asio::any_io_executor socket_ex =
            options.strand_per_connection ? asio::any_io_executor(asio::make_strand(ex)) : ex;
        auto [ec, socket] = co_await acceptor.async_accept(socket_ex, nothrow_awaitable);
        if (ec == asio::error::operation_aborted || stopping || !acceptor.is_open())
            co_return;
        if (ec) {
            // Out of file descriptors, most likely: the connection waits in the listen
            // queue; try again once others may have closed, rather than spin.
            if (!failing)
                log(log_level::warn,
                    "accepting an HTTP connection failed: " + ec.message() + "; retrying every 100 ms");
            failing = true;
            asio::steady_timer pause(acceptor.get_executor(), std::chrono::milliseconds(100));
            co_await pause.async_wait(nothrow_awaitable);
            continue;
        }
        if (failing)
            log(log_level::info, "accepting HTTP connections again");
        failing = false;
        if (connections.load() >= options.max_connections && !evict_longest_idle()) {
            turn_away(std::move(socket));
            continue;
        }
        ++connections; // ~connection() takes it back
        // Each response goes out in one write, but a watch stream writes a chunk per event:
        // without this, Nagle holds a chunk until the client acknowledges the one before,
        // which a delayed ACK can make 40 ms. (Go's net, and so etcd, sets it on every socket.)
        beast::error_code nodelay_ec;
        socket.set_option(tcp::no_delay(true), nodelay_ec);
        if (options.tls)
            serve<tls_stream>(std::move(socket));
        else
            serve<beast::tcp_stream>(std::move(socket));
    }
}

// Sends a connection over max_connections the fixed 503 without waiting (it fits the empty
// send buffer of a new socket) and closes it, lingering briefly so that the client reads
// the 503 rather than a reset.
void http_server::state::turn_away(tcp::socket socket)
{
    ++turned_away;
    beast::error_code ec;
    if (options.tls) {
        socket.close(ec); // a plain 503 would break the client's handshake anyway
        return;
    }
    socket.non_blocking(true, ec);
    socket.write_some(asio::buffer(too_many_connections), ec);
    if (!ec)
        refused(http::verb::unknown, 503);
    if (ec || lingering.load() >= turned_away_lingering) {
        socket.close(ec);
        return;
    }
    ++lingering;
    const auto socket_ex = socket.get_executor();
    asio::co_spawn(socket_ex, linger(shared_from_this(), beast::tcp_stream(std::move(socket))),
                   asio::detached);
}

// Makes room for a new connection over max_connections by closing the one that has waited
// longest for its next request with nothing in progress; false if no connection is idle.
// The evicted connection still counts until it is gone, a moment later: the count exceeds
// the cap by the evictions under way.
bool http_server::state::evict_longest_idle()
{
    std::shared_ptr<idle_member> victim;
    {
        std::lock_guard lock(idle_mutex);
        while (!idle.empty() && !victim) {
            idle_member& c = idle.front();
            idle.pop_front();
            victim = c.keep(); // empty if it is being destroyed: its slot frees by itself
            if (victim)
                c.evicted = true;
        }
    }
    if (!victim)
        return false;
    const std::uint64_t n = ++evictions;
    log(log_level::debug,
        "closed the longest-idle HTTP connection to admit a new one over --max-connections (" +
            std::to_string(n) + " so far)");
    victim->evict(victim);
    return true;
}

void http_server::state::become_idle(idle_member& c)
{
    std::lock_guard lock(idle_mutex);
    if (!c.is_linked() && !c.evicted)
        idle.push_back(c);
}

// False if the acceptor has claimed `c` meanwhile.
bool http_server::state::become_busy(idle_member& c)
{
    std::lock_guard lock(idle_mutex);
    if (c.is_linked())
        idle.erase(idle.iterator_to(c));
    return !c.evicted;
}

// Resets the connections holding the most bytes of responses not yet written, the most first,
// until the others hold no more than max_held_response_bytes_total together. Those already
// chosen and not yet reset count no more.
void http_server::state::drop_biggest_holders()
{
    std::vector<std::shared_ptr<response_holder>> victims;
    {
        std::lock_guard lock(holders_mutex);
        std::vector<std::pair<std::size_t, response_holder*>> held;
        std::size_t total = 0;
        for (response_holder& h : holders) {
            const std::size_t n = h.held.load();
            if (h.dropped || n == 0)
                continue;
            held.emplace_back(n, &h);
            total += n;
        }
        std::sort(held.begin(), held.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
        for (const auto& [n, h] : held) {
            if (total <= options.max_held_response_bytes_total)
                break;
            total -= n;
            h->dropped = true;
            if (std::shared_ptr<response_holder> kept = h->keep_holder())
                victims.push_back(std::move(kept));
        }
    }
    for (const std::shared_ptr<response_holder>& v : victims)
        v->drop(v);
}

asio::awaitable<void> http_server::state::linger(std::shared_ptr<state> self, beast::tcp_stream stream)
{
    co_await close_gracefully(stream, turned_away_linger_time, turned_away_linger_bytes);
    --self->lingering;
}

// An exception's text may name files, addresses or other internals: it goes to the log
// under an error id, and the client gets only the id.
asio::awaitable<handled_request> http_server::state::respond(request_handler& handler, http_request req)
{
    const std::string request = std::string(req.method_string()) + " " + std::string(req.target());
    const http::verb method = req.method();
    std::string what;
    try {
        if (handler.streams(req))
            co_return co_await handler.handle_streamed(std::move(req));
        http_response res = co_await handler.handle(std::move(req));
        co_return handled_request{std::move(res), nullptr};
    } catch (const std::exception& e) {
        what = e.what();
    } catch (...) {
        what = "an unknown exception";
    }
    const std::string id = new_error_id();
    log(log_level::error, request + " failed (error id " + id + "): " + what);
    refused(method, 500);
    co_return handled_request{
        make_error(http::status::internal_server_error, "internal error (error id " + id + ")"), nullptr};
}

void http_server::state::refused(http::verb method, unsigned status) const
{
    if (options.on_refusal)
        options.on_refusal(method, status);
}

// The answer to a request that could not be read, if it was malformed or oversized rather
// than cut off by a closed or silent connection.
std::optional<http_response> http_server::state::rejection(const beast::error_code& ec) const
{
    if (!is_http_error(ec) || ec == http::error::end_of_stream || ec == http::error::partial_message)
        return std::nullopt;
    // Beast's header limit covers the request line and the header fields together.
    http_response res;
    if (ec == http::error::header_limit)
        res = make_error(http::status::request_header_fields_too_large,
                         "request header fields too large: " + ec.message());
    else if (ec == http::error::buffer_overflow) // the read buffer holds a header's worth
        res = make_error(http::status::request_header_fields_too_large,
                         "request trailer fields (or a chunk's size line) too large");
    else if (ec == http::error::body_limit)
        res = make_error(http::status::payload_too_large, "request too large: " + ec.message());
    else
        res = make_error(http::status::bad_request, "malformed request: " + ec.message());
    res.version(11);
    res.keep_alive(false);
    res.prepare_payload();
    return res;
}

// The answer to a request whose body's length is unknown or ambiguous, saying `why`.
http_response http_server::state::unframed(std::string_view why) const
{
    http_response res = make_error(http::status::bad_request, std::string(why));
    res.version(11);
    res.keep_alive(false);
    res.prepare_payload();
    return res;
}

// The answer to a request that expects what this server does not do (the connection is
// closed: the client may be holding its body back, or already sending it).
http_response http_server::state::expectation_failed(std::string_view expectation) const
{
    http_response res = make_error(http::status::expectation_failed,
                                   "unsupported expectation '" + std::string(expectation.substr(0, 64)) +
                                       "' (only 100-continue)");
    res.version(11);
    res.keep_alive(false);
    res.prepare_payload();
    return res;
}

// The answer to a request whose body does not fit the pending-body budget.
http_response http_server::state::busy() const
{
    http_response res = make_error(http::status::service_unavailable,
                                   "too many request bodies being received at once; retry later");
    if (res.find(http::field::retry_after) == res.end())
        res.set(http::field::retry_after, "1");
    res.version(11);
    res.keep_alive(false);
    res.prepare_payload();
    return res;
}

bool request_handler::streams(const http_request&) const
{
    return false;
}

std::optional<http_response> request_handler::refuse_before_body(const http_request&) const
{
    return std::nullopt;
}

asio::awaitable<handled_request> request_handler::handle_streamed(http_request req)
{
    http_response res = co_await handle(std::move(req));
    co_return handled_request{std::move(res), nullptr};
}

http_server::http_server(asio::any_io_executor ex, const tcp::endpoint& listen_on,
                         handler_factory make_handler, error_responder make_error,
                         http_server_options options)
    : state_(std::make_shared<state>(std::move(ex), std::move(make_handler), std::move(make_error), options))
{
    if (options.pipeline_depth == 0)
        throw std::invalid_argument("http_server_options::pipeline_depth must be at least 1");
    if (options.max_connections == 0)
        throw std::invalid_argument("http_server_options::max_connections must be at least 1");
    if (options.max_pending_body_bytes < options.body_limit)
        throw std::invalid_argument(
            "http_server_options::max_pending_body_bytes must be at least body_limit");
    if (options.held_response_bytes_read_gate == 0)
        throw std::invalid_argument("http_server_options::held_response_bytes_read_gate must be at least 1");
    if (options.max_held_response_bytes < options.held_response_bytes_read_gate)
        throw std::invalid_argument(
            "http_server_options::max_held_response_bytes must be at least held_response_bytes_read_gate");
    if (options.max_held_response_bytes_total < options.max_held_response_bytes)
        throw std::invalid_argument(
            "http_server_options::max_held_response_bytes_total must be at least max_held_response_bytes");
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

std::uint64_t http_server::idle_evictions() const
{
    return state_->evictions.load();
}

std::uint64_t http_server::open_connections() const
{
    return state_->connections.load();
}

std::uint64_t http_server::turned_away() const
{
    return state_->turned_away.load();
}

std::uint64_t http_server::stalled_streams() const
{
    return state_->stalled_streams.load();
}

std::uint64_t http_server::held_response_closes() const
{
    return state_->held_response_closes.load();
}

std::size_t http_server::held_response_bytes() const
{
    return state_->held_response_bytes.load();
}

void http_server::set_tls(std::shared_ptr<tls_context> tls)
{
    if (!state_->options.tls || !tls)
        throw std::logic_error("http_server::set_tls: the server serves HTTPS from its start, or never");
    std::lock_guard lock(state_->tls_mutex);
    state_->tls_now = std::move(tls);
}

} // namespace raftkv::server
