// raftkv, the command-line client, as a process against real raftkv-server processes: keys
// and scans, exit codes, endpoint fall-through, JSON output, membership, leader transfer,
// tokens, help and version, backups.
#define BOOST_TEST_MODULE raftkv_e2e_cli
#include <boost/test/unit_test.hpp>

#include "harness.hpp"
#include "three_nodes.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace raftkv::e2e;
namespace json = boost::json;

/// The documented exit codes (raftkv --help, docs/cli.md).
enum : int {
    ok = 0,
    usage = 1,
    not_found = 2,
    unavailable = 3,
    refused = 4,
    unauthorized = 5,
    server_error = 6,
    precondition_failed = 7,
    local_error = 8
};

/// Something else than raftkv at an endpoint: answers every request on 127.0.0.1 with
/// `response`, then closes the connection, until destroyed.
class canned_server {
public:
    explicit canned_server(std::string response) : response_(std::move(response))
    {
        fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t size = sizeof a;
        BOOST_TEST_REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&a), size) == 0);
        BOOST_TEST_REQUIRE(::listen(fd_, 16) == 0);
        BOOST_TEST_REQUIRE(::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &size) == 0);
        port_ = ntohs(a.sin_port);
        thread_ = std::thread([this] { serve(); });
    }
    canned_server(const canned_server&) = delete;
    canned_server& operator=(const canned_server&) = delete;
    ~canned_server()
    {
        stop_ = true;
        thread_.join();
        ::close(fd_);
    }
    std::uint16_t port() const { return port_; }

private:
    void serve()
    {
        while (!stop_) {
            pollfd p{fd_, POLLIN, 0};
            if (::poll(&p, 1, 50) <= 0)
                continue;
            const int c = ::accept(fd_, nullptr, nullptr);
            if (c < 0)
                continue;
            std::string request;
            char buf[4096];
            while (request.find("\r\n\r\n") == std::string::npos) {
                pollfd q{c, POLLIN, 0};
                if (::poll(&q, 1, 2000) <= 0)
                    break;
                const ssize_t n = ::recv(c, buf, sizeof buf, 0);
                if (n <= 0)
                    break;
                request.append(buf, static_cast<std::size_t>(n));
            }
            (void)::send(c, response_.data(), response_.size(), MSG_NOSIGNAL);
            ::close(c);
        }
    }

    std::string response_;
    int fd_ = -1;
    std::uint16_t port_ = 0;
    std::atomic<bool> stop_{false};
    std::thread thread_;
};

struct cli_result {
    int code = -1; ///< the exit code; -1 if it did not exit normally in time
    std::string out, err;
};

std::ostream& operator<<(std::ostream& os, const cli_result& r)
{
    return os << "exit " << r.code << ", stdout [" << r.out.substr(0, 500) << "], stderr ["
              << r.err.substr(0, 500) << "]";
}

/// Runs the client to completion (SIGKILL after `limit`).
cli_result run_cli(std::vector<std::string> args, milliseconds limit = 20s)
{
    static int n = 0;
    static temp_dir dir;
    const std::string base = "cli-" + std::to_string(++n);
    process p(std::move(args), {RAFTKV_CLI_BINARY, dir / (base + ".out"), dir / (base + ".err"), {}});
    const std::optional<exit_status> s = p.wait(limit);
    cli_result r;
    if (s && s->exited)
        r.code = s->code;
    r.out = read_tail(dir / (base + ".out"), 1 << 20);
    // The harness marks the start of each process in its output file: drop that line.
    if (r.out.starts_with("==== e2e harness: starting"))
        r.out.erase(0, r.out.find('\n') + 1);
    r.err = read_tail(dir / (base + ".err"));
    return r;
}

std::string url(std::uint16_t port)
{
    return "http://127.0.0.1:" + std::to_string(port);
}

/// `args` with --endpoints `endpoints` in front.
std::vector<std::string> with_endpoints(const std::string& endpoints, std::vector<std::string> args)
{
    args.insert(args.begin(), {"--endpoints", endpoints});
    return args;
}

std::size_t lines_of(const std::string& text)
{
    return static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n'));
}

/// The ids in a --json member list with `role`.
std::set<std::uint64_t> ids_with_role(const std::string& members_json, const std::string& role)
{
    std::set<std::uint64_t> out;
    const json::value doc = json::parse(members_json);
    for (const json::value& m : doc.at("members").as_array())
        if (m.at("role").as_string() == role)
            out.insert(m.at("id").to_number<std::uint64_t>());
    return out;
}

/// Runs a membership change until the cluster is not busy with the last one (exit code 3,
/// or 4 for a 409) for up to 20 s.
cli_result change_until_settled(const std::vector<std::string>& args)
{
    cli_result r;
    wait_until(
        [&] {
            r = run_cli(args);
            return r.code != unavailable && !(r.code == refused && r.err.find("409") != std::string::npos);
        },
        20s, 200ms);
    return r;
}

} // namespace

BOOST_FIXTURE_TEST_SUITE(three_node_cluster, three_nodes)

BOOST_AUTO_TEST_CASE(keys_and_scans_through_a_follower_with_documented_exit_codes)
{
    const std::string endpoints = url(c.http_port(followers().front()));
    auto cli = [&](std::vector<std::string> args) {
        return run_cli(with_endpoints(endpoints, std::move(args)));
    };

    cli_result r = cli({"put", "color", "blue"});
    BOOST_TEST(r.code == ok, r);
    BOOST_TEST(r.out == "OK\n");
    r = cli({"put", "-k", "--", "-starts with a dash"});
    BOOST_TEST(r.code == usage, "an option the command does not know: " << r);
    r = cli({"put", "dash", "--", "-5"});
    BOOST_TEST(r.code == ok, r);
    r = cli({"get", "dash"});
    BOOST_TEST(r.out == "-5\n", r);

    r = cli({"get", "color"});
    BOOST_TEST(r.code == ok, r);
    BOOST_TEST(r.out == "blue\n");
    r = cli({"--json", "get", "color"});
    BOOST_TEST(r.code == ok, r);
    BOOST_TEST(json::parse(r.out).at("value").as_string() == "blue");

    r = cli({"get", "missing"});
    BOOST_TEST(r.code == not_found, r);
    BOOST_TEST(r.out.empty());
    BOOST_TEST(r.err == "raftkv: key not found: missing (HTTP 404 from " + endpoints + ")\n", r);
    r = cli({"del", "color"});
    BOOST_TEST(r.code == ok, r);
    r = cli({"del", "color"});
    BOOST_TEST(r.code == not_found, r);
    BOOST_TEST(r.err == "raftkv: key not found: color (HTTP 404 from " + endpoints + ")\n", r);
    // A missing argument is said before a missing option.
    r = cli({"member", "add"});
    BOOST_TEST(r.code == usage, r);
    BOOST_TEST(r.err.find("member add: expected 1 argument(s), got 0") != std::string::npos, r);
    r = cli({"get", "color"});
    BOOST_TEST(r.code == not_found, r);

    // More keys than one page holds: ls follows the pages.
    const load_result load = put_many(c.http_port(leader), "page/", 1200, 8);
    BOOST_TEST_REQUIRE(load.ok == 1200u, load.first_failure);
    r = cli({"ls", "--prefix", "page/", "--keys-only"});
    BOOST_TEST(r.code == ok, r.err);
    BOOST_TEST(lines_of(r.out) == 1200u);
    BOOST_TEST(r.out.starts_with("page/0\npage/1\npage/10\npage/100\n"));
    r = cli({"--json", "ls", "--prefix", "page/", "--limit", "1001"});
    BOOST_TEST(r.code == ok, r.err);
    const json::value listed = json::parse(r.out);
    BOOST_TEST(listed.at("items").as_array().size() == 1001u);
    BOOST_TEST(listed.at("more").as_bool());
    BOOST_TEST(listed.at("items").as_array()[0].at("value").as_string() == load_value("page/0"));
    r = cli({"ls", "--prefix", "nothing/"});
    BOOST_TEST(r.code == ok, r);
    BOOST_TEST(r.out.empty());
    r = cli({"ls", "--prefix", "dash"});
    BOOST_TEST(r.out == "dash\t-5\n", r);
}

BOOST_AUTO_TEST_CASE(conditional_puts_and_deletes_with_versions)
{
    const std::string endpoints = url(c.http_port(followers().front()));
    auto cli = [&](std::vector<std::string> args) {
        return run_cli(with_endpoints(endpoints, std::move(args)));
    };
    cli_result r = cli({"put", "cas", "one", "--if-absent"});
    BOOST_TEST(r.code == ok, r);
    r = cli({"put", "cas", "again", "--if-absent"});
    BOOST_TEST(r.code == precondition_failed, "the key exists: " << r);
    r = cli({"get", "cas", "--show-version"});
    BOOST_TEST_REQUIRE(r.code == ok, r);
    const std::string version = r.out.substr(0, r.out.find('\t'));
    BOOST_TEST(r.out == version + "\tone\n");
    r = cli({"--json", "get", "cas"});
    BOOST_TEST(std::to_string(json::parse(r.out).at("version").to_number<std::uint64_t>()) == version);
    r = cli({"put", "cas", "two", "--if-match", version + "0"});
    BOOST_TEST(r.code == precondition_failed, "a stale version: " << r);
    BOOST_TEST(r.err.find("precondition failed: the key is at version " + version) != std::string::npos, r);
    r = cli({"put", "cas", "two", "--if-match", version});
    BOOST_TEST(r.code == ok, r);
    r = cli({"del", "cas", "--if-match", version});
    BOOST_TEST(r.code == precondition_failed, "the put moved the version: " << r);
    r = cli({"get", "cas"});
    BOOST_TEST(r.out == "two\n", r);
    r = cli({"put", "cas", "x", "--if-match", "v1"});
    BOOST_TEST(r.code == usage, r);
    r = cli({"put", "cas", "x", "--if-match", "1", "--if-absent"});
    BOOST_TEST(r.code == usage, r);
}

BOOST_AUTO_TEST_CASE(an_unreachable_endpoint_falls_through_and_none_reachable_is_unavailable)
{
    const auto dead = free_ports(2);
    const std::string alive = url(c.http_port(leader));
    cli_result r = run_cli(with_endpoints(url(dead[0]) + "," + alive, {"put", "k", "v"}));
    BOOST_TEST(r.code == ok, r);
    r = run_cli(with_endpoints(url(dead[0]) + "," + alive, {"get", "k"}));
    BOOST_TEST(r.out == "v\n", r);

    const auto started = std::chrono::steady_clock::now();
    r = run_cli(with_endpoints(url(dead[0]) + "," + url(dead[1]), {"--timeout", "2.5", "get", "k"}));
    BOOST_TEST(r.code == unavailable, r);
    BOOST_TEST((std::chrono::steady_clock::now() - started < 10s));
    BOOST_TEST(r.err.find("127.0.0.1:" + std::to_string(dead[1])) != std::string::npos, r);

    // A node that accepts connections but never answers (paused) holds a read for its share
    // of the timeout only.
    const std::uint64_t paused = followers().front();
    c.signal(paused, SIGSTOP);
    r = run_cli(with_endpoints(url(c.http_port(paused)) + "," + alive, {"--timeout", "4s", "get", "k"}));
    c.signal(paused, SIGCONT);
    BOOST_TEST(r.code == ok, "past a paused node: " << r);
    BOOST_TEST(r.out == "v\n", r);
    // A timeout shorter than a second per endpoint is shared equally: the paused node holds
    // half of it, and the live one answers within the other half, for a read and for status.
    c.signal(paused, SIGSTOP);
    r = run_cli(with_endpoints(url(c.http_port(paused)) + "," + alive, {"--timeout", "1s", "get", "k"}));
    const cli_result rows =
        run_cli(with_endpoints(url(c.http_port(paused)) + "," + alive, {"--timeout", "1s", "status"}));
    c.signal(paused, SIGCONT);
    BOOST_TEST(r.code == ok, "past a paused node within 1s: " << r);
    BOOST_TEST(rows.code == unavailable, rows);
    BOOST_TEST(lines_of(rows.out) == 3u, rows);
    BOOST_TEST(rows.out.find("timed out") != std::string::npos, rows);
    BOOST_TEST(rows.out.find("leader") != std::string::npos, rows); // the live row

    // status asks every endpoint and shows the one that did not answer.
    r = run_cli(with_endpoints(alive + "," + url(dead[0]), {"status"}));
    BOOST_TEST(r.code == unavailable, r);
    BOOST_TEST(lines_of(r.out) == 3u, r);
    BOOST_TEST(r.out.find("leader") != std::string::npos, r);
    const std::string cluster = parse_json(request(c.http_port(1), "GET", "/cluster/members").body)
                                    .string("cluster_id")
                                    .value_or("?");
    BOOST_TEST(r.out.find(cluster) != std::string::npos,
               "each row names the cluster " << cluster << ": " << r);
    BOOST_TEST(r.err.find("different clusters") == std::string::npos, r);
    // Each node's state size with its share of the quota (8 GiB by default): "0 B 0%".
    BOOST_TEST(r.out.find("STATE") != std::string::npos, r);
    BOOST_TEST(std::regex_search(r.out, std::regex(R"re(\d+(\.\d)? (B|KiB|MiB) \d+%)re")), r);
    std::string all;
    for (std::uint64_t id = 1; id <= 3; ++id) {
        // Not (... ? "" : ",") + url(...): GCC 12 at -O3 reports a false -Wrestrict on it.
        if (!all.empty())
            all += ",";
        all += url(c.http_port(id));
    }
    r = run_cli(with_endpoints(all, {"--json", "status"}));
    BOOST_TEST(r.code == ok, r);
    BOOST_TEST(json::parse(r.out).as_array().size() == 3u);
}

// A write the client gave up on at a node that stalled is still in that node's socket: once
// the node resumes, it proposes it, after the client's retry elsewhere was applied. With
// its client session the second copy is a replay; without one it writes the key again.
BOOST_AUTO_TEST_CASE(a_write_retried_past_a_stalled_node_applies_once_with_its_session)
{
    const std::uint64_t stalled = followers().front();
    const std::string endpoints = url(c.http_port(stalled)) + "," + url(c.http_port(leader));
    const auto version_of = [&](const std::string& key) -> std::uint64_t {
        const http_response r = get(c.http_port(leader), key);
        return r.status == 200 ? json::parse(r.body).at("version").to_number<std::uint64_t>() : 0;
    };
    // The PUTs the stalled node answered (to clients long gone, for the stalled copies).
    const auto puts_answered = [&] {
        const http_response r = request(c.http_port(stalled), "GET", "/metrics");
        double total = 0;
        std::istringstream in(r.body);
        for (std::string line; std::getline(in, line);)
            if (line.starts_with("raftkv_http_requests_total{") &&
                line.find("route=\"kv\"") != std::string::npos &&
                line.find("method=\"PUT\"") != std::string::npos)
                total += std::stod(line.substr(line.rfind(' ') + 1));
        return total;
    };
    const auto write_past_stall = [&](const std::string& key, std::vector<std::string> extra) {
        const double answered = puts_answered();
        std::vector<std::string> args{"--timeout", "4s", "put", key, "v"};
        args.insert(args.end(), extra.begin(), extra.end());
        c.signal(stalled, SIGSTOP);
        const cli_result r = run_cli(with_endpoints(endpoints, args));
        const std::uint64_t written = version_of(key);
        c.signal(stalled, SIGCONT);
        BOOST_TEST(r.code == ok, r);
        BOOST_TEST(written > 0u);
        BOOST_TEST(wait_until([&] { return puts_answered() > answered; }, 10s, 100ms),
                   "the stalled node never handled its copy of the put");
        return written;
    };
    const std::uint64_t once = write_past_stall("with-session", {});
    BOOST_TEST(version_of("with-session") == once);
    const std::uint64_t plain = write_past_stall("without-session", {"--no-session"});
    BOOST_TEST(version_of("without-session") != plain,
               "the stalled copy of a put without a session is applied");
}

BOOST_AUTO_TEST_CASE(watch_prints_every_change_and_resumes_on_another_endpoint)
{
    temp_dir dir;
    const std::string endpoints = url(c.http_port(leader)) + "," + url(c.http_port(followers().front()));
    process watcher(with_endpoints(endpoints, {"watch", "w/", "--prefix"}),
                    {RAFTKV_CLI_BINARY, dir / "watch.out", dir / "watch.err", {}});
    // The lines printed, but for those of the probes.
    auto printed = [&] {
        std::vector<std::string> out;
        std::istringstream in(read_tail(dir / "watch.out", 1 << 20));
        for (std::string line; std::getline(in, line);)
            if (!line.starts_with("====") && line.find("\tw/probe\t") == std::string::npos)
                out.push_back(line);
        return out;
    };
    // The watch starts after the node's applied index: wait until it is open.
    BOOST_TEST_REQUIRE(wait_until(
        [&] {
            BOOST_TEST_REQUIRE(put(c.http_port(leader), "w/probe", "p").status == 200);
            return read_tail(dir / "watch.out").find("\tw/probe\t") != std::string::npos;
        },
        10s, 300ms));
    for (int k = 0; k < 5; ++k)
        BOOST_TEST_REQUIRE(put(c.http_port(leader), std::string("w/").append(std::to_string(k)),
                               std::string("v").append(std::to_string(k)))
                               .status == 200);
    BOOST_TEST_REQUIRE(wait_until([&] { return printed().size() >= 5; }, 10s));
    c.kill9(leader);
    const std::optional<std::uint64_t> next = c.wait_ready(20s);
    BOOST_TEST_REQUIRE(next.has_value());
    for (int k = 5; k < 10; ++k)
        BOOST_TEST_REQUIRE(put(c.http_port(*next), std::string("w/").append(std::to_string(k)),
                               std::string("v").append(std::to_string(k)))
                               .status == 200);
    BOOST_TEST_REQUIRE(wait_until([&] { return printed().size() >= 10; }, 20s), read_tail(dir / "watch.err"));
    const std::vector<std::string> lines = printed();
    BOOST_TEST_REQUIRE(lines.size() == 10);
    for (int k = 0; k < 10; ++k) {
        const std::string& line = lines[static_cast<std::size_t>(k)];
        BOOST_TEST(line.ends_with("\tput\tw/" + std::to_string(k) + "\tv" + std::to_string(k)), line);
    }
    BOOST_TEST(watcher.running());
}

// A first endpoint that accepts and never answers is left after --timeout, not after the 15 s
// a stream may stay silent: the watch starts on the next one that soon.
BOOST_AUTO_TEST_CASE(watch_leaves_an_endpoint_that_does_not_answer_within_the_timeout)
{
    temp_dir dir;
    const std::uint64_t stalled = followers().front();
    const std::string endpoints = url(c.http_port(stalled)) + "," + url(c.http_port(leader));
    c.signal(stalled, SIGSTOP);
    const auto started = std::chrono::steady_clock::now();
    process watcher(with_endpoints(endpoints, {"--timeout", "1s", "watch", "t/", "--prefix"}),
                    {RAFTKV_CLI_BINARY, dir / "watch.out", dir / "watch.err", {}});
    const bool seen = wait_until(
        [&] {
            BOOST_TEST_REQUIRE(put(c.http_port(leader), "t/probe", "p").status == 200);
            return read_tail(dir / "watch.out").find("\tt/probe\t") != std::string::npos;
        },
        12s, 200ms);
    const auto took = std::chrono::steady_clock::now() - started;
    c.signal(stalled, SIGCONT);
    BOOST_TEST_REQUIRE(seen, read_tail(dir / "watch.err"));
    BOOST_TEST(took < 8s, "the watch waited " << std::chrono::duration_cast<milliseconds>(took).count()
                                              << " ms for the stalled endpoint");
    BOOST_TEST(read_tail(dir / "watch.err").find("timed out waiting for the answer") != std::string::npos);
}

// A node restarted after kill -9 holds in its journal only what it applied since: a watch
// resuming there gets 410, while another endpoint still holds the changes.
BOOST_AUTO_TEST_CASE(watch_answered_410_by_a_restarted_node_resumes_on_another_endpoint)
{
    const std::uint64_t follower = followers().front();
    // Written through the follower, so that it applied the change before it is killed.
    const http_response first = put(c.http_port(follower), "g/0", "v0");
    BOOST_TEST_REQUIRE(first.status == 200, describe(first));
    const std::string from = parse_json(first.body).text.at("version");
    c.kill9(follower);
    c.start(follower);
    BOOST_TEST_REQUIRE(c.wait_ready(20s).has_value());
    BOOST_TEST_REQUIRE(get(c.http_port(follower), "g/0").status == 200);
    BOOST_TEST_REQUIRE(put(c.http_port(leader), "g/1", "v1").status == 200);

    temp_dir dir;
    const std::string endpoints = url(c.http_port(follower)) + "," + url(c.http_port(leader));
    process watcher(with_endpoints(endpoints, {"watch", "g/", "--prefix", "--from", from}),
                    {RAFTKV_CLI_BINARY, dir / "watch.out", dir / "watch.err", {}});
    BOOST_TEST_REQUIRE(
        wait_until([&] { return read_tail(dir / "watch.out").find("\tg/1\tv1") != std::string::npos; }, 10s),
        "stdout [" << read_tail(dir / "watch.out") << "], stderr [" << read_tail(dir / "watch.err") << "]");
    const std::string out = read_tail(dir / "watch.out");
    BOOST_TEST(out.find(from + "\tput\tg/0\tv0\n") != std::string::npos, out);
    BOOST_TEST(out.find("\tg/0\t") < out.find("\tg/1\t"), out);
    BOOST_TEST(read_tail(dir / "watch.err").find("410") == std::string::npos);
    BOOST_TEST(watcher.running());
}

// A watch started without --from that ends before any line came: it resumes where the node
// started it (X-Raftkv-Watch-From), not at the next node's present, so no change is lost.
BOOST_AUTO_TEST_CASE(watch_that_ends_before_its_first_line_loses_no_change)
{
    const std::uint64_t follower = followers().front();
    temp_dir dir;
    const std::string endpoints = url(c.http_port(follower)) + "," + url(c.http_port(leader));
    process watcher(with_endpoints(endpoints, {"watch", "s/", "--prefix"}),
                    {RAFTKV_CLI_BINARY, dir / "watch.out", dir / "watch.err", {}});
    BOOST_TEST_REQUIRE(wait_until(
        [&] {
            const http_response m = request(c.http_port(follower), "GET", "/metrics", {});
            return m.body.find("\nraftkv_watchers 1\n") != std::string::npos;
        },
        10s));
    // The follower stops before it can send the change; it dies without having sent it.
    c.signal(follower, SIGSTOP);
    BOOST_TEST_REQUIRE(put(c.http_port(leader), "s/0", "v0").status == 200);
    c.kill9(follower);
    BOOST_TEST_REQUIRE(put(c.http_port(leader), "s/1", "v1").status == 200);
    BOOST_TEST_REQUIRE(
        wait_until([&] { return read_tail(dir / "watch.out").find("\ts/1\tv1") != std::string::npos; }, 20s),
        "stdout [" << read_tail(dir / "watch.out") << "], stderr [" << read_tail(dir / "watch.err") << "]");
    const std::string out = read_tail(dir / "watch.out");
    BOOST_TEST(out.find("\tput\ts/0\tv0\n") != std::string::npos, out);
    BOOST_TEST(watcher.running());
}

BOOST_AUTO_TEST_CASE(members_are_listed_added_promoted_removed_and_leadership_moves)
{
    const std::string endpoints = url(c.http_port(followers().front())) + "," + url(c.http_port(leader));
    auto cli = [&](std::vector<std::string> args) {
        return run_cli(with_endpoints(endpoints, std::move(args)));
    };

    cli_result r = cli({"--json", "members"});
    BOOST_TEST_REQUIRE(r.code == ok, r);
    BOOST_TEST((ids_with_role(r.out, "voter") == std::set<std::uint64_t>{1, 2, 3}));
    r = cli({"members"});
    BOOST_TEST(lines_of(r.out) == 4u, r);

    const std::uint64_t id = c.add_node(leader);
    const node_spec& s = c.spec(id);
    r = cli({"--json", "member", "add", std::to_string(id), "--raft", s.raft_address(), "--http",
             "http://" + s.http_address(), "--learner"});
    BOOST_TEST_REQUIRE(r.code == ok, r);
    BOOST_TEST((ids_with_role(r.out, "learner") == std::set<std::uint64_t>{id}));
    r = cli({"member", "add", std::to_string(id), "--raft", s.raft_address()});
    BOOST_TEST(r.code == refused, "adding a member twice: " << r);
    // Its HTTP address given again (as after a typo), before it starts.
    r = cli({"member", "update", std::to_string(id), "--http", "http://127.0.0.1:1"});
    BOOST_TEST_REQUIRE(r.code == ok, r);
    BOOST_TEST(r.out.find("127.0.0.1:1 ") != std::string::npos, r);
    r = cli({"member", "update", std::to_string(id), "--http", "http://" + s.http_address()});
    BOOST_TEST_REQUIRE(r.code == ok, r);
    BOOST_TEST(r.out.starts_with("updated node " + std::to_string(id) + "\n"), r);
    BOOST_TEST(r.out.find(s.http_address()) != std::string::npos, r);
    // The same address once more changes nothing, and says so.
    r = cli({"member", "update", std::to_string(id), "--http", "http://" + s.http_address()});
    BOOST_TEST_REQUIRE(r.code == ok, r);
    BOOST_TEST(
        r.out.starts_with("node " + std::to_string(id) + " has these addresses already: nothing changed\n"),
        r);
    r = cli({"member", "update", "99", "--http", "127.0.0.1:1"});
    BOOST_TEST(r.code == not_found, r);
    c.start(id);
    BOOST_TEST_REQUIRE(c.wait_healthy(id, 20s));

    r = change_until_settled(with_endpoints(endpoints, {"--json", "member", "promote", std::to_string(id)}));
    BOOST_TEST_REQUIRE(r.code == ok, r);
    BOOST_TEST((ids_with_role(r.out, "voter") == std::set<std::uint64_t>{1, 2, 3, id}));

    r = change_until_settled(with_endpoints(endpoints, {"member", "remove", std::to_string(id)}));
    BOOST_TEST_REQUIRE(r.code == ok, r);
    BOOST_TEST(r.out.starts_with("removed node " + std::to_string(id) + "\n"), r);
    // Asked for the members, the removed node (still running) answers, and is not believed.
    BOOST_TEST(wait_until(
        [&] {
            r = run_cli(with_endpoints(url(c.http_port(id)), {"members"}));
            return r.code == unavailable;
        },
        10s, 100ms));
    BOOST_TEST(r.err.find("node " + std::to_string(id) + " answered, and it is not a member") !=
                   std::string::npos,
               r);
    // Listed first, it is passed over for a member, and not asked again for a read.
    r = run_cli(with_endpoints(url(c.http_port(id)) + "," + url(c.http_port(leader)), {"--json", "members"}));
    BOOST_TEST(r.code == ok, r);
    BOOST_TEST(ids_with_role(r.out, "voter").size() == 3u, r);
    // (Once it no longer follows the leader, which then stops writing to it.)
    std::chrono::steady_clock::duration took{};
    BOOST_TEST(wait_until(
        [&] {
            const auto start = std::chrono::steady_clock::now();
            r = run_cli(with_endpoints(url(c.http_port(id)), {"--timeout", "5s", "get", "absent"}));
            took = std::chrono::steady_clock::now() - start;
            return r.code == unavailable;
        },
        10s, 100ms));
    BOOST_TEST(r.err.find("it was removed and serves nothing") != std::string::npos, r);
    BOOST_TEST((took < 4s), "asked again until the timeout"); // not the whole --timeout
    BOOST_TEST(c.terminate(id).has_value());
    r = cli({"member", "remove", "99"});
    BOOST_TEST(r.code == not_found, r);

    const std::uint64_t target = followers().back();
    r = cli({"leader", "transfer", std::to_string(target)});
    BOOST_TEST_REQUIRE(r.code == ok, r);
    BOOST_TEST(r.out == "node " + std::to_string(target) + " leads\n");
    BOOST_TEST(c.wait_for_leader(10s).value_or(0) == target);
    // The old leader's row says it handed over, to whom.
    r = run_cli(with_endpoints(url(c.http_port(leader)), {"status"}));
    BOOST_TEST(r.out.find("STEPPED DOWN") != std::string::npos, r);
    BOOST_TEST(r.out.find("transferred " + std::to_string(target) + " (term ") != std::string::npos, r);
    r = cli({"leader", "transfer", "99"});
    BOOST_TEST(r.code == not_found, r);
}

// raftkv backup through a follower, then raftkv-server --restore-backup: a new cluster with
// the same keys, values and versions, whose log continues after the backup's index; a
// damaged backup is refused and leaves the data directory empty.
BOOST_AUTO_TEST_CASE(a_backup_restores_into_a_new_cluster_with_the_same_keys_and_versions)
{
    const std::uint16_t port = c.http_port(leader);
    const load_result load = put_many(port, "b/", 300, 8);
    BOOST_TEST_REQUIRE(load.ok == 300u, load.first_failure);
    BOOST_TEST_REQUIRE(del(port, "b/7").status == 200);
    BOOST_TEST_REQUIRE(put(port, "last word", "kept").status == 200);
    const http_response before = get(port, "last word");
    BOOST_TEST_REQUIRE(before.status == 200);
    const std::string version = parse_json(before.body).text.at("version");

    static temp_dir dir;
    const std::string file = (dir / "cluster.backup").string();
    cli_result r = run_cli(with_endpoints(url(c.http_port(followers().front())), {"backup", file}));
    BOOST_TEST_REQUIRE(r.code == ok, r);
    BOOST_TEST(r.out.starts_with("backup of index "), r);
    BOOST_TEST(!std::filesystem::exists(file + ".part"));
    r = run_cli(with_endpoints(url(port), {"--json", "backup", (dir / "again.backup").string()}));
    BOOST_TEST_REQUIRE(r.code == ok, r);
    const json::value info = json::parse(r.out);
    const std::uint64_t index = info.at("index").to_number<std::uint64_t>();
    BOOST_TEST(index >= std::stoull(version));
    BOOST_TEST(info.at("bytes").to_number<std::uint64_t>() ==
               std::filesystem::file_size(dir / "again.backup"));
    // A file the client cannot write is its own failure, not the server's.
    r = run_cli(with_endpoints(url(port), {"backup", (dir / "no-such-directory" / "b.backup").string()}));
    BOOST_TEST(r.code == local_error, r);
    BOOST_TEST(r.err.find("cannot create") != std::string::npos, r);

    cluster restored(1, false, {"--restore-backup", file});
    restored.start_all();
    BOOST_TEST_REQUIRE(restored.wait_ready(20s).has_value());
    const std::uint16_t fresh = restored.http_port(1);
    const load_result read = get_many(fresh, "b/", 300, 8);
    BOOST_TEST(read.ok == 299u, "every key but b/7: " << read.first_failure);
    BOOST_TEST(get(fresh, "b/7").status == 404);
    const http_response after = get(fresh, "last word");
    BOOST_TEST(after.status == 200, describe(after));
    BOOST_TEST(parse_json(after.body).text.at("version") == version, "the version survives the restore");
    const http_response next = put(fresh, "new", "x");
    BOOST_TEST_REQUIRE(next.status == 200, describe(next));
    BOOST_TEST(std::stoull(parse_json(next.body).text.at("version")) > index, "versions keep growing");
    const http_response status = request(fresh, "GET", "/status");
    BOOST_TEST(parse_json(status.body).text.at("first_index") == std::to_string(index + 1), describe(status));

    // Restarted as itself it keeps its data; with the flag again it refuses to start.
    BOOST_TEST_REQUIRE(restored.terminate(1).has_value());
    std::vector<std::string> plain = restored.args(1);
    plain.erase(std::find(plain.begin(), plain.end(), "--restore-backup"), plain.end());
    restored.start(1, plain);
    BOOST_TEST_REQUIRE(restored.wait_ready(20s).has_value());
    BOOST_TEST(get(fresh, "new").status == 200);
    BOOST_TEST_REQUIRE(restored.terminate(1).has_value());
    restored.start(1);
    BOOST_TEST(wait_until([&] { return !restored.running(1); }, 10s));
    BOOST_TEST((restored.exit_of(1) && restored.exit_of(1)->code == 2));
    BOOST_TEST(read_tail(restored.spec(1).log_file).find("already holds a node") != std::string::npos);

    // A backup cut short: refused, and nothing left behind, so the same directory takes a
    // whole one afterwards.
    const std::string cut = (dir / "cut.backup").string();
    std::filesystem::copy_file(file, cut);
    std::filesystem::resize_file(cut, std::filesystem::file_size(cut) - 9);
    cluster damaged(1, false, {"--restore-backup", cut});
    damaged.start_all();
    BOOST_TEST(wait_until([&] { return !damaged.running(1); }, 20s));
    BOOST_TEST((damaged.exit_of(1) && damaged.exit_of(1)->code == 1));
    BOOST_TEST(read_tail(damaged.spec(1).log_file).find("is incomplete") != std::string::npos);
    BOOST_TEST(!std::filesystem::exists(damaged.spec(1).data_dir / "state"));
    BOOST_TEST(!std::filesystem::exists(damaged.spec(1).data_dir / "wal"));

    // A restore cut short by a crash (what one killed while writing the state leaves: the
    // mark, part of the state, no log, no identity) is no node: refused without the flag,
    // reported by --inspect, and done again with it.
    const std::filesystem::path& cut_dir = damaged.spec(1).data_dir;
    std::filesystem::create_directories(cut_dir);
    std::filesystem::copy(restored.spec(1).data_dir / "state", cut_dir / "state",
                          std::filesystem::copy_options::recursive);
    std::ofstream(cut_dir / "restoring") << "restoring " << file << "\n";
    std::vector<std::string> args = damaged.args(1);
    args.erase(std::find(args.begin(), args.end(), "--restore-backup"), args.end());
    damaged.start(1, args);
    BOOST_TEST(wait_until([&] { return !damaged.running(1); }, 10s));
    BOOST_TEST((damaged.exit_of(1) && damaged.exit_of(1)->code == 2));
    BOOST_TEST(read_tail(damaged.spec(1).log_file).find("did not finish") != std::string::npos);
    const run_result inspected = run_server({"--data-dir", cut_dir.string(), "--inspect"});
    BOOST_TEST((inspected.status && inspected.status->code == 1));
    BOOST_TEST(inspected.out.find("restore         unfinished") != std::string::npos, inspected.out);
    args.insert(args.end(), {"--restore-backup", file});
    damaged.start(1, args);
    BOOST_TEST_REQUIRE(damaged.wait_ready(20s).has_value());
    BOOST_TEST(get_many(damaged.http_port(1), "b/", 300, 8).ok == 299u);
    BOOST_TEST(!std::filesystem::exists(cut_dir / "restoring"));
}

// Two backups to one FILE do not write into each other: the second is refused while the
// first holds FILE.part, and a FILE.part left by a killed run is taken over. A cluster
// without a leader (503 everywhere) is asked again until --timeout, as other commands do.
BOOST_AUTO_TEST_CASE(backups_to_one_file_do_not_collide_and_a_cluster_without_a_leader_is_asked_again)
{
    temp_dir dir;
    const std::string file = (dir / "one.backup").string();
    const std::string endpoints =
        url(c.http_port(1)) + ", " + url(c.http_port(2)) + " , " + url(c.http_port(3)); // spaces allowed
    BOOST_TEST_REQUIRE(put(c.http_port(leader), "k", "v").status == 200);

    // Another backup is writing FILE: it holds FILE.part locked.
    const int held = ::open((file + ".part").c_str(), O_WRONLY | O_CREAT, 0600);
    BOOST_TEST_REQUIRE(held >= 0);
    BOOST_TEST_REQUIRE(::flock(held, LOCK_EX) == 0);
    cli_result r = run_cli(with_endpoints(endpoints, {"backup", file}));
    BOOST_TEST(r.code == local_error, r);
    BOOST_TEST(r.err.find("another backup is being written to " + file) != std::string::npos, r);
    BOOST_TEST(!std::filesystem::exists(file));
    // It died: its FILE.part stays, unlocked, and the next backup takes it over.
    ::close(held);
    r = run_cli(with_endpoints(endpoints, {"backup", file}));
    BOOST_TEST(r.code == ok, r);
    BOOST_TEST(std::filesystem::exists(file));
    BOOST_TEST(!std::filesystem::exists(file + ".part"));
    // A FILE that is a directory: refused before anything is asked.
    r = run_cli(with_endpoints(endpoints, {"backup", dir.path().string()}));
    BOOST_TEST(r.code == local_error, r);
    BOOST_TEST(r.err.find("it is a directory") != std::string::npos, r);

    // No leader: both followers stopped, the leader steps down.
    const auto leave_the_leader_alone = [&] {
        for (std::uint64_t id : followers())
            BOOST_TEST_REQUIRE(c.terminate(id).has_value());
        BOOST_TEST_REQUIRE(wait_until(
            [&] {
                return parse_json(request(c.http_port(leader), "GET", "/status").body).text.at("role") !=
                       "leader";
            },
            10s, 50ms));
    };
    leave_the_leader_alone();
    const std::string again = (dir / "again.backup").string();
    cli_result waited;
    std::thread backup([&] {
        waited =
            run_cli(with_endpoints(url(c.http_port(leader)), {"--timeout", "30s", "backup", again}), 40s);
    });
    std::this_thread::sleep_for(2500ms);
    for (std::uint64_t id : followers())
        c.start(id);
    backup.join();
    BOOST_TEST(waited.code == ok, waited);
    BOOST_TEST(waited.err.find("asking every endpoint again in a second") != std::string::npos, waited);
    BOOST_TEST(std::filesystem::exists(again));
    // Without the others for long enough, --timeout ends it: unavailable.
    leave_the_leader_alone();
    const auto started = std::chrono::steady_clock::now();
    r = run_cli(
        with_endpoints(url(c.http_port(leader)), {"--timeout", "2.5s", "backup", (dir / "none").string()}));
    BOOST_TEST(r.code == unavailable, r);
    BOOST_TEST((std::chrono::steady_clock::now() - started >= 2s), r);
    BOOST_TEST(!std::filesystem::exists(dir / "none.part"));

    // A key with control characters is named with them escaped, never raw on the terminal.
    for (std::uint64_t id : followers())
        c.start(id);
    BOOST_TEST_REQUIRE(c.wait_ready(20s).has_value());
    r = run_cli(with_endpoints(endpoints, {"get", "a\nb\x1b[31m"}));
    BOOST_TEST(r.code == not_found, r);
    BOOST_TEST(r.err.find("key not found: a\\x0ab\\x1b[31m") != std::string::npos, r);
    BOOST_TEST(r.err.find('\x1b') == std::string::npos, r);
    BOOST_TEST(lines_of(r.err) == 1u, r);
}

// The same backup restored on every member of --peers: a new three-node cluster holding the
// backup's keys; a member restored from another backup is of another cluster, and refused.
BOOST_AUTO_TEST_CASE(a_backup_restored_on_three_members_makes_a_three_node_cluster)
{
    const std::uint16_t port = c.http_port(leader);
    const load_result load = put_many(port, "t/", 100, 8);
    BOOST_TEST_REQUIRE(load.ok == 100u, load.first_failure);
    static temp_dir dir;
    const std::string file = (dir / "three.backup").string(), later = (dir / "later.backup").string();
    cli_result r = run_cli(with_endpoints(url(port), {"backup", file}));
    BOOST_TEST_REQUIRE(r.code == ok, r);
    BOOST_TEST_REQUIRE(put(port, "after the backup", "x").status == 200);
    r = run_cli(with_endpoints(url(port), {"backup", later}));
    BOOST_TEST_REQUIRE(r.code == ok, r);

    cluster restored(3, false, {"--restore-backup", file});
    restored.start_all();
    const auto first_leader = restored.wait_ready(20s);
    BOOST_TEST_REQUIRE(first_leader.has_value());
    for (std::uint64_t id = 1; id <= 3; ++id) {
        BOOST_TEST(get_many(restored.http_port(id), "t/", 100, 8).ok == 100u, "node " << id);
        BOOST_TEST(get(restored.http_port(id), "after the backup").status == 404, "node " << id);
    }
    const auto status = get_status(restored.http_port(1));
    BOOST_TEST_REQUIRE(status.has_value());
    BOOST_TEST(status->members.size() == 3u);
    BOOST_TEST(put(restored.http_port(1), "t/new", "y").status == 200);

    // Node 3 wiped and restored from the later backup: another state, so another cluster id.
    BOOST_TEST_REQUIRE(restored.terminate(3).has_value());
    std::filesystem::remove_all(restored.spec(3).data_dir);
    std::vector<std::string> other = restored.args(3);
    *(std::find(other.begin(), other.end(), "--restore-backup") + 1) = later;
    restored.start(3, other);
    BOOST_TEST(wait_until(
                   [&] {
                       const std::string log = read_tail(restored.spec(3).log_file, 1 << 20);
                       return log.find("refused") != std::string::npos &&
                              log.find("of cluster") != std::string::npos;
                   },
                   15s),
               read_tail(restored.spec(3).log_file));
    BOOST_TEST(put(restored.http_port(1), "t/two", "z").status == 200, "nodes 1 and 2 still make a quorum");
    const auto other_status = get_status(restored.http_port(3));
    BOOST_TEST_REQUIRE(other_status.has_value());
    BOOST_TEST(other_status->cluster_id != status->cluster_id);
    BOOST_TEST(!other_status->leader.has_value(), "alone in its cluster of three, it elects no one");
}

BOOST_AUTO_TEST_SUITE_END()

// A 404 from something else than raftkv says nothing of a key, nor does a 200 without the
// answer's fields say it was read: both are answers the client does not understand.
BOOST_AUTO_TEST_CASE(an_answer_that_is_not_raftkvs_is_not_taken_for_one)
{
    const std::string page = "<html>not here</html>";
    canned_server other("HTTP/1.1 404 Not Found\r\nContent-Type: text/html\r\nContent-Length: " +
                        std::to_string(page.size()) + "\r\nConnection: close\r\n\r\n" + page);
    for (const std::vector<std::string>& args :
         std::vector<std::vector<std::string>>{{"get", "k"}, {"del", "k"}, {"member", "remove", "3"}}) {
        const cli_result r = run_cli(with_endpoints(url(other.port()), args));
        BOOST_TEST(r.code == server_error, args.front() << ": " << r);
        BOOST_TEST(r.err.find("not an answer of raftkv's") != std::string::npos, r);
    }
    canned_server empty("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                        "2\r\nConnection: close\r\n\r\n{}");
    cli_result r = run_cli(with_endpoints(url(empty.port()), {"get", "k"}));
    BOOST_TEST(r.code == server_error, r);
    BOOST_TEST(r.out.empty(), r);
    // status gives such an endpoint a row of one line saying so, and goes on to the next.
    const std::string multi_line = "<html>\n<body>not\nhere</body>\n</html>";
    canned_server html("HTTP/1.1 404 Not Found\r\nContent-Type: text/html\r\nContent-Length: " +
                       std::to_string(multi_line.size()) + "\r\nConnection: close\r\n\r\n" + multi_line);
    canned_server hello("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello");
    r = run_cli(with_endpoints(url(html.port()) + "," + url(hello.port()), {"status"}));
    BOOST_TEST(r.code == server_error, r);
    BOOST_TEST(lines_of(r.out) == 3u, r);
    BOOST_TEST(r.out.find("not an answer of raftkv's (HTTP 404)") != std::string::npos, r);
    BOOST_TEST(r.out.find("not an answer of raftkv's (HTTP 200): hello") != std::string::npos, r);
    // A command's error is one line too, and what a foreign server sends cannot reach the
    // terminal as escape sequences.
    r = run_cli(with_endpoints(url(html.port()), {"get", "k"}));
    BOOST_TEST(r.code == server_error, r);
    BOOST_TEST(lines_of(r.err) == 1u, r);
    const std::string colour = "\x1b[31mred\x1b]0;title\x07";
    canned_server escapes("HTTP/1.1 500 Oops\r\nContent-Length: " + std::to_string(colour.size()) +
                          "\r\nConnection: close\r\n\r\n" + colour);
    r = run_cli(with_endpoints(url(escapes.port()), {"get", "k"}));
    BOOST_TEST(r.code == server_error, r);
    BOOST_TEST(r.err.find('\x1b') == std::string::npos, r);
    BOOST_TEST(r.err.find("\\x1b[31mred") != std::string::npos, r);
}

BOOST_AUTO_TEST_CASE(help_and_usage_errors)
{
    cli_result r = run_cli({"--help"});
    BOOST_TEST(r.code == ok, r);
    BOOST_TEST(r.out.find("Exit codes:") != std::string::npos);
    for (const char* command : {"put", "get", "del", "ls", "status", "members"}) {
        r = run_cli({command, "--help"});
        BOOST_TEST(r.code == ok, command << ": " << r);
        BOOST_TEST(r.out.starts_with(std::string("Usage: raftkv [global options] ") + command), r);
    }
    r = run_cli({"member", "add", "--help"});
    BOOST_TEST(r.out.find("--learner") != std::string::npos, r);
    // A group's help is the help of each of its commands.
    r = run_cli({"member", "--help"});
    BOOST_TEST(r.code == ok, r);
    BOOST_TEST(r.out.find("raftkv [global options] member add") != std::string::npos, r);
    BOOST_TEST(r.out.find("raftkv [global options] member remove") != std::string::npos, r);
    {
        temp_dir files;
        std::ofstream(files / "empty").flush();
        r = run_cli({"--token-file", (files / "empty").string(), "get", "k"});
        BOOST_TEST(r.code == usage, r);
        BOOST_TEST(r.err.find("is empty") != std::string::npos, r);
    }
    for (const std::vector<std::string>& bad :
         std::vector<std::vector<std::string>>{{},
                                               {"frobnicate"},
                                               {"get"},
                                               {"put", "k"},
                                               {"get", "a", "b"},
                                               {"ls", "--limit", "x"},
                                               {"ls", "--limit", "-1"},
                                               {"watch", "k", "--from", "-1"},
                                               {"member", "add", "4"},
                                               {"member", "remove", "0"},
                                               {"member", "update", "4"},
                                               {"--timeout", "soon", "get", "k"},
                                               {"--timeout", "1.", "get", "k"},
                                               {"--timeout", ".5", "get", "k"},
                                               {"--timeout", "1.2345", "get", "k"},
                                               {"--timeout", "1.5ms", "get", "k"},
                                               {"--timeout", "0.000", "get", "k"},
                                               {"--endpoints", "ftp://x:1", "get", "k"},
                                               {"--cert", "c.pem", "get", "k"},
                                               {"--cacert", "/nonexistent/ca.pem", "get", "k"},
                                               {"member"},
                                               {"leader", "frob", "2"},
                                               {"--token-file", "/nonexistent/token", "get", "k"}}) {
        r = run_cli(bad);
        BOOST_TEST(r.code == usage, r);
        BOOST_TEST(!r.err.empty());
    }
    // An option the client does not know is named as an option, not as a command.
    const std::vector<std::pair<std::vector<std::string>, std::string>> unknown_options = {
        {{"--bogus"}, "--bogus"},
        {{"--bogus", "get", "k"}, "--bogus"},
        {{"--json", "--bogus=1", "get", "k"}, "--bogus=1"},
        {{"-q"}, "-q"},
        {{"--help", "--bogus"}, "--bogus"}};
    for (const auto& [bad, option] : unknown_options) {
        r = run_cli(bad);
        BOOST_TEST(r.code == usage, r);
        BOOST_TEST(r.err.find("unknown option '" + option + "'") != std::string::npos, r);
        BOOST_TEST(r.err.find("unknown command") == std::string::npos, r);
    }
    r = run_cli({"--endpoints", "http://127.0.0.1", "get", "k"});
    BOOST_TEST(r.code == usage, r);
    BOOST_TEST(r.err.find("the port included") != std::string::npos, r);
    r = run_cli({"get", "--bogus", "k"});
    BOOST_TEST(r.code == usage, r);
    BOOST_TEST(r.err.find("--bogus") != std::string::npos, r);
    BOOST_TEST(r.err.find("unknown command") == std::string::npos, r);
}

BOOST_AUTO_TEST_CASE(version_prints_the_build_as_the_server_does_and_asks_no_server)
{
    temp_dir dir;
    const run_result server = run_server({"--version"}, 10s, dir.path());
    BOOST_TEST_REQUIRE(server.status.has_value(), "raftkv-server --version did not exit within 10 s");
    BOOST_TEST_REQUIRE(server.out.starts_with("raftkv-server "), server.out);
    const std::string expected = "raftkv " + server.out.substr(std::string_view("raftkv-server ").size());
    // No endpoint listens on port 1: the version needs none.
    for (const std::vector<std::string>& args :
         std::vector<std::vector<std::string>>{{"--version"},
                                               {"version"},
                                               {"--endpoints", "http://127.0.0.1:1", "version"},
                                               {"get", "k", "--version"}}) {
        const cli_result r = run_cli(args);
        BOOST_TEST(r.code == ok, r);
        BOOST_TEST(r.out == expected, r);
        BOOST_TEST(r.err.empty(), r);
    }
    cli_result r = run_cli({"version", "--help"});
    BOOST_TEST(r.code == ok, r);
    BOOST_TEST(r.out.starts_with("Usage: raftkv [global options] version"), r);
    r = run_cli({"--help"});
    BOOST_TEST(r.out.find("--version") != std::string::npos, r);
    BOOST_TEST(r.out.find("\n  version\n") != std::string::npos, r);
    r = run_cli({"version", "extra"});
    BOOST_TEST(r.code == usage, r);
}

BOOST_AUTO_TEST_CASE(tokens_are_sent_and_refusals_have_their_own_exit_code)
{
    temp_dir files;
    const std::string write_token = "cli-write-5f0c1b9e2d7a4c38";
    const std::string read_token = "cli-read-9a7c3e5b1d2f4068";
    std::ofstream(files / "tokens") << write_token << " write\n" << read_token << " read\n";
    std::ofstream(files / "mine") << write_token << "\n";
    cluster c(1, true, {"--auth-tokens", (files / "tokens").string()});
    set_bearer_token(write_token);
    const bool healthy = c.wait_healthy(1, 20s);
    set_bearer_token("");
    BOOST_TEST_REQUIRE(healthy);
    const std::string endpoints = url(c.http_port(1));

    cli_result r = run_cli(with_endpoints(endpoints, {"put", "k", "v"}));
    BOOST_TEST(r.code == unauthorized, r);
    r = run_cli(with_endpoints(endpoints, {"--token-file", (files / "mine").string(), "put", "k", "v"}));
    BOOST_TEST(r.code == ok, r);
    r = run_cli(with_endpoints(endpoints, {"--token", read_token, "put", "k", "w"}));
    BOOST_TEST(r.code == unauthorized, r);
    r = run_cli(with_endpoints(endpoints, {"--token", read_token, "get", "k"}));
    BOOST_TEST(r.out == "v\n", r);
}

BOOST_AUTO_TEST_CASE(https_endpoints_with_a_ca_and_a_client_certificate)
{
    temp_dir certs;
    const std::string make = std::string(RAFTKV_MAKE_CERTS) + " '" + certs.path().string() + "' 1 >/dev/null";
    BOOST_TEST_REQUIRE(std::system(make.c_str()) == 0, "make-certs.sh failed");
    const auto file = [&](const std::string& name) { return (certs / name).string(); };
    cluster c{1, false};
    std::vector<std::string> args = c.args(1);
    args.insert(args.end(),
                {"--cert", file("node-1.crt"), "--key", file("node-1.key"), "--client-ca", file("ca.crt")});
    c.start(1, args);
    const std::string endpoint = "https://127.0.0.1:" + std::to_string(c.http_port(1));
    const std::vector<std::string> tls = {"--endpoints", endpoint,           "--cacert", file("ca.crt"),
                                          "--cert",      file("client.crt"), "--key",    file("client.key")};
    auto cli = [&](std::vector<std::string> more) {
        std::vector<std::string> all = tls;
        all.insert(all.end(), more.begin(), more.end());
        return run_cli(all);
    };
    cli_result r;
    BOOST_TEST_REQUIRE(wait_until(
                           [&] {
                               return (r = cli({"put", "k", "over tls"})).code == ok;
                           },
                           20s, 200ms),
                       r);
    r = cli({"get", "k"});
    BOOST_TEST(r.out == "over tls\n", r);

    // Without the client certificate, or trusting only the system's CAs: no answer.
    r = run_cli({"--endpoints", endpoint, "--cacert", file("ca.crt"), "--timeout", "3s", "put", "k", "v"});
    BOOST_TEST(r.code == unavailable, r);
    BOOST_TEST(r.err.starts_with("raftkv: no endpoint served the request: " + endpoint +
                                 ": the server refused the TLS handshake: "),
               r);
    BOOST_TEST(r.err.find("outcome is unknown") == std::string::npos, r);
    // A watch, which resumes after failures that pass, stops on one that does not.
    r = run_cli({"--endpoints", endpoint, "--cacert", file("ca.crt"), "--timeout", "3s", "watch", "k"}, 15s);
    BOOST_TEST(r.code == unavailable, r);
    BOOST_TEST(r.err.find("raftkv: no endpoint served the request: " + endpoint +
                          ": the server refused the TLS handshake") != std::string::npos,
               r);
    // An https:// URL for a port that serves plain HTTP says so; a read has no unknown outcome.
    cluster plain{1};
    BOOST_TEST_REQUIRE(plain.wait_ready(20s).has_value());
    r = run_cli({"--endpoints", "https://127.0.0.1:" + std::to_string(plain.http_port(1)), "--cacert",
                 file("ca.crt"), "--timeout", "3s", "get", "k"});
    BOOST_TEST(r.code == unavailable, r);
    BOOST_TEST(r.err.find("if it serves plain HTTP, use an http:// URL") != std::string::npos, r);
    BOOST_TEST(r.err.find("outcome is unknown") == std::string::npos, r);
    r = run_cli({"--endpoints", endpoint, "--cert", file("client.crt"), "--key", file("client.key"),
                 "--timeout", "3s", "get", "k"});
    BOOST_TEST(r.code == unavailable, r);
    // Trusting only the system's CAs: the verification's reason is given (which one depends
    // on whether the server sends its CA along).
    BOOST_TEST((r.err.find("(unable to get local issuer certificate") != std::string::npos ||
                r.err.find("(self-signed certificate in certificate chain") != std::string::npos),
               r);
    BOOST_TEST(r.err.find(": the CA that signed it is not among the trusted ones)") != std::string::npos, r);
    // A TLS file that cannot be read is a usage error.
    r = run_cli({"--endpoints", endpoint, "--cacert", file("missing.crt"), "get", "k"});
    BOOST_TEST(r.code == usage, r);
}
