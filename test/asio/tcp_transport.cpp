#include <raftkv/asio/tcp_transport.hpp>

#include "frame_header.hpp"

#define BOOST_TEST_MODULE raftkv_asio_tcp_transport
#include <boost/test/unit_test.hpp>

#include <raftkv/asio/codec.hpp>
#include <raftkv/asio/detail/greeting.hpp>
#include <raftkv/concepts.hpp>
#include <raftkv/log.hpp>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

static_assert(raftkv::transport<raftkv::asio::tcp_transport>);

using raftkv::test::frame_header;

namespace {

using namespace std::chrono_literals;
using boost::asio::ip::tcp;
using raftkv::message;
using raftkv::node_id;
using raftkv::asio::tcp_transport;
using raftkv::asio::tcp_transport_options;

const tcp::endpoint loopback_any_port{boost::asio::ip::address_v4::loopback(), 0};

/// Runs `io` until `done()` holds or `limit` passes; returns done().
bool run_until(boost::asio::io_context& io, const std::function<bool()>& done,
               std::chrono::milliseconds limit = 5s)
{
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done() && std::chrono::steady_clock::now() < deadline) {
        if (io.stopped())
            io.restart();
        io.run_one_for(10ms);
    }
    return done();
}

/// Runs `io` for `d`, whatever happens.
void run_for(boost::asio::io_context& io, std::chrono::milliseconds d)
{
    run_until(
        io, [] { return false; }, d);
}

/// An acceptor bound to a free loopback port and not yet listening, so connections to
/// it are refused until a transport takes it over: a node whose port is known before it
/// starts.
tcp::acceptor bound_acceptor(boost::asio::io_context& io)
{
    tcp::acceptor acceptor(io);
    acceptor.open(tcp::v4());
    acceptor.set_option(tcp::acceptor::reuse_address(true));
    acceptor.bind(loopback_any_port);
    return acceptor;
}

message beat(node_id from, node_id to, std::uint64_t seq)
{
    return {from, to, 1, raftkv::heartbeat{.commit = 0, .read_seq = seq}};
}

std::uint64_t seq_of(const message& m)
{
    return std::get<raftkv::heartbeat>(m.body).read_seq;
}

/// A transport and everything it received.
struct test_node {
    std::vector<message> received;
    std::unique_ptr<tcp_transport> transport;

    void start(tcp::acceptor acceptor, node_id self, std::map<node_id, tcp::endpoint> peers,
               tcp_transport_options options = {})
    {
        transport = std::make_unique<tcp_transport>(
            std::move(acceptor), self, std::move(peers),
            [this](message m) { received.push_back(std::move(m)); }, options);
    }
};

tcp_transport_options fast_reconnect()
{
    tcp_transport_options o;
    o.reconnect_delay_min = 10ms;
    o.reconnect_delay_max = 100ms;
    return o;
}

/// Two nodes, 1 and 2, connected to each other on loopback.
struct pair_fixture {
    boost::asio::io_context io;
    test_node one;
    test_node two;
    tcp::endpoint ep1;
    tcp::endpoint ep2;

    explicit pair_fixture(tcp_transport_options options = fast_reconnect())
    {
        auto a1 = bound_acceptor(io);
        auto a2 = bound_acceptor(io);
        ep1 = a1.local_endpoint();
        ep2 = a2.local_endpoint();
        one.start(std::move(a1), 1, {{2, ep2}}, options);
        two.start(std::move(a2), 2, {{1, ep1}}, options);
    }
};

/// The greeting a peer link of node `from` sends to node `to` of cluster `cluster_id`.
std::string hello(node_id from, node_id to, std::uint64_t cluster_id = 0, std::uint64_t from_incarnation = 0,
                  std::uint64_t to_incarnation = 0)
{
    const auto bytes = raftkv::asio::detail::encode_greeting(
        raftkv::asio::detail::greeting{.cluster_id = cluster_id,
                                       .from = from,
                                       .to = to,
                                       .from_incarnation = from_incarnation,
                                       .to_incarnation = to_incarnation});
    return {bytes.data(), bytes.size()};
}

/// A raw client socket connected to `to`, standing in for a broken or hostile peer.
struct raw_client {
    boost::asio::io_context& io;
    tcp::socket socket;
    std::optional<boost::system::error_code> read_result;
    char byte = 0;
    bool watching = false;

    raw_client(boost::asio::io_context& io, const tcp::endpoint& to) : io(io), socket(io)
    {
        socket.connect(to);
    }
    raw_client(const raw_client&) = delete;
    raw_client& operator=(const raw_client&) = delete;

    /// A watch still pending (the server kept the connection) would complete after this
    /// object is gone: close the socket and run its handler first.
    ~raw_client()
    {
        if (!watching || read_result)
            return;
        boost::system::error_code ignored;
        socket.close(ignored);
        if (io.stopped())
            io.restart();
        while (!read_result && io.run_one() != 0) {
        }
    }

    void write(const std::string& bytes) { boost::asio::write(socket, boost::asio::buffer(bytes)); }

    /// Starts a read that completes only when the server closes the connection.
    void watch()
    {
        watching = true;
        socket.async_read_some(boost::asio::buffer(&byte, 1), [this](const boost::system::error_code& ec,
                                                                     std::size_t) { read_result = ec; });
    }
};

/// Checks that node 1 of a pair closes a raw connection that sends `bytes`, and still
/// serves node 2 afterwards.
void check_closed_then_still_serving(pair_fixture& f, const std::string& bytes)
{
    raw_client bad(f.io, f.ep1);
    bad.watch();
    bad.write(bytes);
    BOOST_REQUIRE(run_until(f.io, [&] { return bad.read_result.has_value(); }));
    BOOST_TEST((*bad.read_result == boost::asio::error::eof ||
                *bad.read_result == boost::asio::error::connection_reset));

    f.two.transport->send(beat(2, 1, 77));
    BOOST_REQUIRE(run_until(f.io, [&] { return f.one.received.size() == 1; }));
    BOOST_TEST(seq_of(f.one.received.front()) == 77u);
}

} // namespace

BOOST_AUTO_TEST_SUITE(delivery)

BOOST_AUTO_TEST_CASE(two_transports_exchange_messages_both_ways_in_order)
{
    pair_fixture f;
    for (std::uint64_t i = 0; i < 500; ++i) {
        f.one.transport->send(beat(1, 2, i));
        f.two.transport->send(beat(2, 1, 1000 + i));
    }
    BOOST_REQUIRE(
        run_until(f.io, [&] { return f.one.received.size() == 500 && f.two.received.size() == 500; }));
    for (std::uint64_t i = 0; i < 500; ++i) {
        BOOST_TEST(seq_of(f.two.received[i]) == i);
        BOOST_TEST(f.two.received[i].from == 1u);
        BOOST_TEST(seq_of(f.one.received[i]) == 1000 + i);
    }

    // A later burst, sent while connected, arrives too (batched behind the first write).
    const message append{
        1, 2, 5,
        raftkv::append_request{.prev_index = 1,
                               .prev_term = 1,
                               .commit = 1,
                               .entries = {{1, 2, raftkv::entry_type::normal, std::string(100000, 'x')}}}};
    f.one.transport->send(append);
    f.one.transport->send(beat(1, 2, 9999));
    BOOST_REQUIRE(run_until(f.io, [&] { return f.two.received.size() == 502; }));
    BOOST_TEST((f.two.received[500] == append));
    BOOST_TEST(seq_of(f.two.received[501]) == 9999u);
}

BOOST_AUTO_TEST_CASE(messages_to_self_or_unknown_nodes_are_dropped)
{
    pair_fixture f;
    f.one.transport->send(beat(1, 1, 1));
    f.one.transport->send(beat(1, 3, 2));
    f.one.transport->send(beat(1, 2, 3));
    BOOST_REQUIRE(run_until(f.io, [&] { return f.two.received.size() == 1; }));
    run_for(f.io, 50ms);
    BOOST_TEST(f.one.received.empty());
    BOOST_TEST(f.two.received.size() == 1u);
    BOOST_TEST(seq_of(f.two.received.front()) == 3u);
}

BOOST_AUTO_TEST_CASE(received_messages_addressed_to_another_node_are_dropped)
{
    pair_fixture f;
    raw_client peer(f.io, f.ep1);
    const std::vector<message> batch{beat(2, 3, 1), beat(2, 1, 2), beat(2, 0, 3), beat(2, 1, 4)};
    peer.write(hello(2, 1) + raftkv::asio::encode_frame(batch));
    BOOST_REQUIRE(run_until(f.io, [&] { return f.one.received.size() == 2; }));
    BOOST_TEST(seq_of(f.one.received[0]) == 2u);
    BOOST_TEST(seq_of(f.one.received[1]) == 4u);
}

BOOST_AUTO_TEST_CASE(frames_arriving_together_are_all_delivered_in_order)
{
    pair_fixture f;
    raw_client peer(f.io, f.ep1);
    std::string bytes = hello(2, 1);
    for (std::uint64_t i = 0; i < 300; ++i) // frames of one and of two messages
        bytes += raftkv::asio::encode_frame(
            i % 2 == 0 ? std::vector<message>{beat(2, 1, 2 * i)}
                       : std::vector<message>{beat(2, 1, 2 * i - 1), beat(2, 1, 2 * i)});
    peer.write(bytes);
    BOOST_REQUIRE(run_until(f.io, [&] { return f.one.received.size() == 450; }));
    std::vector<std::uint64_t> expected;
    for (std::uint64_t i = 0; i < 300; ++i) {
        if (i % 2 == 1)
            expected.push_back(2 * i - 1);
        expected.push_back(2 * i);
    }
    std::vector<std::uint64_t> got;
    for (const message& m : f.one.received)
        got.push_back(seq_of(m));
    BOOST_TEST(got == expected, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(frames_split_anywhere_even_inside_a_header_are_delivered_whole)
{
    pair_fixture f;
    raw_client peer(f.io, f.ep1);
    const std::string frames = raftkv::asio::encode_frame(std::vector<message>{beat(2, 1, 1)}) +
                               raftkv::asio::encode_frame(std::vector<message>{beat(2, 1, 2), beat(2, 1, 3)});
    peer.write(hello(2, 1));
    // One byte at a time, each given time to arrive alone: every split point, headers included.
    for (std::size_t k = 0; k < frames.size(); ++k) {
        peer.write(frames.substr(k, 1));
        run_for(f.io, 2ms);
    }
    BOOST_REQUIRE(run_until(f.io, [&] { return f.one.received.size() == 3; }));
    BOOST_TEST(seq_of(f.one.received[0]) == 1u);
    BOOST_TEST(seq_of(f.one.received[1]) == 2u);
    BOOST_TEST(seq_of(f.one.received[2]) == 3u);
}

BOOST_AUTO_TEST_CASE(transports_on_strands_of_a_multithreaded_io_context_deliver_everything)
{
    boost::asio::io_context io(2);
    auto work = boost::asio::make_work_guard(io);
    std::vector<std::thread> threads;
    for (int i = 0; i < 2; ++i)
        threads.emplace_back([&io] { io.run(); });

    auto s1 = boost::asio::make_strand(io);
    auto s2 = boost::asio::make_strand(io);
    tcp::acceptor a1(s1), a2(s2);
    for (tcp::acceptor* a : {&a1, &a2}) {
        a->open(tcp::v4());
        a->bind(loopback_any_port);
    }
    const auto ep1 = a1.local_endpoint();
    const auto ep2 = a2.local_endpoint();
    std::atomic<std::uint64_t> got1{0}, got2{0};
    std::unique_ptr<tcp_transport> t1, t2;
    // Constructed, used and destroyed on their strands, as a node driver would.
    const auto on = [](auto& strand, auto f) {
        std::promise<void> done;
        boost::asio::post(strand, [&] {
            f();
            done.set_value();
        });
        done.get_future().wait();
    };
    on(s1, [&] {
        t1 = std::make_unique<tcp_transport>(std::move(a1), 1, std::map<node_id, tcp::endpoint>{{2, ep2}},
                                             [&](message) { ++got1; });
    });
    on(s2, [&] {
        t2 = std::make_unique<tcp_transport>(std::move(a2), 2, std::map<node_id, tcp::endpoint>{{1, ep1}},
                                             [&](message) { ++got2; });
    });
    for (std::uint64_t i = 0; i < 1000; ++i) {
        boost::asio::post(s1, [&t1, i] { t1->send(beat(1, 2, i)); });
        boost::asio::post(s2, [&t2, i] { t2->send(beat(2, 1, i)); });
    }
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while ((got1 < 1000 || got2 < 1000) && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(1ms);
    BOOST_TEST(got1 == 1000u);
    BOOST_TEST(got2 == 1000u);

    on(s1, [&] { t1.reset(); });
    on(s2, [&] { t2.reset(); });
    work.reset();
    for (auto& t : threads)
        t.join();
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(reconnection)

BOOST_AUTO_TEST_CASE(messages_reach_a_peer_that_starts_late)
{
    boost::asio::io_context io;
    test_node one, two;
    auto a1 = bound_acceptor(io);
    auto a2 = bound_acceptor(io); // bound, not listening: node 2 is down
    const auto ep1 = a1.local_endpoint();
    const auto ep2 = a2.local_endpoint();
    one.start(std::move(a1), 1, {{2, ep2}}, fast_reconnect());

    one.transport->send(beat(1, 2, 1));
    run_for(io, 300ms); // several refused attempts
    one.transport->send(beat(1, 2, 2));

    two.start(std::move(a2), 2, {{1, ep1}}, fast_reconnect());
    BOOST_REQUIRE(run_until(io, [&] { return two.received.size() == 2; }));
    BOOST_TEST(seq_of(two.received[0]) == 1u);
    BOOST_TEST(seq_of(two.received[1]) == 2u);
}

BOOST_AUTO_TEST_CASE(a_link_reconnects_after_its_peer_restarts)
{
    pair_fixture f;
    f.one.transport->send(beat(1, 2, 1));
    BOOST_REQUIRE(run_until(f.io, [&] { return f.two.received.size() == 1; }));

    f.two.transport.reset(); // node 2 goes down...
    run_for(f.io, 50ms);
    tcp::acceptor again(f.io);
    again.open(tcp::v4());
    again.set_option(tcp::acceptor::reuse_address(true));
    again.bind(f.ep2);
    f.two.received.clear();
    f.two.start(std::move(again), 2, {{1, f.ep1}}, fast_reconnect()); // ...and comes back

    // Raft resends until heard; so does this test, since a message written before the
    // link noticed the restart may be lost.
    std::uint64_t seq = 100;
    BOOST_REQUIRE(run_until(f.io, [&] {
        f.one.transport->send(beat(1, 2, seq++));
        run_for(f.io, 20ms);
        return !f.two.received.empty();
    }));
    BOOST_TEST(seq_of(f.two.received.front()) >= 100u);
}

// What is sent to a peer whose connection was lost was meant for the process that went
// away; the one that comes back (perhaps a new data directory under the same id) must not
// get it, or an old heartbeat could tell it to commit entries it never had.
BOOST_AUTO_TEST_CASE(a_peer_that_comes_back_gets_nothing_sent_while_it_was_gone)
{
    pair_fixture f;
    f.one.transport->send(beat(1, 2, 1));
    BOOST_REQUIRE(run_until(f.io, [&] { return f.two.received.size() == 1; }));

    f.two.transport.reset();
    run_for(f.io, 100ms); // the link notices
    for (std::uint64_t seq = 2; seq < 10; ++seq)
        f.one.transport->send(beat(1, 2, seq));
    tcp::acceptor again(f.io);
    again.open(tcp::v4());
    again.set_option(tcp::acceptor::reuse_address(true));
    again.bind(f.ep2);
    f.two.received.clear();
    f.two.start(std::move(again), 2, {{1, f.ep1}}, fast_reconnect());

    std::uint64_t seq = 100;
    BOOST_REQUIRE(run_until(f.io, [&] {
        f.one.transport->send(beat(1, 2, seq++));
        run_for(f.io, 20ms);
        return !f.two.received.empty();
    }));
    for (const auto& m : f.two.received)
        BOOST_TEST(seq_of(m) >= 100u);
}

BOOST_AUTO_TEST_CASE(a_full_queue_drops_its_oldest_messages)
{
    boost::asio::io_context io;
    test_node one, two;
    auto a1 = bound_acceptor(io);
    auto a2 = bound_acceptor(io);
    const auto ep2 = a2.local_endpoint();
    auto options = fast_reconnect();
    options.max_queued_messages = 10;
    one.start(std::move(a1), 1, {{2, ep2}}, options);
    for (std::uint64_t i = 0; i < 100; ++i)
        one.transport->send(beat(1, 2, i));

    two.start(std::move(a2), 2, {}, options);
    BOOST_REQUIRE(run_until(io, [&] { return two.received.size() == 10; }));
    run_for(io, 50ms);
    BOOST_REQUIRE_EQUAL(two.received.size(), 10u);
    for (std::uint64_t i = 0; i < 10; ++i)
        BOOST_TEST(seq_of(two.received[i]) == 90 + i);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(bad_peers)

BOOST_AUTO_TEST_CASE(garbage_closes_that_connection_and_the_transport_keeps_serving)
{
    pair_fixture f;
    check_closed_then_still_serving(f, "GET / HTTP/1.1\r\nHost: raftkv\r\n\r\n");
}

BOOST_AUTO_TEST_CASE(an_unsupported_version_closes_the_connection)
{
    pair_fixture f;
    check_closed_then_still_serving(
        f, hello(2, 1) + frame_header(raftkv::asio::frame_magic, raftkv::asio::frame_version + 1, 8) +
               std::string(8, '\0'));
}

BOOST_AUTO_TEST_CASE(an_oversize_frame_header_closes_the_connection)
{
    auto options = fast_reconnect();
    options.max_frame_bytes = 4096;
    pair_fixture f(options);
    // Only the header is sent: the transport must refuse before waiting for the payload.
    check_closed_then_still_serving(
        f, hello(2, 1) + frame_header(raftkv::asio::frame_magic, raftkv::asio::frame_version, 4096));
}

BOOST_AUTO_TEST_CASE(a_malformed_payload_closes_the_connection)
{
    pair_fixture f;
    std::string payload(40, '\xFF');
    check_closed_then_still_serving(f,
                                    hello(2, 1) +
                                        frame_header(raftkv::asio::frame_magic, raftkv::asio::frame_version,
                                                     static_cast<std::uint32_t>(payload.size())) +
                                        payload);
}

BOOST_AUTO_TEST_CASE(a_message_from_another_sender_closes_the_connection_after_the_frames_before_it)
{
    pair_fixture f;
    raw_client liar(f.io, f.ep1);
    liar.watch();
    // One write, so one read likely takes all three frames: the first still counts; none of
    // the second (whose first message is genuine) nor anything after it does.
    liar.write(hello(2, 1) + raftkv::asio::encode_frame(std::vector<message>{beat(2, 1, 1)}) +
               raftkv::asio::encode_frame(std::vector<message>{beat(2, 1, 2), beat(3, 1, 3)}) +
               raftkv::asio::encode_frame(std::vector<message>{beat(2, 1, 4)}));
    BOOST_REQUIRE(run_until(f.io, [&] { return liar.read_result.has_value(); }));
    run_for(f.io, 50ms);
    BOOST_REQUIRE(f.one.received.size() == 1u);
    BOOST_TEST(seq_of(f.one.received.front()) == 1u);
}

BOOST_AUTO_TEST_CASE(a_message_too_large_to_send_is_dropped)
{
    auto options = fast_reconnect();
    options.max_frame_bytes = 4096;
    pair_fixture f(options);
    f.one.transport->send(
        {1, 2, 1,
         raftkv::append_request{.entries = {{1, 1, raftkv::entry_type::normal, std::string(5000, 'x')}}}});
    f.one.transport->send(beat(1, 2, 5));
    BOOST_REQUIRE(run_until(f.io, [&] { return f.two.received.size() == 1; }));
    BOOST_TEST(seq_of(f.two.received.front()) == 5u);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(logging)

namespace {

struct logged_line {
    raftkv::log_severity severity;
    std::string text;
};

std::mutex logged_mutex;
std::vector<logged_line> logged;

void capture(raftkv::log_severity severity, std::string_view message) noexcept
{
    std::lock_guard lock(logged_mutex);
    logged.push_back({severity, std::string(message)});
}

std::vector<logged_line> logged_lines()
{
    std::lock_guard lock(logged_mutex);
    return logged;
}

/// Installs capture() as the log sink, and the default one again on destruction.
struct captured_log {
    captured_log()
    {
        std::lock_guard lock(logged_mutex);
        logged.clear();
        raftkv::set_log_sink(&capture);
    }
    ~captured_log() { raftkv::set_log_sink(nullptr); }
};

} // namespace

BOOST_AUTO_TEST_CASE(a_refused_connection_is_logged_through_the_installed_sink_once_per_interval)
{
    captured_log log;
    pair_fixture f;
    check_closed_then_still_serving(f, "GET / HTTP/1.1\r\nHost: raftkv\r\n\r\n");
    const auto after_first = logged_lines();
    const auto refusals = [](const std::vector<logged_line>& lines) {
        std::vector<logged_line> found;
        for (const auto& line : lines)
            if (line.text.starts_with("refused connection from 127.0.0.1:"))
                found.push_back(line);
        return found;
    };
    BOOST_TEST_REQUIRE(refusals(after_first).size() == 1u);
    BOOST_TEST((refusals(after_first)[0].severity == raftkv::log_severity::warning));
    BOOST_TEST(refusals(after_first)[0].text.find('\n') == std::string::npos);

    // The same reason again within 10 s: counted, not logged.
    raw_client again(f.io, f.ep1);
    again.watch();
    again.write("GET / HTTP/1.1\r\n\r\n");
    BOOST_REQUIRE(run_until(f.io, [&] { return again.read_result.has_value(); }));
    BOOST_TEST(refusals(logged_lines()).size() == 1u);
}

BOOST_AUTO_TEST_CASE(the_default_sink_is_back_after_set_log_sink_nullptr)
{
    {
        captured_log log;
        raftkv::log_message(raftkv::log_severity::info, "to the capture");
    }
    raftkv::log_message(raftkv::log_severity::info, "to stderr");
    const auto lines = logged_lines();
    BOOST_TEST_REQUIRE(lines.size() == 1u);
    BOOST_TEST(lines[0].text == "to the capture");
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(greeting)

tcp_transport_options in_cluster(std::uint64_t cluster_id)
{
    auto o = fast_reconnect();
    o.cluster_id = cluster_id;
    return o;
}

/// Checks that node 1 of `f` closes a raw connection that sends `bytes` and delivers
/// nothing from it.
void check_refused(pair_fixture& f, const std::string& bytes)
{
    raw_client bad(f.io, f.ep1);
    bad.watch();
    bad.write(bytes);
    BOOST_REQUIRE(run_until(f.io, [&] { return bad.read_result.has_value(); }));
    BOOST_TEST((*bad.read_result == boost::asio::error::eof ||
                *bad.read_result == boost::asio::error::connection_reset));
    BOOST_TEST(f.one.received.empty());
}

BOOST_AUTO_TEST_CASE(peers_of_the_same_cluster_exchange_messages)
{
    pair_fixture f(in_cluster(0xC0FFEE));
    f.one.transport->send(beat(1, 2, 1));
    f.two.transport->send(beat(2, 1, 2));
    BOOST_REQUIRE(run_until(f.io, [&] { return f.one.received.size() == 1 && f.two.received.size() == 1; }));
    BOOST_TEST(seq_of(f.one.received.front()) == 2u);
    BOOST_TEST(seq_of(f.two.received.front()) == 1u);
}

BOOST_AUTO_TEST_CASE(a_listener_without_a_cluster_id_accepts_any_cluster)
{
    pair_fixture f(in_cluster(0));
    raw_client peer(f.io, f.ep1);
    peer.write(hello(2, 1, 0xBAD) + raftkv::asio::encode_frame(std::vector<message>{beat(2, 1, 5)}));
    BOOST_REQUIRE(run_until(f.io, [&] { return f.one.received.size() == 1; }));
    BOOST_TEST(seq_of(f.one.received.front()) == 5u);
}

BOOST_AUTO_TEST_CASE(a_peer_of_another_cluster_is_refused)
{
    boost::asio::io_context io;
    test_node one;
    test_node two;
    auto a1 = bound_acceptor(io);
    auto a2 = bound_acceptor(io);
    const auto ep1 = a1.local_endpoint();
    one.start(std::move(a1), 1, {{2, a2.local_endpoint()}}, in_cluster(1));
    two.start(std::move(a2), 2, {{1, ep1}}, in_cluster(2));
    two.transport->send(beat(2, 1, 1));
    run_for(io, 300ms);
    BOOST_TEST(one.received.empty());

    pair_fixture f(in_cluster(1));
    check_refused(f, hello(2, 1, 2) + raftkv::asio::encode_frame(std::vector<message>{beat(2, 1, 1)}));
}

BOOST_AUTO_TEST_CASE(a_peer_claiming_the_listeners_own_id_is_refused)
{
    pair_fixture f(in_cluster(7));
    check_refused(f, hello(1, 1, 7) + raftkv::asio::encode_frame(std::vector<message>{beat(1, 1, 1)}));
}

BOOST_AUTO_TEST_CASE(a_peer_expecting_another_receiver_is_refused)
{
    pair_fixture f(in_cluster(7));
    check_refused(f, hello(2, 3, 7) + raftkv::asio::encode_frame(std::vector<message>{beat(2, 1, 1)}));
}

BOOST_AUTO_TEST_CASE(a_peer_of_another_protocol_version_is_refused)
{
    pair_fixture f;
    std::string bytes = hello(2, 1);
    bytes[7] = static_cast<char>(raftkv::asio::frame_version + 1); // the frame version's low byte
    check_refused(f, bytes);
}

BOOST_AUTO_TEST_CASE(messages_with_a_forged_sender_after_the_greeting_are_dropped)
{
    pair_fixture f(in_cluster(7));
    raw_client peer(f.io, f.ep1);
    peer.watch();
    peer.write(hello(2, 1, 7) + raftkv::asio::encode_frame(std::vector<message>{beat(2, 1, 1)}));
    BOOST_REQUIRE(run_until(f.io, [&] { return f.one.received.size() == 1; }));
    peer.write(raftkv::asio::encode_frame(std::vector<message>{beat(3, 1, 2), beat(2, 1, 3)}));
    BOOST_REQUIRE(run_until(f.io, [&] { return peer.read_result.has_value(); }));
    run_for(f.io, 50ms);
    BOOST_TEST(f.one.received.size() == 1u);
    BOOST_TEST(f.one.received.front().from == 2u);
}

BOOST_AUTO_TEST_CASE(a_connection_that_does_not_greet_in_time_is_closed)
{
    auto options = fast_reconnect();
    options.greeting_timeout = 100ms;
    pair_fixture f(options);
    raw_client silent(f.io, f.ep1);
    silent.watch();
    silent.write(hello(2, 1).substr(0, 10));
    BOOST_REQUIRE(run_until(
        f.io, [&] { return silent.read_result.has_value(); }, 2s));
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(resource_bounds)

/// Runs `io` for `d` and says whether `client`'s connection is still open then.
bool still_open_after(pair_fixture& f, raw_client& client, std::chrono::milliseconds d)
{
    run_for(f.io, d);
    return !client.read_result.has_value();
}

BOOST_AUTO_TEST_CASE(a_frame_whose_payload_does_not_arrive_within_the_frame_timeout_is_closed)
{
    auto options = fast_reconnect();
    options.frame_timeout = 150ms;
    pair_fixture f(options);
    raw_client slow(f.io, f.ep1);
    slow.watch();
    const auto start = std::chrono::steady_clock::now();
    slow.write(hello(3, 1) + frame_header(raftkv::asio::frame_magic, raftkv::asio::frame_version, 1 << 20) +
               std::string(100, '\0'));
    BOOST_REQUIRE(run_until(
        f.io, [&] { return slow.read_result.has_value(); }, 3s));
    BOOST_TEST((std::chrono::steady_clock::now() - start >= 140ms));

    f.two.transport->send(beat(2, 1, 9)); // the transport still serves its peers
    BOOST_REQUIRE(run_until(f.io, [&] { return f.one.received.size() == 1; }));
}

BOOST_AUTO_TEST_CASE(an_idle_greeted_connection_outlives_the_frame_timeout)
{
    auto options = fast_reconnect();
    options.frame_timeout = 100ms;
    pair_fixture f(options);
    raw_client idle(f.io, f.ep1);
    idle.watch();
    idle.write(hello(3, 1) + raftkv::asio::encode_frame(std::vector<message>{beat(3, 1, 1)}));
    BOOST_TEST(still_open_after(f, idle, 400ms));
    BOOST_TEST(f.one.received.size() == 1u);
}

BOOST_AUTO_TEST_CASE(a_connection_idle_after_a_frame_that_came_in_pieces_outlives_the_frame_timeout)
{
    auto options = fast_reconnect();
    options.frame_timeout = 100ms;
    pair_fixture f(options);
    raw_client idle(f.io, f.ep1);
    idle.watch();
    const std::string frame = raftkv::asio::encode_frame(std::vector<message>{beat(3, 1, 1)});
    idle.write(hello(3, 1) + frame.substr(0, frame.size() - 3)); // its deadline starts
    run_for(f.io, 30ms);
    idle.write(frame.substr(frame.size() - 3)); // and no longer applies
    BOOST_TEST(still_open_after(f, idle, 400ms));
    BOOST_TEST(f.one.received.size() == 1u);
}

BOOST_AUTO_TEST_CASE(a_frame_larger_than_a_read_chunk_sent_in_pieces_is_delivered_whole)
{
    pair_fixture f;
    message big{3, 1, 1,
                raftkv::append_request{.prev_index = 0,
                                       .prev_term = 0,
                                       .commit = 0,
                                       .entries = {raftkv::log_entry{1, 1, raftkv::entry_type::normal,
                                                                     std::string(300000, 'x')}}}};
    const std::string frame = raftkv::asio::encode_frame(std::vector<message>{big});
    raw_client peer(f.io, f.ep1);
    peer.write(hello(3, 1) + frame.substr(0, 70000));
    run_for(f.io, 50ms);
    BOOST_TEST(f.one.received.empty());
    peer.write(frame.substr(70000));
    BOOST_REQUIRE(run_until(f.io, [&] { return f.one.received.size() == 1; }));
    const auto& entries = std::get<raftkv::append_request>(f.one.received.front().body).entries;
    BOOST_REQUIRE(entries.size() == 1u);
    BOOST_TEST(entries.front().data == std::string(300000, 'x'));
}

BOOST_AUTO_TEST_CASE(connections_beyond_the_ungreeted_cap_are_closed_until_one_greets)
{
    auto options = fast_reconnect();
    options.max_ungreeted_connections = 3;
    options.greeting_timeout = 10s;
    pair_fixture f(options);
    std::vector<std::unique_ptr<raw_client>> silent;
    for (int k = 0; k < 3; ++k) {
        silent.push_back(std::make_unique<raw_client>(f.io, f.ep1));
        silent.back()->watch();
    }
    run_for(f.io, 100ms);
    raw_client excess(f.io, f.ep1);
    excess.watch();
    BOOST_REQUIRE(run_until(
        f.io, [&] { return excess.read_result.has_value(); }, 2s));
    for (const auto& c : silent)
        BOOST_TEST(!c->read_result.has_value());

    silent.front()->write(hello(3, 1)); // greeted: no longer counts against the cap
    run_for(f.io, 100ms);
    raw_client admitted(f.io, f.ep1);
    admitted.watch();
    BOOST_TEST(still_open_after(f, admitted, 300ms));
    BOOST_TEST(still_open_after(f, *silent.front(), 0ms));
}

BOOST_AUTO_TEST_CASE(a_newer_connection_from_the_same_peer_replaces_the_older_one)
{
    pair_fixture f;
    raw_client older(f.io, f.ep1);
    older.watch();
    older.write(hello(3, 1) + raftkv::asio::encode_frame(std::vector<message>{beat(3, 1, 1)}));
    BOOST_REQUIRE(run_until(f.io, [&] { return f.one.received.size() == 1; }));
    raw_client other(f.io, f.ep1); // another peer's connection is left alone
    other.watch();
    other.write(hello(4, 1));

    raw_client newer(f.io, f.ep1);
    newer.watch();
    newer.write(hello(3, 1) + raftkv::asio::encode_frame(std::vector<message>{beat(3, 1, 2)}));
    BOOST_REQUIRE(
        run_until(f.io, [&] { return older.read_result.has_value() && f.one.received.size() == 2; }));
    BOOST_TEST(seq_of(f.one.received.back()) == 2u);
    BOOST_TEST(still_open_after(f, newer, 100ms));
    BOOST_TEST(!other.read_result.has_value());
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(peer_tls)

/// A directory removed at exit.
struct scratch_directory {
    std::filesystem::path path = std::filesystem::temp_directory_path() /
                                 ("raftkv-asio-tls-" + std::to_string(std::random_device{}()));
    ~scratch_directory()
    {
        std::error_code ignored;
        std::filesystem::remove_all(path, ignored);
    }
};

/// Makes certificates for nodes 1 and 2 with scripts/make-certs.sh (a CA of their own) in `dir`.
void make_certificates(const std::filesystem::path& dir)
{
    const std::string command =
        std::string("bash '") + RAFTKV_MAKE_CERTS + "' '" + dir.string() + "' 2 > /dev/null 2>&1";
    BOOST_TEST_REQUIRE(std::system(command.c_str()) == 0);
}

/// Certificates for nodes 1 and 2, made once per test run and removed at exit.
const std::filesystem::path& certificates()
{
    static const scratch_directory dir;
    static const bool made = (make_certificates(dir.path), true);
    (void)made;
    return dir.path;
}

/// Peer TLS with the certificate of node `cert` in `dir`.
tcp_transport_options tls_from(const std::filesystem::path& dir, node_id cert)
{
    auto o = fast_reconnect();
    const auto base = dir / ("node-" + std::to_string(cert));
    o.tls = raftkv::asio::tcp_transport_tls{.certificate_file = base.string() + ".crt",
                                            .private_key_file = base.string() + ".key",
                                            .ca_file = (dir / "ca.crt").string()};
    return o;
}

/// Peer TLS with the certificate of node `cert`.
tcp_transport_options with_tls(node_id cert)
{
    return tls_from(certificates(), cert);
}

/// Nodes 1 and 2 of one cluster on `io`, with `options1` and `options2`.
struct node_pair {
    test_node one;
    test_node two;

    node_pair(boost::asio::io_context& io, tcp_transport_options options1, tcp_transport_options options2)
    {
        auto a1 = bound_acceptor(io);
        auto a2 = bound_acceptor(io);
        const auto ep1 = a1.local_endpoint();
        const auto ep2 = a2.local_endpoint();
        one.start(std::move(a1), 1, {{2, ep2}}, std::move(options1));
        two.start(std::move(a2), 2, {{1, ep1}}, std::move(options2));
    }
};

BOOST_AUTO_TEST_CASE(two_transports_with_peer_tls_exchange_messages)
{
    boost::asio::io_context io;
    node_pair nodes(io, with_tls(1), with_tls(2));
    test_node& one = nodes.one;
    test_node& two = nodes.two;
    for (std::uint64_t k = 1; k <= 3; ++k) {
        one.transport->send(beat(1, 2, k));
        two.transport->send(beat(2, 1, 10 + k));
    }
    BOOST_REQUIRE(run_until(io, [&] { return one.received.size() == 3 && two.received.size() == 3; }));
    BOOST_TEST(seq_of(one.received.back()) == 13u);
    BOOST_TEST(seq_of(two.received.back()) == 3u);
}

BOOST_AUTO_TEST_CASE(a_peer_with_another_nodes_certificate_or_without_tls_delivers_nothing)
{
    boost::asio::io_context io;
    test_node one;
    test_node impostor;
    test_node plain;
    auto a1 = bound_acceptor(io);
    const auto ep1 = a1.local_endpoint();
    one.start(std::move(a1), 1, {}, with_tls(1));
    impostor.start(bound_acceptor(io), 2, {{1, ep1}}, with_tls(1)); // node 2 with node 1's certificate
    plain.start(bound_acceptor(io), 3, {{1, ep1}}, fast_reconnect());
    impostor.transport->send(beat(2, 1, 1));
    plain.transport->send(beat(3, 1, 2));
    run_for(io, 500ms);
    BOOST_TEST(one.received.empty());

    raw_client raw(io, ep1); // a plain greeting is not a TLS handshake
    raw.watch();
    raw.write(hello(2, 1));
    BOOST_REQUIRE(run_until(io, [&] { return raw.read_result.has_value(); }));
    BOOST_TEST(one.received.empty());
}

BOOST_AUTO_TEST_CASE(unreadable_or_mismatched_tls_files_are_refused_at_construction)
{
    boost::asio::io_context io;
    auto missing = with_tls(1);
    missing.tls->ca_file = (certificates() / "absent.crt").string();
    BOOST_CHECK_THROW(tcp_transport(
                          bound_acceptor(io), 1, {}, [](message) {}, missing),
                      std::runtime_error);
    auto mismatched = with_tls(1);
    mismatched.tls->private_key_file = (certificates() / "node-2.key").string();
    BOOST_CHECK_THROW(tcp_transport(
                          bound_acceptor(io), 1, {}, [](message) {}, mismatched),
                      std::runtime_error);
}

BOOST_AUTO_TEST_CASE(reloaded_tls_files_serve_new_connections_and_bad_ones_leave_the_old_in_use)
{
    // Node 1 starts with the files of another CA, which node 2 does not trust.
    scratch_directory other;
    make_certificates(other.path);
    scratch_directory own;
    std::filesystem::create_directories(own.path);
    const auto install = [&](const std::filesystem::path& from, const std::string& cert) {
        const auto copy = [&](const std::string& name, const std::string& as) {
            std::filesystem::copy_file(from / name, own.path / as,
                                       std::filesystem::copy_options::overwrite_existing);
        };
        copy(cert + ".crt", "node-1.crt");
        copy(cert + ".key", "node-1.key");
        copy("ca.crt", "ca.crt");
    };
    install(other.path, "node-1");
    boost::asio::io_context io;
    node_pair nodes(io, tls_from(own.path, 1), with_tls(2));
    test_node& one = nodes.one;
    test_node& two = nodes.two;
    one.transport->send(beat(1, 2, 1));
    two.transport->send(beat(2, 1, 2));
    run_for(io, 300ms);
    BOOST_TEST(one.received.empty());
    BOOST_TEST(two.received.empty());

    // Files that do not load, and another node's certificate: refused, the old ones in use.
    std::ofstream(own.path / "node-1.crt", std::ios::trunc) << "not a certificate\n";
    BOOST_CHECK_THROW(one.transport->reload_tls(), std::runtime_error);
    install(certificates(), "node-2");
    try {
        one.transport->reload_tls();
        BOOST_FAIL("node 2's certificate was taken for node 1's");
    } catch (const std::runtime_error& e) {
        BOOST_TEST(std::string(e.what()).find("CN=raftkv-node-2") != std::string::npos, e.what());
    }

    // Node 2's CA's files for node 1: the next connections get through.
    install(certificates(), "node-1");
    one.transport->reload_tls();
    one.transport->send(beat(1, 2, 3));
    two.transport->send(beat(2, 1, 4));
    BOOST_REQUIRE(run_until(io, [&] { return !one.received.empty() && !two.received.empty(); }));

    test_node plain;
    plain.start(bound_acceptor(io), 3, {}, fast_reconnect());
    BOOST_CHECK_THROW(plain.transport->reload_tls(), std::logic_error);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(incarnations)

/// What node 1's transport reported about incarnations.
struct reports {
    std::vector<std::pair<node_id, std::uint64_t>> learned;
    std::vector<std::string> conflicts;
};

/// Options for node 1 with incarnation `self` that knows `known`, reporting into `r`.
tcp_transport_options tracking(std::uint64_t self, std::map<node_id, std::uint64_t> known, reports& r)
{
    auto o = fast_reconnect();
    o.incarnation = self;
    o.known_incarnations = std::move(known);
    o.on_incarnation_learned = [&r](node_id id, std::uint64_t incarnation) {
        r.learned.emplace_back(id, incarnation);
    };
    o.on_identity_conflict = [&r](node_id, std::string why) { r.conflicts.push_back(std::move(why)); };
    return o;
}

/// Node 1 alone, listening; node 2 is played by raw clients.
struct listener_fixture {
    boost::asio::io_context io;
    test_node one;
    tcp::endpoint ep1;
    reports r;

    listener_fixture(std::uint64_t self, std::map<node_id, std::uint64_t> known)
    {
        auto a1 = bound_acceptor(io);
        ep1 = a1.local_endpoint();
        one.start(std::move(a1), 1, {{2, tcp::endpoint(boost::asio::ip::address_v4::loopback(), 1)}},
                  tracking(self, std::move(known), r));
    }

    /// Greets as node 2 with the given incarnations and sends one heartbeat; whether node 1
    /// closed the connection (rather than delivering the heartbeat).
    bool refuses(std::uint64_t from_incarnation, std::uint64_t to_incarnation)
    {
        const std::size_t before = one.received.size();
        raw_client peer(io, ep1);
        peer.watch();
        peer.write(hello(2, 1, 0, from_incarnation, to_incarnation) +
                   raftkv::asio::encode_frame(std::vector<message>{beat(2, 1, 9)}));
        BOOST_REQUIRE(
            run_until(io, [&] { return peer.read_result.has_value() || one.received.size() > before; }));
        run_for(io, 20ms);
        return peer.read_result.has_value() && one.received.size() == before;
    }
};

BOOST_AUTO_TEST_CASE(a_peer_greeting_with_another_incarnation_than_recorded_is_refused)
{
    listener_fixture f(11, {{2, 22}});
    BOOST_TEST(f.refuses(33, 11));
    BOOST_TEST(f.refuses(33, 0));
    BOOST_TEST(f.r.learned.empty());
    BOOST_TEST(f.r.conflicts.empty());
    BOOST_TEST(!f.refuses(22, 11)); // the recorded one is still welcome
}

BOOST_AUTO_TEST_CASE(an_unknown_peers_incarnation_is_learned_and_reported_before_its_messages)
{
    boost::asio::io_context io;
    reports r;
    test_node one;
    test_node two;
    auto a1 = bound_acceptor(io);
    auto a2 = bound_acceptor(io);
    const auto ep1 = a1.local_endpoint();
    const auto ep2 = a2.local_endpoint();
    std::size_t received_when_learned = 99;
    auto options = tracking(11, {}, r);
    options.on_incarnation_learned = [&](node_id id, std::uint64_t incarnation) {
        received_when_learned = one.received.size();
        r.learned.emplace_back(id, incarnation);
    };
    one.start(std::move(a1), 1, {{2, ep2}}, options);
    auto two_options = fast_reconnect();
    two_options.incarnation = 22;
    two.start(std::move(a2), 2, {{1, ep1}}, two_options);
    two.transport->send(beat(2, 1, 5));
    BOOST_REQUIRE(run_until(io, [&] { return one.received.size() == 1; }));
    BOOST_TEST_REQUIRE(r.learned.size() == 1u);
    BOOST_TEST(r.learned.front().first == 2u);
    BOOST_TEST(r.learned.front().second == 22u);
    BOOST_TEST(received_when_learned == 0u);
    BOOST_TEST(r.conflicts.empty());

    // Recorded now: another data directory under id 2 is refused.
    raw_client impostor(io, ep1);
    impostor.watch();
    impostor.write(hello(2, 1, 0, 33) + raftkv::asio::encode_frame(std::vector<message>{beat(2, 1, 6)}));
    BOOST_REQUIRE(run_until(io, [&] { return impostor.read_result.has_value(); }));
    BOOST_TEST(one.received.size() == 1u);
    BOOST_TEST(r.learned.size() == 1u);
}

BOOST_AUTO_TEST_CASE(a_peer_that_knows_this_node_by_another_incarnation_reports_a_conflict)
{
    listener_fixture f(11, {});
    BOOST_TEST(f.refuses(22, 10));
    BOOST_REQUIRE(run_until(f.io, [&] { return !f.r.conflicts.empty(); }));
    BOOST_TEST(f.r.conflicts.front().find("peer 2 knows node 1 by another data directory") !=
                   std::string::npos,
               f.r.conflicts.front());
    BOOST_TEST(f.r.learned.empty(), "a refused sender is not recorded");
}

BOOST_AUTO_TEST_CASE(a_member_restarted_with_a_new_data_directory_is_refused_both_ways)
{
    // Node 1 recorded node 2 as incarnation 22; node 2 comes back as 23.
    boost::asio::io_context io;
    reports r1, r2;
    test_node one;
    test_node two;
    auto a1 = bound_acceptor(io);
    auto a2 = bound_acceptor(io);
    const auto ep1 = a1.local_endpoint();
    const auto ep2 = a2.local_endpoint();
    one.start(std::move(a1), 1, {{2, ep2}}, tracking(11, {{2, 22}}, r1));
    two.start(std::move(a2), 2, {{1, ep1}}, tracking(23, {}, r2));
    one.transport->send(beat(1, 2, 1)); // the leader dials its follower
    two.transport->send(beat(2, 1, 2)); // the follower campaigns
    BOOST_REQUIRE(run_until(io, [&] { return !r2.conflicts.empty(); }));
    run_for(io, 100ms);
    BOOST_TEST(one.received.empty());
    BOOST_TEST(two.received.empty());
    BOOST_TEST(r1.learned.empty());
    BOOST_TEST(r1.conflicts.empty());
}

BOOST_AUTO_TEST_CASE(a_forgotten_peer_is_learned_again_with_its_new_incarnation)
{
    listener_fixture f(11, {{2, 22}});
    BOOST_TEST(f.refuses(33, 11));
    f.one.transport->forget_incarnation(2);
    BOOST_TEST(!f.refuses(33, 0));
    BOOST_TEST_REQUIRE(f.r.learned.size() == 1u);
    BOOST_TEST(f.r.learned.front().second == 33u);
    BOOST_TEST(f.refuses(22, 11));
}

// A removed member that keeps running still greets the others; recorded again, its id
// could not come back with a new data directory.
BOOST_AUTO_TEST_CASE(a_node_outside_the_peers_is_accepted_but_its_incarnation_not_recorded)
{
    listener_fixture f(11, {{2, 22}});
    f.one.transport->forget_incarnation(2);
    f.one.transport->set_peers({}); // node 2 removed
    run_for(f.io, 20ms);
    BOOST_TEST(!f.refuses(22, 11)); // its messages still arrive (it may learn its removal)
    BOOST_TEST(f.r.learned.empty());
    BOOST_TEST(!f.refuses(33, 0)); // nor is a new data directory under its id refused
    BOOST_TEST(f.r.learned.empty());

    // Added back: the first data directory that greets is recorded, and holds the id.
    f.one.transport->set_peers({{2, tcp::endpoint(boost::asio::ip::address_v4::loopback(), 1)}});
    run_for(f.io, 20ms);
    BOOST_TEST(!f.refuses(33, 0));
    BOOST_TEST_REQUIRE(f.r.learned.size() == 1u);
    BOOST_TEST(f.r.learned.front().second == 33u);
    BOOST_TEST(f.refuses(22, 11));
}

// Added back, the id names the directory it had before (retire_incarnation()): an old
// process still running on it is refused, even before the new one was recorded.
BOOST_AUTO_TEST_CASE(a_retired_incarnation_is_refused_and_the_new_one_learned)
{
    listener_fixture f(11, {{2, 22}});
    f.one.transport->forget_incarnation(2);
    f.one.transport->retire_incarnation(2, 22);
    run_for(f.io, 20ms);
    BOOST_TEST(f.refuses(22, 11));
    BOOST_TEST(f.r.learned.empty());
    BOOST_TEST(!f.refuses(33, 11));
    BOOST_TEST_REQUIRE(f.r.learned.size() == 1u);
    BOOST_TEST(f.r.learned.front().second == 33u);
    BOOST_TEST(f.refuses(22, 11));
    // Retiring the recorded one forgets it too.
    f.one.transport->retire_incarnation(2, 33);
    BOOST_TEST(f.refuses(33, 11));
    BOOST_TEST(!f.refuses(44, 11));
}

BOOST_AUTO_TEST_CASE(incarnation_zero_turns_the_checks_off)
{
    listener_fixture f(0, {{2, 22}});
    BOOST_TEST(!f.refuses(33, 99));
    BOOST_TEST(!f.refuses(0, 0));
    BOOST_TEST(f.r.learned.empty());
    BOOST_TEST(f.r.conflicts.empty());

    listener_fixture g(11, {{2, 22}});
    BOOST_TEST(!g.refuses(0, 0), "a sender that does not track incarnations is accepted");
    BOOST_TEST(g.r.learned.empty());
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(stopping)

BOOST_AUTO_TEST_CASE(stop_inside_the_receive_handler_ends_delivery)
{
    boost::asio::io_context io;
    auto a1 = bound_acceptor(io);
    const auto ep1 = a1.local_endpoint();
    std::vector<message> received;
    std::unique_ptr<tcp_transport> one;
    one =
        std::make_unique<tcp_transport>(std::move(a1), 1, std::map<node_id, tcp::endpoint>{}, [&](message m) {
            received.push_back(std::move(m));
            one->stop();
        });
    raw_client peer(io, ep1);
    const std::vector<message> batch{beat(2, 1, 1), beat(2, 1, 2), beat(2, 1, 3)};
    peer.write(hello(2, 1) + raftkv::asio::encode_frame(batch));
    peer.write(raftkv::asio::encode_frame(batch));
    BOOST_REQUIRE(run_until(io, [&] { return !received.empty(); }));
    run_for(io, 50ms);
    BOOST_TEST(received.size() == 1u);
    one->send(beat(1, 2, 1)); // a no-op after stop
}

BOOST_AUTO_TEST_CASE(destroying_transports_with_operations_pending_is_clean)
{
    boost::asio::io_context io;
    std::size_t received_after_stop = 0;
    bool stopped = false;
    {
        pair_fixture f;
        f.one.transport->send(beat(1, 2, 1));
        BOOST_REQUIRE(run_until(f.io, [&] { return f.two.received.size() == 1; }));

        // Node 1 also dials a node that is down (a pending connect or backoff timer) and
        // has a write in flight to node 2; node 2 has a read pending.
        auto dead = bound_acceptor(io);
        test_node three;
        three.start(bound_acceptor(f.io), 3, {{1, f.ep1}, {4, dead.local_endpoint()}}, fast_reconnect());
        three.transport->send(beat(3, 4, 1));
        three.transport->send(beat(3, 1, 1));
        for (std::uint64_t i = 0; i < 100; ++i)
            f.one.transport->send(beat(1, 2, i));
        f.io.poll();

        f.two.transport->stop();
        stopped = true;
        const auto before = f.two.received.size();
        f.one.transport.reset();
        three.transport.reset();
        // Every pending completion runs now, after its transport is gone.
        run_for(f.io, 100ms);
        received_after_stop = f.two.received.size() - before;
        f.two.transport.reset();
        f.io.run_for(100ms);
        BOOST_TEST(f.io.stopped()); // nothing left pending
    }
    BOOST_TEST(stopped);
    BOOST_TEST(received_after_stop == 0u);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(changing_peers)

BOOST_AUTO_TEST_CASE(a_peer_added_at_run_time_is_dialed_and_reached)
{
    boost::asio::io_context io;
    test_node one, two;
    auto a1 = bound_acceptor(io);
    auto a2 = bound_acceptor(io);
    const auto ep2 = a2.local_endpoint();
    one.start(std::move(a1), 1, {}, fast_reconnect());
    two.start(std::move(a2), 2, {}, fast_reconnect());

    one.transport->send(beat(1, 2, 1));                                         // unknown yet: dropped
    one.transport->set_peers({{2, ep2}, {1, one.transport->local_endpoint()}}); // its own entry is ignored
    run_for(io, 20ms);
    one.transport->send(beat(1, 2, 2));
    BOOST_REQUIRE(run_until(io, [&] { return two.received.size() == 1; }));
    run_for(io, 50ms);
    BOOST_TEST(two.received.size() == 1u);
    BOOST_TEST(seq_of(two.received.front()) == 2u);
}

BOOST_AUTO_TEST_CASE(a_message_to_an_unknown_node_is_reported_so_its_address_can_be_added)
{
    boost::asio::io_context io;
    test_node one, two;
    auto a1 = bound_acceptor(io);
    auto a2 = bound_acceptor(io);
    const auto ep2 = a2.local_endpoint();
    std::vector<raftkv::node_id> unknown;
    tcp_transport_options o = fast_reconnect();
    o.on_unknown_peer = [&](raftkv::node_id id) { unknown.push_back(id); };
    one.start(std::move(a1), 1, {}, o);
    two.start(std::move(a2), 2, {}, fast_reconnect());

    one.transport->send(beat(1, 2, 1)); // dropped, and reported
    one.transport->send(beat(1, 1, 2)); // to itself: dropped, not reported
    BOOST_TEST(unknown == std::vector<raftkv::node_id>{2});
    one.transport->set_peers({{2, ep2}});
    run_for(io, 20ms);
    one.transport->send(beat(1, 2, 3));
    BOOST_REQUIRE(run_until(io, [&] { return two.received.size() == 1; }));
    BOOST_TEST(seq_of(two.received.front()) == 3u);
    BOOST_TEST(unknown.size() == 1u);
}

BOOST_AUTO_TEST_CASE(a_removed_peer_has_its_connection_closed_and_gets_nothing_more)
{
    boost::asio::io_context io;
    tcp::acceptor peer(io, loopback_any_port); // node 2, played by a raw socket
    test_node one;
    one.start(bound_acceptor(io), 1, {{2, peer.local_endpoint()}}, fast_reconnect());
    one.transport->send(beat(1, 2, 1));
    tcp::socket accepted(io);
    bool connected = false;
    peer.async_accept(accepted, [&](boost::system::error_code ec) { connected = !ec; });
    BOOST_REQUIRE(run_until(io, [&] { return connected; }));
    std::string frame(4096, '\0');
    std::size_t read_total = 0;
    std::optional<boost::system::error_code> ended;
    std::function<void()> read_on = [&] {
        accepted.async_read_some(boost::asio::buffer(frame),
                                 [&](boost::system::error_code ec, std::size_t n) {
                                     read_total += n;
                                     if (ec)
                                         ended = ec;
                                     else
                                         read_on();
                                 });
    };
    read_on();
    BOOST_REQUIRE(run_until(io, [&] { return read_total > 0; }));

    one.transport->set_peers({});
    BOOST_REQUIRE(run_until(io, [&] { return ended.has_value(); }));
    BOOST_TEST((*ended == boost::asio::error::eof || *ended == boost::asio::error::connection_reset));
    const std::size_t before = read_total;
    one.transport->send(beat(1, 2, 2));
    tcp::socket again(io);
    bool redialed = false;
    peer.async_accept(again, [&](boost::system::error_code ec) { redialed = !ec; });
    run_for(io, 200ms);
    BOOST_TEST(!redialed);
    BOOST_TEST(read_total == before);
}

BOOST_AUTO_TEST_CASE(a_changed_address_is_dialed_anew_and_the_old_one_gets_nothing_more)
{
    boost::asio::io_context io;
    test_node one, old_two, new_two;
    auto a_old = bound_acceptor(io);
    auto a_new = bound_acceptor(io);
    const auto ep_old = a_old.local_endpoint();
    const auto ep_new = a_new.local_endpoint();
    one.start(bound_acceptor(io), 1, {{2, ep_old}}, fast_reconnect());
    old_two.start(std::move(a_old), 2, {}, fast_reconnect());
    new_two.start(std::move(a_new), 2, {}, fast_reconnect());

    one.transport->send(beat(1, 2, 1));
    BOOST_REQUIRE(run_until(io, [&] { return old_two.received.size() == 1; }));

    one.transport->set_peers({{2, ep_new}});
    run_for(io, 20ms);
    one.transport->send(beat(1, 2, 2));
    BOOST_REQUIRE(run_until(io, [&] { return new_two.received.size() == 1; }));
    BOOST_TEST(seq_of(new_two.received.front()) == 2u);
    run_for(io, 50ms);
    BOOST_TEST(old_two.received.size() == 1u);

    // The same address again changes nothing: the connection stays and delivers in order.
    one.transport->set_peers({{2, ep_new}});
    for (std::uint64_t i = 3; i < 10; ++i)
        one.transport->send(beat(1, 2, i));
    BOOST_REQUIRE(run_until(io, [&] { return new_two.received.size() == 8; }));
    for (std::uint64_t i = 0; i < 8; ++i)
        BOOST_TEST(seq_of(new_two.received[i]) == i + 2);
}

BOOST_AUTO_TEST_CASE(set_peers_may_be_called_from_another_thread)
{
    boost::asio::io_context io(2);
    auto work = boost::asio::make_work_guard(io);
    std::thread runner([&io] { io.run(); });
    auto s1 = boost::asio::make_strand(io);
    auto s2 = boost::asio::make_strand(io);
    tcp::acceptor a1(s1), a2(s2);
    for (tcp::acceptor* a : {&a1, &a2}) {
        a->open(tcp::v4());
        a->bind(loopback_any_port);
    }
    const auto ep2 = a2.local_endpoint();
    std::atomic<std::uint64_t> got2{0};
    const auto on = [](auto& strand, auto f) {
        std::promise<void> done;
        boost::asio::post(strand, [&] {
            f();
            done.set_value();
        });
        done.get_future().wait();
    };
    std::unique_ptr<tcp_transport> t1, t2;
    on(s1, [&] {
        t1 = std::make_unique<tcp_transport>(std::move(a1), 1, std::map<node_id, tcp::endpoint>{},
                                             [](message) {});
    });
    on(s2, [&] {
        t2 = std::make_unique<tcp_transport>(std::move(a2), 2, std::map<node_id, tcp::endpoint>{},
                                             [&](message) { ++got2; });
    });

    t1->set_peers({{2, ep2}});                // from this thread, not the strand
    on(s1, [&] { t1->send(beat(1, 2, 1)); }); // posted after it: runs after the change
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (got2 == 0 && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(1ms);
    BOOST_TEST(got2 == 1u);

    // A change still queued when the transport is destroyed is discarded harmlessly.
    on(s1, [&] {
        t1->set_peers({});
        t1.reset();
    });
    on(s2, [&] { t2.reset(); });
    work.reset();
    runner.join();
}

BOOST_AUTO_TEST_SUITE_END()
