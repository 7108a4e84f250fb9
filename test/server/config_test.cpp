#include "config.hpp"
#include "version.hpp"

#include "leveldb/temp_dir.hpp"

#define BOOST_TEST_MODULE server_config
#include <boost/test/unit_test.hpp>

#include <fstream>
#include <string>
#include <vector>

namespace {

using raftkv::server::host_port;
using raftkv::server::log_format;
using raftkv::server::log_level;
using raftkv::server::parse_arguments;
using raftkv::server::parse_join_url;
using raftkv::server::parse_result;
using raftkv::server::server_config;
using raftkv::test::temp_dir;

parse_result parse(std::vector<std::string> args)
{
    return parse_arguments(args);
}

server_config parse_ok(std::vector<std::string> args)
{
    const parse_result r = parse(std::move(args));
    BOOST_TEST_REQUIRE(r.ok(), r.error);
    BOOST_TEST_REQUIRE(!r.help);
    return r.config;
}

// The error for `args`, which must be one line naming `expected`.
std::string parse_error(std::vector<std::string> args, const std::string& expected)
{
    const parse_result r = parse(args);
    BOOST_TEST_REQUIRE(!r.ok(), "no error for '" << (args.empty() ? "" : args.front()) << "...'");
    BOOST_TEST(r.error.find('\n') == std::string::npos, r.error);
    BOOST_TEST(r.error.find(expected) != std::string::npos,
               "error '" << r.error << "' lacks '" << expected << "'");
    return r.error;
}

const std::string three_peers = "1=127.0.0.1:9081,2=127.0.0.1:9082,3=127.0.0.1:9083";

std::map<raftkv::node_id, host_port> three_peer_map()
{
    return {{1, {"127.0.0.1", 9081}}, {2, {"127.0.0.1", 9082}}, {3, {"127.0.0.1", 9083}}};
}

/// Writes `contents` to a file in `dir` and returns its path.
std::string write_file(const temp_dir& dir, const std::string& contents,
                       const std::string& name = "raftkv.yaml")
{
    const std::string path = (dir / name).string();
    std::ofstream(path) << contents;
    return path;
}

} // namespace

// ---- Command line ---------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(no_flags_run_a_single_node_with_the_documented_defaults)
{
    const server_config c = parse_ok({});
    BOOST_TEST(c.id == 1u);
    BOOST_TEST(c.data_dir.string() == "raftkv-data");
    BOOST_TEST(c.http.to_string() == "127.0.0.1:8080");
    BOOST_TEST(c.raft.to_string() == "127.0.0.1:9080");
    BOOST_TEST((c.peers == std::map<raftkv::node_id, host_port>{{1, {"127.0.0.1", 9080}}}));
    BOOST_TEST(c.tick_ms == 10u);
    BOOST_TEST(c.election_ticks == 30u);
    BOOST_TEST(c.heartbeat_ticks == 5u);
    BOOST_TEST(c.request_timeout_ms == 5000u);
    BOOST_TEST(c.snapshot_entries == 10000u);
    BOOST_TEST(c.snapshot_catchup_entries == 5000u);
    BOOST_TEST(c.snapshot_catchup_bytes == 64u << 20);
    BOOST_TEST((c.log_level == log_level::info));
    BOOST_TEST(!c.auth_tokens_file.has_value());
    BOOST_TEST(c.auth_tokens.empty());
    BOOST_TEST(c.max_connections == 4096u);
    BOOST_TEST(c.max_pending_body_bytes == 64u << 20);
    BOOST_TEST(c.http_header_timeout_ms == 10000u);
    BOOST_TEST(c.http_body_timeout_ms == 60000u);
    BOOST_TEST(c.http_idle_timeout_ms == 60000u);
    BOOST_TEST(c.http_handshake_timeout_ms == 10000u);
    BOOST_TEST(c.raft_frame_timeout_ms == 30000u);
    BOOST_TEST(c.raft_greeting_timeout_ms == 5000u);
    BOOST_TEST(c.raft_max_ungreeted == 32u);
}

BOOST_AUTO_TEST_CASE(every_flag_is_read)
{
    const server_config c = parse_ok({"--id",
                                      "2",
                                      "--data-dir",
                                      "/var/lib/raftkv/2",
                                      "--http",
                                      "127.0.0.1:8082",
                                      "--raft",
                                      "127.0.0.1:9082",
                                      "--peers",
                                      three_peers,
                                      "--tick-ms",
                                      "20",
                                      "--election-ticks",
                                      "40",
                                      "--heartbeat-ticks",
                                      "4",
                                      "--request-timeout-ms",
                                      "1500",
                                      "--snapshot-entries",
                                      "200",
                                      "--snapshot-catchup-entries",
                                      "50",
                                      "--log-level",
                                      "debug"});
    BOOST_TEST(c.id == 2u);
    BOOST_TEST(c.data_dir.string() == "/var/lib/raftkv/2");
    BOOST_TEST(c.http.to_string() == "127.0.0.1:8082");
    BOOST_TEST(c.raft.to_string() == "127.0.0.1:9082");
    BOOST_TEST((c.peers == three_peer_map()));
    BOOST_TEST(c.tick_ms == 20u);
    BOOST_TEST(c.election_ticks == 40u);
    BOOST_TEST(c.heartbeat_ticks == 4u);
    BOOST_TEST(c.request_timeout_ms == 1500u);
    BOOST_TEST(c.snapshot_entries == 200u);
    BOOST_TEST(c.snapshot_catchup_entries == 50u);
    BOOST_TEST((c.log_level == log_level::debug));
}

BOOST_AUTO_TEST_CASE(flags_accept_an_equals_sign)
{
    const server_config c = parse_ok({"--id=3", "--peers=" + three_peers, "--http=localhost:8083"});
    BOOST_TEST(c.id == 3u);
    BOOST_TEST(c.http.to_string() == "localhost:8083");
}

BOOST_AUTO_TEST_CASE(raft_defaults_to_this_nodes_peer_entry)
{
    const server_config c = parse_ok({"--id", "3", "--peers", three_peers});
    BOOST_TEST(c.raft.to_string() == "127.0.0.1:9083");
}

BOOST_AUTO_TEST_CASE(peers_default_to_this_node_at_its_raft_address)
{
    const server_config c = parse_ok({"--id", "7", "--raft", "10.0.0.7:7000"});
    BOOST_TEST((c.peers == std::map<raftkv::node_id, host_port>{{7, {"10.0.0.7", 7000}}}));
}

BOOST_AUTO_TEST_CASE(join_takes_a_members_http_address_and_excludes_peers)
{
    const server_config c =
        parse_ok({"--id", "4", "--raft", "127.0.0.1:9084", "--join", "http://127.0.0.1:8081/"});
    BOOST_REQUIRE(c.join.has_value());
    BOOST_TEST(c.join->to_string() == "127.0.0.1:8081");
    BOOST_TEST(!c.join_https);
    parse_error({"--id", "4", "--join", "127.0.0.1:8081"},
                "--join: '127.0.0.1:8081' is not the HTTP address");
    parse_error({"--id", "4", "--join", "ftp://127.0.0.1:8081"}, "(http://HOST:PORT or https://HOST:PORT)");
    parse_error({"--id", "4", "--join", "https://"}, "is not the HTTP address");
    parse_error({"--id", "1", "--join", "http://127.0.0.1:8082", "--peers", three_peers}, "not both");
}

BOOST_AUTO_TEST_CASE(force_new_cluster_takes_a_cluster_id_and_this_node_alone)
{
    const server_config c = parse_ok({"--id", "3", "--force-new-cluster", "0x5d0c3c7be7d2f14a"});
    BOOST_TEST(c.force_new_cluster.value_or(0) == 0x5d0c3c7be7d2f14aull);
    // As GET /cluster/members writes it, without 0x.
    BOOST_TEST(
        parse_ok({"--id", "3", "--force-new-cluster", "5d0c3c7be7d2f14a"}).force_new_cluster.value_or(0) ==
        0x5d0c3c7be7d2f14aull);
    parse_error({"--force-new-cluster", "yes"}, "--force-new-cluster: 'yes' is not a cluster id");
    parse_error({"--force-new-cluster", "0x0000000000000000"}, "is not a cluster id");
    parse_error({"--id", "1", "--peers", three_peers, "--force-new-cluster", "5d0c3c7be7d2f14a"},
                "give --peers naming only it");
    parse_error({"--id", "4", "--join", "http://127.0.0.1:8081", "--force-new-cluster", "5d0c3c7be7d2f14a"},
                "it does not --join one");
}

BOOST_AUTO_TEST_CASE(a_backup_restores_into_one_node_or_every_member_of_peers)
{
    BOOST_TEST(parse_ok({"--restore-backup", "b.backup"}).restore_backup.value_or("") == "b.backup");
    const server_config c = parse_ok({"--id", "2", "--peers", three_peers, "--restore-backup", "b.backup"});
    BOOST_TEST(c.restore_backup.value_or("") == "b.backup");
    BOOST_TEST(c.peers.size() == 3u);
    parse_error({"--restore-backup", ""}, "the backup file must not be empty");
    parse_error({"--id", "4", "--join", "http://127.0.0.1:8081", "--restore-backup", "b.backup"},
                "it does not --join one");
}

BOOST_AUTO_TEST_CASE(inspect_reads_a_data_directory_and_starts_nothing)
{
    const parse_result r = parse({"--data-dir", "/var/lib/raftkv/3", "--inspect"});
    BOOST_TEST_REQUIRE(r.ok(), r.error);
    BOOST_TEST(r.inspect);
    BOOST_TEST(r.config.data_dir == "/var/lib/raftkv/3");
    BOOST_TEST(!parse({"--data-dir", "/var/lib/raftkv/3"}).inspect);
    // A flag's value that reads like it is the value, not the flag.
    const parse_result named = parse({"--data-dir", "--inspect"});
    BOOST_TEST_REQUIRE(named.ok(), named.error);
    BOOST_TEST(!named.inspect);
    BOOST_TEST(named.config.data_dir == "--inspect");
    parse_error({"--inspect=yes"}, "flag --inspect takes no value");
    parse_error({"--id", "4", "--join", "http://127.0.0.1:8081", "--inspect"},
                "--inspect reports on the data directory and starts nothing");
    parse_error({"--id", "3", "--force-new-cluster", "5d0c3c7be7d2f14a", "--inspect"},
                "--inspect reports on the data directory and starts nothing");
}

BOOST_AUTO_TEST_CASE(join_url_parses_both_schemes)
{
    const auto plain = parse_join_url("http://10.0.0.1:8081");
    BOOST_REQUIRE(plain.has_value());
    BOOST_TEST(plain->address.to_string() == "10.0.0.1:8081");
    BOOST_TEST(!plain->https);
    const auto tls = parse_join_url("https://node-1.example:8443/");
    BOOST_REQUIRE(tls.has_value());
    BOOST_TEST(tls->address.to_string() == "node-1.example:8443");
    BOOST_TEST(tls->https);
    const auto v6 = parse_join_url("https://[::1]:8081");
    BOOST_REQUIRE(v6.has_value());
    BOOST_TEST(v6->address.host == "::1");
    BOOST_TEST(!parse_join_url("https://node-1.example").has_value());
    BOOST_TEST(!parse_join_url("HTTPS://127.0.0.1:8081").has_value());
    BOOST_TEST(!parse_join_url("httpss://127.0.0.1:8081").has_value());
    BOOST_TEST(!parse_join_url("https//127.0.0.1:8081").has_value());
}

BOOST_AUTO_TEST_CASE(raft_may_differ_from_the_address_peers_dial)
{
    const server_config c = parse_ok({"--id", "1", "--raft", "0.0.0.0:9081", "--peers", three_peers});
    BOOST_TEST(c.raft.to_string() == "0.0.0.0:9081");
    BOOST_TEST(c.peers.at(1).to_string() == "127.0.0.1:9081");
}

BOOST_AUTO_TEST_CASE(the_peers_of_a_cluster_are_dialable_addresses_not_wildcards)
{
    parse_error({"--id", "1", "--peers", "1=0.0.0.0:9081,2=127.0.0.1:9082,3=127.0.0.1:9083"},
                "--peers: node 1's address 0.0.0.0:9081 is a wildcard address, which the other nodes "
                "cannot dial");
    parse_error({"--id", "1", "--peers", "1=127.0.0.1:9081,2=[::]:9082"},
                "node 2's address [::]:9082 is a wildcard");
    // A single node dials no one: listening on every interface is all it asks.
    const server_config single = parse_ok({"--id", "1", "--peers", "1=0.0.0.0:9081"});
    BOOST_TEST(single.raft.to_string() == "0.0.0.0:9081");
    BOOST_TEST(parse_ok({"--raft", "0.0.0.0:9080"}).peers.at(1).to_string() == "0.0.0.0:9080");
}

BOOST_AUTO_TEST_CASE(advertise_http_defaults_to_http)
{
    const server_config c = parse_ok({"--http", "10.0.0.1:8081"});
    BOOST_TEST(c.advertise_http.to_string() == "10.0.0.1:8081");
    BOOST_TEST(!c.advertise_http_given);
}

BOOST_AUTO_TEST_CASE(advertise_http_is_read_from_flags_and_the_config_file)
{
    const server_config c = parse_ok(
        {"--http", "0.0.0.0:8081", "--advertise-http", "node1.example:8081", "--peers", three_peers});
    BOOST_TEST(c.http.to_string() == "0.0.0.0:8081");
    BOOST_TEST(c.advertise_http.to_string() == "node1.example:8081");
    BOOST_TEST(c.advertise_http_given);

    temp_dir dir;
    const server_config f = parse_ok(
        {"--config",
         write_file(dir, "http: 0.0.0.0:8081\nadvertise-http: 10.0.0.1:8081\ncluster-token: prod\n")});
    BOOST_TEST(f.advertise_http.to_string() == "10.0.0.1:8081");
    BOOST_TEST(f.cluster_token.value_or("") == "prod");
}

BOOST_AUTO_TEST_CASE(a_wildcard_http_address_needs_an_advertised_one_in_a_cluster_only)
{
    parse_error({"--http", "0.0.0.0:8081", "--peers", three_peers}, "set --advertise-http");
    parse_error({"--http", "[::]:8081", "--peers", three_peers}, "set --advertise-http");
    const server_config single = parse_ok({"--http", "0.0.0.0:8081"});
    BOOST_TEST(single.http.to_string() == "0.0.0.0:8081");
    parse_error({"--advertise-http", "0.0.0.0:8081"},
                "--advertise-http: '0.0.0.0:8081' is a wildcard address");
    parse_error({"--advertise-http", "nope"}, "--advertise-http: 'nope' is not host:port");
}

BOOST_AUTO_TEST_CASE(cluster_tokens_are_printable_without_spaces)
{
    BOOST_TEST(!parse_ok({}).cluster_token.has_value());
    BOOST_TEST(parse_ok({"--cluster-token", "prod-1"}).cluster_token.value_or("") == "prod-1");
    parse_error({"--cluster-token", "a b"}, "is not a cluster token");
    parse_error({"--cluster-token", ""}, "is not a cluster token");
}

BOOST_AUTO_TEST_CASE(peer_tls_takes_all_three_readable_files_or_none)
{
    temp_dir dir;
    const std::string cert = write_file(dir, "cert", "node.crt");
    const std::string key = write_file(dir, "key", "node.key");
    const std::string ca = write_file(dir, "ca", "ca.crt");
    BOOST_TEST(!parse_ok({}).peer_tls());
    const server_config c = parse_ok({"--peer-cert", cert, "--peer-key", key, "--peer-ca", ca});
    BOOST_TEST(c.peer_tls());
    BOOST_TEST(c.peer_cert == cert);
    BOOST_TEST(c.peer_key == key);
    BOOST_TEST(c.peer_ca == ca);
    const server_config y =
        parse_ok({"--config",
                  write_file(dir, "peer-cert: " + cert + "\npeer-key: " + key + "\npeer-ca: " + ca + "\n")});
    BOOST_TEST(y.peer_ca == ca);

    parse_error({"--peer-cert", cert}, "--peer-key and --peer-ca missing");
    parse_error({"--peer-cert", cert, "--peer-ca", ca}, "--peer-key missing");
    parse_error({"--peer-key", key, "--peer-ca", ca}, "go together");
    parse_error({"--peer-cert", (dir / "absent.crt").string(), "--peer-key", key, "--peer-ca", ca},
                "--peer-cert: cannot read");
    parse_error({"--peer-cert", cert, "--peer-key", key, "--peer-ca", dir.path().string()}, "is a directory");
    parse_error({"--peer-cert", cert, "--peer-key", "", "--peer-ca", ca}, "must not be empty");
}

BOOST_AUTO_TEST_CASE(the_config_says_whether_peers_raft_and_http_were_given)
{
    const server_config d = parse_ok({});
    BOOST_TEST(!d.peers_given);
    BOOST_TEST(!d.raft_given);
    BOOST_TEST(!d.http_given);
    BOOST_TEST(!d.advertise_http_given);
    const server_config c = parse_ok({"--raft", "127.0.0.1:9081", "--peers", "1=127.0.0.1:9081"});
    BOOST_TEST(c.peers_given);
    BOOST_TEST(c.raft_given);
    BOOST_TEST(!c.http_given);
    BOOST_TEST(parse_ok({"--http", "127.0.0.1:8081"}).http_given);
    BOOST_TEST(parse_ok({"--advertise-http", "127.0.0.1:8081"}).advertise_http_given);
}

BOOST_AUTO_TEST_CASE(help_wins_over_everything_else)
{
    BOOST_TEST(parse({"--help"}).help);
    BOOST_TEST(parse({"-h"}).help);
    BOOST_TEST(parse({"--bogus", "--id", "0", "--help"}).help);
    BOOST_TEST(raftkv::server::help_text().find("--peers") != std::string::npos);
    BOOST_TEST(raftkv::server::help_text().find("GET /metrics") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(version_wins_over_everything_but_help)
{
    BOOST_TEST(parse({"--version"}).version);
    BOOST_TEST(!parse({}).version);
    const parse_result r = parse({"--bogus", "--id", "0", "--version"});
    BOOST_TEST(r.version);
    BOOST_TEST(r.ok());
    const parse_result h = parse({"--version", "--help"});
    BOOST_TEST(h.help);
    BOOST_TEST(!h.version);
    parse_error({"--version=1"}, "flag --version takes no value");
    parse_error({"--help=1"}, "flag --help takes no value");
}

BOOST_AUTO_TEST_CASE(the_version_line_names_the_project_version_and_the_commit)
{
    const raftkv::server::build_info& b = raftkv::server::build();
    BOOST_TEST(b.version == RAFTKV_PROJECT_VERSION);
    BOOST_TEST(!b.build_type.empty());
    // An abbreviated hash, maybe "-dirty", or "unknown" outside a git checkout.
    const std::string_view commit = b.commit;
    const std::string_view hash = commit.ends_with("-dirty") ? commit.substr(0, commit.size() - 6) : commit;
    BOOST_TEST(((hash.size() >= 4 && hash.find_first_not_of("0123456789abcdef") == std::string_view::npos) ||
                commit == "unknown"),
               commit);
    BOOST_TEST(raftkv::server::version_line() ==
               "raftkv-server " + std::string(b.version) + " (" + std::string(commit) + ")");
}

BOOST_AUTO_TEST_CASE(help_text_lines_fit_80_columns_without_trailing_spaces)
{
    const std::string help = raftkv::server::help_text();
    std::size_t start = 0;
    while (start < help.size()) {
        const std::size_t end = std::min(help.find('\n', start), help.size());
        const std::string line = help.substr(start, end - start);
        BOOST_TEST(line.size() <= 88u, line); // the prose above the flags runs to 88
        BOOST_TEST((line.empty() || line.back() != ' '), "trailing space: [" << line << "]");
        start = end + 1;
    }
    for (const char* key : {"id,", "join,", "cert,", "forward-ca,", "peer-ca."})
        BOOST_TEST(help.find(key) != std::string::npos, "the config file's keys lack " << key);
}

BOOST_AUTO_TEST_CASE(a_flags_value_may_look_like_a_flag)
{
    BOOST_TEST(parse_ok({"--data-dir", "--"}).data_dir.string() == "--");
    BOOST_TEST(parse_ok({"--data-dir", "--peers"}).data_dir.string() == "--peers");
    BOOST_TEST(parse_ok({"--data-dir", "-x"}).data_dir.string() == "-x");
    BOOST_TEST(parse_ok({"--data-dir=a=b"}).data_dir.string() == "a=b");
    // A flag must be spelled out: no prefixes, no other case.
    parse_error({"--dat", "x"}, "unknown flag '--dat'");
    parse_error({"--ID", "1"}, "unknown flag '--ID'");
    parse_error({"--id="}, "flag --id needs a value");
}

BOOST_AUTO_TEST_CASE(the_first_bad_argument_is_the_one_reported)
{
    BOOST_TEST(parse_error({"x", "--bogus"}, "'x'") == "unexpected argument 'x' (see --help)");
    BOOST_TEST(parse_error({"--bogus", "x"}, "'--bogus'") == "unknown flag '--bogus' (see --help)");
    BOOST_TEST(parse_error({"--id", "1", "--id", "2", "--bogus"}, "--id") ==
               "flag --id is given more than once");
    BOOST_TEST(parse_error({"--bogus=1", "--id", "1", "--id", "2"}, "--bogus") ==
               "unknown flag '--bogus' (see --help)");
}

BOOST_AUTO_TEST_CASE(help_text_explains_every_flag_and_key)
{
    const std::string help = raftkv::server::help_text();
    for (const char* name : {"id",
                             "data-dir",
                             "http",
                             "advertise-http",
                             "cluster-token",
                             "raft",
                             "peers",
                             "tick-ms",
                             "election-ticks",
                             "heartbeat-ticks",
                             "request-timeout-ms",
                             "snapshot-entries",
                             "snapshot-catchup-entries",
                             "snapshot-catchup-bytes",
                             "snapshot-hold-bytes",
                             "log-level",
                             "threads",
                             "peer-cert",
                             "peer-key",
                             "peer-ca",
                             "auth-tokens",
                             "max-connections",
                             "max-pending-body-bytes",
                             "http-header-timeout-ms",
                             "http-body-timeout-ms",
                             "http-idle-timeout-ms",
                             "http-handshake-timeout-ms",
                             "raft-frame-timeout-ms",
                             "raft-greeting-timeout-ms",
                             "raft-max-ungreeted",
                             "health-timeout-ms",
                             "health-reuse-ms",
                             "config"})
        BOOST_TEST(help.find(std::string("--") + name) != std::string::npos, name);
}

BOOST_AUTO_TEST_CASE(unknown_flags_and_arguments_are_errors)
{
    BOOST_TEST(parse_error({"--bogus", "1"}, "--bogus") == "unknown flag '--bogus' (see --help)");
    parse_error({"positional"}, "unexpected argument 'positional'");
    parse_error({"-i", "1"}, "unexpected argument '-i'");
    parse_error({"--"}, "unexpected argument '--'");
}

BOOST_AUTO_TEST_CASE(errors_quoting_control_characters_stay_one_line)
{
    BOOST_TEST(parse_error({"x\ny"}, "unexpected argument") == "unexpected argument 'x\\ny' (see --help)");
    BOOST_TEST(parse_error({"--id", "1\r\t\x7f"}, "--id") ==
               "--id: '1\\x0d\\t\\x7f' is not a node id (an integer from 1 to 18446744073709551615)");
    // parse_error() checks the message has no newline.
    parse_error({"--peers", "1=a:1\n,2=b:2"}, "--peers: 'a:1\\n' is not host:port");
}

BOOST_AUTO_TEST_CASE(a_config_text_is_parsed_like_a_config_file)
{
    const parse_result ok =
        raftkv::server::parse_config_text("id: 2\npeers: " + three_peers + "\n", "x.yaml");
    BOOST_TEST_REQUIRE(ok.ok(), ok.error);
    BOOST_TEST(ok.config.id == 2u);
    BOOST_TEST((ok.config.peers == three_peer_map()));
    const parse_result bad = raftkv::server::parse_config_text("peers:\n  \"1\\n\": \n", "x.yaml");
    BOOST_TEST(bad.error == "x.yaml: peers: 1\\n: needs a value");
    BOOST_TEST(raftkv::server::parse_config_text("id: [1\n", "x.yaml").error.starts_with("x.yaml: line "));
}

BOOST_AUTO_TEST_CASE(a_flag_without_a_value_is_an_error)
{
    BOOST_TEST(parse_error({"--id"}, "--id") == "flag --id needs a value");
    parse_error({"--peers"}, "--peers needs a value");
}

BOOST_AUTO_TEST_CASE(a_repeated_flag_is_an_error)
{
    parse_error({"--id", "1", "--id=2"}, "--id is given more than once");
    parse_error({"--config", "a", "--config", "b"}, "--config is given more than once");
}

BOOST_AUTO_TEST_CASE(bad_ids_are_errors)
{
    BOOST_TEST(parse_error({"--id", "abc"}, "'abc'") ==
               "--id: 'abc' is not a node id (an integer from 1 to 18446744073709551615)");
    parse_error({"--id", "0"}, "--id: '0' is not a node id");
    parse_error({"--id", "-1"}, "'-1' is not a node id");
    parse_error({"--id", "+1"}, "'+1' is not a node id");
    parse_error({"--id", "1.5"}, "'1.5' is not a node id");
    parse_error({"--id", " 1"}, "' 1' is not a node id");
    parse_error({"--id", ""}, "'' is not a node id");
    parse_error({"--id", "18446744073709551616"}, "is not a node id");
    BOOST_TEST(parse_ok({"--id", "18446744073709551615", "--peers", "18446744073709551615=h:1"}).id ==
               18446744073709551615u);
}

BOOST_AUTO_TEST_CASE(id_must_be_among_the_peers)
{
    BOOST_TEST(parse_error({"--id", "4", "--peers", three_peers}, "4") ==
               "--peers: this node's id 4 is not listed (it lists 1, 2, 3)");
}

BOOST_AUTO_TEST_CASE(malformed_addresses_are_errors)
{
    for (const char* bad :
         {"127.0.0.1", "127.0.0.1:", ":8080", "127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:80x",
          "127.0.0.1:-1", "host name:80", "h/x:80", "[::1:80", "[]:80", "::1:80x", "a:+80"}) {
        parse_error({"--http", bad}, std::string("--http: '") + bad + "' is not host:port");
        parse_error({"--raft", bad}, std::string("--raft: '") + bad + "' is not host:port");
    }
}

BOOST_AUTO_TEST_CASE(bad_peer_lists_are_errors)
{
    parse_error({"--peers", ""}, "--peers: '' is not id=host:port");
    parse_error({"--peers", "1=127.0.0.1:9081,"}, "'' is not id=host:port");
    parse_error({"--peers", "127.0.0.1:9081"}, "'127.0.0.1:9081' is not id=host:port");
    parse_error({"--peers", "x=127.0.0.1:9081"}, "'x' is not a node id");
    parse_error({"--peers", "0=127.0.0.1:9081"}, "'0' is not a node id");
    parse_error({"--peers", "1=127.0.0.1"}, "'127.0.0.1' is not host:port");
    parse_error({"--peers", "1=a:1,1=b:2"}, "node 1 is listed more than once");
    parse_error({"--peers", "1=a:1,2=a:1"}, "nodes 1 and 2 have the same address a:1");
}

BOOST_AUTO_TEST_CASE(peer_lists_tolerate_spaces_around_items)
{
    const server_config c = parse_ok({"--peers", " 1 = 127.0.0.1:9081 , 2=127.0.0.1:9082,3=127.0.0.1:9083 "});
    BOOST_TEST((c.peers == three_peer_map()));
}

BOOST_AUTO_TEST_CASE(bad_tuning_values_are_errors)
{
    parse_error({"--tick-ms", "0"}, "--tick-ms: '0' is not an integer from 1 to 60000");
    parse_error({"--tick-ms", "fast"}, "--tick-ms: 'fast'");
    parse_error({"--heartbeat-ticks", "0"}, "--heartbeat-ticks: '0'");
    parse_error({"--election-ticks", "1"}, "--election-ticks: '1'");
    parse_error({"--request-timeout-ms", "0"}, "--request-timeout-ms: '0'");
    BOOST_TEST(parse_error({"--election-ticks", "5"}, "election-ticks") ==
               "election-ticks (5) must be greater than heartbeat-ticks (5)");
    parse_error({"--log-level", "loud"}, "--log-level: 'loud' is not one of error, warn, info, debug");
    parse_error({"--data-dir", ""}, "--data-dir: the data directory must not be empty");
}

BOOST_AUTO_TEST_CASE(log_format_is_read_from_flags_and_the_config_file)
{
    BOOST_TEST((parse_ok({}).log_format == log_format::text));
    BOOST_TEST((parse_ok({"--log-format", "json"}).log_format == log_format::json));
    BOOST_TEST((parse_ok({"--log-format=text"}).log_format == log_format::text));
    parse_error({"--log-format", "xml"}, "--log-format: 'xml' is not one of text, json");
    parse_error({"--log-format", "JSON"}, "--log-format: 'JSON' is not one of text, json");
    parse_error({"--log-format"}, "--log-format");

    temp_dir dir;
    const std::string file = write_file(dir, "log-format: json\n");
    BOOST_TEST((parse_ok({"--config", file}).log_format == log_format::json));
    BOOST_TEST((parse_ok({"--config", file, "--log-format", "text"}).log_format == log_format::text));
    const std::string bad = write_file(dir, "log-format: yaml\n", "bad.yaml");
    parse_error({"--config", bad}, "log-format: 'yaml' is not one of text, json");
    BOOST_TEST(raftkv::server::help_text().find("--log-format") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(http_limits_are_read_from_flags_and_the_config_file)
{
    const server_config c = parse_ok({"--max-connections", "10", "--max-pending-body-bytes", "8388608"});
    BOOST_TEST(c.max_connections == 10u);
    BOOST_TEST(c.max_pending_body_bytes == 8388608u);
    temp_dir dir;
    const std::string file =
        write_file(dir, "max-connections: 20\nmax-pending-body-bytes: 6356992\n", "limits.yaml");
    const server_config f = parse_ok({"--config", file});
    BOOST_TEST(f.max_connections == 20u);
    BOOST_TEST(f.max_pending_body_bytes == 6356992u);
}

BOOST_AUTO_TEST_CASE(the_quota_is_8_gib_unless_set_and_0_turns_it_off)
{
    BOOST_TEST(parse_ok({}).quota_bytes == std::uint64_t{8} << 30);
    BOOST_TEST(parse_ok({"--quota-bytes", "0"}).quota_bytes == 0u);
    BOOST_TEST(parse_ok({"--quota-bytes", "1048576"}).quota_bytes == 1048576u);
    temp_dir dir;
    const std::string file = write_file(dir, "quota-bytes: 2097152\n", "quota.yaml");
    BOOST_TEST(parse_ok({"--config", file}).quota_bytes == 2097152u);
    parse_error({"--quota-bytes", "1048575"}, "below 1048576");
    parse_error({"--quota-bytes", "-1"}, "quota-bytes");
    parse_error({"--quota-bytes", "2000000000000000000"}, "quota-bytes");
    BOOST_TEST(raftkv::server::help_text().find("--quota-bytes") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(watch_limits_are_read_from_flags_and_the_config_file)
{
    const server_config d = parse_ok({});
    BOOST_TEST(d.watch_history_entries == 100000u);
    BOOST_TEST(d.watch_history_bytes == 64u << 20);
    BOOST_TEST(d.max_watchers == 1024u);
    BOOST_TEST(d.watch_buffer_bytes == 8u << 20);
    const server_config c = parse_ok({"--watch-history-entries", "10", "--watch-history-bytes", "2097152",
                                      "--max-watchers", "3", "--watch-buffer-bytes", "65536"});
    BOOST_TEST(c.watch_history_entries == 10u);
    BOOST_TEST(c.watch_history_bytes == 2097152u);
    BOOST_TEST(c.max_watchers == 3u);
    BOOST_TEST(c.watch_buffer_bytes == 65536u);
    temp_dir dir;
    const std::string file = write_file(dir, "max-watchers: 7\nwatch-history-entries: 99\n", "watch.yaml");
    const server_config f = parse_ok({"--config", file});
    BOOST_TEST(f.max_watchers == 7u);
    BOOST_TEST(f.watch_history_entries == 99u);
    parse_error({"--max-watchers", "0"}, "max-watchers");
    parse_error({"--watch-history-entries", "0"}, "watch-history-entries");
    parse_error({"--watch-history-bytes", "1000"}, "watch-history-bytes");
    parse_error({"--watch-buffer-bytes", "10"}, "watch-buffer-bytes");
    BOOST_TEST(raftkv::server::help_text().find("--max-watchers") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(health_check_settings_are_read_from_flags_and_the_config_file)
{
    const server_config d = parse_ok({});
    BOOST_TEST(d.health_timeout_ms == 1000u);
    BOOST_TEST(d.health_reuse_ms == 100u);
    const server_config c = parse_ok({"--health-timeout-ms", "250", "--health-reuse-ms", "0"});
    BOOST_TEST(c.health_timeout_ms == 250u);
    BOOST_TEST(c.health_reuse_ms == 0u);
    temp_dir dir;
    const std::string file =
        write_file(dir, "health-timeout-ms: 30000\nhealth-reuse-ms: 60000\n", "health.yaml");
    const server_config f = parse_ok({"--config", file});
    BOOST_TEST(f.health_timeout_ms == 30000u);
    BOOST_TEST(f.health_reuse_ms == 60000u);
    parse_error({"--health-timeout-ms", "0"}, "--health-timeout-ms: '0' is not an integer from 1 to 30000");
    parse_error({"--health-timeout-ms", "30001"}, "--health-timeout-ms");
    parse_error({"--health-reuse-ms", "60001"},
                "--health-reuse-ms: '60001' is not an integer from 0 to 60000");
    parse_error({"--health-reuse-ms", "soon"}, "--health-reuse-ms");
}

BOOST_AUTO_TEST_CASE(bad_http_limits_are_errors)
{
    parse_error({"--max-connections", "0"}, "--max-connections: '0' is not an integer from 1 to 1000000");
    parse_error({"--max-connections", "many"}, "--max-connections");
    // Smaller than the largest request body: no such request could ever be received.
    parse_error({"--max-pending-body-bytes", "6356991"},
                "--max-pending-body-bytes: '6356991' is not an integer from 6356992");
    parse_error({"--max-pending-body-bytes", "-1"}, "--max-pending-body-bytes");
}

BOOST_AUTO_TEST_CASE(hostile_input_deadlines_are_read_from_flags_and_the_config_file)
{
    const server_config c = parse_ok({"--http-header-timeout-ms", "300", "--http-body-timeout-ms", "100",
                                      "--http-idle-timeout-ms", "3600000", "--http-handshake-timeout-ms",
                                      "2500", "--raft-frame-timeout-ms", "1000", "--raft-greeting-timeout-ms",
                                      "750", "--raft-max-ungreeted", "1"});
    BOOST_TEST(c.http_header_timeout_ms == 300u);
    BOOST_TEST(c.http_body_timeout_ms == 100u);
    BOOST_TEST(c.http_idle_timeout_ms == 3600000u);
    BOOST_TEST(c.http_handshake_timeout_ms == 2500u);
    BOOST_TEST(c.raft_frame_timeout_ms == 1000u);
    BOOST_TEST(c.raft_greeting_timeout_ms == 750u);
    BOOST_TEST(c.raft_max_ungreeted == 1u);
    temp_dir dir;
    const std::string file = write_file(dir,
                                        "http-header-timeout-ms: 2000\n"
                                        "http-body-timeout-ms: 20000\n"
                                        "http-idle-timeout-ms: 15000\n"
                                        "http-handshake-timeout-ms: 3000\n"
                                        "raft-frame-timeout-ms: 120000\n"
                                        "raft-greeting-timeout-ms: 2000\n"
                                        "raft-max-ungreeted: 65536\n",
                                        "deadlines.yaml");
    const server_config f = parse_ok({"--config", file});
    BOOST_TEST(f.http_header_timeout_ms == 2000u);
    BOOST_TEST(f.http_body_timeout_ms == 20000u);
    BOOST_TEST(f.http_idle_timeout_ms == 15000u);
    BOOST_TEST(f.http_handshake_timeout_ms == 3000u);
    BOOST_TEST(f.raft_frame_timeout_ms == 120000u);
    BOOST_TEST(f.raft_greeting_timeout_ms == 2000u);
    BOOST_TEST(f.raft_max_ungreeted == 65536u);
    // A flag overrides the file's key.
    BOOST_TEST(parse_ok({"--config", file, "--raft-max-ungreeted", "8"}).raft_max_ungreeted == 8u);
}

BOOST_AUTO_TEST_CASE(bad_hostile_input_deadlines_are_errors)
{
    for (const char* name :
         {"http-header-timeout-ms", "http-body-timeout-ms", "http-idle-timeout-ms",
          "http-handshake-timeout-ms", "raft-frame-timeout-ms", "raft-greeting-timeout-ms"}) {
        const std::string flag = std::string("--") + name;
        parse_error({flag, "99"}, flag + ": '99' is not an integer from 100 to 3600000");
        parse_error({flag, "3600001"}, flag + ": '3600001' is not an integer from 100 to 3600000");
        parse_error({flag, "10s"}, flag + ": '10s' is not an integer from 100 to 3600000");
        parse_error({flag, "-1"}, flag);
    }
    parse_error({"--raft-max-ungreeted", "0"}, "--raft-max-ungreeted: '0' is not an integer from 1 to 65536");
    parse_error({"--raft-max-ungreeted", "65537"},
                "--raft-max-ungreeted: '65537' is not an integer from 1 to 65536");
    parse_error({"--raft-max-ungreeted", "many"}, "--raft-max-ungreeted");
    temp_dir dir;
    const std::string bad = write_file(dir, "http-header-timeout-ms: 0\n", "bad.yaml");
    parse_error({"--config", bad}, "http-header-timeout-ms: '0' is not an integer from 100 to 3600000");
}

BOOST_AUTO_TEST_CASE(tls_files_are_read_from_flags_and_the_config_file)
{
    temp_dir dir;
    const std::string cert = write_file(dir, "certificate", "node.crt");
    const std::string key = write_file(dir, "key", "node.key");
    const std::string ca = write_file(dir, "ca", "ca.crt");
    const server_config plain = parse_ok({});
    BOOST_TEST(plain.tls_cert.empty());
    BOOST_TEST(plain.tls_key.empty());
    const server_config c = parse_ok({"--cert", cert, "--key", key, "--client-ca", ca, "--forward-ca", ca});
    BOOST_TEST(c.tls_cert == cert);
    BOOST_TEST(c.tls_key == key);
    BOOST_TEST(c.client_ca == ca);
    BOOST_TEST(c.forward_ca == ca);
    const std::string file = write_file(dir, "cert: " + cert + "\nkey: " + key + "\nclient-ca: " + ca + "\n");
    const server_config f = parse_ok({"--config", file});
    BOOST_TEST(f.tls_cert == cert);
    BOOST_TEST(f.client_ca == ca);
    BOOST_TEST(f.forward_ca.empty());
}

BOOST_AUTO_TEST_CASE(tls_takes_both_a_certificate_and_a_key)
{
    temp_dir dir;
    const std::string cert = write_file(dir, "certificate", "node.crt");
    const std::string key = write_file(dir, "key", "node.key");
    BOOST_TEST(parse_error({"--cert", cert}, "--cert") == "--cert needs --key too (HTTPS takes both)");
    BOOST_TEST(parse_error({"--key", key}, "--key") == "--key needs --cert too (HTTPS takes both)");
    parse_error({"--client-ca", cert}, "--client-ca needs --cert and --key");
    parse_error({"--forward-ca", cert}, "--forward-ca needs --cert and --key");
}

BOOST_AUTO_TEST_CASE(join_over_https_goes_with_serving_https)
{
    temp_dir dir;
    const std::string cert = write_file(dir, "certificate", "node.crt");
    const std::string key = write_file(dir, "key", "node.key");
    const server_config c =
        parse_ok({"--id", "4", "--cert", cert, "--key", key, "--join", "https://127.0.0.1:8081"});
    BOOST_REQUIRE(c.join.has_value());
    BOOST_TEST(c.join->to_string() == "127.0.0.1:8081");
    BOOST_TEST(c.join_https);
    BOOST_TEST(parse_error({"--id", "4", "--join", "https://127.0.0.1:8081"}, "--join") ==
               "--join: joining over HTTPS needs --cert and --key (every member of an HTTPS cluster serves "
               "HTTPS, and the join presents this certificate)");
    parse_error({"--id", "4", "--cert", cert, "--key", key, "--join", "http://127.0.0.1:8081"},
                "--join: this node serves HTTPS (--cert), so the members do too: join through https://");
}

BOOST_AUTO_TEST_CASE(unreadable_tls_files_are_errors)
{
    temp_dir dir;
    const std::string cert = write_file(dir, "certificate", "node.crt");
    const std::string key = write_file(dir, "key", "node.key");
    const std::string missing = (dir / "missing.pem").string();
    BOOST_TEST(parse_error({"--cert", missing, "--key", key}, "--cert") ==
               "--cert: cannot read '" + missing + "': No such file or directory");
    parse_error({"--cert", cert, "--key", missing}, "--key: cannot read");
    parse_error({"--cert", cert, "--key", key, "--client-ca", dir.path().string()},
                "--client-ca: cannot read");
    parse_error({"--cert", cert, "--key", key, "--forward-ca", missing}, "--forward-ca: cannot read");
    parse_error({"--cert", "", "--key", key}, "--cert: needs a file name");
}

BOOST_AUTO_TEST_CASE(snapshot_settings_take_zero_to_a_billion)
{
    const server_config zero = parse_ok({"--snapshot-entries", "0", "--snapshot-catchup-entries=0"});
    BOOST_TEST(zero.snapshot_entries == 0u);
    BOOST_TEST(zero.snapshot_catchup_entries == 0u);
    const server_config most =
        parse_ok({"--snapshot-entries", "1000000000", "--snapshot-catchup-entries", "1000000000"});
    BOOST_TEST(most.snapshot_entries == 1'000'000'000u);
    BOOST_TEST(most.snapshot_catchup_entries == 1'000'000'000u);
    const server_config bytes = parse_ok({"--snapshot-catchup-bytes", "0"});
    BOOST_TEST(bytes.snapshot_catchup_bytes == 0u);
    BOOST_TEST(parse_ok({"--snapshot-catchup-bytes=1099511627776"}).snapshot_catchup_bytes == 1ull << 40);
    BOOST_TEST(parse_error({"--snapshot-catchup-bytes", "1099511627777"}, "--snapshot-catchup-bytes") ==
               "--snapshot-catchup-bytes: '1099511627777' is not an integer from 0 to 1099511627776");
    parse_error({"--snapshot-catchup-bytes", "64MiB"}, "--snapshot-catchup-bytes: '64MiB'");
    BOOST_TEST(parse_ok({}).snapshot_hold_bytes == 512u << 20);
    BOOST_TEST(parse_ok({"--snapshot-hold-bytes", "0"}).snapshot_hold_bytes == 0u);
    BOOST_TEST(parse_ok({"--snapshot-hold-bytes=1099511627776"}).snapshot_hold_bytes == 1ull << 40);
    BOOST_TEST(parse_error({"--snapshot-hold-bytes", "-1"}, "--snapshot-hold-bytes") ==
               "--snapshot-hold-bytes: '-1' is not an integer from 0 to 1099511627776");
    // More entries kept than taken between snapshots is allowed: the log is just longer.
    BOOST_TEST(parse_ok({"--snapshot-entries", "10", "--snapshot-catchup-entries", "50"}).snapshot_entries ==
               10u);
}

BOOST_AUTO_TEST_CASE(bad_snapshot_settings_are_errors)
{
    BOOST_TEST(parse_error({"--snapshot-entries", "-1"}, "--snapshot-entries") ==
               "--snapshot-entries: '-1' is not an integer from 0 to 1000000000");
    parse_error({"--snapshot-entries", "many"}, "--snapshot-entries: 'many' is not an integer");
    parse_error({"--snapshot-entries", "1000000001"}, "--snapshot-entries: '1000000001'");
    parse_error({"--snapshot-entries", "18446744073709551616"}, "'18446744073709551616' is not an integer");
    parse_error({"--snapshot-entries", "1e3"}, "--snapshot-entries: '1e3'");
    parse_error({"--snapshot-entries", ""}, "--snapshot-entries: '' is not an integer");
    parse_error({"--snapshot-entries"}, "flag --snapshot-entries needs a value");
    parse_error({"--snapshot-entries", "1", "--snapshot-entries=2"},
                "flag --snapshot-entries is given more than once");
    BOOST_TEST(parse_error({"--snapshot-catchup-entries", " 5"}, "--snapshot-catchup-entries") ==
               "--snapshot-catchup-entries: ' 5' is not an integer from 0 to 1000000000");
    parse_error({"--snapshot-catchup-entries", "+5"}, "--snapshot-catchup-entries: '+5'");
}

BOOST_AUTO_TEST_CASE(ipv6_addresses_take_brackets)
{
    const server_config c = parse_ok({"--http", "[::1]:8080", "--raft", "[::1]:9080"});
    BOOST_TEST(c.http.host == "::1");
    BOOST_TEST(c.http.port == 8080);
    BOOST_TEST(c.http.to_string() == "[::1]:8080");
}

// ---- Config file ----------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(config_file_sets_every_key)
{
    temp_dir dir;
    const std::string file = write_file(dir, R"(# a comment
id: 2
data-dir: /var/lib/raftkv/2
http: 127.0.0.1:8082
raft: 127.0.0.1:9082
peers:
  1: 127.0.0.1:9081
  2: 127.0.0.1:9082
  3: 127.0.0.1:9083
tick-ms: 20
election-ticks: 40
heartbeat-ticks: 4
request-timeout-ms: 1500
snapshot-entries: 300
snapshot-catchup-entries: 20
snapshot-catchup-bytes: 1048576
snapshot-hold-bytes: 2097152
log-level: warn
)");
    const server_config c = parse_ok({"--config", file});
    BOOST_TEST(c.id == 2u);
    BOOST_TEST(c.data_dir.string() == "/var/lib/raftkv/2");
    BOOST_TEST(c.http.to_string() == "127.0.0.1:8082");
    BOOST_TEST(c.raft.to_string() == "127.0.0.1:9082");
    BOOST_TEST((c.peers == three_peer_map()));
    BOOST_TEST(c.tick_ms == 20u);
    BOOST_TEST(c.election_ticks == 40u);
    BOOST_TEST(c.heartbeat_ticks == 4u);
    BOOST_TEST(c.request_timeout_ms == 1500u);
    BOOST_TEST(c.snapshot_entries == 300u);
    BOOST_TEST(c.snapshot_catchup_entries == 20u);
    BOOST_TEST(c.snapshot_catchup_bytes == 1u << 20);
    BOOST_TEST(c.snapshot_hold_bytes == 2u << 20);
    BOOST_TEST((c.log_level == log_level::warn));
}

BOOST_AUTO_TEST_CASE(config_file_peers_may_be_the_flag_string)
{
    temp_dir dir;
    const std::string file = write_file(dir, "id: 3\npeers: " + three_peers + "\n");
    const server_config c = parse_ok({"--config", file});
    BOOST_TEST((c.peers == three_peer_map()));
    BOOST_TEST(c.raft.to_string() == "127.0.0.1:9083");
}

BOOST_AUTO_TEST_CASE(flags_override_the_config_file)
{
    temp_dir dir;
    const std::string file =
        write_file(dir, "id: 2\nhttp: 127.0.0.1:8082\npeers:\n  1: a:1\n  2: b:2\nlog-level: error\n");
    const server_config c =
        parse_ok({"--config", file, "--id", "3", "--peers", three_peers, "--log-level=info"});
    BOOST_TEST(c.id == 3u);
    BOOST_TEST(c.http.to_string() == "127.0.0.1:8082"); // from the file: no flag
    BOOST_TEST((c.peers == three_peer_map()));
    BOOST_TEST((c.log_level == log_level::info));
}

BOOST_AUTO_TEST_CASE(snapshot_flags_override_the_config_file)
{
    temp_dir dir;
    const std::string file = write_file(dir, "snapshot-entries: 300\nsnapshot-catchup-entries: 20\n");
    const server_config c = parse_ok({"--config", file, "--snapshot-entries", "0"});
    BOOST_TEST(c.snapshot_entries == 0u);
    BOOST_TEST(c.snapshot_catchup_entries == 20u);
}

BOOST_AUTO_TEST_CASE(config_file_may_come_after_the_flags_it_is_overridden_by)
{
    temp_dir dir;
    const std::string file = write_file(dir, "id: 2\n");
    BOOST_TEST(parse_ok({"--id", "1", "--config", file}).id == 1u);
}

BOOST_AUTO_TEST_CASE(an_empty_config_file_sets_nothing)
{
    temp_dir dir;
    BOOST_TEST(parse_ok({"--config", write_file(dir, "")}).id == 1u);
    BOOST_TEST(parse_ok({"--config", write_file(dir, "# nothing\n", "comment.yaml")}).id == 1u);
}

BOOST_AUTO_TEST_CASE(a_config_file_is_one_yaml_document)
{
    temp_dir dir;
    // A second document would be ignored: its settings would silently not apply.
    const std::string two = write_file(dir, "id: 1\n---\nid: 2\n", "two.yaml");
    BOOST_TEST(parse_error({"--config", two}, "YAML documents") ==
               two + ": holds 2 YAML documents (separated by ---); put every setting in one");
    // Document markers around one document, and empty documents, are fine.
    BOOST_TEST(parse_ok({"--config", write_file(dir, "---\nid: 2\n...\n", "marked.yaml")}).id == 2u);
    BOOST_TEST(parse_ok({"--config", write_file(dir, "---\nid: 2\n---\n", "trailing.yaml")}).id == 2u);
    BOOST_TEST(parse_ok({"--config", write_file(dir, "# nothing\n", "comment.yaml")}).id == 1u);
    // Text on which yaml-cpp's parser reports endless empty documents: refused, in bounded time.
    const std::string stuck = write_file(dir, ",W22=2", "stuck.yaml");
    BOOST_TEST(parse_error({"--config", stuck}, "not valid YAML") ==
               stuck + ": not valid YAML (the parser stops advancing)");
}

BOOST_AUTO_TEST_CASE(config_file_values_are_checked_like_flags)
{
    temp_dir dir;
    const std::string file = write_file(dir, "id: abc\n");
    BOOST_TEST(parse_error({"--config", file}, "abc") ==
               file + ": id: 'abc' is not a node id (an integer from 1 to 18446744073709551615)");
    parse_error({"--config", write_file(dir, "id: 0\n", "zero.yaml")}, "id: '0' is not a node id");
    parse_error({"--config", write_file(dir, "http: nowhere\n", "http.yaml")},
                "http: 'nowhere' is not host:port");
    parse_error({"--config", write_file(dir, "id: 4\npeers: " + three_peers + "\n", "id4.yaml")},
                "this node's id 4 is not listed");
    parse_error({"--config", write_file(dir, "peers:\n  1: a:1\n  x: b:2\n", "px.yaml")},
                "'x' is not a node id");
    parse_error({"--config", write_file(dir, "peers:\n  1: nowhere\n", "pa.yaml")},
                "'nowhere' is not host:port");
    parse_error({"--config", write_file(dir, "peers:\n  1: 'a:1,2=b:2'\n", "pc.yaml")}, "is not host:port");
    const std::string snapshots = write_file(dir, "snapshot-entries: lots\n", "se.yaml");
    BOOST_TEST(parse_error({"--config", snapshots}, "snapshot-entries") ==
               snapshots + ": snapshot-entries: 'lots' is not an integer from 0 to 1000000000");
    parse_error({"--config", write_file(dir, "snapshot-catchup-entries: -3\n", "sc.yaml")},
                "sc.yaml: snapshot-catchup-entries: '-3' is not an integer from 0 to 1000000000");
    parse_error({"--config", write_file(dir, "snapshot-entries: [1, 2]\n", "sl.yaml")},
                "snapshot-entries: must be a single value, not a list or a map");
    parse_error({"--config", write_file(dir, "snapshot-entries:\n", "sn.yaml")},
                "snapshot-entries: needs a value");
}

BOOST_AUTO_TEST_CASE(unknown_config_keys_are_errors)
{
    temp_dir dir;
    const std::string file = write_file(dir, "id: 1\nport: 80\n");
    BOOST_TEST(parse_error({"--config", file}, "port") == file + ": unknown key 'port' (see --help)");
    parse_error({"--config", write_file(dir, "config: x.yaml\n", "nested.yaml")}, "unknown key 'config'");
}

BOOST_AUTO_TEST_CASE(ill_formed_yaml_is_an_error_with_its_position)
{
    temp_dir dir;
    const std::string file = write_file(dir, "id: 1\npeers: [1, 2\n");
    const std::string error = parse_error({"--config", file}, file + ": line ");
    BOOST_TEST_MESSAGE(error);
    parse_error({"--config", write_file(dir, "id: 1\n  bad indent: [\n", "indent.yaml")}, "line");
    parse_error({"--config", write_file(dir, "id: a: b\n", "nested.yaml")}, "line 1");
}

BOOST_AUTO_TEST_CASE(config_file_shapes_that_are_not_settings_are_errors)
{
    temp_dir dir;
    parse_error({"--config", write_file(dir, "- id\n- 1\n", "list.yaml")}, "must be a map of settings");
    parse_error({"--config", write_file(dir, "just text\n", "scalar.yaml")}, "must be a map of settings");
    parse_error({"--config", write_file(dir, "id: [1, 2]\n", "seq.yaml")}, "id: must be a single value");
    parse_error({"--config", write_file(dir, "http: {a: b}\n", "map.yaml")}, "http: must be a single value");
    parse_error({"--config", write_file(dir, "id:\n", "null.yaml")}, "id: needs a value");
    parse_error({"--config", write_file(dir, "peers: [a:1]\n", "peerseq.yaml")},
                "peers: must be a single value");
    parse_error({"--config", write_file(dir, "id: 1\nid: 2\n", "dup.yaml")},
                "key 'id' is given more than once");
    parse_error({"--config", write_file(dir, "[a]: 1\n", "key.yaml")}, "a key: must be a single value");
}

BOOST_AUTO_TEST_CASE(unreadable_config_files_are_errors)
{
    temp_dir dir;
    const std::string missing = (dir / "missing.yaml").string();
    BOOST_TEST(parse_error({"--config", missing}, missing) ==
               "cannot read config file '" + missing + "': No such file or directory");
    parse_error({"--config", dir.path().string()}, "it is a directory");
}

// ---- Auth tokens -----------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(auth_tokens_are_read_from_the_file_the_flag_or_key_names)
{
    temp_dir dir;
    const std::string tokens =
        write_file(dir, "# ops\nw-0123456789abcdef write ops\nr-0123456789abcdef read\n", "tokens");
    const server_config c = parse_ok({"--auth-tokens", tokens});
    BOOST_TEST(c.auth_tokens_file.value().string() == tokens);
    BOOST_TEST_REQUIRE(c.auth_tokens.size() == 2u);
    BOOST_TEST(c.auth_tokens[0].token == "w-0123456789abcdef");
    BOOST_TEST((c.auth_tokens[0].access == raftkv::server::access::write));
    BOOST_TEST(c.auth_tokens[0].name == "ops");
    BOOST_TEST((c.auth_tokens[1].access == raftkv::server::access::read));

    const server_config from_file = parse_ok({"--config", write_file(dir, "auth-tokens: " + tokens + "\n")});
    BOOST_TEST(from_file.auth_tokens.size() == 2u);
}

BOOST_AUTO_TEST_CASE(a_bad_tokens_file_is_an_error_naming_the_line)
{
    temp_dir dir;
    const std::string bad = write_file(dir, "w-0123456789abcdef write\n\nr-0123456789abcdef admin\n", "bad");
    const std::string error = parse_error({"--auth-tokens", bad}, bad + ": line 3: the access must be");
    BOOST_TEST(error.find("0123456789abcdef") == std::string::npos, "the error shows a token: " << error);
    parse_error({"--auth-tokens", write_file(dir, "# none yet\n", "empty")}, "no tokens");
    parse_error({"--auth-tokens", (dir / "missing").string()}, "cannot read auth tokens file");
    parse_error({"--auth-tokens", ""}, "--auth-tokens: needs the path of a tokens file");
    parse_error({"--config", write_file(dir, "auth-tokens: " + bad + "\n")}, ": line 3: ");
}

// ---- Pieces ---------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(host_port_parses_names_and_addresses)
{
    using raftkv::server::parse_host_port;
    BOOST_TEST((parse_host_port("node-1.example_x:1") == host_port{"node-1.example_x", 1}));
    BOOST_TEST((parse_host_port("10.0.0.1:65535") == host_port{"10.0.0.1", 65535}));
    BOOST_TEST((parse_host_port("[fe80::1]:80") == host_port{"fe80::1", 80}));
    BOOST_TEST(!parse_host_port("fe80::1:80"));
    BOOST_TEST(!parse_host_port("[example.com]:80"));
    // The limits of DNS names: 63 characters a label, 253 in all.
    const std::string label(63, 'a');
    BOOST_TEST(parse_host_port(label + ".b:1").has_value());
    BOOST_TEST(!parse_host_port(label + "a.b:1"));
    BOOST_TEST(!parse_host_port("b." + label + "a:1"));
    const std::string longest = label + "." + label + "." + label + "." + std::string(61, 'c');
    BOOST_TEST(longest.size() == 253u);
    BOOST_TEST(parse_host_port(longest + ":1").has_value());
    BOOST_TEST(!parse_host_port(longest + "c:1"));
}

BOOST_AUTO_TEST_CASE(peers_print_in_the_form_they_are_parsed)
{
    std::string error;
    const auto peers = raftkv::server::parse_peers(three_peers, "--peers", error);
    BOOST_TEST_REQUIRE(peers.has_value(), error);
    BOOST_TEST(raftkv::server::peers_to_string(*peers) == three_peers);
}
