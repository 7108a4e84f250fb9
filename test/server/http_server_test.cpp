#include "http_server.hpp"

#include "leveldb/temp_dir.hpp"
#include "tls.hpp"

#define BOOST_TEST_MODULE server_http_server
#include <boost/test/data/monomorphic.hpp>
#include <boost/test/data/test_case.hpp>
#include <boost/test/unit_test.hpp>

#include "support/certificates.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/read.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

// The connection handling of http_server, with a handler the tests control: pipelined
// requests are handled concurrently up to the pipeline depth and answered in order, and the
// limits, timeouts and closes of a connection still hold.

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;
using raftkv::server::http_request;
using raftkv::server::http_response;
using raftkv::server::http_server;
using raftkv::server::http_server_options;
using response = http::response<http::string_body>;

/// What the handlers saw, shared by every connection's handler (any thread).
struct probe {
    std::mutex mutex;
    std::vector<std::string> started; // targets, in the order handle() was called
    int running = 0;
    int most_running = 0;
    std::atomic<bool> gate_open{false};

    int started_count()
    {
        std::lock_guard lock(mutex);
        return static_cast<int>(started.size());
    }
};

std::string big_body(std::size_t n)
{
    std::string body(n, '\0');
    for (std::size_t i = 0; i < n; ++i)
        body[i] = static_cast<char>('0' + i % 10);
    return body;
}

/// Answers 200 with the target as the body, after:
///   /fast/...    nothing;
///   /delay/MS    MS milliseconds;
///   /wait/N      N requests have started, in any connection (then the body is "saw N"),
///                or 5 s have passed (then "saw" what it saw);
///   /block/...   the probe's gate opens (at most 10 s);
///   /throw       throws instead (the server answers 500);
///   /big/N       nothing, and the body is N bytes ("0123456789" repeated) instead;
///   /later-big/N a millisecond, and the body is N bytes as for /big/N;
///   /roomy/N     nothing, and the body is N bytes in a string with room for 64 times as many.
class test_handler : public raftkv::server::request_handler {
public:
    explicit test_handler(probe& p) : probe_(p) {}

    asio::awaitable<http_response> handle(http_request req) override
    {
        const std::string target(req.target());
        {
            std::lock_guard lock(probe_.mutex);
            probe_.started.push_back(target);
            probe_.most_running = std::max(probe_.most_running, ++probe_.running);
        }
        std::string body = target;
        try {
            body = co_await work(target);
        } catch (...) {
            finished();
            throw;
        }
        finished();
        http_response res{http::status::ok, 11};
        res.body() = std::move(body); // with the capacity work() gave it
        co_return res;
    }

    /// /stream/N: a body of N parts, "part0part1...", written one by one.
    bool streams(const http_request& req) const override { return req.target().starts_with("/stream/"); }

    /// /refused/...: refused from the header alone, whatever the body (403).
    std::optional<http_response> refuse_before_body(const http_request& header) const override
    {
        if (!header.target().starts_with("/refused/"))
            return std::nullopt;
        http_response res{http::status::forbidden, 11};
        res.body() = "refused " + std::string(header.target());
        return res;
    }

    asio::awaitable<raftkv::server::handled_request> handle_streamed(http_request req) override
    {
        http_response res{http::status::ok, 11};
        res.set("X-Parts", std::string(req.target().substr(8)));
        co_return raftkv::server::handled_request{
            std::move(res), std::make_shared<parts>(std::stoi(std::string(req.target().substr(8))))};
    }

private:
    struct parts : raftkv::server::response_stream {
        explicit parts(int n) : n(n) {}
        asio::awaitable<void> run(raftkv::server::stream_writer& out) override
        {
            asio::steady_timer timer(co_await asio::this_coro::executor);
            for (int k = 0; k < n; ++k) {
                const std::string part = "part" + std::to_string(k);
                const bool sent = co_await out.write(part);
                if (!sent)
                    co_return;
                co_await pause(timer);
            }
        }
        int n;
    };

    asio::awaitable<std::string> work(const std::string& target)
    {
        asio::steady_timer timer(co_await asio::this_coro::executor);
        if (target.starts_with("/delay/")) {
            timer.expires_after(std::chrono::milliseconds(std::stoi(target.substr(7))));
            co_await timer.async_wait(asio::use_awaitable);
        } else if (target.starts_with("/wait/")) {
            const int n = std::stoi(target.substr(6));
            const auto give_up = std::chrono::steady_clock::now() + 5s;
            while (probe_.started_count() < n && std::chrono::steady_clock::now() < give_up)
                co_await pause(timer);
            co_return "saw " + std::to_string(probe_.started_count());
        } else if (target.starts_with("/block/")) {
            const auto give_up = std::chrono::steady_clock::now() + 10s;
            while (!probe_.gate_open && std::chrono::steady_clock::now() < give_up)
                co_await pause(timer);
        } else if (target == "/throw") {
            throw std::runtime_error("the handler threw");
        } else if (target.starts_with("/big/")) {
            co_return big_body(std::stoul(target.substr(5)));
        } else if (target.starts_with("/later-big/")) {
            co_await pause(timer);
            co_return big_body(std::stoul(target.substr(11)));
        } else if (target.starts_with("/roomy/")) {
            std::string body = big_body(std::stoul(target.substr(7)));
            body.reserve(64 * body.size());
            co_return body;
        }
        co_return target;
    }

    static asio::awaitable<void> pause(asio::steady_timer& timer)
    {
        timer.expires_after(1ms);
        co_await timer.async_wait(asio::use_awaitable);
    }

    void finished()
    {
        std::lock_guard lock(probe_.mutex);
        --probe_.running;
    }

    probe& probe_;
};

/// An http_server on 127.0.0.1 (any port) run by `thread_count` threads, serving test_handlers.
/// Its connections run on strands with more than one thread, and without with one, as
/// raftkv-server sets them up.
struct server_fixture {
    probe seen;
    asio::io_context io;
    asio::executor_work_guard<asio::io_context::executor_type> work{io.get_executor()};
    std::optional<http_server> server;
    std::vector<std::thread> threads;

    explicit server_fixture(http_server_options options = {}, int thread_count = 2) : io(thread_count)
    {
        options.strand_per_connection = thread_count > 1;
        server.emplace(
            io.get_executor(), tcp::endpoint(asio::ip::address_v4::loopback(), 0),
            [this](asio::any_io_executor) { return std::make_unique<test_handler>(seen); },
            [](http::status status, std::string_view message) {
                http_response res{status, 11};
                res.body() = message;
                return res;
            },
            options);
        server->start();
        for (int i = 0; i < thread_count; ++i)
            threads.emplace_back([this] { io.run(); });
    }

    ~server_fixture()
    {
        seen.gate_open = true;
        server->stop();
        work.reset();
        io.stop();
        for (auto& t : threads)
            t.join();
    }

    std::uint16_t port() const { return server->local_endpoint().port(); }
};

http_server_options with_depth(std::size_t depth)
{
    http_server_options o;
    o.pipeline_depth = depth;
    return o;
}

http_server_options with_idle_timeout(std::chrono::milliseconds timeout)
{
    http_server_options o;
    o.idle_timeout = timeout;
    return o;
}

/// A client connection that sends raw bytes and reads responses, every wait bounded.
class raw_client {
public:
    /// Connects to `port`, with a kernel receive buffer (SO_RCVBUF) of `receive_buffer` bytes
    /// unless 0.
    explicit raw_client(std::uint16_t port, int receive_buffer = 0)
    {
        if (receive_buffer > 0) {
            stream_.socket().open(tcp::v4());
            stream_.socket().set_option(asio::socket_base::receive_buffer_size(receive_buffer));
        }
        stream_.expires_after(5s);
        stream_.async_connect(tcp::endpoint(asio::ip::address_v4::loopback(), port),
                              [&](beast::error_code ec) { ec_ = ec; });
        run();
        BOOST_TEST_REQUIRE(!ec_, "connect: " << ec_.message());
    }

    /// Sends `bytes`; false if the connection is gone.
    bool try_send(const std::string& bytes)
    {
        stream_.expires_after(5s);
        asio::async_write(stream_, asio::buffer(bytes), [&](beast::error_code ec, std::size_t) { ec_ = ec; });
        run();
        return !ec_;
    }

    void send(const std::string& bytes)
    {
        stream_.expires_after(5s);
        asio::async_write(stream_, asio::buffer(bytes), [&](beast::error_code ec, std::size_t) { ec_ = ec; });
        run();
        BOOST_TEST_REQUIRE(!ec_, "send: " << ec_.message());
    }

    /// The next response, or nothing if none arrives within `timeout`.
    std::optional<response> read(std::chrono::milliseconds timeout = 5s)
    {
        http::response_parser<http::string_body> parser;
        stream_.expires_after(timeout);
        http::async_read(stream_, buffer_, parser, [&](beast::error_code ec, std::size_t) { ec_ = ec; });
        run();
        if (ec_)
            return std::nullopt;
        return parser.release();
    }

    /// The bodies of the next `n` responses, "<status> <body>" each, "none" once one is missing.
    std::vector<std::string> read_bodies(std::size_t n, std::chrono::milliseconds timeout = 5s)
    {
        std::vector<std::string> out;
        for (std::size_t i = 0; i < n; ++i) {
            std::optional<response> r = read(timeout);
            out.push_back(r ? std::to_string(r->result_int()) + " " + r->body() : "none");
        }
        return out;
    }

    /// Whether the server closes the connection within `timeout`, sending nothing more.
    bool closed_within(std::chrono::milliseconds timeout)
    {
        if (buffer_.size() != 0)
            return false;
        std::array<char, 256> sink;
        std::size_t got = 0;
        stream_.expires_after(timeout);
        stream_.async_read_some(asio::buffer(sink), [&](beast::error_code ec, std::size_t n) {
            ec_ = ec;
            got = n;
        });
        run();
        return got == 0 && ec_ && ec_ != beast::error::timeout;
    }

private:
    void run()
    {
        io_.restart();
        io_.run();
    }

    asio::io_context io_;
    beast::tcp_stream stream_{io_};
    beast::flat_buffer buffer_;
    beast::error_code ec_;
};

/// Whether `done()` turns true within `timeout`.
template <class Predicate>
bool eventually(Predicate done, std::chrono::milliseconds timeout = 5s)
{
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!done()) {
        if (std::chrono::steady_clock::now() >= deadline)
            return false;
        std::this_thread::sleep_for(1ms);
    }
    return true;
}

std::string get(const std::string& target, const std::string& extra_headers = {})
{
    return "GET " + target + " HTTP/1.1\r\nHost: x\r\n" + extra_headers + "\r\n";
}

/// The thread counts the tests of a connection's life run with: two threads, connections on
/// strands (raftkv-server's default); one thread, no strands (raftkv-server --threads 1).
const auto thread_counts = boost::unit_test::data::make({2, 1});

} // namespace

BOOST_DATA_TEST_CASE(pipelined_requests_are_read_ahead_of_a_slow_one_and_answered_in_order, thread_counts,
                     thread_count)
{
    server_fixture f({}, thread_count);
    raw_client c(f.port());
    // The first request completes only once all eight have reached the handler: with one
    // request at a time it would see only itself.
    std::string pipeline = get("/wait/8");
    for (int i = 1; i < 8; ++i)
        pipeline += get("/fast/" + std::to_string(i));
    c.send(pipeline);
    const std::vector<std::string> expected = {"200 saw 8",   "200 /fast/1", "200 /fast/2", "200 /fast/3",
                                               "200 /fast/4", "200 /fast/5", "200 /fast/6", "200 /fast/7"};
    BOOST_TEST(c.read_bodies(8) == expected, boost::test_tools::per_element());
}

BOOST_DATA_TEST_CASE(responses_keep_request_order_when_handlers_finish_in_reverse, thread_counts,
                     thread_count)
{
    server_fixture f({}, thread_count);
    raw_client c(f.port());
    c.send(get("/delay/300") + get("/delay/200") + get("/delay/100") + get("/fast/now"));
    const std::vector<std::string> expected = {"200 /delay/300", "200 /delay/200", "200 /delay/100",
                                               "200 /fast/now"};
    BOOST_TEST(c.read_bodies(4) == expected, boost::test_tools::per_element());
    BOOST_TEST(f.seen.most_running == 4);
}

// The first response is held until every request has started, so the others are ready with
// it and go out in the same write: small bodies copied after their headers, large ones
// written from the response, in order and intact either way.
BOOST_DATA_TEST_CASE(responses_ready_together_are_written_together_in_order_small_and_large, thread_counts,
                     thread_count)
{
    server_fixture f({}, thread_count);
    raw_client c(f.port());
    c.send(get("/wait/6") + get("/big/100000") + get("/fast/a") + get("/big/4096") + get("/big/4097") +
           get("/fast/b", "Connection: close\r\n"));
    std::vector<std::optional<response>> got;
    for (int i = 0; i < 6; ++i)
        got.push_back(c.read());
    BOOST_TEST_REQUIRE(got[0].has_value());
    BOOST_TEST(got[0]->body() == "saw 6");
    BOOST_TEST_REQUIRE(got[1].has_value());
    BOOST_TEST((got[1]->body() == big_body(100000)));
    BOOST_TEST(((*got[1])[http::field::content_length] == "100000"));
    BOOST_TEST_REQUIRE(got[2].has_value());
    BOOST_TEST(got[2]->body() == "/fast/a");
    BOOST_TEST_REQUIRE(got[3].has_value());
    BOOST_TEST((got[3]->body() == big_body(4096)));
    BOOST_TEST_REQUIRE(got[4].has_value());
    BOOST_TEST((got[4]->body() == big_body(4097)));
    BOOST_TEST_REQUIRE(got[5].has_value());
    BOOST_TEST(got[5]->body() == "/fast/b");
    BOOST_TEST(!got[5]->keep_alive());
    BOOST_TEST(c.closed_within(2s));
}

BOOST_AUTO_TEST_CASE(no_more_than_pipeline_depth_requests_are_in_progress)
{
    server_fixture f(with_depth(4));
    raw_client c(f.port());
    std::string pipeline;
    for (int i = 0; i < 10; ++i)
        pipeline += get("/block/" + std::to_string(i));
    c.send(pipeline);
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (f.seen.started_count() < 4 && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(1ms);
    std::this_thread::sleep_for(200ms); // time to (wrongly) read further
    BOOST_TEST(f.seen.started_count() == 4, "the server read past its pipeline depth");
    f.seen.gate_open = true;
    std::vector<std::string> expected;
    for (int i = 0; i < 10; ++i)
        expected.push_back("200 /block/" + std::to_string(i));
    BOOST_TEST(c.read_bodies(10) == expected, boost::test_tools::per_element());
    BOOST_TEST(f.seen.most_running == 4);
}

BOOST_AUTO_TEST_CASE(a_depth_of_one_serves_one_request_at_a_time)
{
    server_fixture f(with_depth(1));
    raw_client c(f.port());
    c.send(get("/delay/100") + get("/fast/a") + get("/fast/b"));
    const std::vector<std::string> expected = {"200 /delay/100", "200 /fast/a", "200 /fast/b"};
    BOOST_TEST(c.read_bodies(3) == expected, boost::test_tools::per_element());
    BOOST_TEST(f.seen.most_running == 1);
}

BOOST_AUTO_TEST_CASE(a_pipeline_depth_of_zero_is_refused)
{
    asio::io_context io;
    BOOST_CHECK_THROW(http_server(
                          io.get_executor(), tcp::endpoint(asio::ip::address_v4::loopback(), 0),
                          [](asio::any_io_executor) { return std::unique_ptr<test_handler>(); },
                          [](http::status s, std::string_view) {
                              return http_response{s, 11};
                          },
                          with_depth(0)),
                      std::invalid_argument);
}

BOOST_AUTO_TEST_CASE(a_malformed_request_is_answered_400_after_the_earlier_ones_then_the_connection_closes)
{
    server_fixture f;
    raw_client c(f.port());
    c.send(get("/delay/200") + get("/fast/a") + "NOT-HTTP\r\n\r\n" + get("/fast/never"));
    const auto bodies = c.read_bodies(3);
    BOOST_TEST(bodies[0] == "200 /delay/200");
    BOOST_TEST(bodies[1] == "200 /fast/a");
    BOOST_TEST(bodies[2].starts_with("400 malformed request"), bodies[2]);
    BOOST_TEST(c.closed_within(3s));
    BOOST_TEST(f.seen.started_count() == 2, "a request after the bad one was handled");
}

// RFC 9112 2.2: a server should ignore at least one empty line before a request line (some
// clients send a CRLF after a body). A few are; more are a malformed request.
BOOST_AUTO_TEST_CASE(empty_lines_before_a_request_are_ignored_a_few_bytes_of_them)
{
    server_fixture f;
    raw_client c(f.port());
    c.send("\r\n" + get("/fast/a") + "\r\n" + get("/fast/b") + "\n\r\n\r\n" + get("/fast/c"));
    const auto bodies = c.read_bodies(3);
    BOOST_TEST(bodies[0] == "200 /fast/a");
    BOOST_TEST(bodies[1] == "200 /fast/b");
    BOOST_TEST(bodies[2] == "200 /fast/c");
    // Sent apart from the request, in their own segment.
    c.send("\r\n");
    std::this_thread::sleep_for(50ms);
    c.send(get("/fast/d"));
    BOOST_TEST(c.read_bodies(1).at(0) == "200 /fast/d");

    raw_client d(f.port());
    d.send(std::string(10, '\n') + get("/fast/never"));
    const auto refused = d.read_bodies(1);
    BOOST_TEST(refused.at(0).starts_with("400 malformed request"), refused.at(0));
    BOOST_TEST(d.closed_within(3s));
}

BOOST_AUTO_TEST_CASE(an_oversized_header_is_answered_431_in_its_place)
{
    http_server_options o;
    o.header_limit = 1024;
    server_fixture f(o);
    raw_client c(f.port());
    c.send(get("/delay/100") + get("/fast/big", "X-Big: " + std::string(2048, 'a') + "\r\n"));
    const auto bodies = c.read_bodies(2);
    BOOST_TEST(bodies[0] == "200 /delay/100");
    BOOST_TEST(bodies[1].starts_with("431 request header fields too large"), bodies[1]);
    BOOST_TEST(c.closed_within(3s));
}

BOOST_AUTO_TEST_CASE(an_oversized_request_line_is_answered_431_too)
{
    http_server_options o;
    o.header_limit = 1024;
    server_fixture f(o);
    raw_client c(f.port());
    c.send(get("/fast/" + std::string(2048, 'a')));
    const auto bodies = c.read_bodies(1);
    BOOST_TEST(bodies[0].starts_with("431 request header fields too large"), bodies[0]);
    BOOST_TEST(c.closed_within(3s));
    BOOST_TEST(f.seen.started_count() == 0);
}

// RFC 9112 6.1: a Transfer-Encoding whose last coding is not chunked leaves the body's length
// unknown; the bytes after the header must not be taken for a next request.
BOOST_AUTO_TEST_CASE(a_transfer_encoding_not_ending_in_chunked_is_answered_400_then_the_connection_closes)
{
    for (const std::string coding : {"gzip", "chunked, gzip", "identity"}) {
        server_fixture f;
        raw_client c(f.port());
        c.send(get("/delay/100") + "PUT /fast/te HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: " + coding +
               "\r\n\r\n" + get("/fast/smuggled"));
        std::optional<response> first = c.read();
        std::optional<response> refused = c.read();
        BOOST_TEST_REQUIRE((first && refused), coding);
        BOOST_TEST(first->body() == "/delay/100", coding);
        BOOST_TEST(refused->result_int() == 400, coding);
        BOOST_TEST(refused->body() == "unsupported Transfer-Encoding (only chunked)", coding);
        BOOST_TEST(!refused->keep_alive(), coding);
        BOOST_TEST(c.closed_within(3s), coding << ": the connection stayed open");
        BOOST_TEST(f.seen.started_count() == 1, coding << ": the request or the bytes after it were handled");
    }
}

// A coding before chunked leaves the framing known: the body is read and the request handled
// (the handler decides whether it takes that coding), and the connection serves on.
BOOST_AUTO_TEST_CASE(a_transfer_encoding_ending_in_chunked_is_read_and_handled)
{
    server_fixture f;
    raw_client c(f.port());
    c.send(
        "PUT /fast/gc HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n" +
        get("/fast/next"));
    const auto bodies = c.read_bodies(2);
    BOOST_TEST(bodies[0] == "200 /fast/gc");
    BOOST_TEST(bodies[1] == "200 /fast/next");
}

// Beast counts a chunked body's trailer fields against no limit, keeps them all in the read
// buffer until the last one arrives, and throws (out of the event loop: the process ended)
// on a field value over 65,533 bytes. Trailers up to a header's worth are read; more are 431.
BOOST_AUTO_TEST_CASE(trailer_fields_beyond_a_headers_worth_are_answered_431_and_the_server_serves_on)
{
    server_fixture f;
    const std::string chunked =
        "PUT /fast/t HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n";
    {
        raw_client c(f.port());
        c.send(chunked + "X-Small: " + std::string(1000, 'a') + "\r\n\r\n" + get("/fast/next"));
        const auto bodies = c.read_bodies(2);
        BOOST_TEST(bodies[0] == "200 /fast/t");
        BOOST_TEST(bodies[1] == "200 /fast/next");
    }
    for (const std::string& trailer : {"X-T: " + std::string(65600, 'a') + "\r\n\r\n",
                                       // many small fields that never end: held no further
                                       [] {
                                           std::string t;
                                           for (int k = 0; k < 20000; ++k)
                                               t += "a: b\r\n";
                                           return t;
                                       }()}) {
        raw_client c(f.port());
        c.send(chunked + trailer);
        const auto bodies = c.read_bodies(1);
        BOOST_TEST(bodies.at(0).starts_with("431 request trailer fields"), bodies.at(0));
        BOOST_TEST(c.closed_within(3s));
    }
    raw_client after(f.port());
    after.send(get("/fast/alive"));
    BOOST_TEST(after.read_bodies(1).at(0) == "200 /fast/alive");
}

BOOST_AUTO_TEST_CASE(an_absolute_form_target_is_served_as_its_path_and_query)
{
    // RFC 9112 3.2.2: what a client configured with a proxy sends; a server must accept it.
    server_fixture f;
    raw_client c(f.port());
    c.send(get("http://example.com:8080/fast/a?x=1") + get("HTTPS://example.com/fast/b") +
           get("http://example.com?y=2") + get("http://example.com") + get("//fast/c"));
    const auto bodies = c.read_bodies(5);
    BOOST_TEST(bodies[0] == "200 /fast/a?x=1");
    BOOST_TEST(bodies[1] == "200 /fast/b");
    BOOST_TEST(bodies[2] == "200 /?y=2");
    BOOST_TEST(bodies[3] == "200 /");
    BOOST_TEST(bodies[4] == "200 //fast/c", "an origin-form path is left as it is");

    // An empty host, or user information: a bad request (RFC 9110 4.2.1, 4.2.4); and a '#' in
    // any target (a fragment is never part of one; a '#' in a key is sent as %23).
    for (const char* bad :
         {"http:///fast/d", "http://user:pw@example.com/fast/e", "/fast/f#g", "/fast/h?x=#"}) {
        raw_client d(f.port());
        d.send(get(bad));
        const std::optional<response> r = d.read();
        BOOST_TEST_REQUIRE(r.has_value(), bad);
        BOOST_TEST(r->result_int() == 400u, bad);
    }
}

BOOST_AUTO_TEST_CASE(connection_close_ends_the_pipeline_after_its_response)
{
    server_fixture f;
    raw_client c(f.port());
    c.send(get("/delay/100") + get("/fast/last", "Connection: close\r\n") + get("/fast/never"));
    std::optional<response> first = c.read();
    std::optional<response> last = c.read();
    BOOST_TEST_REQUIRE((first && last));
    BOOST_TEST(first->body() == "/delay/100");
    BOOST_TEST(first->keep_alive());
    BOOST_TEST(last->body() == "/fast/last");
    BOOST_TEST(!last->keep_alive());
    BOOST_TEST(c.closed_within(3s));
    BOOST_TEST(f.seen.started_count() == 2, "a request after Connection: close was handled");
}

BOOST_AUTO_TEST_CASE(an_exception_is_answered_500_in_its_place)
{
    server_fixture f;
    raw_client c(f.port());
    c.send(get("/delay/100") + get("/throw") + get("/fast/after"));
    const auto bodies = c.read_bodies(3);
    BOOST_TEST(bodies[0] == "200 /delay/100");
    // The exception's text goes to the log, not to the client: the answer names an error id.
    BOOST_TEST(bodies[1].starts_with("500 internal error (error id "), bodies[1]);
    BOOST_TEST(bodies[1].find("the handler threw") == std::string::npos, bodies[1]);
    BOOST_TEST(bodies[2] == "200 /fast/after");
}

BOOST_DATA_TEST_CASE(the_idle_timeout_spares_a_request_in_progress_and_closes_an_idle_connection,
                     thread_counts, thread_count)
{
    server_fixture f(with_idle_timeout(300ms), thread_count);
    raw_client c(f.port());
    c.send(get("/delay/800"));
    std::optional<response> r = c.read(3s);
    BOOST_TEST_REQUIRE(r.has_value(), "a request that takes longer than the idle timeout was cut off");
    BOOST_TEST(r->body() == "/delay/800");
    const auto idle_since = std::chrono::steady_clock::now();
    BOOST_TEST(c.closed_within(3s), "an idle connection stayed open");
    BOOST_TEST((std::chrono::steady_clock::now() - idle_since >= 250ms), "closed before the idle timeout");
}

BOOST_AUTO_TEST_CASE(a_half_sent_body_is_cut_off_by_the_body_timeout)
{
    http_server_options o;
    o.body_timeout = 300ms;
    server_fixture f(o);
    raw_client c(f.port());
    c.send("PUT /fast/half HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"val");
    const auto sent = std::chrono::steady_clock::now();
    BOOST_TEST(c.closed_within(3s));
    BOOST_TEST((std::chrono::steady_clock::now() - sent >= 250ms), "closed before the body timeout");
    BOOST_TEST(f.seen.started_count() == 0);
}

BOOST_AUTO_TEST_CASE(a_chunked_request_trickled_byte_by_byte_is_answered)
{
    // The last chunk, then the final CRLF a byte at a time: Boost 1.81's parser asserted on
    // the read after "0\r\n" (test/fuzz/regressions/http_request/), aborting a Debug server.
    server_fixture f;
    raw_client c(f.port());
    c.send("PUT /fast/chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
    for (const char* piece : {"0\r\n", "\r", "\n"}) {
        std::this_thread::sleep_for(100ms); // each piece a read of its own
        c.send(piece);
    }
    std::optional<response> r = c.read();
    BOOST_TEST_REQUIRE(r.has_value());
    BOOST_TEST(r->body() == "/fast/chunked");
}

BOOST_AUTO_TEST_CASE(expect_100_continue_follows_the_earlier_responses)
{
    server_fixture f;
    raw_client c(f.port());
    c.send(get("/delay/200") +
           "PUT /fast/expect HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
    std::optional<response> first = c.read();
    std::optional<response> go_on = c.read();
    BOOST_TEST_REQUIRE((first && go_on));
    BOOST_TEST(first->body() == "/delay/200");
    BOOST_TEST(go_on->result() == http::status::continue_);
    c.send("hello");
    std::optional<response> last = c.read();
    BOOST_TEST_REQUIRE(last.has_value());
    BOOST_TEST(last->body() == "/fast/expect");
}

// A request its handler refuses from the header alone gets that answer instead of 100
// Continue, its body unread, and the connection is closed (the client may send the body
// anyway, which could not be told from a next request). An absolute-form target is matched
// as its path.
BOOST_AUTO_TEST_CASE(a_request_refused_from_its_header_gets_no_100_continue)
{
    server_fixture f;
    for (const std::string target : {"/refused/a", "http://x/refused/a"}) {
        raw_client c(f.port());
        c.send("PUT " + target + " HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
        std::optional<response> r = c.read();
        BOOST_TEST_REQUIRE(r.has_value());
        BOOST_TEST(r->result() == http::status::forbidden);
        BOOST_TEST(r->body() == "refused /refused/a");
        BOOST_TEST(!r->keep_alive());
        BOOST_TEST(c.closed_within(3s));
    }
    // Others still get the 100 first.
    raw_client c(f.port());
    c.send("PUT /fast/allowed HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
    std::optional<response> go_on = c.read();
    BOOST_TEST_REQUIRE(go_on.has_value());
    BOOST_TEST(go_on->result() == http::status::continue_);
    c.send("hello");
    std::optional<response> last = c.read();
    BOOST_TEST_REQUIRE(last.has_value());
    BOOST_TEST(last->body() == "/fast/allowed");
}

// HTTP/1.0 has no interim responses: a 1.0 client that sends Expect: 100-continue (and its
// body) gets its final answer and nothing before it (RFC 9110 10.1.1, 15.2).
BOOST_AUTO_TEST_CASE(an_http_1_0_request_expecting_100_continue_gets_no_interim_response)
{
    server_fixture f;
    raw_client c(f.port());
    c.send("PUT /fast/old HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhello");
    std::optional<response> r = c.read();
    BOOST_TEST_REQUIRE(r.has_value());
    BOOST_TEST(r->result() == http::status::ok);
    BOOST_TEST(r->version() == 10u);
    BOOST_TEST(r->body() == "/fast/old");
}

// An expectation other than 100-continue is not met: 417, and the connection closes (the body
// may or may not follow). HTTP/1.0 knows no expectations: the request is served.
BOOST_AUTO_TEST_CASE(an_expectation_other_than_100_continue_is_refused_with_417)
{
    server_fixture f;
    const auto answer = [&](const std::string& request) {
        raw_client c(f.port());
        c.send(request);
        std::optional<response> r = c.read();
        BOOST_TEST_REQUIRE(r.has_value(), request);
        return std::move(*r);
    };
    const response odd =
        answer("PUT /fast/odd HTTP/1.1\r\nHost: x\r\nExpect: 200-ok\r\nContent-Length: 5\r\n\r\nhello");
    BOOST_TEST(odd.result() == http::status::expectation_failed);
    BOOST_TEST(odd.body().find("unsupported expectation '200-ok' (only 100-continue)") != std::string::npos,
               odd.body());
    BOOST_TEST(!odd.keep_alive());
    // Expect is a list, over any number of fields: every element counts, an empty one none.
    for (const std::string fields :
         {"Expect: 100-continue\r\nExpect: 200-ok\r\n", "Expect: 100-continue, 200-ok\r\n",
          "Expect: 200-ok\r\nExpect: 100-continue\r\n"})
        BOOST_TEST(answer("PUT /fast/odd HTTP/1.1\r\nHost: x\r\n" + fields + "Content-Length: 5\r\n\r\nhello")
                           .result() == http::status::expectation_failed,
                   fields);
    BOOST_TEST(
        answer("PUT /fast/old HTTP/1.0\r\nExpect: 200-ok\r\nContent-Length: 5\r\n\r\nhello").result() ==
        http::status::ok);
    BOOST_TEST(answer("PUT /fast/empty HTTP/1.1\r\nHost: x\r\nExpect: \r\nContent-Length: 5\r\n\r\nhello")
                       .result() == http::status::ok,
               "an empty Expect holds no expectation");
    BOOST_TEST(f.seen.started_count() == 2);
}

BOOST_DATA_TEST_CASE(after_stop_the_requests_read_are_answered_and_the_next_one_closes, thread_counts,
                     thread_count)
{
    server_fixture f({}, thread_count);
    raw_client c(f.port());
    c.send(get("/block/1") + get("/block/2"));
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (f.seen.started_count() < 2 && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(1ms);
    f.server->stop();
    c.send(get("/fast/after-stop"));
    f.seen.gate_open = true;
    std::optional<response> r1 = c.read();
    std::optional<response> r2 = c.read();
    std::optional<response> r3 = c.read();
    BOOST_TEST_REQUIRE((r1 && r2 && r3));
    BOOST_TEST(r1->body() == "/block/1");
    BOOST_TEST(r2->body() == "/block/2");
    BOOST_TEST(r3->body() == "/fast/after-stop");
    BOOST_TEST(!r3->keep_alive());
    BOOST_TEST(c.closed_within(3s));
}

namespace {

/// Sends `bytes` one at a time, `interval` apart, until a send fails because the server
/// closed the connection; how long that took from the first byte (a little longer than when
/// the server closed it), or nothing if it stayed open for `limit`.
std::optional<std::chrono::milliseconds> trickle_until_closed(raw_client& c, const std::string& bytes,
                                                              std::chrono::milliseconds interval,
                                                              std::chrono::milliseconds limit = 3s)
{
    const auto start = std::chrono::steady_clock::now();
    for (std::size_t i = 0; std::chrono::steady_clock::now() - start < limit; ++i) {
        if (!c.try_send(std::string(1, bytes[i % bytes.size()])))
            return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                         start);
        std::this_thread::sleep_for(interval);
    }
    return std::nullopt;
}

std::string put_header(const std::string& target, std::size_t length, const std::string& extra_headers = {})
{
    return "PUT " + target + " HTTP/1.1\r\nHost: x\r\nContent-Length: " + std::to_string(length) + "\r\n" +
           extra_headers + "\r\n";
}

/// A PUT of `length` bytes that asks for "100 Continue" and gets it: from then on the
/// server holds a reservation for its body. Returns whether the 100 arrived.
bool start_expecting_put(raw_client& c, const std::string& target, std::size_t length)
{
    c.send(put_header(target, length, "Expect: 100-continue\r\n"));
    std::optional<response> go_on = c.read();
    return go_on && go_on->result() == http::status::continue_;
}

} // namespace

BOOST_AUTO_TEST_CASE(each_response_the_server_sends_itself_is_reported_with_the_requests_method)
{
    std::mutex mutex;
    std::vector<std::pair<http::verb, unsigned>> reported;
    http_server_options o;
    o.header_limit = 1024;
    o.body_limit = 1000;
    o.on_refusal = [&](http::verb method, unsigned status) {
        std::lock_guard lock(mutex);
        reported.emplace_back(method, status);
    };
    server_fixture f(o);
    const auto answer = [&](const std::string& bytes) -> unsigned {
        raw_client c(f.port());
        c.send(bytes);
        const std::optional<response> r = c.read();
        return r ? r->result_int() : 0;
    };
    BOOST_TEST(answer("NOT-HTTP\r\n\r\n") == 400u);
    BOOST_TEST(answer(put_header("/fast/big", 2000)) == 413u);
    BOOST_TEST(answer(get("/fast/big", "X-Big: " + std::string(2048, 'a') + "\r\n")) == 431u);
    BOOST_TEST(answer(get("/fast/plain", "Transfer-Encoding: gzip\r\n")) == 400u);
    BOOST_TEST(answer(get("/throw")) == 500u);
    BOOST_TEST(answer(get("/fast/handled")) == 200u);

    std::lock_guard lock(mutex);
    BOOST_TEST_REQUIRE(reported.size() == 5u, "the handler's own answer was reported, or a refusal was not");
    BOOST_TEST((reported[0] == std::pair{http::verb::unknown, 400u}));
    BOOST_TEST((reported[1] == std::pair{http::verb::put, 413u}));
    BOOST_TEST((reported[2] == std::pair{http::verb::get, 431u})); // its request line was read
    BOOST_TEST((reported[3] == std::pair{http::verb::get, 400u}));
    BOOST_TEST((reported[4] == std::pair{http::verb::get, 500u}));
}

BOOST_AUTO_TEST_CASE(connections_over_the_cap_get_503_when_none_is_idle_and_the_earlier_ones_are_still_served)
{
    std::atomic<int> reported_503{0};
    http_server_options o;
    o.max_connections = 2;
    o.on_refusal = [&reported_503](http::verb, unsigned status) {
        if (status == 503)
            ++reported_503;
    };
    server_fixture f(o);
    std::optional<raw_client> first(f.port());
    raw_client& a = *first;
    raw_client b(f.port());
    // Both have a request in progress, so neither may be evicted.
    a.send(get("/block/a"));
    b.send(get("/block/b"));
    const auto started = std::chrono::steady_clock::now();
    while (f.seen.started_count() < 2 && std::chrono::steady_clock::now() - started < 5s)
        std::this_thread::sleep_for(1ms);
    BOOST_TEST_REQUIRE(f.seen.started_count() == 2);

    raw_client over(f.port());
    over.try_send(get("/fast/over"));
    std::optional<response> refused = over.read();
    BOOST_TEST_REQUIRE(refused.has_value(), "a connection over the cap got no answer");
    BOOST_TEST(refused->result_int() == 503);
    BOOST_TEST(!refused->keep_alive());
    BOOST_TEST(refused->count(http::field::retry_after) == 1u);
    BOOST_TEST(over.closed_within(3s));
    BOOST_TEST(f.seen.started_count() == 2, "a request over the cap was handled");
    BOOST_TEST(f.server->idle_evictions() == 0u);
    BOOST_TEST(reported_503 == 1);

    f.seen.gate_open = true;
    BOOST_TEST(a.read_bodies(1) == std::vector<std::string>{"200 /block/a"},
               boost::test_tools::per_element());
    BOOST_TEST(b.read_bodies(1) == std::vector<std::string>{"200 /block/b"},
               boost::test_tools::per_element());

    // Once one closes, a new connection is served again.
    a.send(get("/fast/bye", "Connection: close\r\n"));
    BOOST_TEST(a.read_bodies(1) == std::vector<std::string>{"200 /fast/bye"},
               boost::test_tools::per_element());
    BOOST_TEST(a.closed_within(3s));
    first.reset();
    raw_client c(f.port());
    c.send(get("/fast/later"));
    BOOST_TEST(c.read_bodies(1) == std::vector<std::string>{"200 /fast/later"},
               boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(at_the_cap_the_longest_idle_connection_is_closed_to_admit_a_new_one)
{
    http_server_options o;
    o.max_connections = 8;
    server_fixture f(o);
    // Idle in order: 0..3 after one request each (kept alive), then 4..7 never sent anything.
    std::vector<std::unique_ptr<raw_client>> idle;
    for (int i = 0; i < 8; ++i) {
        idle.push_back(std::make_unique<raw_client>(f.port()));
        if (i < 4) {
            idle.back()->send(get("/fast/" + std::to_string(i)));
            BOOST_TEST(idle.back()->read_bodies(1) ==
                           std::vector<std::string>{"200 /fast/" + std::to_string(i)},
                       boost::test_tools::per_element());
        }
        std::this_thread::sleep_for(50ms); // each has begun to wait before the next
    }

    // Each new connection evicts the longest-idle one and is served (and kept alive, it
    // becomes the shortest idle).
    std::vector<std::unique_ptr<raw_client>> fresh;
    for (int i = 0; i < 6; ++i) {
        fresh.push_back(std::make_unique<raw_client>(f.port()));
        fresh.back()->send(get("/fast/new" + std::to_string(i)));
        BOOST_TEST(fresh.back()->read_bodies(1) ==
                       std::vector<std::string>{"200 /fast/new" + std::to_string(i)},
                   boost::test_tools::per_element());
        BOOST_TEST(idle[i]->closed_within(3s), "connection " << i << " was not evicted");
    }
    BOOST_TEST(f.server->idle_evictions() == 6u);

    // The two idle the shortest were left alone and are still served.
    for (int i = 6; i < 8; ++i) {
        idle[i]->send(get("/fast/still" + std::to_string(i)));
        BOOST_TEST(idle[i]->read_bodies(1) == std::vector<std::string>{"200 /fast/still" + std::to_string(i)},
                   boost::test_tools::per_element());
    }
}

BOOST_AUTO_TEST_CASE(connections_with_a_request_in_progress_are_not_evicted)
{
    http_server_options o;
    o.max_connections = 8;
    server_fixture f(o);
    // The oldest four are busy: two with a request being handled, two in the middle of a
    // header. The four after them are idle.
    raw_client handled0(f.port());
    raw_client handled1(f.port());
    raw_client header0(f.port());
    raw_client header1(f.port());
    handled0.send(get("/block/h0"));
    handled1.send(get("/block/h1"));
    header0.send("GET /fast/p0 HTTP/1.1\r\nHo");
    header1.send("GET /fast/p1 HTTP/1.1\r\nHo");
    const auto started = std::chrono::steady_clock::now();
    while (f.seen.started_count() < 2 && std::chrono::steady_clock::now() - started < 5s)
        std::this_thread::sleep_for(1ms);
    BOOST_TEST_REQUIRE(f.seen.started_count() == 2);
    std::this_thread::sleep_for(200ms); // the partial headers are being read
    std::vector<std::unique_ptr<raw_client>> idle;
    for (int i = 0; i < 4; ++i)
        idle.push_back(std::make_unique<raw_client>(f.port()));
    std::this_thread::sleep_for(100ms);

    // Four new connections take the places of the four idle ones.
    std::vector<std::unique_ptr<raw_client>> fresh;
    for (int i = 0; i < 4; ++i) {
        fresh.push_back(std::make_unique<raw_client>(f.port()));
        fresh.back()->send(get("/block/n" + std::to_string(i)));
        BOOST_TEST(idle[i]->closed_within(3s), "idle connection " << i << " was not evicted");
    }
    BOOST_TEST(f.server->idle_evictions() == 4u);

    // Now every connection is busy: the next one is refused.
    while (f.seen.started_count() < 6 && std::chrono::steady_clock::now() - started < 10s)
        std::this_thread::sleep_for(1ms);
    raw_client over(f.port());
    over.try_send(get("/fast/over"));
    std::optional<response> refused = over.read();
    BOOST_TEST_REQUIRE(refused.has_value(), "a connection over the cap got no answer");
    BOOST_TEST(refused->result_int() == 503);
    BOOST_TEST(f.server->idle_evictions() == 4u);

    // The busy ones finish their requests and are answered.
    header0.send("st: x\r\n\r\n");
    header1.send("st: x\r\n\r\n");
    BOOST_TEST(header0.read_bodies(1) == std::vector<std::string>{"200 /fast/p0"},
               boost::test_tools::per_element());
    BOOST_TEST(header1.read_bodies(1) == std::vector<std::string>{"200 /fast/p1"},
               boost::test_tools::per_element());
    f.seen.gate_open = true;
    BOOST_TEST(handled0.read_bodies(1) == std::vector<std::string>{"200 /block/h0"},
               boost::test_tools::per_element());
    BOOST_TEST(handled1.read_bodies(1) == std::vector<std::string>{"200 /block/h1"},
               boost::test_tools::per_element());
    for (int i = 0; i < 4; ++i)
        BOOST_TEST(fresh[i]->read_bodies(1) == std::vector<std::string>{"200 /block/n" + std::to_string(i)},
                   boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(bodies_over_the_pending_budget_get_503_and_the_budget_is_released)
{
    http_server_options o;
    o.body_limit = 2000;
    o.max_pending_body_bytes = 2000;
    server_fixture f(o);
    raw_client holder(f.port());
    BOOST_TEST_REQUIRE(start_expecting_put(holder, "/fast/holder", 1500));
    holder.send(std::string(1200, 'h'));
    std::this_thread::sleep_for(100ms); // received: 1200 bytes of the budget held

    // 1200 + 1000 do not fit in 2000: refused without reading the body.
    raw_client sized(f.port());
    sized.send(put_header("/fast/sized", 1000));
    std::optional<response> refused = sized.read();
    BOOST_TEST_REQUIRE(refused.has_value());
    BOOST_TEST(refused->result_int() == 503);
    BOOST_TEST(refused->body().starts_with("too many request bodies"), refused->body());
    BOOST_TEST(refused->count(http::field::retry_after) == 1u);
    BOOST_TEST(!refused->keep_alive());
    BOOST_TEST(sized.closed_within(3s));

    // A chunked body takes its bytes as they arrive, and is refused once they do not fit.
    raw_client chunked(f.port());
    chunked.send("PUT /fast/chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n" +
                 std::string(16, 'c') + "\r\n3e8\r\n" + std::string(900, 'c'));
    std::optional<response> refused_chunk = chunked.read();
    BOOST_TEST_REQUIRE(refused_chunk.has_value());
    BOOST_TEST(refused_chunk->result_int() == 503);
    BOOST_TEST(chunked.closed_within(3s));

    holder.send(std::string(300, 'h'));
    BOOST_TEST(holder.read_bodies(1) == std::vector<std::string>{"200 /fast/holder"},
               boost::test_tools::per_element());

    // Handed to the handler, the holder's body no longer counts: the whole budget is free.
    raw_client later(f.port());
    later.send(put_header("/fast/later", 2000) + std::string(2000, 'l'));
    BOOST_TEST(later.read_bodies(1) == std::vector<std::string>{"200 /fast/later"},
               boost::test_tools::per_element());
    BOOST_TEST(f.seen.started_count() == 2);
}

// A body holds the budget by the bytes received, not by the length its header announces:
// connections that announce large bodies and send nothing do not lock the others out.
BOOST_AUTO_TEST_CASE(announced_bodies_not_yet_sent_hold_none_of_the_budget)
{
    http_server_options o;
    o.body_limit = 2000;
    o.max_pending_body_bytes = 2000;
    server_fixture f(o);
    std::vector<std::unique_ptr<raw_client>> announcers;
    for (int i = 0; i < 3; ++i) {
        announcers.push_back(std::make_unique<raw_client>(f.port()));
        BOOST_TEST_REQUIRE(start_expecting_put(*announcers.back(), "/fast/a" + std::to_string(i), 1500));
        announcers.back()->send(std::string(10, 'a'));
    }
    std::this_thread::sleep_for(100ms);
    raw_client other(f.port());
    other.send(put_header("/fast/other", 500) + std::string(500, 'o'));
    BOOST_TEST(other.read_bodies(1) == std::vector<std::string>{"200 /fast/other"},
               boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(a_budget_smaller_than_the_body_limit_is_refused)
{
    asio::io_context io;
    http_server_options o;
    o.max_pending_body_bytes = o.body_limit - 1;
    BOOST_CHECK_THROW(http_server(
                          io.get_executor(), tcp::endpoint(asio::ip::address_v4::loopback(), 0),
                          [](asio::any_io_executor) { return std::unique_ptr<test_handler>(); },
                          [](http::status s, std::string_view) {
                              return http_response{s, 11};
                          },
                          o),
                      std::invalid_argument);
}

BOOST_AUTO_TEST_CASE(a_client_that_pipelines_large_responses_and_never_reads_is_reset_while_others_are_served)
{
    http_server_options o;
    o.held_response_bytes_read_gate = 1 << 20;
    o.max_held_response_bytes = 1 << 20;
    server_fixture f(o);
    // Its own receive buffer small, the kernel's send buffer fills after a few MB: from then on
    // the responses it asked for pile up in the server, whatever order the reads and the
    // handlers run in (at 1 MiB the reader waits, and the next response is over the cap).
    raw_client greedy(f.port(), 4096);
    std::string pipeline;
    for (int i = 0; i < 100; ++i)
        pipeline += get("/later-big/262144");
    greedy.send(pipeline);

    raw_client other(f.port());
    other.send(get("/fast/other"));
    BOOST_TEST(other.read_bodies(1, 2s) == std::vector<std::string>{"200 /fast/other"},
               boost::test_tools::per_element());

    BOOST_TEST(eventually([&] { return f.server->held_response_closes() == 1; }));
    // Every coroutine of the reset connection ends and its bytes are released; the other
    // connection stays open and served.
    BOOST_TEST(eventually([&] { return f.server->open_connections() == 1; }));
    BOOST_TEST(f.server->held_response_bytes() == 0u);
    BOOST_TEST(f.seen.started_count() < 100);
    other.send(get("/fast/again"));
    BOOST_TEST(other.read_bodies(1, 2s) == std::vector<std::string>{"200 /fast/again"},
               boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(no_request_is_read_while_the_connection_holds_the_gates_worth_of_responses)
{
    http_server_options o;
    o.held_response_bytes_read_gate = 64 * 1024;
    o.max_held_response_bytes = 1 << 20;
    server_fixture f(o);
    raw_client c(f.port());
    // The first response waits for the probe's gate, holding the large one behind it.
    c.send(get("/block/0") + get("/big/262144"));
    BOOST_TEST_REQUIRE(eventually([&] { return f.server->held_response_bytes() > 262144; }));
    std::string more;
    for (int i = 1; i <= 10; ++i)
        more += get("/big/" + std::to_string(262144 + i));
    c.send(more);
    std::this_thread::sleep_for(200ms); // time to (wrongly) read further
    BOOST_TEST(f.seen.started_count() == 2, "the server read past the held responses' gate");
    f.seen.gate_open = true;

    // Read, the responses go out in order, each next request read once the one before is
    // written.
    std::optional<response> first = c.read();
    BOOST_TEST_REQUIRE(first.has_value());
    BOOST_TEST(first->body() == "/block/0");
    for (int i = 0; i <= 10; ++i) {
        std::optional<response> r = c.read();
        BOOST_TEST_REQUIRE(r.has_value(), "response " << i);
        BOOST_TEST((r->body() == big_body(262144 + i)), "response " << i);
    }
    BOOST_TEST(f.seen.started_count() == 12);
    BOOST_TEST(f.server->held_response_closes() == 0u);
    BOOST_TEST(eventually([&] { return f.server->held_response_bytes() == 0; }));
}

// A body's unused capacity is memory the response holds as much as its bytes: a JSON body
// serialized into a string grown by doubling could take twice what its size said, and
// clients that pipeline and never read so held twice the caps.
BOOST_AUTO_TEST_CASE(held_responses_count_the_memory_their_bodies_take)
{
    server_fixture f;
    raw_client c(f.port());
    c.send(get("/block/0") + get("/roomy/16384"));
    BOOST_TEST_REQUIRE(eventually([&] { return f.seen.started_count() == 2; }));
    BOOST_TEST(eventually([&] { return f.server->held_response_bytes() >= std::size_t{1} << 20; }));
    f.seen.gate_open = true;
    std::optional<response> first = c.read();
    BOOST_TEST_REQUIRE(first.has_value());
    std::optional<response> roomy = c.read();
    BOOST_TEST_REQUIRE(roomy.has_value());
    BOOST_TEST((roomy->body() == big_body(16384)));
    BOOST_TEST(eventually([&] { return f.server->held_response_bytes() == 0; }));
}

BOOST_AUTO_TEST_CASE(over_the_servers_held_response_bytes_the_connection_holding_the_most_is_reset)
{
    http_server_options o;
    o.held_response_bytes_read_gate = 2 << 20;
    o.max_held_response_bytes = 2 << 20;
    o.max_held_response_bytes_total = 2 << 20;
    server_fixture f(o);
    // Each connection's responses wait behind its first, which waits for the probe's gate.
    raw_client most(f.port());
    std::string pipeline = get("/block/most");
    for (int i = 0; i < 10; ++i)
        pipeline += get("/big/131072");
    most.send(pipeline);
    BOOST_TEST_REQUIRE(eventually([&] { return f.server->held_response_bytes() >= 10 * 131072; }));

    // 10 and 12 such responses do not fit together; 12 do alone.
    raw_client fewer(f.port());
    pipeline = get("/block/fewer");
    for (int i = 0; i < 12; ++i)
        pipeline += get("/big/131072");
    fewer.send(pipeline);
    BOOST_TEST(eventually([&] { return f.server->held_response_closes() == 1; }));
    BOOST_TEST(eventually([&] { return f.seen.started_count() == 24; }));
    BOOST_TEST(most.closed_within(2s));
    BOOST_TEST(eventually([&] { return f.server->held_response_bytes() >= 12 * 131072; }));
    BOOST_TEST(f.server->held_response_bytes() <= std::size_t{2} << 20);

    f.seen.gate_open = true;
    std::optional<response> first = fewer.read();
    BOOST_TEST_REQUIRE(first.has_value());
    BOOST_TEST(first->body() == "/block/fewer");
    for (int i = 0; i < 12; ++i) {
        std::optional<response> r = fewer.read();
        BOOST_TEST_REQUIRE(r.has_value(), "response " << i);
        BOOST_TEST((r->body() == big_body(131072)), "response " << i);
    }
    BOOST_TEST(f.server->held_response_closes() == 1u);
    BOOST_TEST(eventually([&] { return f.server->held_response_bytes() == 0; }));
    BOOST_TEST(eventually([&] { return f.server->open_connections() == 1; }));
}

BOOST_AUTO_TEST_CASE(inconsistent_held_response_limits_are_refused)
{
    const auto make = [](http_server_options o) {
        asio::io_context io;
        http_server(
            io.get_executor(), tcp::endpoint(asio::ip::address_v4::loopback(), 0),
            [](asio::any_io_executor) { return std::unique_ptr<test_handler>(); },
            [](http::status s, std::string_view) {
                return http_response{s, 11};
            },
            o);
    };
    http_server_options no_gate;
    no_gate.held_response_bytes_read_gate = 0;
    BOOST_CHECK_THROW(make(no_gate), std::invalid_argument);
    http_server_options cap_below_gate;
    cap_below_gate.max_held_response_bytes = cap_below_gate.held_response_bytes_read_gate - 1;
    BOOST_CHECK_THROW(make(cap_below_gate), std::invalid_argument);
    http_server_options total_below_cap;
    total_below_cap.max_held_response_bytes_total = total_below_cap.max_held_response_bytes - 1;
    BOOST_CHECK_THROW(make(total_below_cap), std::invalid_argument);
}

BOOST_AUTO_TEST_CASE(a_header_sent_a_byte_at_a_time_is_cut_off_at_the_header_deadline_while_others_are_served)
{
    http_server_options o;
    o.header_timeout = 400ms;
    server_fixture f(o);
    raw_client slow(f.port());
    raw_client other(f.port());
    std::optional<std::chrono::milliseconds> closed_after;
    std::thread trickler([&] { closed_after = trickle_until_closed(slow, get("/fast/slow"), 50ms); });
    for (int i = 0; i < 5; ++i) {
        other.send(get("/delay/50"));
        BOOST_TEST(other.read_bodies(1) == std::vector<std::string>{"200 /delay/50"},
                   boost::test_tools::per_element());
    }
    trickler.join();
    BOOST_TEST_REQUIRE(closed_after.has_value(), "a header that never ends kept its connection open");
    BOOST_TEST(closed_after->count() >= 350, "closed before the header deadline");
    BOOST_TEST(f.seen.started_count() == 5);
}

BOOST_AUTO_TEST_CASE(the_header_deadline_holds_while_earlier_requests_are_in_progress)
{
    http_server_options o;
    o.header_timeout = 300ms;
    server_fixture f(o);
    raw_client c(f.port());
    c.send(get("/block/1") + "GET /fast/2 HTTP/1.1\r\nHo");
    const auto sent = std::chrono::steady_clock::now();
    BOOST_TEST(c.closed_within(3s), "a half-sent header behind a request in progress stayed open");
    BOOST_TEST((std::chrono::steady_clock::now() - sent >= 250ms), "closed before the header deadline");
}

BOOST_AUTO_TEST_CASE(a_body_sent_a_byte_at_a_time_is_cut_off_at_the_body_deadline_while_others_are_served)
{
    http_server_options o;
    o.body_timeout = 400ms;
    server_fixture f(o);
    raw_client slow(f.port());
    slow.send(get("/block/1") + put_header("/fast/slow", 1000));
    raw_client other(f.port());
    std::optional<std::chrono::milliseconds> closed_after;
    std::thread trickler([&] { closed_after = trickle_until_closed(slow, "x", 50ms); });
    for (int i = 0; i < 5; ++i) {
        other.send(get("/delay/50"));
        BOOST_TEST(other.read_bodies(1) == std::vector<std::string>{"200 /delay/50"},
                   boost::test_tools::per_element());
    }
    trickler.join();
    BOOST_TEST_REQUIRE(closed_after.has_value(), "a body that never ends kept its connection open");
    BOOST_TEST(closed_after->count() >= 300, "closed before the body deadline");
}

BOOST_AUTO_TEST_CASE(a_tls_client_that_never_completes_its_handshake_is_cut_off_at_the_deadline)
{
    raftkv::test::temp_dir certs;
    const std::string command =
        std::string(RAFTKV_MAKE_CERTS) + " '" + certs.path().string() + "' 1 >/dev/null";
    BOOST_TEST_REQUIRE(std::system(command.c_str()) == 0, "make-certs.sh failed");
    http_server_options o;
    o.tls = raftkv::server::make_server_tls((certs.path() / "node-1.crt").string(),
                                            (certs.path() / "node-1.key").string());
    o.handshake_timeout = 300ms;
    server_fixture f(o);
    raw_client silent(f.port());
    const auto connected = std::chrono::steady_clock::now();
    BOOST_TEST(silent.closed_within(3s), "a connection without a handshake stayed open");
    BOOST_TEST((std::chrono::steady_clock::now() - connected >= 250ms),
               "closed before the handshake deadline");

    // Plain HTTP gets a plain answer that says what to do.
    raw_client plain(f.port());
    plain.send(get("/fast/plain"));
    std::optional<response> r = plain.read();
    BOOST_TEST_REQUIRE(r.has_value());
    BOOST_TEST(r->result_int() == 400);
    BOOST_TEST(r->body().find("https://") != std::string::npos, r->body());
    BOOST_TEST(f.seen.started_count() == 0);
}

BOOST_DATA_TEST_CASE(a_streamed_body_is_chunked_and_the_connection_goes_on, thread_counts, thread_count)
{
    server_fixture f({}, thread_count);
    raw_client c(f.port());
    c.send(get("/stream/3") + get("/fast/after"));
    const std::optional<response> streamed = c.read();
    BOOST_TEST_REQUIRE(streamed.has_value());
    BOOST_TEST(streamed->chunked());
    BOOST_TEST(streamed->body() == "part0part1part2");
    BOOST_TEST(streamed->at("X-Parts") == "3");
    BOOST_TEST(c.read_bodies(1) == std::vector<std::string>{"200 /fast/after"});
}

BOOST_AUTO_TEST_CASE(a_streamed_body_to_http_1_0_ends_with_the_connection)
{
    server_fixture f;
    raw_client c(f.port());
    c.send("GET /stream/2 HTTP/1.0\r\n\r\n");
    const std::optional<response> streamed = c.read();
    BOOST_TEST_REQUIRE(streamed.has_value());
    BOOST_TEST(!streamed->chunked());
    BOOST_TEST(streamed->body() == "part0part1");
    BOOST_TEST(!c.read(1s).has_value());
}

BOOST_AUTO_TEST_CASE(a_certificate_that_expired_is_not_valid_yet_or_expires_soon_is_reported)
{
    using raftkv::server::certificate_validity_problem;
    using raftkv::test::write_certificate;
    using namespace std::chrono;
    raftkv::test::temp_dir dir;
    const auto check = [&](seconds from, seconds to) {
        const std::filesystem::path file = dir.path() / "node.crt";
        write_certificate(file, from, to);
        return certificate_validity_problem(file.string()).value_or("");
    };
    BOOST_TEST(check(-days(30), days(60)) == "");
    const std::string expired = check(-days(30), -hours(1));
    BOOST_TEST(
        expired.starts_with("the certificate '" + (dir.path() / "node.crt").string() + "' expired at 20"),
        expired);
    BOOST_TEST(expired.find(" UTC: clients and peers that check it refuse every connection") !=
                   std::string::npos,
               expired);
    const std::string early = check(hours(2), days(60));
    BOOST_TEST(early.find("is not valid before") != std::string::npos, early);
    const std::string soon = check(-days(30), days(3) + minutes(30));
    BOOST_TEST(soon.find("expires at") != std::string::npos, soon);
    // What is left is said to the hour (to the minute in the last day), rounded down.
    BOOST_TEST(soon.find(", in 3 days: renew it") != std::string::npos, soon);
    const std::string five_days = check(-days(30), days(5) + minutes(30));
    BOOST_TEST(five_days.find(", in 5 days: renew it") != std::string::npos, five_days);
    const std::string hours_left = check(-days(1), hours(4) + minutes(30) + seconds(30));
    BOOST_TEST(hours_left.find(", in 4 hours and 30 minutes: renew it") != std::string::npos, hours_left);
    const std::string minutes_left = check(-days(1), minutes(10) + seconds(30));
    BOOST_TEST(minutes_left.find(", in 10 minutes: renew it") != std::string::npos, minutes_left);
    // What does not read as a certificate is for loading it to report.
    BOOST_TEST(!certificate_validity_problem((dir.path() / "missing.crt").string()).has_value());

    // A CA file: every certificate in it is checked.
    write_certificate(dir.path() / "good.crt", -days(30), days(60));
    write_certificate(dir.path() / "old.crt", -days(30), -days(1));
    std::ofstream(dir.path() / "ca.crt")
        << std::ifstream(dir.path() / "good.crt").rdbuf() << std::ifstream(dir.path() / "old.crt").rdbuf();
    const std::vector<std::string> ca =
        raftkv::server::ca_validity_problems((dir.path() / "ca.crt").string());
    BOOST_TEST_REQUIRE(ca.size() == 1u);
    BOOST_TEST(ca.front().starts_with("the CA certificate /CN=raftkv test in '"), ca.front());
    BOOST_TEST(ca.front().find("expired at") != std::string::npos, ca.front());
}
