// GET ?consistency=linearizable|lease|stale on a three-node cluster: which path served a
// read (Raftkv-Read) and at what applied index (Raftkv-Applied-Index), stale reads on a
// follower while the leader is stopped, and bad values refused.
#define BOOST_TEST_MODULE raftkv_e2e_read_modes

#include "harness.hpp"
#include "three_nodes.hpp"

#include <boost/test/unit_test.hpp>

#include <csignal>
#include <cstdint>
#include <string>

namespace {

using namespace raftkv::e2e;

http_response get_as(std::uint16_t port, const std::string& key, const std::string& consistency,
                     milliseconds timeout = 5s)
{
    return request(port, "GET", kv_target(key) + "?consistency=" + consistency, {}, timeout);
}

std::string header(const http_response& r, const std::string& name)
{
    const auto it = r.headers.find(name);
    return it == r.headers.end() ? std::string{} : it->second;
}

std::uint64_t applied_index(const http_response& r)
{
    const std::string text = header(r, "raftkv-applied-index");
    return text.empty() ? 0 : std::stoull(text);
}

} // namespace

BOOST_FIXTURE_TEST_SUITE(read_modes, three_nodes)

BOOST_AUTO_TEST_CASE(each_mode_says_how_it_was_served_and_at_what_applied_index)
{
    BOOST_TEST_REQUIRE(put(c.http_port(leader), "k", "v1").status == 200);
    const auto lin = get(c.http_port(leader), "k");
    BOOST_TEST_REQUIRE(lin.status == 200, describe(lin));
    BOOST_TEST(header(lin, "raftkv-read") == "read-index");
    BOOST_TEST(applied_index(lin) >= 2u); // the leader's noop and the put

    // A lease read on the leader skips the ReadIndex round once a heartbeat round was answered.
    http_response lease;
    BOOST_TEST(wait_until(
        [&] {
            lease = get_as(c.http_port(leader), "k", "lease");
            return header(lease, "raftkv-read") == "lease";
        },
        5s, 20ms));
    BOOST_TEST(lease.status == 200, describe(lease));
    BOOST_TEST(parse_json(lease.body).string("value").value_or("") == "v1");
    BOOST_TEST(applied_index(lease) >= applied_index(lin));

    // A follower answers a stale read itself, once it applied the put, and never goes back.
    const std::uint64_t f = followers().front();
    http_response stale;
    BOOST_TEST(wait_until(
        [&] {
            stale = get_as(c.http_port(f), "k", "stale");
            return stale.status == 200;
        },
        5s, 20ms));
    BOOST_TEST(header(stale, "raftkv-read") == "stale");
    BOOST_TEST(parse_json(stale.body).string("value").value_or("") == "v1");
    const std::uint64_t first = applied_index(stale);
    BOOST_TEST(first >= 2u);
    const auto again = get_as(c.http_port(f), "k", "stale");
    BOOST_TEST(applied_index(again) >= first);

    // A lease read on a follower goes through the leader, as a linearizable one does.
    const auto lease_at_follower = get_as(c.http_port(f), "k", "lease");
    BOOST_TEST(lease_at_follower.status == 200, describe(lease_at_follower));
    BOOST_TEST(header(lease_at_follower, "raftkv-read") == "read-index");

    // A missing key under a stale read is a 404 that still says where it was read.
    const auto missing = get_as(c.http_port(f), "absent", "stale");
    BOOST_TEST(missing.status == 404);
    BOOST_TEST(header(missing, "raftkv-read") == "stale");

    // Scans take the same parameter.
    const auto scan = request(c.http_port(f), "GET", "/kv?prefix=k&consistency=stale");
    BOOST_TEST(scan.status == 200, describe(scan));
    BOOST_TEST(header(scan, "raftkv-read") == "stale");
}

BOOST_AUTO_TEST_CASE(an_unknown_consistency_is_refused)
{
    const auto bad = get_as(c.http_port(leader), "k", "eventual");
    BOOST_TEST(is_error(bad, 400), describe(bad));
    BOOST_TEST(bad.body.find("linearizable, lease or stale") != std::string::npos, bad.body);
    const auto twice = request(c.http_port(leader), "GET", "/kv/k?consistency=stale&consistency=lease");
    BOOST_TEST(is_error(twice, 400), describe(twice));
    const auto scan = request(c.http_port(leader), "GET", "/kv?consistency=");
    BOOST_TEST(is_error(scan, 400), describe(scan));
}

BOOST_AUTO_TEST_CASE(a_follower_serves_stale_reads_while_the_leader_is_stopped)
{
    BOOST_TEST_REQUIRE(put(c.http_port(leader), "k", "before").status == 200);
    const std::uint64_t f = followers().front();
    BOOST_TEST_REQUIRE(wait_until(
        [&] {
            const auto r = get_as(c.http_port(f), "k", "stale");
            return parse_json(r.body).string("value").value_or("") == "before";
        },
        5s, 20ms));
    c.signal(leader, SIGSTOP);
    const auto stale = get_as(c.http_port(f), "k", "stale", 2s);
    // A linearizable read there needs the stopped leader: nothing answers it in 200 ms, well
    // under the 300 ms election timeout.
    const auto lin = get(c.http_port(f), "k", 200ms);
    c.signal(leader, SIGCONT);
    BOOST_TEST(stale.status == 200, describe(stale));
    BOOST_TEST(parse_json(stale.body).string("value").value_or("") == "before");
    BOOST_TEST(header(stale, "raftkv-read") == "stale");
    BOOST_TEST(lin.status != 200, describe(lin));
}

BOOST_AUTO_TEST_SUITE_END()
