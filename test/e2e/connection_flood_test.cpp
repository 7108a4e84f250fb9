// A flood of connections against a real raftkv-server: thousands of connections that stay
// silent and a few hundred that send a request a byte at a time must not deny service to a
// normal client, nor grow the server's memory beyond a bound. At --max-connections the
// server closes the longest-idle connection to admit a new one.
#define BOOST_TEST_MODULE raftkv_e2e_connection_flood
#include <boost/test/unit_test.hpp>

#include "harness.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace raftkv::e2e;
using clock_type = std::chrono::steady_clock;

constexpr std::size_t max_connections = 2000;
constexpr std::size_t wanted_silent = 10'000;
constexpr std::size_t least_silent = 3'000;
constexpr std::size_t slow_connections = 200;
// Descriptors the test process needs besides the flood: the harness, the normal client,
// the slow connections' reconnections, Boost.Test.
constexpr std::size_t spare_descriptors = slow_connections + 200;

// The server's RSS is about 13 MiB once ready. Each connection it holds costs it a
// connection object, coroutine frames and a 4 KiB read buffer (kernel socket buffers are not
// in its RSS): measured, the flood takes it to under 40 MiB. 100 MiB leaves room for the
// allocator's slack, and fails if memory grows with the connections turned over (8,000 and
// more evicted here) rather than with the at most max_connections held. Sanitizer builds
// (shadow memory, ASan's quarantine) are not held to it.
constexpr std::uint64_t rss_bound_kib = 100 * 1024;
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool check_rss = false;
#else
constexpr bool check_rss = true;
#endif

/// Raises the soft limit on open files to the hard limit; the new soft limit.
rlim_t raise_descriptor_limit()
{
    rlimit lim{};
    if (::getrlimit(RLIMIT_NOFILE, &lim) != 0)
        return 0;
    lim.rlim_cur = lim.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &lim) != 0)
        return 0;
    return lim.rlim_cur;
}

/// A blocking connection to 127.0.0.1:port that sends nothing; -1 if it failed.
int connect_silent(std::uint16_t port)
{
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    timeval wait{3, 0}; // a SYN dropped by a full listen queue is sent again after 1 s
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &wait, sizeof wait);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        ::close(fd);
        return -1;
    }
    return fd;
}

/// Whether the server has closed the connection (it sent nothing else).
bool closed_by_peer(int fd)
{
    char c = 0;
    const ssize_t n = ::recv(fd, &c, 1, MSG_DONTWAIT | MSG_PEEK);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
}

} // namespace

BOOST_AUTO_TEST_CASE(silent_and_slow_connections_deny_no_one_service_and_memory_stays_bounded)
{
    const rlim_t limit = raise_descriptor_limit();
    if (limit < least_silent + spare_descriptors) {
        BOOST_TEST_MESSAGE("skipped: the open-file limit (" << limit << ") allows fewer than " << least_silent
                                                            << " flood connections");
        return;
    }
    const std::size_t silent = std::min<std::size_t>(wanted_silent, limit - spare_descriptors);
    BOOST_TEST_MESSAGE("flooding with " << silent << " silent and " << slow_connections
                                        << " slow connections");

    cluster c(1, true, {"--max-connections", std::to_string(max_connections)});
    BOOST_TEST_REQUIRE(c.wait_ready(20s).has_value(), "the node never became ready");
    const std::uint16_t port = c.http_port(1);
    const pid_t pid = c.pid(1);
    const std::uint64_t rss_before = rss_kib(pid);

    std::atomic<bool> flooding{true};
    std::atomic<std::size_t> connected{0};
    std::vector<int> silent_fds;
    silent_fds.reserve(silent);
    std::thread flood([&] {
        for (std::size_t i = 0; i < silent; ++i) {
            const int fd = connect_silent(port);
            if (fd >= 0) {
                silent_fds.push_back(fd);
                ++connected;
            }
        }
        flooding = false;
    });

    // A request that never ends: a header field that grows a byte every 100 ms, until the
    // server's header deadline closes the connection (then it starts over).
    std::atomic<bool> trickling{true};
    std::atomic<std::size_t> slow_bytes{0};
    std::thread slow([&] {
        const std::string start = "GET /kv/slow HTTP/1.1\r\nHost: x\r\nX-Slow: ";
        std::vector<std::unique_ptr<raw_connection>> conns;
        std::vector<std::size_t> sent(slow_connections, 0);
        for (std::size_t i = 0; i < slow_connections; ++i)
            conns.push_back(std::make_unique<raw_connection>(port));
        while (trickling) {
            for (std::size_t i = 0; i < slow_connections && trickling; ++i) {
                const char byte = sent[i] < start.size() ? start[sent[i]] : 'a';
                if (conns[i]->send(std::string_view(&byte, 1))) {
                    ++sent[i];
                    ++slow_bytes;
                } else {
                    conns[i] = std::make_unique<raw_connection>(port);
                    sent[i] = 0;
                }
            }
            std::this_thread::sleep_for(100ms);
        }
    });

    // Meanwhile a normal client writes and reads, each request on a new connection.
    std::uint64_t rss_max = rss_before;
    std::chrono::milliseconds slowest{0};
    int requests = 0, failures = 0;
    const auto started = clock_type::now();
    const auto give_up = started + 25s;
    // Keep going a while once the flood is done, and past the header deadline (10 s), so
    // that the slow connections are cut off and come back meanwhile.
    const auto after_flood = std::chrono::seconds(2);
    const auto at_least = std::chrono::seconds(12);
    std::optional<clock_type::time_point> flood_done;
    for (int i = 0; clock_type::now() < give_up; ++i) {
        if (!flooding && !flood_done)
            flood_done = clock_type::now();
        if (flood_done && clock_type::now() - *flood_done > after_flood &&
            clock_type::now() - started > at_least)
            break;
        std::string key = "k"; // not "k" + std::to_string(i): a false -Wrestrict (GCC 12, -O3)
        key += std::to_string(i);
        std::string value = "v"; // not "v" + std::to_string(i): a false -Wrestrict (GCC 12, -O3)
        value += std::to_string(i);
        const auto t0 = clock_type::now();
        const http_response w = put(port, key, value, 5s);
        const auto t1 = clock_type::now();
        const http_response r = get(port, key, 5s);
        const auto t2 = clock_type::now();
        requests += 2;
        slowest = std::max({slowest, std::chrono::duration_cast<std::chrono::milliseconds>(t1 - t0),
                            std::chrono::duration_cast<std::chrono::milliseconds>(t2 - t1)});
        if (w.status != 200 || r.status != 200 || r.body.find(value) == std::string::npos) {
            ++failures;
            BOOST_TEST(false, "request " << i << " during the flood: PUT " << describe(w) << "; GET "
                                         << describe(r));
        }
        rss_max = std::max(rss_max, rss_kib(pid));
        std::this_thread::sleep_for(50ms);
    }
    trickling = false;
    slow.join();
    flood.join();
    const auto elapsed = clock_type::now() - started;
    rss_max = std::max(rss_max, rss_kib(pid));

    std::size_t closed = 0;
    for (int fd : silent_fds)
        closed += closed_by_peer(fd) ? 1 : 0;
    const std::size_t opened = silent_fds.size();
    for (int fd : silent_fds)
        ::close(fd);

    BOOST_TEST_MESSAGE("silent connections opened "
                       << opened << ", closed by the server " << closed << "; slow bytes sent "
                       << slow_bytes.load() << "; " << requests << " normal requests, slowest "
                       << slowest.count() << " ms; server RSS " << rss_before << " KiB before, at most "
                       << rss_max << " KiB; "
                       << std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count() << " ms");
    BOOST_TEST(flood_done.has_value(), "the flood did not finish within 25 s");
    BOOST_TEST(opened >= silent * 9 / 10,
               "only " << opened << " of " << silent << " silent connections opened");
    // The server held at most max_connections of them: the rest were evicted.
    BOOST_TEST(opened - closed <= max_connections, (opened - closed) << " silent connections still open");
    BOOST_TEST(requests >= 10);
    BOOST_TEST(failures == 0);
    BOOST_TEST(slowest < std::chrono::milliseconds(5000));
    if (check_rss)
        BOOST_TEST(rss_max < rss_bound_kib, "server RSS reached " << rss_max << " KiB");
    BOOST_TEST(c.running(1));
}
