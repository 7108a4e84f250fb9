// Bearer tokens (--auth-tokens) against real raftkv-server processes: who may do what on one
// node, the same through a follower that forwards to the leader, and bad token files.
#define BOOST_TEST_MODULE raftkv_e2e_auth
#include <boost/test/unit_test.hpp>

#include "auth.hpp"
#include "harness.hpp"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace {

using namespace raftkv::e2e;

const std::string write_token = "ops-5f0c1b9e2d7a4c38b6e1";
const std::string read_token = "dash-9a7c3e5b1d2f4068a3c7";

header_list bearer(const std::string& token)
{
    return {{"Authorization", "Bearer " + token}};
}

/// A tokens file in `dir`.
std::string tokens_file(const temp_dir& dir)
{
    const auto path = dir / "tokens";
    std::ofstream(path) << "# raftkv tokens\n"
                        << write_token << " write ops\n"
                        << "\n"
                        << read_token << " read dashboard   # read-only\n";
    namespace fs = std::filesystem;
    fs::permissions(path, fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read |
                              fs::perms::others_read); // 644: the server warns about it
    return path.string();
}

/// Nodes started with a tokens file; the harness's own requests carry the write token.
struct with_tokens {
    temp_dir files;
    std::string tokens = tokens_file(files);

    with_tokens() { set_bearer_token(write_token); }
    ~with_tokens() { set_bearer_token(""); }
};

void expect_refused(const http_response& r, int status, const std::string& what)
{
    BOOST_TEST(is_error(r, status), what << ": " << describe(r));
    BOOST_TEST(r.headers.count("www-authenticate") == 1u, what << ": no WWW-Authenticate");
    if (r.headers.count("www-authenticate"))
        BOOST_TEST(r.headers.at("www-authenticate").starts_with("Bearer"), what);
}

} // namespace

BOOST_FIXTURE_TEST_SUITE(one_node, with_tokens)

BOOST_AUTO_TEST_CASE(every_route_but_health_needs_a_token_and_changes_need_a_write_token)
{
    // At debug level the log has a line per request: none may show a token.
    cluster c(1, true, {"--auth-tokens", tokens, "--log-level", "debug"});
    BOOST_TEST_REQUIRE(c.wait_healthy(1, 20s));
    const std::uint16_t port = c.http_port(1);

    // /health, /livez and /readyz need no token (probes); everything else does.
    BOOST_TEST(request(port, "GET", "/health", {}, header_list{{"Authorization", ""}}).status == 200);
    BOOST_TEST(request(port, "GET", "/livez", {}, header_list{{"Authorization", ""}}).status == 200);
    BOOST_TEST(request(port, "GET", "/readyz", {}, header_list{{"Authorization", ""}}).status == 200);
    const std::vector<std::pair<std::string, std::string>> routes = {{"GET", "/kv/a"},
                                                                     {"PUT", "/kv/a"},
                                                                     {"DELETE", "/kv/a"},
                                                                     {"GET", "/status"},
                                                                     {"GET", "/metrics"},
                                                                     {"GET", "/cluster/members"},
                                                                     {"POST", "/cluster/leader"},
                                                                     {"DELETE", "/cluster/members/9"},
                                                                     {"GET", "/nowhere"}};
    for (const auto& [method, target] : routes) {
        const std::string body = method == "PUT" ? value_body("x") : method == "POST" ? "{\"id\": 1}" : "";
        const http_response none = request(port, method, target, body, header_list{{"Authorization", ""}});
        expect_refused(none, 401, method + " " + target + " without a token");
        const http_response wrong = request(port, method, target, body, bearer(write_token + "x"));
        expect_refused(wrong, 401, method + " " + target + " with an unknown token");
        BOOST_TEST(wrong.body.find(write_token) == std::string::npos, "the answer shows a token");
    }

    // A write token does everything.
    BOOST_TEST(request(port, "PUT", kv_target("k"), value_body("v1"), bearer(write_token)).status == 200);
    BOOST_TEST(request(port, "POST", "/cluster/leader", "{\"id\": 1}", bearer(write_token)).status == 200);

    // A read token reads, and every change is 403, changing nothing.
    const http_response read = request(port, "GET", kv_target("k"), {}, bearer(read_token));
    BOOST_TEST(parse_json(read.body).string("value").value_or("") == "v1", describe(read));
    BOOST_TEST(request(port, "GET", "/status", {}, bearer(read_token)).status == 200);
    BOOST_TEST(request(port, "GET", "/metrics", {}, bearer(read_token)).status == 200);
    BOOST_TEST(request(port, "GET", "/cluster/members", {}, bearer(read_token)).status == 200);
    expect_refused(request(port, "PUT", kv_target("k"), value_body("v2"), bearer(read_token)), 403,
                   "read PUT");
    expect_refused(request(port, "DELETE", kv_target("k"), {}, bearer(read_token)), 403, "read DELETE");
    expect_refused(request(port, "POST", "/cluster/leader", "{\"id\": 1}", bearer(read_token)), 403,
                   "read leader");
    expect_refused(request(port, "POST", "/cluster/members", c.member_body(1, true), bearer(read_token)), 403,
                   "read add member");
    const http_response after = request(port, "GET", kv_target("k"), {}, bearer(read_token));
    BOOST_TEST(parse_json(after.body).string("value").value_or("") == "v1",
               "a refused write changed the key");

    // The log names the requests, never a token.
    c.terminate(1);
    const std::string log = read_tail(c.spec(1).log_file, 1 << 20);
    BOOST_TEST(log.find("2 bearer tokens") != std::string::npos, log);
    BOOST_TEST(log.find("is readable by every user") != std::string::npos, "no warning about a 644 file");
    BOOST_TEST(log.find("PUT /kv/k -> 403") != std::string::npos, "no debug line for the refused PUT");
    BOOST_TEST(log.find(write_token) == std::string::npos, "the log shows the write token");
    BOOST_TEST(log.find(read_token) == std::string::npos, "the log shows the read token");
}

BOOST_AUTO_TEST_CASE(a_bad_tokens_file_exits_2_naming_the_line)
{
    temp_dir dir;
    const auto path = dir / "tokens";
    std::ofstream(path) << write_token << " write\n# fine so far\n" << read_token << " admin\n";
    const run_result r = run_server({"--auth-tokens", path.string(), "--data-dir", (dir / "data").string()});
    BOOST_TEST_REQUIRE(r.status.has_value());
    BOOST_TEST(r.status->exited);
    BOOST_TEST(r.status->code == 2);
    BOOST_TEST(r.err.find(path.string() + ": line 3: the access must be 'read' or 'write'") !=
                   std::string::npos,
               r.err);
    BOOST_TEST(r.err.find(read_token) == std::string::npos, "the error shows a token: " << r.err);
    BOOST_TEST(!std::filesystem::exists(dir / "data"), "the server touched its data directory");
}

BOOST_AUTO_TEST_SUITE_END()

// A follower checks the token itself and forwards the client's Authorization header to the
// leader, which checks it again: a membership or leadership request goes over HTTP.
BOOST_FIXTURE_TEST_CASE(a_follower_checks_the_token_and_forwards_it_to_the_leader, with_tokens)
{
    cluster c(3, true, {"--auth-tokens", tokens});
    const auto leader = c.wait_ready(20s);
    BOOST_TEST_REQUIRE(leader.has_value(), "no leader every node forwards to within 20 s");
    const std::uint64_t follower = *leader == 1 ? 2 : 1;
    const std::uint16_t port = c.http_port(follower);
    const std::string body = "{\"id\": " + std::to_string(*leader) + "}";

    const http_response moved = request(port, "POST", "/cluster/leader", body, bearer(write_token));
    BOOST_TEST(moved.status == 200, "a write token at a follower: " << describe(moved));
    expect_refused(request(port, "POST", "/cluster/leader", body, bearer(read_token)), 403, "a read token");
    expect_refused(request(port, "POST", "/cluster/leader", body, header_list{{"Authorization", ""}}), 401,
                   "no token");

    BOOST_TEST(
        request(port, "PUT", kv_target("via-follower"), value_body("ok"), bearer(write_token)).status == 200);
    const http_response read =
        request(c.http_port(*leader), "GET", kv_target("via-follower"), {}, bearer(read_token));
    BOOST_TEST(parse_json(read.body).string("value").value_or("") == "ok", describe(read));
}

// A node started with --join reads the member list with a token of its own file, and derives
// the same forwarding key as the bootstrap members: a marker made with the cluster id and the
// tokens stops a second hop there too.
BOOST_FIXTURE_TEST_CASE(a_joining_node_uses_its_tokens_and_shares_the_marker_key, with_tokens)
{
    cluster c(1, true, {"--auth-tokens", tokens});
    BOOST_TEST_REQUIRE(c.wait_ready(20s).has_value());
    const std::uint64_t id = c.add_node(1);
    const http_response added = request(c.http_port(1), "POST", "/cluster/members", c.member_body(id, true));
    BOOST_TEST_REQUIRE(added.status == 201, describe(added));
    c.start(id);
    BOOST_TEST_REQUIRE(c.wait_healthy(id, 20s), "the node that joined never knew a leader");

    const std::string body = "{\"id\": 1}";
    const http_response plain = request(c.http_port(id), "POST", "/cluster/leader", body);
    BOOST_TEST(plain.status == 200, "forwarded by the node that joined: " << describe(plain));

    const http_response members = request(c.http_port(1), "GET", "/cluster/members");
    const std::string cluster_id = parse_json(members.body).string("cluster_id").value_or("");
    BOOST_TEST_REQUIRE(cluster_id.size() == 16u, describe(members));
    using raftkv::server::access;
    const auto key = raftkv::server::derive_forwarding_key(
        std::stoull(cluster_id, nullptr, 16),
        {{read_token, access::read, ""}, {write_token, access::write, ""}});
    const std::string marker = raftkv::server::forward_marker(key, 1, "POST", "/cluster/leader");
    const http_response hop = request(c.http_port(id), "POST", "/cluster/leader", body,
                                      header_list{{"X-Raftkv-Forwarded", marker}});
    BOOST_TEST(is_error(hop, 503), describe(hop));
    BOOST_TEST(hop.body.find("request forwarded by node 1") != std::string::npos, describe(hop));
}

// During a rotation the members hold different tokens files for a while. A follower that
// takes a new token forwards a request that goes over HTTP to a leader that does not know it
// yet: the refusal says it was the leader's, not the node the client asked.
BOOST_FIXTURE_TEST_CASE(a_token_the_leader_refuses_is_said_to_be_refused_by_the_leader, with_tokens)
{
    cluster c(3, true, {"--auth-tokens", tokens});
    const auto leader = c.wait_ready(20s);
    BOOST_TEST_REQUIRE(leader.has_value());
    const std::uint64_t follower = *leader == 1 ? 2 : 1;
    const std::string rotated = "next-3c1e7b9d5f2a4806b1d9";
    const auto more = files / "tokens-next";
    std::ofstream(more) << write_token << " write ops\n" << rotated << " write ops-next\n";
    c.terminate(follower);
    std::vector<std::string> args = c.args(follower);
    const auto flag = std::find(args.begin(), args.end(), "--auth-tokens");
    BOOST_TEST_REQUIRE((flag != args.end() && flag + 1 != args.end()));
    *(flag + 1) = more.string();
    c.start(follower, args);
    BOOST_TEST_REQUIRE(c.wait_healthy(follower, 20s));

    const std::string body = "{\"id\": " + std::to_string(*leader) + "}";
    const http_response r = request(c.http_port(follower), "POST", "/cluster/leader", body, bearer(rotated));
    expect_refused(r, 401, "a token only the follower knows");
    const std::string message = parse_json(r.body).string("error").value_or("");
    BOOST_TEST(message.starts_with("the leader, node " + std::to_string(*leader) + " at "), message);
}
