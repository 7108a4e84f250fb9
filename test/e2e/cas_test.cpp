// Key versions and conditional writes against a real three-node cluster: the version in
// GET, PUT, DELETE and scans, If-Match and If-None-Match through any node, and races of
// concurrent clients in which exactly one wins.
#define BOOST_TEST_MODULE raftkv_e2e_cas
#include <boost/test/unit_test.hpp>

#include "harness.hpp"
#include "three_nodes.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include <algorithm>
#include <barrier>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace {

using namespace raftkv::e2e;
namespace json = boost::json;

std::uint64_t version_in(const http_response& r)
{
    const json::value doc = json::parse(r.body);
    return doc.at("version").to_number<std::uint64_t>();
}

http_response put_if(std::uint16_t port, const std::string& key, const std::string& value,
                     const std::string& header, const std::string& header_value)
{
    return request(port, "PUT", kv_target(key), value_body(value), header_list{{header, header_value}});
}

http_response del_if(std::uint16_t port, const std::string& key, const std::string& header,
                     const std::string& header_value)
{
    return request(port, "DELETE", kv_target(key), {}, header_list{{header, header_value}});
}

std::string quoted(std::uint64_t v)
{
    return "\"" + std::to_string(v) + "\"";
}

} // namespace

BOOST_FIXTURE_TEST_SUITE(cas, three_nodes)

BOOST_AUTO_TEST_CASE(versions_and_preconditions_through_leader_and_followers)
{
    const std::uint16_t leader_port = c.http_port(leader);
    const std::uint16_t follower_port = c.http_port(followers()[0]);

    const http_response created = put(follower_port, "k", "one");
    BOOST_TEST_REQUIRE(created.status == 200, describe(created));
    const std::uint64_t v1 = version_in(created);
    BOOST_TEST(v1 > 0u);
    BOOST_TEST(created.headers.at("etag") == quoted(v1));

    const http_response read = get(follower_port, "k");
    BOOST_TEST_REQUIRE(read.status == 200, describe(read));
    BOOST_TEST(version_in(read) == v1);
    BOOST_TEST(read.headers.at("etag") == quoted(v1));
    BOOST_TEST(parse_json(read.body).string("value").value_or("<none>") == "one");

    // A stale version, through a follower (which forwards the header): 412 naming the
    // current version; nothing changes.
    const http_response stale = put_if(follower_port, "k", "two", "If-Match", quoted(v1 + 1000));
    BOOST_TEST_REQUIRE(is_error(stale, 412), describe(stale));
    BOOST_TEST(version_in(stale) == v1);
    BOOST_TEST(parse_json(stale.body).text.at("exists") == "true");
    BOOST_TEST(parse_json(get(leader_port, "k").body).string("value").value_or("<none>") == "one");

    // The current version, quoted or bare.
    const http_response swapped = put_if(follower_port, "k", "two", "If-Match", quoted(v1));
    BOOST_TEST_REQUIRE(swapped.status == 200, describe(swapped));
    const std::uint64_t v2 = version_in(swapped);
    BOOST_TEST(v2 > v1);
    const http_response bare = put_if(leader_port, "k", "three", "If-Match", std::to_string(v2));
    BOOST_TEST_REQUIRE(bare.status == 200, describe(bare));
    const std::uint64_t v3 = version_in(bare);

    // Create-only.
    const http_response exists = put_if(follower_port, "k", "x", "If-None-Match", "*");
    BOOST_TEST_REQUIRE(is_error(exists, 412), describe(exists));
    BOOST_TEST(version_in(exists) == v3);
    const http_response fresh = put_if(follower_port, "new", "x", "If-None-Match", "*");
    BOOST_TEST_REQUIRE(fresh.status == 200, describe(fresh));

    // Conditional deletes: a delete answers the version the key had.
    const http_response wrong = del_if(follower_port, "k", "If-Match", quoted(v2));
    BOOST_TEST_REQUIRE(is_error(wrong, 412), describe(wrong));
    const http_response deleted = del_if(follower_port, "k", "If-Match", quoted(v3));
    BOOST_TEST_REQUIRE(deleted.status == 200, describe(deleted));
    BOOST_TEST(version_in(deleted) == v3);
    const http_response gone = del_if(follower_port, "k", "If-Match", quoted(v3));
    BOOST_TEST_REQUIRE(is_error(gone, 412), describe(gone));
    BOOST_TEST(version_in(gone) == 0u);
    BOOST_TEST(parse_json(gone.body).text.at("exists") == "false");

    // Malformed preconditions never reach the log.
    for (const auto& [name, value] :
         std::vector<std::pair<std::string, std::string>>{{"If-Match", "*"},
                                                          {"If-Match", "W/\"1\""},
                                                          {"If-Match", "\"1\", \"2\""},
                                                          {"If-Match", "abc"},
                                                          {"If-Match", "-1"},
                                                          {"If-Match", "18446744073709551616"},
                                                          {"If-None-Match", "\"1\""}}) {
        const http_response r = put_if(follower_port, "new", "y", name, value);
        BOOST_TEST(is_error(r, 400), name << ": " << value << " -> " << describe(r));
    }
    const http_response both = request(leader_port, "PUT", kv_target("new"), value_body("y"),
                                       header_list{{"If-Match", "1"}, {"If-None-Match", "*"}});
    BOOST_TEST(is_error(both, 400), describe(both));
    BOOST_TEST(is_error(del_if(leader_port, "new", "If-None-Match", "*"), 400));
    BOOST_TEST(parse_json(get(leader_port, "new").body).string("value").value_or("<none>") == "x");

    // Scans list each key's version.
    const http_response page = request(follower_port, "GET", "/kv?prefix=new");
    BOOST_TEST_REQUIRE(page.status == 200, describe(page));
    const json::value doc = json::parse(page.body);
    BOOST_TEST_REQUIRE(doc.at("items").as_array().size() == 1u);
    BOOST_TEST(doc.at("items").as_array()[0].at("version").to_number<std::uint64_t>() == version_in(fresh));
}

BOOST_AUTO_TEST_CASE(concurrent_compare_and_swap_has_exactly_one_winner_per_version)
{
    // Each round every client reads the key's version, waits for the others, then swaps
    // from it, through its own node: exactly one succeeds, and every other one is told the
    // winner's version.
    constexpr int clients = 6;
    constexpr int rounds = 8;
    const http_response first = put(c.http_port(leader), "race", "start");
    BOOST_TEST_REQUIRE(first.status == 200, describe(first));
    std::barrier sync(clients);
    std::mutex mutex;
    std::vector<std::vector<int>> statuses(rounds);
    std::vector<std::vector<std::uint64_t>> answered(rounds);
    std::vector<std::uint64_t> read_versions(rounds * clients);
    std::vector<std::thread> threads;
    for (int t = 0; t < clients; ++t) {
        threads.emplace_back([&, t] {
            const std::uint16_t port = c.http_port(static_cast<std::uint64_t>(t % 3 + 1));
            for (int round = 0; round < rounds; ++round) {
                const http_response r = get(port, "race");
                const std::uint64_t v = r.status == 200 ? version_in(r) : 0;
                sync.arrive_and_wait();
                const http_response w =
                    put_if(port, "race", "client " + std::to_string(t), "If-Match", quoted(v));
                const std::uint64_t after = (w.status == 200 || w.status == 412) ? version_in(w) : 0;
                {
                    std::lock_guard lock(mutex);
                    statuses[round].push_back(w.status);
                    answered[round].push_back(after);
                    read_versions[round * clients + t] = v;
                }
                sync.arrive_and_wait();
            }
        });
    }
    for (auto& t : threads)
        t.join();
    for (int round = 0; round < rounds; ++round) {
        BOOST_TEST_CONTEXT("round " << round)
        {
            int won = 0;
            std::uint64_t winner = 0;
            for (std::size_t k = 0; k < statuses[round].size(); ++k) {
                BOOST_TEST((statuses[round][k] == 200 || statuses[round][k] == 412), statuses[round][k]);
                if (statuses[round][k] == 200) {
                    ++won;
                    winner = answered[round][k];
                }
            }
            BOOST_TEST(won == 1);
            for (std::size_t k = 0; k < statuses[round].size(); ++k)
                BOOST_TEST(answered[round][k] == winner); // the losers see the winner's version
            for (int t = 0; t < clients; ++t)
                BOOST_TEST(read_versions[round * clients + t] == read_versions[round * clients]);
        }
    }
}

BOOST_AUTO_TEST_CASE(concurrent_create_only_puts_have_exactly_one_winner)
{
    constexpr int clients = 6;
    for (int round = 0; round < 5; ++round) {
        const std::string key = "create-" + std::to_string(round);
        std::barrier sync(clients);
        std::mutex mutex;
        std::vector<int> statuses;
        std::vector<std::string> winners;
        std::vector<std::thread> threads;
        for (int t = 0; t < clients; ++t) {
            threads.emplace_back([&, t] {
                const std::uint16_t port = c.http_port(static_cast<std::uint64_t>(t % 3 + 1));
                sync.arrive_and_wait();
                const http_response r =
                    put_if(port, key, "client " + std::to_string(t), "If-None-Match", "*");
                std::lock_guard lock(mutex);
                statuses.push_back(r.status);
                if (r.status == 200)
                    winners.push_back("client " + std::to_string(t));
            });
        }
        for (auto& t : threads)
            t.join();
        BOOST_TEST_CONTEXT("key " << key)
        {
            BOOST_TEST(std::count(statuses.begin(), statuses.end(), 200) == 1);
            BOOST_TEST(std::count(statuses.begin(), statuses.end(), 412) == clients - 1);
            BOOST_TEST_REQUIRE(winners.size() == 1u);
            BOOST_TEST(parse_json(get(c.http_port(leader), key).body).string("value").value_or("<none>") ==
                       winners[0]);
        }
    }
}

BOOST_AUTO_TEST_SUITE_END()
