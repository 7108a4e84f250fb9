#include <raftkv/sim/network.hpp>

#define BOOST_TEST_MODULE sim_network
#include <boost/test/unit_test.hpp>

#include <chrono>

using namespace std::chrono_literals;
using raftkv::sim::link_config;
using raftkv::sim::network;
using raftkv::sim::random_generator;

BOOST_AUTO_TEST_CASE(every_link_is_up_by_default)
{
    network n;
    BOOST_TEST(n.connected(1, 2));
    BOOST_TEST(n.connected(2, 1));
    BOOST_TEST(n.connected(3, 3));
}

BOOST_AUTO_TEST_CASE(partition_cuts_links_between_groups_only)
{
    network n;
    n.partition({{1, 2}, {3, 4, 5}});
    BOOST_TEST(n.connected(1, 2));
    BOOST_TEST(n.connected(4, 5));
    BOOST_TEST(!n.connected(1, 3));
    BOOST_TEST(!n.connected(5, 2));
}

BOOST_AUTO_TEST_CASE(nodes_left_out_of_a_partition_are_alone)
{
    network n;
    n.partition({{1, 2}});
    BOOST_TEST(n.connected(1, 2));
    BOOST_TEST(!n.connected(3, 4));
    BOOST_TEST(!n.connected(3, 1));
}

BOOST_AUTO_TEST_CASE(a_new_partition_replaces_the_old_one)
{
    network n;
    n.partition({{1, 2}, {3}});
    n.partition({{1, 3}, {2}});
    BOOST_TEST(n.connected(1, 3));
    BOOST_TEST(!n.connected(1, 2));
}

BOOST_AUTO_TEST_CASE(isolate_cuts_one_node_and_keeps_the_rest_connected)
{
    network n;
    n.isolate(2);
    BOOST_TEST(!n.connected(1, 2));
    BOOST_TEST(!n.connected(2, 3));
    BOOST_TEST(n.connected(1, 3));
}

BOOST_AUTO_TEST_CASE(reconnect_undoes_isolate_for_one_node)
{
    network n;
    n.isolate(2);
    n.isolate(3);
    n.reconnect(2);
    BOOST_TEST(n.connected(1, 2));
    BOOST_TEST(!n.connected(1, 3));
}

BOOST_AUTO_TEST_CASE(slow_copies_take_the_extra_delay_and_the_rest_do_not)
{
    network n{link_config{.min_delay = 1ms, .max_delay = 1ms, .slow = 0.5, .max_slow_delay = 1s}};
    random_generator g{2};
    int slow = 0;
    for (int k = 0; k < 1000; ++k) {
        const auto d = n.route(1, 2, g).at(0);
        BOOST_TEST_REQUIRE(d <= 1001ms);
        slow += d > 1ms ? 1 : 0;
    }
    BOOST_TEST((slow > 400 && slow < 600));
}

BOOST_AUTO_TEST_CASE(block_is_one_way)
{
    network n;
    n.block(1, 2);
    BOOST_TEST(!n.connected(1, 2));
    BOOST_TEST(n.connected(2, 1));
    n.unblock(1, 2);
    BOOST_TEST(n.connected(1, 2));
}

BOOST_AUTO_TEST_CASE(heal_restores_connectivity_but_keeps_link_behaviour)
{
    network n;
    n.set_link(1, 2, link_config{.loss = 1.0});
    n.partition({{1}, {2, 3}});
    n.isolate(3);
    n.block(2, 1);
    n.heal();
    BOOST_TEST(n.connected(1, 2));
    BOOST_TEST(n.connected(2, 1));
    BOOST_TEST(n.connected(2, 3));
    BOOST_TEST(n.link(1, 2).loss == 1.0);
}

BOOST_AUTO_TEST_CASE(route_delivers_one_copy_within_the_delay_bounds)
{
    network n{link_config{.min_delay = 2ms, .max_delay = 4ms}};
    random_generator g{1};
    for (int k = 0; k < 1000; ++k) {
        const auto d = n.route(1, 2, g);
        BOOST_TEST_REQUIRE(d.size() == 1u);
        BOOST_TEST_REQUIRE((d[0] >= 2ms && d[0] <= 4ms));
    }
}

BOOST_AUTO_TEST_CASE(route_drops_everything_on_a_dead_or_cut_link)
{
    network n;
    random_generator g{1};
    n.set_link(1, 2, link_config{.loss = 1.0});
    BOOST_TEST(n.route(1, 2, g).empty());
    BOOST_TEST(n.route(2, 1, g).size() == 1u);
    n.isolate(3);
    BOOST_TEST(n.route(3, 1, g).empty());
}

BOOST_AUTO_TEST_CASE(route_duplicates_with_the_configured_probability)
{
    network n{link_config{.duplicate = 1.0}};
    random_generator g{1};
    BOOST_TEST(n.route(1, 2, g).size() == 2u);
    n.set_default_link(link_config{.duplicate = 0.5});
    int copies = 0;
    for (int k = 0; k < 1000; ++k)
        copies += static_cast<int>(n.route(1, 2, g).size());
    BOOST_TEST((copies > 1400 && copies < 1600));
}

BOOST_AUTO_TEST_CASE(set_default_link_drops_per_link_settings)
{
    network n;
    n.set_link(1, 2, link_config{.loss = 0.5});
    n.set_default_link(link_config{.loss = 0.1});
    BOOST_TEST(n.link(1, 2).loss == 0.1);
    BOOST_TEST(n.link(2, 1).loss == 0.1);
}

BOOST_AUTO_TEST_CASE(routing_is_deterministic_for_a_seed)
{
    network n{link_config{.min_delay = 1ms, .max_delay = 50ms, .loss = 0.3, .duplicate = 0.3}};
    random_generator a{99}, b{99};
    for (int k = 0; k < 200; ++k)
        BOOST_TEST_REQUIRE((n.route(1, 2, a) == n.route(1, 2, b)));
}
