// Cluster identity on real processes: a data directory belongs to one node of one cluster
// (docs/server.md), flags that contradict it refuse to start, a node of another cluster is
// refused at the Raft port, and a leader stopped with SIGTERM hands leadership over first.
#define BOOST_TEST_MODULE raftkv_e2e_identity
#include <boost/test/unit_test.hpp>

#include "harness.hpp"

#include <algorithm>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace {

using namespace raftkv::e2e;

/// `args` with the value of `flag` replaced by `value`.
std::vector<std::string> with_flag(std::vector<std::string> args, const std::string& flag,
                                   const std::string& value)
{
    const auto it = std::find(args.begin(), args.end(), flag);
    BOOST_TEST_REQUIRE((it != args.end() && it + 1 != args.end()), flag);
    *(it + 1) = value;
    return args;
}

/// `args` without `flag` and its value.
std::vector<std::string> without_flag(std::vector<std::string> args, const std::string& flag)
{
    const auto it = std::find(args.begin(), args.end(), flag);
    BOOST_TEST_REQUIRE((it != args.end() && it + 1 != args.end()), flag);
    args.erase(it, it + 2);
    return args;
}

std::size_t lines(const std::string& s)
{
    return static_cast<std::size_t>(std::count(s.begin(), s.end(), '\n'));
}

/// A running 3-node cluster whose node 3 is stopped cleanly; the leader's id.
std::uint64_t stop_node_3(cluster& c)
{
    auto leader = c.wait_ready(20s);
    BOOST_TEST_REQUIRE(leader.has_value());
    BOOST_TEST_REQUIRE(put(c.http_port(1), "before", "1").status == 200);
    const auto ended = c.terminate(3);
    BOOST_TEST_REQUIRE(ended.has_value());
    BOOST_TEST_REQUIRE(ended->exited);
    return *leader;
}

} // namespace

BOOST_AUTO_TEST_CASE(the_first_start_records_the_identity_in_the_data_directory)
{
    cluster c(3);
    BOOST_TEST_REQUIRE(c.wait_ready(20s).has_value());
    std::string first;
    for (std::uint64_t id = 1; id <= 3; ++id) {
        const std::string text = read_tail(c.spec(id).data_dir / "identity");
        BOOST_TEST(text.starts_with("raftkv-identity 2\ncluster-id 0x"), text);
        BOOST_TEST(text.find("node-id " + std::to_string(id) + "\n") != std::string::npos, text);
        BOOST_TEST(text.find("member 3 " + c.spec(3).raft_address() + "\n") != std::string::npos, text);
        const std::string cluster_line = text.substr(0, text.find("node-id"));
        if (id == 1)
            first = cluster_line;
        BOOST_TEST(cluster_line == first, "every node derives the same cluster id");
    }
}

BOOST_AUTO_TEST_CASE(a_restart_with_another_id_refuses_with_one_line)
{
    cluster c(3);
    stop_node_3(c);
    auto args = with_flag(c.args(3), "--id", "4");
    args = with_flag(args, "--peers",
                     "1=" + c.spec(1).raft_address() + ",2=" + c.spec(2).raft_address() +
                         ",4=" + c.spec(3).raft_address());
    const auto r = run_server(args);
    BOOST_TEST_REQUIRE(r.status.has_value());
    BOOST_TEST(r.status->exited);
    BOOST_TEST(r.status->code == 2);
    BOOST_TEST(lines(r.err) == 1u, r.err);
    BOOST_TEST(r.err.find("--id is 4") != std::string::npos, r.err);
    BOOST_TEST(r.err.find("belongs to node 3") != std::string::npos, r.err);
}

BOOST_AUTO_TEST_CASE(a_restart_with_another_member_list_refuses_with_one_line)
{
    cluster c(3);
    stop_node_3(c);
    // The hostile case of issue 8: a member restarted with only itself would elect itself.
    const auto r = run_server(with_flag(c.args(3), "--peers", "3=" + c.spec(3).raft_address()));
    BOOST_TEST_REQUIRE(r.status.has_value());
    BOOST_TEST(r.status->exited);
    BOOST_TEST(r.status->code == 2);
    BOOST_TEST(lines(r.err) == 1u, r.err);
    BOOST_TEST(r.err.find("--peers is 3=") != std::string::npos, r.err);
    BOOST_TEST(r.err.find("without --peers") != std::string::npos, r.err);
}

BOOST_AUTO_TEST_CASE(a_restart_with_another_cluster_token_refuses_with_one_line)
{
    cluster c(3);
    stop_node_3(c);
    auto args = c.args(3);
    args.insert(args.end(), {"--cluster-token", "other"});
    const auto r = run_server(args);
    BOOST_TEST_REQUIRE(r.status.has_value());
    BOOST_TEST(r.status->code == 2);
    BOOST_TEST(lines(r.err) == 1u, r.err);
    BOOST_TEST(r.err.find("--cluster-token") != std::string::npos, r.err);
}

// Nor --raft and --http: it listens where it did, and publishes the same HTTP address.
BOOST_AUTO_TEST_CASE(a_restart_without_peers_uses_the_recorded_members_and_rejoins)
{
    cluster c(3);
    stop_node_3(c);
    c.start(3, without_flag(without_flag(without_flag(c.args(3), "--peers"), "--raft"), "--http"));
    BOOST_TEST_REQUIRE(c.wait_ready(20s).has_value());
    const std::string http = "127.0.0.1:" + std::to_string(c.http_port(3));
    BOOST_TEST(wait_until(
        [&] {
            return request(c.http_port(1), "GET", "/cluster/members").body.find(http) != std::string::npos;
        },
        5s));
    auto p = put(c.http_port(3), "after", "2");
    BOOST_TEST(p.status == 200, describe(p));
    auto g = get(c.http_port(3), "before");
    BOOST_TEST(parse_json(g.body).string("value").value_or("<none>") == "1", describe(g));
    const auto st = get_status(c.http_port(3));
    BOOST_TEST_REQUIRE(st.has_value());
    BOOST_TEST(st->members.size() == 3u);
}

// A restart with --raft on a port the peers do not dial starts (a forwarder may stand in
// between), but says at once why the node will not hear from its peers.
BOOST_AUTO_TEST_CASE(a_restart_with_raft_on_another_port_warns_that_no_peer_dials_it)
{
    cluster c(3);
    stop_node_3(c);
    const std::uint16_t other = free_ports(1).front();
    c.start(3, with_flag(without_flag(c.args(3), "--peers"), "--raft", "127.0.0.1:" + std::to_string(other)));
    const std::string expected = "node 3 listens for Raft at 127.0.0.1:" + std::to_string(other) +
                                 " (--raft), but the configuration at index 0 has the members dial it at " +
                                 c.spec(3).raft_address(); // the bootstrap configuration
    BOOST_TEST(
        wait_until([&] { return read_tail(c.spec(3).log_file).find(expected) != std::string::npos; }, 5s),
        read_tail(c.spec(3).log_file));
    BOOST_TEST(c.running(3));
    // The right port on another IP address (127.0.0.2 is loopback too): the same.
    c.terminate(3);
    const std::string dialed = c.spec(3).raft_address();
    const std::string elsewhere = "127.0.0.2" + dialed.substr(dialed.find(':'));
    c.start(3, with_flag(without_flag(c.args(3), "--peers"), "--raft", elsewhere));
    const std::string on_another_host =
        "node 3 listens for Raft at " + elsewhere +
        " (--raft), but the configuration at index 0 has the members dial it at " + dialed;
    BOOST_TEST(
        wait_until([&] { return read_tail(c.spec(3).log_file).find(on_another_host) != std::string::npos; },
                   5s),
        read_tail(c.spec(3).log_file));
    // Restarted where the peers dial it, it rejoins without the warning.
    c.terminate(3);
    c.start(3, without_flag(without_flag(c.args(3), "--peers"), "--raft"));
    BOOST_TEST_REQUIRE(c.wait_ready(20s).has_value());
    const std::string log = read_tail(c.spec(3).log_file, 1 << 20);
    BOOST_TEST(log.find(expected) == log.rfind(expected), log);
    BOOST_TEST(log.find(on_another_host) == log.rfind(on_another_host), log);
}

BOOST_AUTO_TEST_CASE(a_data_directory_without_an_identity_file_is_adopted)
{
    // A cluster of a release without identity (and peers) files: lose them on every node.
    // (Node 3 alone without its identity would get a new incarnation, which its peers refuse.)
    cluster c(3);
    BOOST_TEST_REQUIRE(c.wait_ready(20s).has_value());
    BOOST_TEST_REQUIRE(put(c.http_port(1), "before", "1").status == 200);
    for (std::uint64_t id = 1; id <= 3; ++id) {
        BOOST_TEST_REQUIRE(c.terminate(id).has_value());
        std::filesystem::remove(c.spec(id).data_dir / "identity");
        std::filesystem::remove(c.spec(id).data_dir / "peers");
    }
    c.start_all();
    BOOST_TEST_REQUIRE(c.wait_ready(20s).has_value());
    BOOST_TEST(std::filesystem::exists(c.spec(3).data_dir / "identity"));
    BOOST_TEST(read_tail(c.spec(3).log_file).find("has no identity file") != std::string::npos);
    auto g = get(c.http_port(3), "before");
    BOOST_TEST(parse_json(g.body).string("value").value_or("<none>") == "1", describe(g));
}

BOOST_AUTO_TEST_CASE(a_member_that_lost_only_its_identity_file_is_refused_without_peers_and_then_by_its_peers)
{
    cluster c(3);
    stop_node_3(c);
    // Its peers recorded its incarnation when they dialed it at start.
    BOOST_TEST_REQUIRE(wait_until([&] { return lines(read_tail(c.spec(1).data_dir / "peers")) == 4u; }, 10s));
    std::filesystem::remove(c.spec(3).data_dir / "identity");

    // Without --peers its identity would be a cluster of itself alone: refused, nothing written.
    c.start(3, without_flag(without_flag(c.args(3), "--peers"), "--raft"));
    BOOST_TEST_REQUIRE(wait_until([&] { return !c.running(3); }, 15s), read_tail(c.spec(3).log_file));
    BOOST_TEST(c.exit_of(3).value_or(exit_status{}).code == 2);
    std::string log3 = read_tail(c.spec(3).log_file);
    BOOST_TEST(log3.find("holds Raft data but no identity file") != std::string::npos, log3);
    BOOST_TEST(log3.find("its log names other members (1,2)") != std::string::npos, log3);
    BOOST_TEST(log3.find("start it with --peers, the list it was bootstrapped with") != std::string::npos,
               log3);
    BOOST_TEST(log3.find("If it joined later (--join)") != std::string::npos, log3);
    BOOST_TEST(!std::filesystem::exists(c.spec(3).data_dir / "identity"));

    // With them, it is adopted under a new incarnation, which its peers do not know.
    c.start(3);
    BOOST_TEST_REQUIRE(wait_until([&] { return !c.running(3); }, 15s), read_tail(c.spec(3).log_file));
    BOOST_TEST(c.exit_of(3).value_or(exit_status{}).code == 1);
    log3 = read_tail(c.spec(3).log_file);
    BOOST_TEST(log3.find("has no identity file (lost, or written by a build without identity files)") !=
                   std::string::npos,
               log3);
    BOOST_TEST(log3.find("knows node 3 by another data directory") != std::string::npos, log3);
}

BOOST_AUTO_TEST_CASE(a_member_restarted_with_a_wiped_data_directory_exits_and_its_peers_refuse_it)
{
    cluster c(3);
    BOOST_TEST_REQUIRE(c.wait_ready(20s).has_value());
    for (int i = 0; i < 10; ++i) {
        std::string key = "k"; // not "k" + std::to_string(i): a false -Wrestrict (GCC 12, -O3)
        key += std::to_string(i);
        BOOST_TEST_REQUIRE(put(c.http_port(1), key, "v").status == 200);
    }
    // Every node has recorded every other's incarnation (they dial each other at start): a
    // header, a line per peer, a checksum.
    BOOST_TEST_REQUIRE(wait_until(
        [&] {
            for (std::uint64_t id = 1; id <= 3; ++id)
                if (lines(read_tail(c.spec(id).data_dir / "peers")) != 4u)
                    return false;
            return true;
        },
        10s));
    const std::string old_identity = read_tail(c.spec(3).data_dir / "identity");
    BOOST_TEST_REQUIRE(c.terminate(3).has_value());

    std::filesystem::remove_all(c.spec(3).data_dir);
    std::filesystem::create_directories(c.spec(3).data_dir);
    c.start(3);
    BOOST_TEST_REQUIRE(wait_until([&] { return !c.running(3); }, 15s), read_tail(c.spec(3).log_file));
    const auto ended = c.exit_of(3);
    BOOST_TEST_REQUIRE(ended.has_value());
    BOOST_TEST(ended->exited);
    BOOST_TEST(ended->code == 1);
    const std::string log3 = read_tail(c.spec(3).log_file);
    BOOST_TEST(log3.find("fatal: peer ") != std::string::npos, log3);
    BOOST_TEST(log3.find("knows node 3 by another data directory") != std::string::npos, log3);
    BOOST_TEST(log3.find("this node's data was lost") != std::string::npos, log3);
    BOOST_TEST(log3.find("--join") != std::string::npos, log3);
    BOOST_TEST(read_tail(c.spec(3).data_dir / "identity") != old_identity);

    // The others refused it and keep serving.
    bool refused = false;
    for (std::uint64_t id = 1; id <= 2; ++id)
        refused =
            refused ||
            read_tail(c.spec(id).log_file, 1 << 20).find("node 3 came back with a new data directory") !=
                std::string::npos;
    BOOST_TEST(refused);
    for (std::uint64_t id = 1; id <= 2; ++id) {
        auto p = put(c.http_port(id), "after-" + std::to_string(id), "x");
        BOOST_TEST(p.status == 200, "node " << id << ": " << describe(p));
    }
    auto g = get(c.http_port(2), "k9");
    BOOST_TEST(parse_json(g.body).string("value").value_or("<none>") == "v", describe(g));

    // Started again as is, it is refused again: its data is still not the one they know. Its
    // directory now predates the start, so it does not stop (the peer's record could as well
    // be the wrong one): it says so, and serves nothing.
    c.start(3);
    BOOST_TEST(wait_until(
                   [&] {
                       return read_tail(c.spec(3).log_file)
                                  .find(
                                      "this data directory predates this start, or peers greeted it since") !=
                              std::string::npos;
                   },
                   15s),
               read_tail(c.spec(3).log_file));
    BOOST_TEST(c.running(3));
    BOOST_TEST(request(c.http_port(3), "GET", "/readyz").status == 503);
}

// One member's record of its peers, wrong but well formed (a version 1 file has no checksum;
// think of one copied from another directory): the healthy peers it dials with it refuse it
// and say why, and run on. One peer's word must not stop them, one after the other.
BOOST_AUTO_TEST_CASE(a_wrong_peers_record_on_one_member_stops_no_healthy_peer)
{
    cluster c(3);
    stop_node_3(c);
    std::ofstream(c.spec(3).data_dir / "peers", std::ios::trunc)
        << "raftkv-peers 1\nincarnation 1 0x0000000000000011\nincarnation 2 0x0000000000000022\n";
    c.start(3);
    for (std::uint64_t id = 1; id <= 2; ++id)
        BOOST_TEST(
            wait_until(
                [&] {
                    return read_tail(c.spec(id).log_file, 1 << 20)
                               .find("this data directory predates this start, or peers greeted it since") !=
                           std::string::npos;
                },
                15s),
            "node " << id << ": " << read_tail(c.spec(id).log_file));
    BOOST_TEST(c.running(1));
    BOOST_TEST(c.running(2));
    BOOST_TEST(put(c.http_port(1), "during", "2").status == 200);
    // It refuses them in turn (the leader dials it to send its heartbeats).
    BOOST_TEST(wait_until(
                   [&] {
                       return read_tail(c.spec(3).log_file).find("came back with a new data directory") !=
                              std::string::npos;
                   },
                   10s),
               read_tail(c.spec(3).log_file));

    // Without the wrong file it records its peers again and rejoins.
    BOOST_TEST_REQUIRE(c.terminate(3).has_value());
    std::filesystem::remove(c.spec(3).data_dir / "peers");
    c.start(3);
    BOOST_TEST(wait_until([&] { return get(c.http_port(3), "during").status == 200; }, 20s));
    BOOST_TEST(c.running(1));
    BOOST_TEST(c.running(2));
}

BOOST_AUTO_TEST_CASE(a_member_restarted_with_its_data_intact_rejoins_as_itself)
{
    cluster c(3);
    stop_node_3(c);
    const std::string identity = read_tail(c.spec(3).data_dir / "identity");
    // A damaged peers file is damaged data: the node stops (exit 1) and says which file.
    const std::filesystem::path peers = c.spec(3).data_dir / "peers";
    BOOST_TEST_REQUIRE(std::filesystem::exists(peers));
    const std::string recorded = read_tail(peers);
    std::ofstream(peers, std::ios::trunc) << "\x01\x02 not: [yaml\n";
    c.start(3);
    BOOST_TEST(wait_until([&] { return !c.running(3); }, 10s));
    BOOST_TEST((c.exit_of(3) && c.exit_of(3)->code == 1));
    BOOST_TEST(read_tail(c.spec(3).log_file).find("is not a valid peers file") != std::string::npos,
               read_tail(c.spec(3).log_file));
    std::ofstream(peers, std::ios::trunc) << recorded;
    c.start(3);
    BOOST_TEST_REQUIRE(c.wait_ready(20s).has_value());
    auto p = put(c.http_port(3), "after", "2");
    BOOST_TEST(p.status == 200, describe(p));
    BOOST_TEST(read_tail(c.spec(3).data_dir / "identity") == identity);
    BOOST_TEST(c.running(3));
}

BOOST_AUTO_TEST_CASE(a_node_of_another_cluster_is_refused_at_the_raft_port_and_logged)
{
    cluster c(3);
    const auto leader = c.wait_ready(20s);
    BOOST_TEST_REQUIRE(leader.has_value());
    const auto before = get_status(c.http_port(2));
    BOOST_TEST_REQUIRE(before.has_value());

    // A two-node cluster of its own whose second member is node 2 of `c`: it dials node 2
    // as node 1 of cluster "foreign" once it campaigns.
    const auto ports = free_ports(2);
    temp_dir dir;
    process foreign({"--id", "1", "--data-dir", (dir / "data").string(), "--http",
                     "127.0.0.1:" + std::to_string(ports[0]), "--peers",
                     "1=127.0.0.1:" + std::to_string(ports[1]) + ",2=" + c.spec(2).raft_address(),
                     "--cluster-token", "foreign"},
                    {.program = {}, .stdout_file = dir / "log", .stderr_file = {}, .cwd = dir.path()});
    const bool refused = wait_until(
        [&] {
            const std::string log = read_tail(c.spec(2).log_file, 1 << 20);
            return log.find("refused connection from") != std::string::npos &&
                   log.find("of cluster") != std::string::npos;
        },
        15s);
    BOOST_TEST(refused, "node 2's log: " << read_tail(c.spec(2).log_file));

    const auto after = get_status(c.http_port(2));
    BOOST_TEST_REQUIRE(after.has_value());
    BOOST_TEST(after->leader.value_or(0) == *leader);
    BOOST_TEST(after->term == before->term);
    BOOST_TEST(put(c.http_port(2), "still", "serving").status == 200);
}

BOOST_AUTO_TEST_CASE(a_leader_stopped_with_sigterm_hands_leadership_over_first)
{
    cluster c(3);
    const auto leader = c.wait_ready(20s);
    BOOST_TEST_REQUIRE(leader.has_value());
    BOOST_TEST_REQUIRE(put(c.http_port(*leader), "k", "v").status == 200);
    const auto before = get_status(c.http_port(*leader));
    BOOST_TEST_REQUIRE(before.has_value());

    const auto ended = c.terminate(*leader, SIGTERM);
    BOOST_TEST_REQUIRE(ended.has_value());
    BOOST_TEST(ended->exited);
    BOOST_TEST(ended->code == 0);
    BOOST_TEST(read_tail(c.spec(*leader).log_file).find("handed leadership to node") != std::string::npos,
               read_tail(c.spec(*leader).log_file));

    const auto next = c.wait_for_leader(5s);
    BOOST_TEST_REQUIRE(next.has_value());
    BOOST_TEST(*next != *leader);
    const auto st = get_status(c.http_port(*next));
    BOOST_TEST_REQUIRE(st.has_value());
    // The transfer target campaigns at once, without waiting for an election timeout.
    BOOST_TEST(st->term == before->term + 1);
    auto p = put(c.http_port(*next), "after", "handoff");
    BOOST_TEST(p.status == 200, describe(p));
}

BOOST_AUTO_TEST_CASE(a_wildcard_http_address_in_a_cluster_needs_an_advertised_one)
{
    cluster c(3, false);
    auto r = run_server(with_flag(c.args(1), "--http", "0.0.0.0:" + std::to_string(c.http_port(1))));
    BOOST_TEST_REQUIRE(r.status.has_value());
    BOOST_TEST(r.status->code == 2);
    BOOST_TEST(lines(r.err) == 1u, r.err);
    BOOST_TEST(r.err.find("--advertise-http") != std::string::npos, r.err);

    auto args = with_flag(c.args(1), "--http", "0.0.0.0:" + std::to_string(c.http_port(1)));
    args.insert(args.end(), {"--advertise-http", c.spec(1).http_address()});
    c.start(1, args);
    c.start(2);
    c.start(3);
    const auto leader = c.wait_ready(20s);
    BOOST_TEST_REQUIRE(leader.has_value());
    // Every node forwards to the leader's advertised address, node 1 included.
    for (std::uint64_t id = 1; id <= 3; ++id) {
        auto p = put(c.http_port(id), "via-" + std::to_string(id), "x");
        BOOST_TEST(p.status == 200, "node " << id << ": " << describe(p));
    }
}

// A node bootstrapped alone may listen on every interface without an advertised address;
// it cannot grow so (the others would forward requests to 0.0.0.0), nor, once grown, be
// restarted so.
BOOST_AUTO_TEST_CASE(a_node_alone_on_a_wildcard_needs_an_advertised_address_to_grow)
{
    cluster c(1, false);
    const std::string wildcard = "0.0.0.0:" + std::to_string(c.http_port(1));
    c.start(1, with_flag(c.args(1), "--http", wildcard));
    BOOST_TEST_REQUIRE(c.wait_ready(20s).has_value());
    const std::uint64_t added = c.add_node(1);
    const http_response refused =
        request(c.http_port(1), "POST", "/cluster/members", c.member_body(added, true));
    BOOST_TEST(refused.status == 409, describe(refused));
    BOOST_TEST(refused.body.find("--advertise-http") != std::string::npos, refused.body);

    BOOST_TEST_REQUIRE(c.terminate(1).has_value());
    auto advertised = with_flag(c.args(1), "--http", wildcard);
    advertised.insert(advertised.end(), {"--advertise-http", c.spec(1).http_address()});
    c.start(1, advertised);
    BOOST_TEST_REQUIRE(c.wait_ready(20s).has_value());
    const http_response added_one =
        request(c.http_port(1), "POST", "/cluster/members", c.member_body(added, true));
    BOOST_TEST_REQUIRE(added_one.status == 201, describe(added_one));
    c.start(added);
    BOOST_TEST_REQUIRE(wait_until(
        [&] {
            const auto st = get_status(c.http_port(added));
            return st && st->members.size() == 2u;
        },
        20s));
    BOOST_TEST_REQUIRE(c.terminate(1).has_value());

    // Another wildcard, with nothing to advertise: refused now that it has grown.
    const std::string elsewhere = "0.0.0.0:" + std::to_string(free_ports(1).front());
    const auto r = run_server(with_flag(c.args(1), "--http", elsewhere));
    BOOST_TEST_REQUIRE(r.status.has_value());
    BOOST_TEST(r.status->code == 2);
    BOOST_TEST(r.err.find("--advertise-http") != std::string::npos, r.err);
    // The same wildcard as before advertises what it did with it.
    c.start(1, with_flag(c.args(1), "--http", wildcard));
    BOOST_TEST_REQUIRE(c.wait_ready(20s).has_value());
    const std::string advertised_http = c.spec(1).http_address();
    BOOST_TEST(wait_until(
        [&] {
            return request(c.http_port(added), "GET", "/cluster/members")
                       .body.find("\"http\":\"" + advertised_http) != std::string::npos;
        },
        10s));
}
