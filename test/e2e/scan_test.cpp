// GET /kv, the range scan, against real servers: pagination, keys_only, prefixes, bad
// parameters, and a follower answering through the leader.
#define BOOST_TEST_MODULE raftkv_e2e_scan
#include <boost/test/unit_test.hpp>

#include "harness.hpp"
#include "three_nodes.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace {

using namespace raftkv::e2e;
namespace json = boost::json;

/// One page of a scan, parsed; `status` 0 when the answer was not a 200 with the right shape.
struct page {
    int status = 0;
    std::vector<std::string> keys, values;
    bool more = false;
    std::string next;
    bool had_values = false;
};

page scan(std::uint16_t port, const std::string& query)
{
    const http_response r = request(port, "GET", "/kv" + query);
    BOOST_TEST_REQUIRE(r.status == 200, "GET /kv" << query << ": " << describe(r));
    page p;
    const json::value doc = json::parse(r.body);
    for (const json::value& item : doc.at("items").as_array()) {
        p.keys.emplace_back(item.at("key").as_string());
        if (const json::value* v = item.as_object().if_contains("value")) {
            p.values.emplace_back(v->as_string());
            p.had_values = true;
        }
    }
    p.more = doc.at("more").as_bool();
    if (p.more)
        p.next = std::string(doc.at("next").as_string());
    else
        BOOST_TEST(!doc.as_object().contains("next"));
    p.status = r.status;
    return p;
}

/// Every key under `prefix`, page by page of `limit`; how many pages it took in *pages.
std::vector<std::string> scan_all(std::uint16_t port, const std::string& prefix, int limit, int* pages)
{
    std::vector<std::string> keys;
    std::string after;
    *pages = 0;
    for (bool more = true; more && *pages < 100; ++*pages) {
        const page p = scan(port, "?prefix=" + url_encode(prefix) + "&limit=" + std::to_string(limit) +
                                      (after.empty() ? "" : "&after=" + url_encode(after)));
        keys.insert(keys.end(), p.keys.begin(), p.keys.end());
        more = p.more;
        after = p.next;
    }
    return keys;
}

void put_ok(std::uint16_t port, const std::string& key, const std::string& value)
{
    const http_response r = put(port, key, value);
    BOOST_TEST_REQUIRE(r.status == 200, "PUT " << key << ": " << describe(r));
}

} // namespace

BOOST_AUTO_TEST_CASE(a_single_node_pages_through_a_prefix_in_byte_order)
{
    cluster c{1};
    BOOST_TEST_REQUIRE(c.wait_healthy(1, 20s));
    const std::uint16_t port = c.http_port(1);
    std::vector<std::string> expected;
    for (int i = 0; i < 25; ++i) {
        const std::string key = "dir/" + std::string(i < 10 ? "0" : "") + std::to_string(i);
        std::string value = "v"; // not "v" + std::to_string(i): a false -Wrestrict (GCC 12, -O3)
        value += std::to_string(i);
        put_ok(port, key, value);
        expected.push_back(key);
    }
    put_ok(port, "dir/sub dir/\xc3\xa9+x", "odd");
    expected.push_back("dir/sub dir/\xc3\xa9+x");
    put_ok(port, "dir0", "outside");
    put_ok(port, "a", "before");

    int pages = 0;
    BOOST_TEST(scan_all(port, "dir/", 10, &pages) == expected, boost::test_tools::per_element());
    BOOST_TEST(pages == 3);

    const page first = scan(port, "?prefix=dir%2F&limit=2");
    BOOST_TEST((first.keys == std::vector<std::string>{"dir/00", "dir/01"}));
    BOOST_TEST((first.values == std::vector<std::string>{"v0", "v1"}));
    BOOST_TEST(first.more);
    BOOST_TEST(first.next == "dir/01");

    const page keys_only = scan(port, "?prefix=dir%2Fsub&keys_only=true");
    BOOST_TEST((keys_only.keys == std::vector<std::string>{"dir/sub dir/\xc3\xa9+x"}));
    BOOST_TEST(!keys_only.had_values);
    BOOST_TEST(!keys_only.more);

    const page none = scan(port, "?prefix=nothing-here");
    BOOST_TEST(none.keys.empty());
    BOOST_TEST(!none.more);

    // The default limit is 100, and node metadata stays out of the listing.
    const page all = scan(port, "");
    BOOST_TEST(all.keys.size() == expected.size() + 2);
    BOOST_TEST(all.keys.front() == "a");

    // A deleted key is gone from the next scan.
    BOOST_TEST_REQUIRE(del(port, "a").status == 200);
    BOOST_TEST(scan(port, "?limit=1").keys.front() == "dir/00");
}

BOOST_AUTO_TEST_CASE(bad_scan_parameters_are_400_with_a_message)
{
    cluster c{1};
    BOOST_TEST_REQUIRE(c.wait_healthy(1, 20s));
    for (const char* query : {"?limit=0", "?limit=1001", "?limit=abc", "?keys_only=yes", "?prefix=%zz",
                              "?from=a", "?limit=1&limit=2"}) {
        const http_response r = request(c.http_port(1), "GET", std::string("/kv") + query);
        BOOST_TEST(is_error(r, 400), query << ": " << describe(r));
    }
    http_response post = request(c.http_port(1), "POST", "/kv");
    BOOST_TEST(is_error(post, 405), describe(post));
    BOOST_TEST(post.headers["allow"] == "GET, HEAD");
}

BOOST_AUTO_TEST_CASE(every_node_of_three_lists_what_was_just_written)
{
    three_nodes t;
    // Written through each node in turn, listed right away through each: a follower's scan
    // is linearizable (it goes through the leader), so it sees every acknowledged write.
    for (int i = 0; i < 9; ++i) {
        const std::uint64_t via = static_cast<std::uint64_t>(i % 3) + 1;
        std::string key = "k"; // not "k" + std::to_string(i): a false -Wrestrict (GCC 12, -O3)
        key += std::to_string(i);
        put_ok(t.c.http_port(via), key, std::to_string(i));
        for (std::uint64_t id = 1; id <= 3; ++id) {
            const page p = scan(t.c.http_port(id), "?prefix=k&keys_only=true");
            BOOST_TEST(p.keys.size() == static_cast<std::size_t>(i + 1),
                       "node " << id << " after write " << i);
        }
    }
    const std::uint64_t follower = t.followers().front();
    int pages = 0;
    const std::vector<std::string> keys = scan_all(t.c.http_port(follower), "k", 4, &pages);
    BOOST_TEST(keys.size() == 9u);
    BOOST_TEST(pages == 3);
    const page p = scan(t.c.http_port(follower), "?prefix=k8");
    BOOST_TEST((p.values == std::vector<std::string>{"8"}));
}
