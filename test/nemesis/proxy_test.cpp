// The fault-injecting proxy on its own: a fake destination node behind it, and fake
// senders that greet it as raftkv peers do.
#define BOOST_TEST_MODULE raftkv_nemesis_proxy
#include <boost/test/unit_test.hpp>

#include "proxy.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <string>

namespace {

using namespace std::chrono_literals;
using raftkv::nemesis::link_rule;
using raftkv::nemesis::proxy;
using clock_type = std::chrono::steady_clock;

sockaddr_in loopback(std::uint16_t port)
{
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return a;
}

/// A socket, closed on destruction.
struct fd {
    int v = -1;
    explicit fd(int x = -1) : v(x) {}
    fd(fd&& o) noexcept : v(o.v) { o.v = -1; }
    fd& operator=(fd&& o) noexcept
    {
        std::swap(v, o.v);
        return *this;
    }
    ~fd()
    {
        if (v >= 0)
            ::close(v);
    }
};

/// The destination: a listening socket on a free port.
struct listener {
    fd sock{::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)};
    std::uint16_t port = 0;
    listener()
    {
        auto a = loopback(0);
        socklen_t len = sizeof a;
        BOOST_TEST_REQUIRE(::bind(sock.v, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
        BOOST_TEST_REQUIRE(::listen(sock.v, 16) == 0);
        BOOST_TEST_REQUIRE(::getsockname(sock.v, reinterpret_cast<sockaddr*>(&a), &len) == 0);
        port = ntohs(a.sin_port);
    }
    /// The next connection the proxy made, or -1 after `wait`.
    fd accept(std::chrono::milliseconds wait = 2s)
    {
        pollfd p{sock.v, POLLIN, 0};
        if (::poll(&p, 1, static_cast<int>(wait.count())) != 1)
            return fd{};
        return fd{::accept4(sock.v, nullptr, nullptr, SOCK_CLOEXEC)};
    }
};

/// A sender's connection to the proxy, greeted as node `from` expecting node `to`.
fd dial(std::uint16_t port, std::uint64_t from, std::uint64_t to)
{
    fd s{::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)};
    auto a = loopback(port);
    BOOST_TEST_REQUIRE(::connect(s.v, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    std::array<unsigned char, 48> g{0x52, 0x46, 0x4B, 0x48, 0, 2, 0, 3};
    for (int i = 0; i < 8; ++i) {
        g[16 + i] = static_cast<unsigned char>(from >> (56 - 8 * i));
        g[24 + i] = static_cast<unsigned char>(to >> (56 - 8 * i));
    }
    BOOST_TEST_REQUIRE(::send(s.v, g.data(), g.size(), MSG_NOSIGNAL) == 48);
    return s;
}

bool send_text(const fd& s, const std::string& text)
{
    return ::send(s.v, text.data(), text.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(text.size());
}

/// Up to `n` bytes read from `s` within `wait`; stops early at end of stream.
std::string read_some(const fd& s, std::size_t n, std::chrono::milliseconds wait)
{
    std::string out;
    const auto deadline = clock_type::now() + wait;
    while (out.size() < n) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock_type::now());
        pollfd p{s.v, POLLIN, 0};
        if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) != 1)
            break;
        char buf[4096];
        const auto got = ::recv(s.v, buf, std::min(sizeof buf, n - out.size()), 0);
        if (got <= 0)
            break;
        out.append(buf, static_cast<std::size_t>(got));
    }
    return out;
}

/// True if the peer closed `s` within `wait`.
bool closed_within(const fd& s, std::chrono::milliseconds wait)
{
    pollfd p{s.v, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(wait.count())) != 1)
        return false;
    char c;
    return ::recv(s.v, &c, 1, MSG_DONTWAIT) <= 0;
}

/// A sender greeted through the proxy, and the destination's end of that connection.
struct link {
    fd sender, receiver;
};

link connect_through(listener& dest, std::uint16_t port, std::uint64_t from)
{
    link l{dial(port, from, 2), fd{}};
    l.receiver = dest.accept();
    BOOST_TEST_REQUIRE(l.receiver.v >= 0);
    BOOST_TEST_REQUIRE(read_some(l.receiver, 48, 2s).size() == 48u); // the greeting, forwarded
    return l;
}

} // namespace

BOOST_AUTO_TEST_CASE(bytes_pass_both_ways_and_the_greeting_is_forwarded)
{
    listener dest;
    proxy p;
    const auto port = p.add_destination(2, dest.port);
    auto l = connect_through(dest, port, 1);
    BOOST_TEST(send_text(l.sender, "append"));
    BOOST_TEST(read_some(l.receiver, 6, 2s) == "append");
    BOOST_TEST(send_text(l.receiver, "x"));
    BOOST_TEST(read_some(l.sender, 1, 2s) == "x");
    // Either end closing closes the other.
    l.receiver = fd{};
    BOOST_TEST(closed_within(l.sender, 2s));
    BOOST_TEST(p.forwarded() == 1u);
}

BOOST_AUTO_TEST_CASE(a_dropped_link_closes_its_connections_and_refuses_new_ones_from_that_sender_only)
{
    listener dest;
    proxy p;
    const auto port = p.add_destination(2, dest.port);
    auto from1 = connect_through(dest, port, 1);
    auto from3 = connect_through(dest, port, 3);

    p.set(1, 2, link_rule::drop());
    BOOST_TEST(closed_within(from1.sender, 2s));
    BOOST_TEST(closed_within(from1.receiver, 2s));
    auto again = dial(port, 1, 2);
    BOOST_TEST(closed_within(again, 2s));
    BOOST_TEST(dest.accept(200ms).v < 0);
    BOOST_TEST(p.refused() == 1u);
    // Node 3's link is untouched.
    BOOST_TEST(send_text(from3.sender, "still"));
    BOOST_TEST(read_some(from3.receiver, 5, 2s) == "still");

    p.heal();
    auto healed = connect_through(dest, port, 1);
    BOOST_TEST(send_text(healed.sender, "back"));
    BOOST_TEST(read_some(healed.receiver, 4, 2s) == "back");
}

BOOST_AUTO_TEST_CASE(a_stalled_link_holds_its_bytes_until_healed)
{
    listener dest;
    proxy p;
    const auto port = p.add_destination(2, dest.port);
    auto l = connect_through(dest, port, 1);
    p.set(1, 2, link_rule::stall());
    BOOST_TEST(send_text(l.sender, "held"));
    BOOST_TEST(read_some(l.receiver, 4, 300ms).empty());
    BOOST_TEST(!closed_within(l.sender, 50ms));
    p.set(1, 2, link_rule::pass());
    BOOST_TEST(read_some(l.receiver, 4, 2s) == "held");
}

BOOST_AUTO_TEST_CASE(a_delayed_link_delivers_no_sooner_than_its_delay)
{
    listener dest;
    proxy p;
    const auto port = p.add_destination(2, dest.port);
    auto l = connect_through(dest, port, 1);
    p.set(1, 2, link_rule::delayed(300ms));
    BOOST_TEST(raftkv::nemesis::to_string(p.rule(1, 2)) == "delay 300ms");
    const auto sent = clock_type::now();
    BOOST_TEST(send_text(l.sender, "late"));
    BOOST_TEST(read_some(l.receiver, 4, 5s) == "late");
    BOOST_TEST((clock_type::now() - sent >= 300ms));
}
