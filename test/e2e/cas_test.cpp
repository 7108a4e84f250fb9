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

// Header `name` (lower-case) of `r`, or "" when it has none.
std::string header(const http_response& r, const std::string& name)
{
    const auto it = r.headers.find(name);
    return it == r.headers.end() ? std::string() : it->second;
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
    BOOST_TEST(parse_json(gone.body).string("error").value_or("").find("If-None-Match") == std::string::npos);
    // If-Match: 0 is no "absent" marker (version 0 is a key written before versions): its
    // 412 on an absent key says what is.
    const http_response zero = put_if(follower_port, "k", "z", "If-Match", "0");
    BOOST_TEST_REQUIRE(is_error(zero, 412), describe(zero));
    BOOST_TEST(parse_json(zero.body).string("error").value_or("").find("send If-None-Match: *") !=
                   std::string::npos,
               describe(zero));

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

// A GET or HEAD with If-None-Match is how a cache revalidates a key (304 while it is at a
// listed version); with If-Match, a read that must see one version (else 412).
BOOST_AUTO_TEST_CASE(conditional_reads_and_head_through_leader_and_followers)
{
    const std::uint16_t leader_port = c.http_port(leader);
    const http_response created = put(leader_port, "doc", "one");
    BOOST_TEST_REQUIRE(created.status == 200, describe(created));
    const std::uint64_t v1 = version_in(created);
    const auto get_if = [](std::uint16_t port, const std::string& key, const header_list& headers,
                           const std::string& method = "GET", const std::string& query = "") {
        return request(port, method, kv_target(key) + query, {}, headers);
    };

    for (const std::uint64_t id : {leader, followers()[0], followers()[1]}) {
        const std::uint16_t port = c.http_port(id);
        const std::string at = "node " + std::to_string(id);

        // Not modified: the ETag and how the read was served, no body.
        for (const std::string& tags : {quoted(v1), "W/" + quoted(v1),
                                        "\"x\", " + quoted(v1 - 1) + ", " + quoted(v1), std::string("*")}) {
            const http_response r = get_if(port, "doc", header_list{{"If-None-Match", tags}});
            BOOST_TEST(r.status == 304, at << ", If-None-Match: " << tags << " -> " << describe(r));
            BOOST_TEST(r.body.empty());
            BOOST_TEST(header(r, "etag") == quoted(v1));
            BOOST_TEST(header(r, "raftkv-read") == "read-index");
            BOOST_TEST(!header(r, "raftkv-applied-index").empty());
        }
        const http_response stale =
            get_if(port, "doc", header_list{{"If-None-Match", quoted(v1)}}, "GET", "?consistency=stale");
        BOOST_TEST(stale.status == 304, at << ": " << describe(stale));
        BOOST_TEST(header(stale, "raftkv-read") == "stale");

        // Another version listed: the key, as without the header.
        const http_response changed = get_if(port, "doc", header_list{{"If-None-Match", quoted(v1 + 1)}});
        BOOST_TEST_REQUIRE(changed.status == 200, at << ": " << describe(changed));
        BOOST_TEST(parse_json(changed.body).string("value").value_or("<none>") == "one");

        // If-Match: the version, or 412 naming the current one.
        BOOST_TEST(get_if(port, "doc", header_list{{"If-Match", quoted(v1)}}).status == 200);
        const http_response mismatch = get_if(port, "doc", header_list{{"If-Match", std::to_string(v1 + 1)}});
        BOOST_TEST_REQUIRE(is_error(mismatch, 412), at << ": " << describe(mismatch));
        BOOST_TEST(version_in(mismatch) == v1);
        BOOST_TEST(header(mismatch, "etag") == quoted(v1));

        // HEAD: a GET's status and headers, Content-Length included, without the body.
        const http_response full = get(port, "doc");
        const http_response head = get_if(port, "doc", {}, "HEAD");
        BOOST_TEST_REQUIRE(head.status == 200, at << ": " << describe(head));
        BOOST_TEST(head.body.empty());
        BOOST_TEST(header(head, "content-length") == std::to_string(full.body.size()));
        BOOST_TEST(header(head, "etag") == quoted(v1));
        BOOST_TEST(get_if(port, "doc", header_list{{"If-None-Match", quoted(v1)}}, "HEAD").status == 304);
        BOOST_TEST(get_if(port, "absent", {}, "HEAD").status == 404);

        // An absent key is never "not modified"; If-Match on it fails.
        BOOST_TEST(is_error(get_if(port, "absent", header_list{{"If-None-Match", "*"}}), 404));
        const http_response none = get_if(port, "absent", header_list{{"If-Match", "1"}});
        BOOST_TEST_REQUIRE(is_error(none, 412), at << ": " << describe(none));
        BOOST_TEST(parse_json(none.body).text.at("exists") == "false");

        // Malformed conditions are 400.
        for (const auto& [name, value] : std::vector<std::pair<std::string, std::string>>{
                 {"If-None-Match", "\"1"}, {"If-None-Match", "abc"}, {"If-Match", "*"}}) {
            const http_response r = get_if(port, "doc", header_list{{name, value}});
            BOOST_TEST(is_error(r, 400), at << ", " << name << ": " << value << " -> " << describe(r));
        }
    }

    // After a write, the cached version no longer matches: the new value and ETag.
    const http_response updated = put(c.http_port(followers()[0]), "doc", "two");
    BOOST_TEST_REQUIRE(updated.status == 200, describe(updated));
    const http_response fresh =
        get_if(c.http_port(followers()[1]), "doc", header_list{{"If-None-Match", quoted(v1)}});
    BOOST_TEST_REQUIRE(fresh.status == 200, describe(fresh));
    BOOST_TEST(parse_json(fresh.body).string("value").value_or("<none>") == "two");
    BOOST_TEST(header(fresh, "etag") == quoted(version_in(updated)));
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
