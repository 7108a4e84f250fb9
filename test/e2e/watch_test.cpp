// GET /watch on real three-node clusters: a follower's watch sees every write made through
// the leader, in index order; a resumed watch loses nothing; a watch survives the leader's
// death (or resumes on another node); an index the journal no longer holds is 410; a
// watcher that never reads is closed and memory stays bounded, also when its writes never
// block, and its slot goes to a new watcher; SIGTERM ends a watch with a final line; a
// restarted node replays the changes its log still holds, and no others.

#define BOOST_TEST_MODULE e2e_watch
#include <boost/test/unit_test.hpp>

#include "harness.hpp"
#include "three_nodes.hpp"

#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

using namespace raftkv::e2e;
using namespace std::chrono_literals;
namespace json = boost::json;

namespace {

std::string field(const json::object& o, std::string_view name)
{
    const json::value* v = o.if_contains(name);
    return v && v->is_string() ? std::string(v->as_string()) : std::string();
}

int connect_to(std::uint16_t port, int receive_buffer = 0)
{
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    if (receive_buffer > 0)
        ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &receive_buffer, sizeof receive_buffer);
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

bool send_all(int fd, std::string_view bytes)
{
    while (!bytes.empty()) {
        const ssize_t n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
        if (n <= 0)
            return false;
        bytes.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
}

std::string watch_request(std::string_view target, std::string_view extra_headers = {})
{
    return "GET " + std::string(target) + " HTTP/1.1\r\nHost: 127.0.0.1\r\n" + std::string(extra_headers) +
           "\r\n";
}

/// One watch over a socket read by a thread of its own: the status, and the JSON lines of
/// the chunked body as they arrive.
class watch_client {
public:
    watch_client(std::uint16_t port, std::string target, std::string extra_headers = {})
    {
        fd_ = connect_to(port);
        BOOST_TEST_REQUIRE(fd_ >= 0);
        BOOST_TEST_REQUIRE(send_all(fd_, watch_request(target, extra_headers)));
        reader_ = std::thread([this] { read_loop(); });
    }
    ~watch_client() { close(); }
    watch_client(const watch_client&) = delete;
    watch_client& operator=(const watch_client&) = delete;

    void close()
    {
        if (fd_ >= 0)
            ::shutdown(fd_, SHUT_RDWR);
        if (reader_.joinable())
            reader_.join();
        if (fd_ >= 0)
            ::close(fd_);
        fd_ = -1;
    }

    /// The status code, once the header arrived (0 before).
    int status()
    {
        std::lock_guard lock(mutex_);
        parse();
        return status_;
    }

    /// The body (unchunked) as received so far.
    std::string body()
    {
        std::lock_guard lock(mutex_);
        parse();
        return body_;
    }

    /// Every complete JSON line so far.
    std::vector<json::object> lines()
    {
        std::vector<json::object> out;
        const std::string b = body();
        std::size_t start = 0;
        for (std::size_t nl = b.find('\n'); nl != std::string::npos; nl = b.find('\n', start)) {
            boost::system::error_code ec;
            json::value v = json::parse(std::string_view(b).substr(start, nl - start), ec);
            start = nl + 1;
            if (!ec && v.is_object())
                out.push_back(v.as_object());
        }
        return out;
    }

    /// The change lines (put, delete) so far.
    std::vector<json::object> changes()
    {
        std::vector<json::object> out;
        for (json::object& o : lines())
            if (o.contains("type") && (field(o, "type") == "put" || field(o, "type") == "delete"))
                out.push_back(std::move(o));
        return out;
    }

    bool ended()
    {
        std::lock_guard lock(mutex_);
        return ended_;
    }

    /// Whether the body's last chunk arrived.
    bool complete()
    {
        std::lock_guard lock(mutex_);
        parse();
        return complete_;
    }

private:
    void read_loop()
    {
        char buf[16384];
        for (;;) {
            const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
            std::lock_guard lock(mutex_);
            if (n <= 0) {
                ended_ = true;
                return;
            }
            raw_.append(buf, static_cast<std::size_t>(n));
        }
    }

    // Under the mutex: moves what arrived into the status and the body.
    void parse()
    {
        if (status_ == 0) {
            const std::size_t end = raw_.find("\r\n\r\n");
            if (end == std::string::npos)
                return;
            status_ = std::stoi(raw_.substr(9, 3));
            chunked_ = raw_.substr(0, end).find("Transfer-Encoding: chunked") != std::string::npos;
            raw_.erase(0, end + 4);
        }
        if (!chunked_) {
            body_ += raw_;
            raw_.clear();
            return;
        }
        for (;;) {
            const std::size_t line = raw_.find("\r\n");
            if (line == std::string::npos)
                return;
            const std::size_t size = std::stoul(raw_.substr(0, line), nullptr, 16);
            if (raw_.size() < line + 2 + size + 2)
                return;
            if (size == 0)
                complete_ = true;
            body_.append(raw_, line + 2, size);
            raw_.erase(0, line + 2 + size + 2);
        }
    }

    int fd_ = -1;
    std::thread reader_;
    std::mutex mutex_;
    std::string raw_;
    std::string body_;
    int status_ = 0;
    bool chunked_ = false;
    bool complete_ = false;
    bool ended_ = false;
};

std::uint64_t index_of(const json::object& o)
{
    return o.at("index").to_number<std::uint64_t>();
}

std::string key_of(const json::object& o)
{
    return std::string(o.at("key").as_string());
}

// Checks that `changes` are in strictly increasing index order.
void check_ordered(const std::vector<json::object>& changes)
{
    for (std::size_t k = 1; k < changes.size(); ++k)
        BOOST_TEST(index_of(changes[k]) > index_of(changes[k - 1]));
}

void put_all(std::uint16_t port, const std::string& prefix, int from, int to)
{
    for (int k = from; k < to; ++k) {
        const http_response r = put(port, prefix + std::to_string(k), "v" + std::to_string(k), 10s);
        BOOST_TEST_REQUIRE(r.status == 200, describe(r));
    }
}

std::optional<double> metric(std::uint16_t port, const std::string& name)
{
    const http_response r = request(port, "GET", "/metrics", {}, 2s);
    if (r.status != 200)
        return std::nullopt;
    const std::size_t at = r.body.find("\n" + name + " ");
    if (at == std::string::npos)
        return std::nullopt;
    return std::stod(r.body.substr(at + name.size() + 2));
}

} // namespace

BOOST_AUTO_TEST_CASE(a_follower_watch_sees_every_write_in_order_and_a_resumed_one_loses_nothing)
{
    three_nodes t;
    const std::uint16_t leader = t.c.http_port(t.leader);
    const std::uint16_t follower = t.c.http_port(t.followers()[0]);
    watch_client w(follower, "/watch/w%2F?prefix=true&progress_ms=200");
    BOOST_TEST_REQUIRE(wait_until([&] { return w.status() != 0; }, 5s));
    BOOST_TEST_REQUIRE(w.status() == 200);
    BOOST_TEST(put(leader, "other", "x").status == 200); // not under the prefix

    constexpr int n = 40;
    put_all(leader, "w/", 0, n);
    BOOST_TEST(del(leader, "w/0").status == 200);
    BOOST_TEST(del(leader, "w/absent").status == 404); // no change: not reported
    BOOST_TEST_REQUIRE(wait_until([&] { return w.changes().size() >= n + 1; }, 10s));
    std::this_thread::sleep_for(300ms); // nothing more may come
    const std::vector<json::object> seen = w.changes();
    BOOST_TEST_REQUIRE(seen.size() == std::size_t{n + 1});
    check_ordered(seen);
    for (int k = 0; k < n; ++k) {
        BOOST_TEST(key_of(seen[k]) == "w/" + std::to_string(k));
        BOOST_TEST(field(seen[k], "type") == "put");
        BOOST_TEST(field(seen[k], "value") == "v" + std::to_string(k));
    }
    BOOST_TEST(field(seen[n], "type") == "delete");
    BOOST_TEST(key_of(seen[n]) == "w/0");
    // Progress lines carry the index reached.
    BOOST_TEST_REQUIRE(wait_until(
        [&] {
            const auto lines = w.lines();
            return !lines.empty() && field(lines.back(), "type") == "progress" &&
                   index_of(lines.back()) >= index_of(seen.back());
        },
        5s));
    const std::uint64_t last = index_of(seen.back());
    w.close();

    // Written while nobody watched: a watch from last + 1 gets exactly these.
    put_all(leader, "w/", n, n + 15);
    watch_client resumed(follower, "/watch/w%2F?prefix=true&from=" + std::to_string(last + 1));
    BOOST_TEST_REQUIRE(wait_until([&] { return resumed.changes().size() >= 15; }, 10s));
    std::this_thread::sleep_for(300ms);
    const std::vector<json::object> again = resumed.changes();
    BOOST_TEST_REQUIRE(again.size() == 15u);
    check_ordered(again);
    BOOST_TEST(index_of(again.front()) > last);
    for (int k = 0; k < 15; ++k)
        BOOST_TEST(key_of(again[k]) == "w/" + std::to_string(n + k));

    // One key, as server-sent events resumed with Last-Event-ID.
    watch_client sse(follower, "/watch/w%2F3", "Accept: text/event-stream\r\nLast-Event-ID: 1\r\n");
    BOOST_TEST_REQUIRE(wait_until([&] { return sse.body().find("\n\n") != std::string::npos; }, 5s));
    const std::string events = sse.body();
    BOOST_TEST(events.starts_with("id: "));
    BOOST_TEST(events.find("event: put\ndata: {\"index\":") != std::string::npos);
    BOOST_TEST(events.find("\"key\":\"w/3\"") != std::string::npos);

    // The gauge counts the open watches.
    BOOST_TEST_REQUIRE(wait_until([&] { return metric(follower, "raftkv_watchers") == 2.0; }, 5s));
}

BOOST_AUTO_TEST_CASE(watches_go_on_through_the_leader_s_death)
{
    three_nodes t;
    const std::uint64_t old_leader = t.leader;
    const std::uint64_t survivor = t.followers()[0];
    const std::uint64_t other = t.followers()[1];
    watch_client on_follower(t.c.http_port(survivor), "/watch/k%2F?prefix=true&progress_ms=200");
    watch_client on_leader(t.c.http_port(old_leader), "/watch/k%2F?prefix=true&progress_ms=200");
    BOOST_TEST_REQUIRE(
        wait_until([&] { return on_follower.status() == 200 && on_leader.status() == 200; }, 5s));

    put_all(t.c.http_port(old_leader), "k/", 0, 20);
    BOOST_TEST_REQUIRE(wait_until([&] { return on_leader.changes().size() >= 10; }, 10s));
    t.c.kill9(old_leader);
    const std::optional<std::uint64_t> next = t.c.wait_ready(20s);
    BOOST_TEST_REQUIRE(next.has_value());
    put_all(t.c.http_port(*next), "k/", 20, 40);

    BOOST_TEST_REQUIRE(wait_until([&] { return on_follower.changes().size() >= 40; }, 15s));
    std::this_thread::sleep_for(300ms);
    const std::vector<json::object> all = on_follower.changes();
    BOOST_TEST_REQUIRE(all.size() == 40u);
    check_ordered(all);
    for (int k = 0; k < 40; ++k)
        BOOST_TEST(key_of(all[k]) == "k/" + std::to_string(k));

    // The watch on the killed node ended; resumed elsewhere after its last index, it gets
    // every change after that one.
    BOOST_TEST_REQUIRE(wait_until([&] { return on_leader.ended(); }, 5s));
    const std::vector<json::object> before = on_leader.changes();
    BOOST_TEST_REQUIRE(!before.empty());
    const std::uint64_t last = index_of(before.back());
    watch_client resumed(t.c.http_port(other), "/watch/k%2F?prefix=true&from=" + std::to_string(last + 1));
    const std::size_t missing = 40 - before.size();
    BOOST_TEST_REQUIRE(wait_until([&] { return resumed.changes().size() >= missing; }, 10s));
    std::this_thread::sleep_for(300ms);
    const std::vector<json::object> rest = resumed.changes();
    BOOST_TEST_REQUIRE(rest.size() == missing);
    for (std::size_t k = 0; k < rest.size(); ++k)
        BOOST_TEST(key_of(rest[k]) == "k/" + std::to_string(before.size() + k));
}

BOOST_AUTO_TEST_CASE(an_index_the_journal_no_longer_holds_is_gone)
{
    three_nodes t({"--watch-history-entries", "5"});
    const std::uint16_t leader = t.c.http_port(t.leader);
    put_all(leader, "g/", 0, 20);
    const std::uint16_t follower = t.c.http_port(t.followers()[0]);
    BOOST_TEST_REQUIRE(wait_until([&] { return get(follower, "g/19").status == 200; }, 5s));
    const http_response gone = request(follower, "GET", "/watch/?prefix=true&from=1", {}, 2s);
    BOOST_TEST_REQUIRE(gone.status == 410, describe(gone));
    const json_body body = parse_json(gone.body);
    BOOST_TEST(body.has("oldest_index"));
    BOOST_TEST(body.has("error"));
    // From the oldest index it names, the watch replays the last five changes.
    const auto at = gone.body.find("\"oldest_index\":");
    const std::string oldest = gone.body.substr(at + 15, gone.body.find_first_of(",}", at) - at - 15);
    watch_client w(follower, "/watch/?prefix=true&from=" + oldest);
    BOOST_TEST_REQUIRE(wait_until([&] { return w.changes().size() >= 5; }, 5s));
    BOOST_TEST(key_of(w.changes().back()) == "g/19");
}

BOOST_AUTO_TEST_CASE(a_watcher_that_never_reads_is_closed_and_memory_stays_bounded)
{
    three_nodes t({"--watch-buffer-bytes", "65536", "--watch-history-bytes", "8388608"});
    const std::uint64_t id = t.leader;
    const std::uint16_t port = t.c.http_port(id);
    const int fd = connect_to(port, 4096);
    BOOST_TEST_REQUIRE(fd >= 0);
    BOOST_TEST_REQUIRE(send_all(fd, watch_request("/watch/?prefix=true")));
    BOOST_TEST_REQUIRE(wait_until([&] { return metric(port, "raftkv_watchers") == 1.0; }, 5s));
    const std::string value(512 * 1024, 'x');
    for (int k = 0; k < 48; ++k) {
        const http_response r = put(port, "big/" + std::to_string(k), value, 10s);
        BOOST_TEST_REQUIRE(r.status == 200, describe(r));
    }
    // Falling behind by more than --watch-buffer-bytes while blocked closes it.
    BOOST_TEST(wait_until([&] { return metric(port, "raftkv_watchers") == 0.0; }, 10s));
    // The journal holds at most --watch-history-bytes; the process stays well below what
    // 24 MiB of writes queued per watcher would take.
    const std::optional<double> held = metric(port, "raftkv_watch_history_bytes");
    BOOST_TEST_REQUIRE(held.has_value());
    BOOST_TEST(*held <= 8388608.0);
    BOOST_TEST(rss_kib(t.c.pid(id)) < 512u * 1024u);
    ::close(fd);
    // The node still serves.
    BOOST_TEST(get(port, "big/47").status == 200);
}

BOOST_AUTO_TEST_CASE(a_watcher_whose_backlog_sits_in_the_send_buffer_is_closed_and_its_slot_freed)
{
    // What the stalled watcher is sent fills its receive buffer but not the server's send
    // buffer: every write completes at once, so neither the write deadline nor
    // --watch-buffer-bytes ends it. Only its unacknowledged backlog standing still for
    // --http-idle-timeout-ms does.
    cluster c(1, true, {"--http-idle-timeout-ms", "1000", "--max-watchers", "2"});
    BOOST_TEST_REQUIRE(c.wait_ready(20s).has_value());
    const std::uint16_t port = c.http_port(1);
    const int stalled = connect_to(port, 4096);
    BOOST_TEST_REQUIRE(stalled >= 0);
    BOOST_TEST_REQUIRE(send_all(stalled, watch_request("/watch/?prefix=true&progress_ms=100")));
    watch_client reading(port, "/watch/?prefix=true&progress_ms=100");
    BOOST_TEST_REQUIRE(wait_until([&] { return metric(port, "raftkv_watchers") == 2.0; }, 5s));
    BOOST_TEST(metric(port, "raftkv_watchers_stalled_closed_total").value_or(-1) == 0.0);

    const std::string value(64 * 1024, 'x');
    for (int k = 0; k < 4; ++k) {
        const http_response r = put(port, "held/" + std::to_string(k), value, 10s);
        BOOST_TEST_REQUIRE(r.status == 200, describe(r));
    }
    BOOST_TEST(wait_until([&] { return metric(port, "raftkv_watchers") == 1.0; }, 10s));
    BOOST_TEST(metric(port, "raftkv_watchers_stalled_closed_total").value_or(-1) == 1.0);
    // Its slot takes a new watcher while its client still holds the connection open.
    watch_client next(port, "/watch/?prefix=true");
    BOOST_TEST_REQUIRE(wait_until([&] { return next.status() != 0; }, 5s));
    BOOST_TEST(next.status() == 200);
    BOOST_TEST(metric(port, "raftkv_watchers").value_or(-1) == 2.0);
    // The server reset the stalled connection.
    char buf[16384];
    bool closed = false;
    const auto give_up = std::chrono::steady_clock::now() + 5s;
    while (!closed && std::chrono::steady_clock::now() < give_up) {
        pollfd p{stalled, POLLIN, 0};
        if (::poll(&p, 1, 100) > 0)
            closed = ::recv(stalled, buf, sizeof buf, 0) <= 0;
    }
    BOOST_TEST(closed);
    ::close(stalled);
    // The watcher that reads was not touched.
    BOOST_TEST(wait_until([&] { return reading.changes().size() == 4; }, 5s));
    BOOST_TEST(!reading.ended());
}

// A client that leaves frees its slot at once, not at the watch's next progress line (every
// 5 s by default): one that reconnects at once is not refused.
BOOST_AUTO_TEST_CASE(a_watch_whose_client_leaves_frees_its_slot_at_once)
{
    cluster c(1, true, {"--max-watchers", "1"});
    BOOST_TEST_REQUIRE(c.wait_ready(20s).has_value());
    const std::uint16_t port = c.http_port(1);
    for (int round = 0; round < 3; ++round) {
        watch_client w(port, "/watch/?prefix=true&progress_ms=60000");
        BOOST_TEST_REQUIRE(wait_until([&] { return w.status() == 200; }, 5s), "round " << round);
        BOOST_TEST(metric(port, "raftkv_watchers").value_or(-1) == 1.0);
        w.close();
        BOOST_TEST(wait_until([&] { return metric(port, "raftkv_watchers") == 0.0; }, 2s), "round " << round);
    }
    watch_client last(port, "/watch/?prefix=true");
    BOOST_TEST(wait_until([&] { return last.status() != 0; }, 5s));
    BOOST_TEST(last.status() == 200);
}

BOOST_AUTO_TEST_CASE(sigterm_ends_a_watch_with_a_final_line_and_too_many_watches_are_refused)
{
    three_nodes t({"--max-watchers", "1"});
    const std::uint64_t id = t.followers()[0];
    const std::uint16_t port = t.c.http_port(id);
    watch_client w(port, "/watch/s?progress_ms=100");
    BOOST_TEST_REQUIRE(wait_until([&] { return w.status() == 200; }, 5s));
    const http_response refused = request(port, "GET", "/watch/s", {}, 2s);
    BOOST_TEST(refused.status == 503, describe(refused));
    BOOST_TEST(request(port, "POST", "/watch/s", {}, 2s).status == 405);
    BOOST_TEST(request(port, "GET", "/watch/", {}, 2s).status == 400);

    const std::optional<exit_status> exit = t.c.terminate(id);
    BOOST_TEST_REQUIRE(exit.has_value());
    BOOST_TEST_REQUIRE(wait_until([&] { return w.complete(); }, 5s));
    const std::vector<json::object> lines = w.lines();
    BOOST_TEST_REQUIRE(!lines.empty());
    BOOST_TEST(field(lines.back(), "type") == "error");
    BOOST_TEST(lines.back().contains("resume_from"));
}

// A node removed while a watch is open on it never applies another change: the watch ends
// with a final line saying so, rather than sending progress lines for ever.
BOOST_AUTO_TEST_CASE(a_watch_on_a_node_that_is_removed_ends_saying_so)
{
    three_nodes t;
    const std::uint64_t gone = t.followers()[0];
    watch_client w(t.c.http_port(gone), "/watch/r?progress_ms=100");
    BOOST_TEST_REQUIRE(wait_until([&] { return w.status() == 200; }, 5s));
    BOOST_TEST_REQUIRE(
        request(t.c.http_port(t.leader), "DELETE", "/cluster/members/" + std::to_string(gone), {}, 8s)
            .status == 200);
    BOOST_TEST_REQUIRE(wait_until([&] { return w.complete(); }, 15s), w.body());
    const std::vector<json::object> lines = w.lines();
    BOOST_TEST_REQUIRE(!lines.empty());
    BOOST_TEST(field(lines.back(), "type") == "error");
    BOOST_TEST(field(lines.back(), "error").find("it was removed and serves nothing") != std::string::npos);
    BOOST_TEST(lines.back().contains("resume_from"));
}

BOOST_AUTO_TEST_CASE(a_snapshot_restore_ends_a_watch_and_its_resume_point_is_gone)
{
    three_nodes t({"--snapshot-entries", "200", "--snapshot-catchup-entries", "50"});
    const std::uint16_t leader = t.c.http_port(t.leader);
    const std::uint64_t f = t.followers()[0];
    watch_client w(t.c.http_port(f), "/watch/s%2F?prefix=true&progress_ms=200");
    BOOST_TEST_REQUIRE(wait_until([&] { return w.status() == 200; }, 5s));
    put_all(leader, "s/", 0, 5);
    BOOST_TEST_REQUIRE(wait_until([&] { return w.changes().size() >= 5; }, 5s));

    // Paused while the leader's log moves past it: it catches up from a snapshot.
    t.c.signal(f, SIGSTOP);
    const load_result load = put_many(leader, "s/bulk-", 1500);
    t.c.signal(f, SIGCONT);
    BOOST_TEST_REQUIRE(load.ok == 1500u);
    BOOST_TEST_REQUIRE(wait_until([&] { return w.complete(); }, 20s));
    const std::vector<json::object> lines = w.lines();
    BOOST_TEST_REQUIRE(!lines.empty());
    BOOST_TEST(field(lines.back(), "type") == "error");
    BOOST_TEST(field(lines.back(), "error").find("snapshot") != std::string::npos);
    const std::uint64_t resume = lines.back().at("resume_from").to_number<std::uint64_t>();
    const http_response gone =
        request(t.c.http_port(f), "GET", "/watch/s%2F?prefix=true&from=" + std::to_string(resume), {}, 2s);
    BOOST_TEST(gone.status == 410, describe(gone));
}

namespace {

// The changes a watch from `from` replays at once on `port` under prefix `prefix`, as
// "index type key value" lines, read until progress says it has delivered up to `applied`.
std::vector<std::string> replayed(std::uint16_t port, const std::string& prefix, std::uint64_t from,
                                  std::uint64_t applied)
{
    watch_client w(port, "/watch/" + url_encode(prefix) +
                             "?prefix=true&progress_ms=100&from=" + std::to_string(from));
    BOOST_TEST_REQUIRE(wait_until([&] { return w.status() != 0; }, 5s));
    BOOST_TEST_REQUIRE(w.status() == 200, w.body());
    BOOST_TEST_REQUIRE(wait_until(
        [&] {
            for (const json::object& o : w.lines())
                if (field(o, "type") == "progress" && index_of(o) >= applied)
                    return true;
            return false;
        },
        5s));
    std::vector<std::string> out;
    for (const json::object& c : w.changes())
        if (index_of(c) <= applied)
            out.push_back(std::to_string(index_of(c)) + " " + field(c, "type") + " " + key_of(c) + " " +
                          field(c, "value"));
    return out;
}

std::uint64_t applied_index(std::uint16_t port)
{
    const http_response r = request(port, "GET", "/status", {}, 2s);
    BOOST_TEST_REQUIRE(r.status == 200, describe(r));
    return std::stoull(parse_json(r.body).text.at("applied_index"));
}

} // namespace

BOOST_AUTO_TEST_CASE(a_watch_resumes_across_a_restart_of_every_node_from_what_the_log_still_holds)
{
    // One node: nothing else holds the changes it applied before it restarted.
    cluster c(1);
    BOOST_TEST_REQUIRE(c.wait_ready().has_value());
    const std::uint16_t port = c.http_port(1);
    BOOST_TEST_REQUIRE(put(port, "r/a", "1").status == 200);
    BOOST_TEST_REQUIRE(put(port, "r/b", "2").status == 200);
    const http_response refused =
        request(port, "PUT", kv_target("r/a"), value_body("x"), {{"If-Match", "\"1\""}}, 5s);
    BOOST_TEST_REQUIRE(refused.status == 412, describe(refused));
    BOOST_TEST_REQUIRE(del(port, "r/absent").status == 404);
    BOOST_TEST_REQUIRE(del(port, "r/b").status == 200);
    BOOST_TEST_REQUIRE(put(port, "other", "3").status == 200);
    const std::uint64_t applied = applied_index(port);
    const std::vector<std::string> before = replayed(port, "r/", 1, applied);
    BOOST_TEST_REQUIRE(before.size() == 3u,
                       "two puts and a delete: the refused put and the absent key's delete "
                       "changed nothing");

    // Stopped, then killed: each time a watch from the start replays the same changes.
    BOOST_TEST_REQUIRE(c.terminate(1).has_value());
    c.start(1);
    BOOST_TEST_REQUIRE(c.wait_ready().has_value());
    BOOST_TEST(replayed(port, "r/", 1, applied) == before, boost::test_tools::per_element());
    BOOST_TEST_REQUIRE(put(port, "r/c", "4").status == 200);
    const std::uint64_t later = applied_index(port);
    c.kill9(1);
    c.start(1);
    BOOST_TEST_REQUIRE(c.wait_ready().has_value());
    std::vector<std::string> all = replayed(port, "r/", 1, later);
    BOOST_TEST_REQUIRE(all.size() == 4u);
    all.pop_back();
    BOOST_TEST(all == before, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(after_a_restart_a_watch_from_behind_the_log_is_gone_and_the_rest_replays)
{
    cluster c(1, true, {"--snapshot-entries", "40", "--snapshot-catchup-entries", "10"});
    BOOST_TEST_REQUIRE(c.wait_ready().has_value());
    const std::uint16_t port = c.http_port(1);
    put_all(port, "s/", 0, 150);
    const std::uint64_t applied = applied_index(port);
    BOOST_TEST_REQUIRE(c.terminate(1).has_value());
    c.start(1);
    BOOST_TEST_REQUIRE(c.wait_ready().has_value());

    const http_response gone = request(port, "GET", "/watch/?prefix=true&from=1", {}, 2s);
    BOOST_TEST_REQUIRE(gone.status == 410, describe(gone));
    const std::uint64_t oldest = std::stoull(parse_json(gone.body).text.at("oldest_index"));
    // The log keeps 10 entries behind the last snapshot, taken at most 40 entries back.
    BOOST_TEST(oldest > 1u);
    BOOST_TEST(oldest + 10 <= applied, "oldest " << oldest << ", applied " << applied);
    const std::vector<std::string> rest = replayed(port, "s/", oldest, applied);
    BOOST_TEST_REQUIRE(!rest.empty());
    BOOST_TEST(rest.back().find(" put s/149 v149") != std::string::npos, rest.back());
    // One put per entry, none skipped (the meta records the node writes are no changes).
    for (std::size_t k = 1; k < rest.size(); ++k) {
        const auto n = [&](const std::string& line) { return std::stoi(line.substr(line.find("s/") + 2)); };
        BOOST_TEST(n(rest[k]) == n(rest[k - 1]) + 1, rest[k - 1] << " then " << rest[k]);
    }
}
