// raftkv-server's HTTP API over TLS (--cert, --key, --client-ca): HTTPS requests are served,
// client certificates are required when asked for, plain HTTP to the HTTPS port is refused
// clearly while the server keeps serving, followers forward to the leader over HTTPS, a
// new node joins through --join https://, and a watcher that stopped reading is closed.
// Certificates come from scripts/make-certs.sh.
#define BOOST_TEST_MODULE raftkv_e2e_tls_http
#include <boost/test/data/monomorphic.hpp>
#include <boost/test/data/test_case.hpp>
#include <boost/test/unit_test.hpp>

#include "harness.hpp"
#include "support/certificates.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

// GCC 12 reports Asio's coroutine frame allocation, once one coroutine's start is inlined
// into another, as a mismatched new and delete (GCC PR 109224): a false positive, which
// the asan preset's -O1 brings out here.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

namespace {

using namespace raftkv::e2e;
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;

constexpr auto nothrow_awaitable = asio::as_tuple(asio::use_awaitable);

/// Runs scripts/make-certs.sh into `dir`: ca.crt, node-<id>.crt/.key, client.crt/.key.
void make_certs(const std::filesystem::path& dir, int nodes)
{
    const std::string command =
        std::string(RAFTKV_MAKE_CERTS) + " '" + dir.string() + "' " + std::to_string(nodes) + " >/dev/null";
    BOOST_TEST_REQUIRE(std::system(command.c_str()) == 0, "make-certs.sh failed");
}

/// What an HTTPS client trusts and presents.
struct client_identity {
    std::filesystem::path ca;   ///< the CA that must have signed the server's certificate
    std::filesystem::path cert; ///< none: present no client certificate
    std::filesystem::path key;
};

asio::awaitable<void> exchange(ssl::context& context, std::uint16_t port,
                               http::request<http::string_body> req, http_response& out)
{
    beast::ssl_stream<beast::tcp_stream> stream(co_await asio::this_coro::executor, context);
    beast::tcp_stream& tcp = stream.next_layer();
    auto [connect_ec] =
        co_await tcp.async_connect(tcp::endpoint(asio::ip::address_v4::loopback(), port), nothrow_awaitable);
    if (connect_ec) {
        out.body = "connect: " + connect_ec.message();
        co_return;
    }
    stream.set_verify_callback(ssl::host_name_verification("127.0.0.1"));
    auto [handshake_ec] = co_await stream.async_handshake(ssl::stream_base::client, nothrow_awaitable);
    if (handshake_ec) {
        out.body = "handshake: " + handshake_ec.message();
        co_return;
    }
    auto [write_ec, written] = co_await http::async_write(stream, req, nothrow_awaitable);
    if (write_ec) {
        out.body = "write: " + write_ec.message();
        co_return;
    }
    beast::flat_buffer buffer;
    http::response<http::string_body> res;
    auto [read_ec, read] = co_await http::async_read(stream, buffer, res, nothrow_awaitable);
    if (read_ec) {
        out.body = "read: " + read_ec.message();
        co_return;
    }
    out.status = res.result_int();
    out.body = res.body();
    for (const auto& field : res)
        out.headers[std::string(field.name_string())] = std::string(field.value());
}

/// One HTTPS request to 127.0.0.1:port over a fresh connection, verifying the server's
/// certificate (it must name 127.0.0.1). Status 0 and the reason in the body when it fails.
http_response https(std::uint16_t port, const client_identity& who, const std::string& method,
                    const std::string& target, const std::string& body = {}, milliseconds timeout = 5s)
{
    ssl::context context(ssl::context::tls_client);
    context.load_verify_file(who.ca.string());
    context.set_verify_mode(ssl::verify_peer);
    if (!who.cert.empty()) {
        context.use_certificate_chain_file(who.cert.string());
        context.use_private_key_file(who.key.string(), ssl::context::pem);
    }
    http::request<http::string_body> req{http::string_to_verb(method), target, 11};
    req.set(http::field::host, "127.0.0.1:" + std::to_string(port));
    req.set(http::field::content_type, "application/json");
    req.body() = body;
    req.prepare_payload();
    http_response out;
    out.body = "timed out";
    asio::io_context io;
    asio::co_spawn(io, exchange(context, port, std::move(req), out), asio::detached);
    io.run_for(timeout);
    return out;
}

std::vector<std::string> with_tls(std::vector<std::string> args, const std::filesystem::path& certs,
                                  std::uint64_t id, bool client_ca)
{
    const std::string node = "node-" + std::to_string(id);
    args.insert(args.end(),
                {"--cert", (certs / (node + ".crt")).string(), "--key", (certs / (node + ".key")).string()});
    if (client_ca) {
        args.push_back("--client-ca");
        args.push_back((certs / "ca.crt").string());
    }
    return args;
}

bool serves_health(std::uint16_t port, const client_identity& who)
{
    return wait_until([&] { return https(port, who, "GET", "/health", {}, 1s).status == 200; }, 20s, 100ms);
}

/// The id of the node all of `ids` name as leader over HTTPS, once they agree.
std::optional<std::uint64_t> agreed_leader(cluster& c, const std::vector<std::uint64_t>& ids,
                                           const client_identity& who)
{
    std::optional<std::uint64_t> leader;
    const bool agreed = wait_until(
        [&] {
            std::optional<std::uint64_t> seen;
            for (const std::uint64_t id : ids) {
                const http_response r = https(c.http_port(id), who, "GET", "/status", {}, 1s);
                const std::optional<node_status> s = r.status == 200 ? parse_status(r.body) : std::nullopt;
                if (!s || !s->leader || (seen && *seen != *s->leader))
                    return false;
                seen = s->leader;
            }
            leader = seen;
            return true;
        },
        20s, 100ms);
    return agreed ? leader : std::nullopt;
}

using tls_stream = beast::ssl_stream<beast::tcp_stream>;

/// Connects `stream` (with a 4 KiB receive buffer), asks GET `target` and reads the answer's
/// header, nothing more; `status` is its status, or stays 0.
asio::awaitable<void> open_watch(tls_stream& stream, std::uint16_t port, std::string target, int& status)
{
    tcp::socket& socket = beast::get_lowest_layer(stream).socket();
    socket.open(tcp::v4());
    socket.set_option(asio::socket_base::receive_buffer_size(4096));
    auto [connect_ec] = co_await socket.async_connect(tcp::endpoint(asio::ip::address_v4::loopback(), port),
                                                      nothrow_awaitable);
    if (connect_ec)
        co_return;
    auto [handshake_ec] = co_await stream.async_handshake(ssl::stream_base::client, nothrow_awaitable);
    if (handshake_ec)
        co_return;
    http::request<http::empty_body> req{http::verb::get, target, 11};
    req.set(http::field::host, "127.0.0.1:" + std::to_string(port));
    auto [write_ec, written] = co_await http::async_write(stream, req, nothrow_awaitable);
    if (write_ec)
        co_return;
    beast::flat_buffer buffer;
    http::response_parser<http::empty_body> parser;
    auto [read_ec, read] = co_await http::async_read_header(stream, buffer, parser, nothrow_awaitable);
    if (!read_ec)
        status = parser.get().result_int();
}

/// Reads from `stream` until it fails; whether it did.
asio::awaitable<void> read_to_end(tls_stream& stream, bool& ended)
{
    std::array<char, 16384> buf;
    for (;;) {
        auto [ec, n] = co_await stream.async_read_some(asio::buffer(buf), nothrow_awaitable);
        if (ec) {
            ended = true;
            co_return;
        }
    }
}

/// The value of an unlabelled metric in GET /metrics over HTTPS.
std::optional<double> metric(std::uint16_t port, const client_identity& who, const std::string& name)
{
    const http_response r = https(port, who, "GET", "/metrics", {}, 2s);
    const std::size_t at = r.body.find("\n" + name + " ");
    if (r.status != 200 || at == std::string::npos)
        return std::nullopt;
    return std::stod(r.body.substr(at + name.size() + 2));
}

} // namespace

// With the default threads (HTTP connections on strands) and with --threads 1 (without).
BOOST_DATA_TEST_CASE(a_node_serves_puts_and_gets_over_https_and_refuses_plain_http_clearly,
                     boost::unit_test::data::make({"2", "1"}), threads)
{
    temp_dir certs;
    make_certs(certs.path(), 1);
    const client_identity client{certs / "ca.crt", {}, {}};
    cluster c{1, false};
    std::vector<std::string> args = with_tls(c.args(1), certs.path(), 1, false);
    args.insert(args.end(), {"--threads", threads});
    c.start(1, std::move(args));
    const std::uint16_t port = c.http_port(1);
    BOOST_TEST_REQUIRE(serves_health(port, client), "the node never answered /health over HTTPS");

    const http_response put = https(port, client, "PUT", kv_target("k"), value_body("over tls"));
    BOOST_TEST(put.status == 200, describe(put));
    const http_response got = https(port, client, "GET", kv_target("k"));
    BOOST_TEST(got.status == 200, describe(got));
    BOOST_TEST(parse_json(got.body).string("value").value_or("<none>") == "over tls");

    // Plain HTTP to the HTTPS port: a plain 400 that says so, then the connection closes.
    const http_response plain = request(port, "GET", kv_target("k"));
    BOOST_TEST(plain.status == 400, describe(plain));
    BOOST_TEST(plain.body.find("https://") != std::string::npos, describe(plain));

    // An HTTPS client that does not trust the node's CA gets no answer.
    temp_dir other;
    make_certs(other.path(), 1);
    const http_response untrusted = https(port, {other / "ca.crt", {}, {}}, "GET", kv_target("k"));
    BOOST_TEST(untrusted.status == 0, describe(untrusted));

    const http_response after = https(port, client, "GET", kv_target("k"));
    BOOST_TEST(after.status == 200, "after plain HTTP: " << describe(after));
    BOOST_TEST(c.running(1));
}

BOOST_AUTO_TEST_CASE(with_a_client_ca_only_clients_with_a_certificate_it_signed_are_served)
{
    temp_dir certs;
    make_certs(certs.path(), 1);
    temp_dir other;
    make_certs(other.path(), 1);
    const client_identity with_cert{certs / "ca.crt", certs / "client.crt", certs / "client.key"};
    cluster c{1, false};
    c.start(1, with_tls(c.args(1), certs.path(), 1, true));
    const std::uint16_t port = c.http_port(1);
    BOOST_TEST_REQUIRE(serves_health(port, with_cert), "the node never answered /health over HTTPS");

    const http_response anonymous =
        https(port, {certs / "ca.crt", {}, {}}, "PUT", kv_target("k"), value_body("x"));
    BOOST_TEST(anonymous.status == 0, "no client certificate: " << describe(anonymous));
    const http_response stranger = https(port, {certs / "ca.crt", other / "client.crt", other / "client.key"},
                                         "PUT", kv_target("k"), value_body("x"));
    BOOST_TEST(stranger.status == 0, "a certificate another CA signed: " << describe(stranger));

    const http_response put = https(port, with_cert, "PUT", kv_target("k"), value_body("signed"));
    BOOST_TEST(put.status == 200, describe(put));
    const http_response got = https(port, with_cert, "GET", kv_target("k"));
    BOOST_TEST(parse_json(got.body).string("value").value_or("<none>") == "signed", describe(got));
}

// Writes reach the leader over Raft; membership requests a follower forwards over HTTP, here
// HTTPS with the node's certificate as the client certificate (the leader asks for one).
BOOST_AUTO_TEST_CASE(followers_forward_to_the_leader_over_https)
{
    temp_dir certs;
    make_certs(certs.path(), 3);
    const client_identity client{certs / "ca.crt", certs / "client.crt", certs / "client.key"};
    cluster c{3, false};
    for (std::uint64_t id = 1; id <= 3; ++id)
        c.start(id, with_tls(c.args(id), certs.path(), id, true));
    const std::optional<std::uint64_t> leader = agreed_leader(c, {1, 2, 3}, client);
    BOOST_TEST_REQUIRE(leader.has_value(), "the nodes never agreed on a leader over HTTPS");
    const std::uint64_t follower = *leader % 3 + 1;
    const std::uint64_t other = 6 - *leader - follower;

    const http_response put =
        https(c.http_port(follower), client, "PUT", kv_target("f"), value_body("via follower"));
    BOOST_TEST(put.status == 200, describe(put));
    const http_response got = https(c.http_port(*leader), client, "GET", kv_target("f"));
    BOOST_TEST(parse_json(got.body).string("value").value_or("<none>") == "via follower", describe(got));

    // Only the leader transfers leadership: the follower forwards this over HTTPS.
    const std::string body = "{\"id\": " + std::to_string(other) + "}";
    const http_response moved = https(c.http_port(follower), client, "POST", "/cluster/leader", body, 10s);
    BOOST_TEST(moved.status == 200, "leadership transfer through a follower: " << describe(moved));
    const std::optional<std::uint64_t> now = agreed_leader(c, {1, 2, 3}, client);
    BOOST_TEST((now && *now == other), "the leader is not node " << other);
}

// The same request fails when the followers do not trust the CA of the leader's certificate:
// forwarding verifies it.
BOOST_AUTO_TEST_CASE(forwarding_refuses_a_leader_whose_certificate_it_does_not_trust)
{
    temp_dir certs;
    make_certs(certs.path(), 3);
    temp_dir other;
    make_certs(other.path(), 1);
    const client_identity client{certs / "ca.crt", certs / "client.crt", certs / "client.key"};
    cluster c{3, false};
    for (std::uint64_t id = 1; id <= 3; ++id) {
        std::vector<std::string> args = with_tls(c.args(id), certs.path(), id, true);
        args.insert(args.end(), {"--forward-ca", (other / "ca.crt").string()});
        c.start(id, args);
    }
    const std::optional<std::uint64_t> leader = agreed_leader(c, {1, 2, 3}, client);
    BOOST_TEST_REQUIRE(leader.has_value(), "the nodes never agreed on a leader over HTTPS");
    const std::uint64_t follower = *leader % 3 + 1;
    const std::string body = "{\"id\": " + std::to_string(follower) + "}";
    const http_response moved = https(c.http_port(follower), client, "POST", "/cluster/leader", body, 10s);
    BOOST_TEST(moved.status == 503, describe(moved));
    BOOST_TEST(moved.body.find("cannot reach the leader") != std::string::npos, describe(moved));
}

/// `args` with its --join http://HOST:PORT turned into https://HOST:PORT.
std::vector<std::string> join_over_https(std::vector<std::string> args)
{
    const auto join = std::find(args.begin(), args.end(), "--join");
    BOOST_TEST_REQUIRE((join != args.end() && join + 1 != args.end()));
    std::string& url = *(join + 1);
    BOOST_TEST_REQUIRE(url.starts_with("http://"));
    url.insert(4, "s");
    return args;
}

// A new node joins an HTTPS cluster through --join https://: it fetches the member list over
// TLS, verifying the member's certificate and presenting its own (the members ask for one).
BOOST_AUTO_TEST_CASE(a_node_joins_an_https_cluster_through_join_https)
{
    temp_dir certs;
    make_certs(certs.path(), 4);
    temp_dir other;
    make_certs(other.path(), 1);
    const client_identity client{certs / "ca.crt", certs / "client.crt", certs / "client.key"};
    cluster c{3, false};
    for (std::uint64_t id = 1; id <= 3; ++id)
        c.start(id, with_tls(c.args(id), certs.path(), id, true));
    const std::optional<std::uint64_t> leader = agreed_leader(c, {1, 2, 3}, client);
    BOOST_TEST_REQUIRE(leader.has_value(), "the nodes never agreed on a leader over HTTPS");
    const http_response put =
        https(c.http_port(*leader), client, "PUT", kv_target("j"), value_body("before"));
    BOOST_TEST_REQUIRE(put.status == 200, describe(put));

    const std::uint64_t via = *leader % 3 + 1;
    const std::uint64_t id = c.add_node(via);
    const std::vector<std::string> args = join_over_https(with_tls(c.args(id), certs.path(), id, true));

    // A --forward-ca that did not sign the member's certificate: the join refuses it.
    std::vector<std::string> distrusting = args;
    distrusting.insert(distrusting.end(), {"--forward-ca", (other / "ca.crt").string()});
    const run_result refused = run_server(distrusting);
    BOOST_TEST_REQUIRE(refused.status.has_value(), "the server did not exit");
    BOOST_TEST((refused.status->exited && refused.status->code != 0), *refused.status);
    BOOST_TEST(refused.err.find("cannot ask https://") != std::string::npos, refused.err);

    http_response added;
    wait_until(
        [&] {
            added = https(c.http_port(via), client, "POST", "/cluster/members", c.member_body(id, true), 5s);
            return added.status == 201;
        },
        20s, 100ms);
    BOOST_TEST_REQUIRE(added.status == 201, describe(added));
    c.start(id, args);
    BOOST_TEST_REQUIRE(serves_health(c.http_port(id), client), read_tail(c.spec(id).log_file));
    // It learned the cluster and catches up: the write from before is readable there.
    const bool caught_up = wait_until(
        [&] {
            const http_response r = https(c.http_port(id), client, "GET", kv_target("j"), {}, 2s);
            return r.status == 200 && parse_json(r.body).string("value").value_or("") == "before";
        },
        20s, 100ms);
    BOOST_TEST(caught_up, read_tail(c.spec(id).log_file));
    BOOST_TEST(c.running(id));
}

// A renewed certificate takes effect without a restart: on SIGHUP, and when its files
// change; files that do not load are logged and leave the ones in use in use.
BOOST_AUTO_TEST_CASE(renewed_certificate_files_are_served_after_sighup_or_once_they_change)
{
    temp_dir first;
    make_certs(first.path(), 1);
    temp_dir second;
    make_certs(second.path(), 1);
    temp_dir live;
    const auto install = [&](const std::filesystem::path& from) {
        for (const char* ext : {".crt", ".key"})
            std::filesystem::copy_file(from / (std::string("node-1") + ext),
                                       live / (std::string("node-1") + ext),
                                       std::filesystem::copy_options::overwrite_existing);
    };
    install(first.path());
    cluster c{1, false};
    c.start(1, with_tls(c.args(1), live.path(), 1, false));
    const std::uint16_t port = c.http_port(1);
    const client_identity trusts_first{first / "ca.crt", {}, {}};
    const client_identity trusts_second{second / "ca.crt", {}, {}};
    BOOST_TEST_REQUIRE(serves_health(port, trusts_first));
    BOOST_TEST(https(port, trusts_second, "GET", "/health").status == 0);

    install(second.path());
    c.signal(1, SIGHUP);
    BOOST_TEST_REQUIRE(serves_health(port, trusts_second), read_tail(c.spec(1).log_file));
    BOOST_TEST(https(port, trusts_first, "GET", "/health").status == 0,
               "new connections use the new certificate");
    BOOST_TEST(read_tail(c.spec(1).log_file).find("SIGHUP: reloaded HTTPS") != std::string::npos);

    // A certificate whose key is not the one beside it (and which expired, too): refused
    // and logged, the certificate in use serves on, and what is said of expiry is said of
    // that one, not of the file that did not load.
    raftkv::test::write_certificate(live / "node-1.crt", -std::chrono::days(30), -std::chrono::days(1));
    c.signal(1, SIGHUP);
    BOOST_TEST(wait_until(
        [&] {
            return read_tail(c.spec(1).log_file).find("cannot reload the HTTPS certificates") !=
                   std::string::npos;
        },
        5s));
    BOOST_TEST(https(port, trusts_second, "GET", "/health").status == 200);

    // Changed files are picked up without a signal (polled every 10 s).
    install(first.path());
    BOOST_TEST(wait_until([&] { return https(port, trusts_first, "GET", "/health", {}, 1s).status == 200; },
                          25s, 200ms),
               read_tail(c.spec(1).log_file));
    const std::string log = read_tail(c.spec(1).log_file);
    BOOST_TEST(log.find("the TLS files changed: reloaded HTTPS") != std::string::npos);
    BOOST_TEST(log.find("expired at") == std::string::npos, log);
    BOOST_TEST(c.running(1));
}

BOOST_AUTO_TEST_CASE(a_missing_or_mismatched_key_stops_the_server_with_one_line)
{
    temp_dir certs;
    make_certs(certs.path(), 2);
    cluster c{1, false};
    std::vector<std::string> args = c.args(1);
    args.insert(args.end(),
                {"--cert", (certs / "node-1.crt").string(), "--key", (certs / "node-2.key").string()});
    const run_result r = run_server(args);
    BOOST_TEST_REQUIRE(r.status.has_value(), "the server did not exit");
    BOOST_TEST((r.status->exited && r.status->code == 2), *r.status);
    BOOST_TEST(r.err.find("cannot use the private key") != std::string::npos, r.err);
    BOOST_TEST(std::count(r.err.begin(), r.err.end(), '\n') == 1, r.err);

    args.back() = (certs / "missing.key").string();
    const run_result missing = run_server(args);
    BOOST_TEST_REQUIRE(missing.status.has_value(), "the server did not exit");
    BOOST_TEST((missing.status->exited && missing.status->code == 2), *missing.status);
    BOOST_TEST(missing.err.find("--key: cannot read") != std::string::npos, missing.err);
    BOOST_TEST(std::count(missing.err.begin(), missing.err.end(), '\n') == 1, missing.err);
}

BOOST_AUTO_TEST_CASE(plain_http_beyond_loopback_is_warned_about_at_startup)
{
    cluster c{1, false};
    std::vector<std::string> args = c.args(1);
    const auto http = std::find(args.begin(), args.end(), "--http");
    BOOST_TEST_REQUIRE((http != args.end()));
    *(http + 1) = "0.0.0.0:" + std::to_string(c.http_port(1));
    c.start(1, args);
    BOOST_TEST_REQUIRE(c.wait_healthy(1, 20s));
    BOOST_TEST(read_tail(c.spec(1).log_file).find("without TLS") != std::string::npos,
               read_tail(c.spec(1).log_file));
}

BOOST_AUTO_TEST_CASE(a_watcher_that_stopped_reading_over_https_is_closed_and_its_slot_freed)
{
    temp_dir certs;
    make_certs(certs.path(), 1);
    const client_identity client{certs / "ca.crt", {}, {}};
    cluster c{1, false};
    std::vector<std::string> args = c.args(1);
    args.insert(args.end(), {"--http-idle-timeout-ms", "1000", "--max-watchers", "1"});
    c.start(1, with_tls(args, certs.path(), 1, false));
    const std::uint16_t port = c.http_port(1);
    BOOST_TEST_REQUIRE(serves_health(port, client), "the node never answered /health over HTTPS");

    ssl::context context(ssl::context::tls_client);
    asio::io_context io;
    tls_stream stalled(io, context);
    int status = 0;
    asio::co_spawn(io, open_watch(stalled, port, "/watch/?prefix=true&progress_ms=100", status),
                   asio::detached);
    io.run_for(5s);
    BOOST_TEST_REQUIRE(status == 200);
    // More than its receive buffer takes, less than the server's send buffer: no write blocks.
    const std::string value(64 * 1024, 'x');
    for (int k = 0; k < 4; ++k) {
        const http_response r =
            https(port, client, "PUT", kv_target("held/" + std::to_string(k)), value_body(value));
        BOOST_TEST_REQUIRE(r.status == 200, describe(r));
    }
    BOOST_TEST(wait_until([&] { return metric(port, client, "raftkv_watchers") == 0.0; }, 10s));
    BOOST_TEST(metric(port, client, "raftkv_watchers_stalled_closed_total").value_or(-1) == 1.0);

    tls_stream next(io, context);
    int next_status = 0;
    io.restart();
    asio::co_spawn(io, open_watch(next, port, "/watch/?prefix=true", next_status), asio::detached);
    io.run_for(5s);
    BOOST_TEST(next_status == 200);

    bool ended = false;
    io.restart();
    asio::co_spawn(io, read_to_end(stalled, ended), asio::detached);
    io.run_for(5s);
    BOOST_TEST(ended);
}
