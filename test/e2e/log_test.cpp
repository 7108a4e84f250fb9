// raftkv-server's log on a real process: with --log-format json, everything it writes to
// stderr is JSON, one object per line, the transport's lines and bytes a client chose included.

#include "harness.hpp"

#define BOOST_TEST_MODULE e2e_log
#include <boost/test/unit_test.hpp>

#include <csignal>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

using namespace raftkv::e2e;
using namespace std::chrono_literals;

BOOST_AUTO_TEST_CASE(a_server_with_log_format_json_writes_only_json_lines_to_stderr)
{
    temp_dir dir;
    const auto ports = free_ports(2);
    const std::string http = "127.0.0.1:" + std::to_string(ports[0]);
    const std::string raft = "127.0.0.1:" + std::to_string(ports[1]);
    process server(
        {"--data-dir", (dir / "data").string(), "--http", http, "--raft", raft, "--log-format", "json",
         "--log-level", "debug"},
        {.program = {}, .stdout_file = dir / "stdout", .stderr_file = dir / "stderr", .cwd = dir.path()});
    BOOST_TEST_REQUIRE(
        wait_until([&] { return request(ports[0], "GET", "/health", {}, 1s).status == 200; }, 20s),
        read_tail(dir / "stderr"));

    // At debug level every request is logged with its target: quotes, a backslash and bytes
    // that are not UTF-8, as a client sent them.
    send_raw(ports[0], "GET /kv/a\"b\\c\xff\xfe HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    // The transport refuses a connection that does not greet: a line from raftkv::asio.
    send_raw(ports[1], "GET / HTTP/1.1\r\n\r\n");
    BOOST_TEST_REQUIRE(wait_until(
                           [&] {
                               const std::string err = read_tail(dir / "stderr", 1 << 20);
                               return err.find("refused connection from") != std::string::npos &&
                                      err.find("GET /kv/a") != std::string::npos;
                           },
                           10s),
                       read_tail(dir / "stderr"));
    server.signal(SIGTERM);
    const auto status = server.wait(10s);
    BOOST_TEST_REQUIRE(status.has_value());
    BOOST_TEST((status->exited && status->code == 0), *status);

    const std::string err = read_tail(dir / "stderr", 1 << 20);
    BOOST_TEST_REQUIRE(err.ends_with('\n'), err);
    const std::regex timestamp(R"(^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$)");
    std::vector<json_body> lines;
    std::istringstream in(err);
    for (std::string line; std::getline(in, line);) {
        json_body j = parse_json(line);
        BOOST_TEST_REQUIRE((j.valid && j.is_object), "not a JSON object: " << line);
        BOOST_TEST(std::regex_match(j.string("ts").value_or(""), timestamp), line);
        BOOST_TEST(j.kind["level"] == "string", line);
        BOOST_TEST(j.text["node"] == "1", line);
        BOOST_TEST(j.kind["term"] == "integer", line);
        BOOST_TEST(j.kind["msg"] == "string", line);
        lines.push_back(std::move(j));
    }
    BOOST_TEST_REQUIRE(lines.size() >= 4u, err);

    const auto find = [&](std::string_view text) -> const json_body* {
        for (const json_body& j : lines)
            if (j.text.at("msg").find(text) != std::string::npos)
                return &j;
        return nullptr;
    };
    const json_body* refused = find("refused connection from 127.0.0.1:");
    BOOST_TEST_REQUIRE(refused != nullptr, err);
    BOOST_TEST(refused->text.at("level") == "warn");
    const std::string fffd = "\xef\xbf\xbd"; // U+FFFD in place of each byte that is not UTF-8
    const json_body* request_line = find("GET /kv/a\"b\\c" + fffd + fffd + " -> ");
    BOOST_TEST_REQUIRE(request_line != nullptr, err);
    BOOST_TEST(request_line->text.at("level") == "debug");
    BOOST_TEST(lines.back().text.at("msg") == "stopped");
}

// A follower that stops answering while its connection stays open (SIGSTOP: the transport
// sees nothing close) is named once in the leader's log, and again when it answers; a
// leader that loses its quorum says it stepped down, not that it lost a leader.
BOOST_AUTO_TEST_CASE(the_leader_names_a_silent_follower_and_says_when_it_steps_down)
{
    cluster c(3);
    const auto leader = c.wait_ready(20s);
    BOOST_TEST_REQUIRE(leader.has_value());
    const std::uint64_t paused = *leader == 1 ? 2 : 1;
    const std::uint64_t other = 6 - *leader - paused;
    const std::string silent =
        "node " + std::to_string(paused) + " has not answered for over an election timeout";
    const std::string back = "node " + std::to_string(paused) + " answers again";
    const auto count = [](const std::string& text, const std::string& what) {
        std::size_t n = 0;
        for (std::size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1))
            ++n;
        return n;
    };
    c.signal(paused, SIGSTOP);
    BOOST_TEST(
        wait_until([&] { return read_tail(c.spec(*leader).log_file).find(silent) != std::string::npos; },
                   10s),
        read_tail(c.spec(*leader).log_file));
    std::this_thread::sleep_for(2s); // once, not once a check
    BOOST_TEST(count(read_tail(c.spec(*leader).log_file, 1 << 20), silent) == 1u);
    c.signal(paused, SIGCONT);
    BOOST_TEST(
        wait_until([&] { return read_tail(c.spec(*leader).log_file).find(back) != std::string::npos; }, 10s),
        read_tail(c.spec(*leader).log_file));

    // Both followers gone: the leader steps down (CheckQuorum) and says so, and why.
    c.signal(paused, SIGSTOP);
    c.signal(other, SIGSTOP);
    BOOST_TEST(
        wait_until(
            [&] {
                return read_tail(c.spec(*leader).log_file)
                           .find("stepped down: heard from no quorum of voters for an election timeout") !=
                       std::string::npos;
            },
            10s),
        read_tail(c.spec(*leader).log_file));
    const std::string metrics = request(c.http_port(*leader), "GET", "/metrics").body;
    BOOST_TEST(metrics.find("raftkv_leader_step_downs_total{reason=\"check_quorum\"} 1") != std::string::npos,
               metrics);
    const std::string status = request(c.http_port(*leader), "GET", "/status").body;
    BOOST_TEST(status.find("\"last_step_down\":{\"reason\":\"check_quorum\"") != std::string::npos, status);
    BOOST_TEST(read_tail(c.spec(*leader).log_file).find("lost leader " + std::to_string(*leader)) ==
               std::string::npos);
    c.signal(paused, SIGCONT);
    c.signal(other, SIGCONT);
}
