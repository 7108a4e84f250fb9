// Peer TLS (--peer-cert, --peer-key, --peer-ca): a cluster whose nodes all have it elects
// and replicates; a node that cannot prove its id (another node's certificate, another
// CA's, or no TLS at all) is refused by its peers, each side says why in its log, and the
// others keep serving (docs/security.md).
#define BOOST_TEST_MODULE raftkv_e2e_tls_peer
#include <boost/test/unit_test.hpp>

#include "harness.hpp"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace {

using namespace raftkv::e2e;

/// Certificates from scripts/make-certs.sh for nodes 1..n, in a directory of `dir`.
std::filesystem::path make_certs(const temp_dir& dir, const std::string& name, int n)
{
    const auto out = dir / name;
    const std::string command = std::string("bash '") + RAFTKV_MAKE_CERTS + "' '" + out.string() + "' " +
                                std::to_string(n) + " > '" + (dir / (name + ".log")).string() + "' 2>&1";
    BOOST_TEST_REQUIRE(std::system(command.c_str()) == 0, read_tail(dir / (name + ".log")));
    return out;
}

/// The peer TLS flags of a node that presents `cert` (node-<cert>.crt in `certs`) and
/// trusts `ca`.
std::vector<std::string> tls_flags(const std::filesystem::path& certs, std::uint64_t cert,
                                   const std::filesystem::path& ca)
{
    const std::string base = (certs / ("node-" + std::to_string(cert))).string();
    return {"--peer-cert", base + ".crt", "--peer-key", base + ".key", "--peer-ca", ca.string()};
}

/// Starts node `id` of `c` with `flags` after its own arguments.
void start_with(cluster& c, std::uint64_t id, const std::vector<std::string>& flags)
{
    auto args = c.args(id);
    args.insert(args.end(), flags.begin(), flags.end());
    c.start(id, args);
}

/// True once node `id`'s log holds `text`.
bool log_says(cluster& c, std::uint64_t id, const std::string& text, milliseconds timeout = 5s)
{
    return wait_until(
        [&] { return read_tail(c.spec(id).log_file, 64 * 1024).find(text) != std::string::npos; }, timeout);
}

/// Nodes 1 and 2 (with their own certificates) elect a leader and serve a write and a
/// read through either, whatever node 3 does.
void two_good_nodes_serve(cluster& c)
{
    std::optional<std::uint64_t> leader;
    BOOST_TEST_REQUIRE(wait_until(
        [&] {
            for (std::uint64_t id : {1, 2}) {
                auto st = get_status(c.http_port(id));
                if (st && st->role == "leader")
                    leader = id;
            }
            return leader.has_value();
        },
        15s));
    BOOST_TEST_REQUIRE(wait_until([&] { return put(c.http_port(1), "k", "v").status == 200; }, 10s));
    BOOST_TEST(wait_until(
        [&] { return parse_json(get(c.http_port(2), "k").body).string("value").value_or("") == "v"; }, 10s));
}

} // namespace

BOOST_AUTO_TEST_CASE(three_nodes_with_peer_tls_elect_a_leader_and_replicate)
{
    cluster c(3, false);
    const auto certs = make_certs(c.dir(), "certs", 3);
    for (std::uint64_t id = 1; id <= 3; ++id)
        start_with(c, id, tls_flags(certs, id, certs / "ca.crt"));
    const auto leader = c.wait_ready(20s);
    BOOST_TEST_REQUIRE(leader.has_value());
    auto p = put(c.http_port(*leader % 3 + 1), "over", "tls");
    BOOST_TEST_REQUIRE(p.status == 200, describe(p));
    for (std::uint64_t id = 1; id <= 3; ++id) {
        BOOST_TEST(
            wait_until(
                [&] {
                    return parse_json(get(c.http_port(id), "over").body).string("value").value_or("") ==
                           "tls";
                },
                5s),
            "node " << id << " did not serve the write");
        BOOST_TEST(log_says(c, id, "peer TLS on"));
    }
}

BOOST_AUTO_TEST_CASE(a_node_started_with_another_nodes_certificate_is_refused)
{
    cluster c(3, false);
    const auto certs = make_certs(c.dir(), "certs", 3);
    start_with(c, 1, tls_flags(certs, 1, certs / "ca.crt"));
    start_with(c, 2, tls_flags(certs, 2, certs / "ca.crt"));
    start_with(c, 3, tls_flags(certs, 1, certs / "ca.crt")); // node 1's
    two_good_nodes_serve(c);
    BOOST_TEST(log_says(c, 3, "is for CN=raftkv-node-1, not this node's CN=raftkv-node-3"));
    const std::string why = "node 3 presented a certificate for CN=raftkv-node-1, not CN=raftkv-node-3";
    BOOST_TEST((log_says(c, 1, why) || log_says(c, 2, why)), "no peer said why it refused node 3");
    auto st = get_status(c.http_port(3));
    BOOST_TEST_REQUIRE(st.has_value());
    BOOST_TEST(!st->leader.has_value(), "node 3 follows a leader it cannot have heard");
    BOOST_TEST(c.running(3));
}

BOOST_AUTO_TEST_CASE(a_certificate_from_another_ca_is_refused)
{
    cluster c(3, false);
    const auto certs = make_certs(c.dir(), "certs", 3);
    const auto other = make_certs(c.dir(), "other-ca", 3);
    start_with(c, 1, tls_flags(certs, 1, certs / "ca.crt"));
    start_with(c, 2, tls_flags(certs, 2, certs / "ca.crt"));
    start_with(c, 3, tls_flags(other, 3, certs / "ca.crt")); // the right name, signed by another CA
    two_good_nodes_serve(c);
    for (std::uint64_t id : {1, 2})
        BOOST_TEST(log_says(c, id, "certificate verify failed"), "node " << id << " did not say why");
    auto st = get_status(c.http_port(3));
    BOOST_TEST_REQUIRE(st.has_value());
    BOOST_TEST(!st->leader.has_value());
}

BOOST_AUTO_TEST_CASE(a_plain_node_cannot_talk_to_tls_peers_and_both_sides_say_so)
{
    cluster c(3, false);
    const auto certs = make_certs(c.dir(), "certs", 3);
    start_with(c, 1, tls_flags(certs, 1, certs / "ca.crt"));
    start_with(c, 2, tls_flags(certs, 2, certs / "ca.crt"));
    c.start(3); // no peer TLS
    two_good_nodes_serve(c);
    for (std::uint64_t id : {1, 2})
        BOOST_TEST(log_says(c, id, "TLS handshake failed"), "node " << id << " did not say why");
    BOOST_TEST((log_says(c, 3, "the peer uses peer TLS, this node does not") ||
                log_says(c, 3, "the peer answered in TLS")),
               "node 3 did not say why");
    BOOST_TEST(c.running(1));
    BOOST_TEST(c.running(2));
    BOOST_TEST(c.running(3));
}

BOOST_AUTO_TEST_CASE(peer_tls_files_that_cannot_be_used_stop_the_start_with_one_line)
{
    temp_dir dir;
    const auto certs = make_certs(dir, "certs", 1);
    const std::string data = (dir / "data").string();
    const auto ports = free_ports(2);
    const auto check = [&](std::vector<std::string> flags, const std::string& expected) {
        std::vector<std::string> args = {"--id",       "1",
                                         "--data-dir", data,
                                         "--http",     "127.0.0.1:" + std::to_string(ports[0]),
                                         "--raft",     "127.0.0.1:" + std::to_string(ports[1])};
        args.insert(args.end(), flags.begin(), flags.end());
        const run_result r = run_server(args);
        BOOST_TEST_REQUIRE(r.status.has_value());
        BOOST_TEST(r.status->exited);
        BOOST_TEST(r.status->code == 2, r.err);
        BOOST_TEST(r.err.find(expected) != std::string::npos, r.err);
        BOOST_TEST(r.err.find('\n') == r.err.size() - 1, "not one line: " << r.err);
    };
    auto flags = tls_flags(certs, 1, certs / "ca.crt");
    check({flags[0], flags[1]}, "go together");
    flags[5] = (dir / "absent.crt").string();
    check(flags, "--peer-ca: cannot read");
    // A readable file that holds no key.
    flags = tls_flags(certs, 1, certs / "ca.crt");
    flags[3] = (certs / "node-1.crt").string();
    check(flags, "peer TLS: cannot load the private key file");
}

BOOST_AUTO_TEST_CASE(a_node_without_peer_tls_on_a_non_loopback_raft_address_warns_once)
{
    cluster c(1, false);
    auto args = c.args(1);
    const auto raft = std::find(args.begin(), args.end(), "--raft");
    BOOST_TEST_REQUIRE((raft != args.end() && raft + 1 != args.end()));
    *(raft + 1) = "0.0.0.0:" + std::to_string(c.raft_port(1)); // every interface
    c.start(1, args);
    BOOST_TEST_REQUIRE(c.wait_healthy(1, 20s));
    BOOST_TEST(log_says(c, 1, "peer TLS is off and the Raft port 0.0.0.0:"));
    c.kill9(1);

    cluster loopback(1); // the harness's nodes listen on 127.0.0.1: no warning
    BOOST_TEST_REQUIRE(loopback.wait_healthy(1, 20s));
    BOOST_TEST(!log_says(loopback, 1, "peer TLS is off", 500ms));
}
