// The harness's own promises that every other end-to-end test leans on.
#define BOOST_TEST_MODULE raftkv_e2e_harness
#include <boost/test/unit_test.hpp>

#include "harness.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace {

using namespace raftkv::e2e;

/// The kernel's ephemeral range, from which outgoing connections take their local ports.
std::pair<unsigned, unsigned> ephemeral_range()
{
    unsigned low = 32768, high = 60999;
    std::ifstream("/proc/sys/net/ipv4/ip_local_port_range") >> low >> high;
    return {low, high};
}

} // namespace

// Two test programs that run at once (ctest -j) must never start servers on the same port:
// a port another program merely probed as free is not reserved by it.
BOOST_AUTO_TEST_CASE(two_programs_never_get_the_same_port)
{
    const auto mine = free_ports(200);
    BOOST_TEST(std::set(mine.begin(), mine.end()).size() == mine.size(), "a port twice in one call");
    const auto more = free_ports(50);
    std::set<std::uint16_t> held(mine.begin(), mine.end());
    for (auto port : more)
        BOOST_TEST(held.insert(port).second, "port " << port << " again");

    // Another program asks for ports while this one holds its own, looking first where this
    // one's are: this test program again, running only the case below.
    const std::string command = "/proc/" + std::to_string(::getpid()) +
                                "/exe --run_test=reserves_ports_for_another_program -- " +
                                std::to_string(mine.front()) + " 2>&1";
    FILE* child = ::popen(command.c_str(), "r");
    BOOST_TEST_REQUIRE(child != nullptr);
    std::string output;
    char buffer[4096];
    while (const std::size_t n = std::fread(buffer, 1, sizeof buffer, child))
        output.append(buffer, n);
    const int status = ::pclose(child);
    BOOST_TEST_REQUIRE((WIFEXITED(status) && WEXITSTATUS(status) == 0), output);
    const auto line = output.find("ports:");
    BOOST_TEST_REQUIRE(line != std::string::npos, output);
    std::istringstream in(output.substr(line + 6));
    std::vector<unsigned> theirs;
    for (unsigned port; in >> port;)
        theirs.push_back(port);
    BOOST_TEST(theirs.size() == 300u, output);
    for (auto port : theirs)
        BOOST_TEST(!held.count(static_cast<std::uint16_t>(port)),
                   "port " << port << " given to two programs");

    // None comes from the range an outgoing connection could take first, when the kernel
    // leaves room outside it.
    const auto [low, high] = ephemeral_range();
    if (low >= 1024 + 10000)
        for (auto port : mine)
            BOOST_TEST((port < low || port > high), "port " << port << " is in the ephemeral range");

    // And each is free right now.
    for (auto port : more)
        BOOST_TEST(port_is_free(port), "port " << port);
}

// Run only by the case above, in a program of its own: prints the ports it was given,
// scanning from the port its command line names.
// A node that cannot start does not keep the others from electing a leader, and the waits
// look at running nodes only: they say which node ended by itself, and why, rather than let
// the test fail later for a reason its output does not show.
BOOST_AUTO_TEST_CASE(a_node_that_ends_by_itself_is_named_by_the_waits)
{
    cluster c(3, false);
    c.start(1);
    c.start(2);
    std::vector<std::string> bad = c.args(3);
    bad.push_back("--no-such-flag");
    c.start(3, bad);
    BOOST_TEST_REQUIRE(wait_until([&] { return !c.running(3); }, 10s, 10ms),
                       "node 3 did not exit on a bad flag");

    std::ostringstream said;
    std::streambuf* const cerr_buf = std::cerr.rdbuf(said.rdbuf());
    const auto leader = c.wait_ready(20s);
    c.wait_for_leader(1s); // reported once per start: nothing more
    std::cerr.rdbuf(cerr_buf);

    BOOST_TEST(leader.has_value());
    const std::string text = said.str();
    BOOST_TEST(text.find("node 3 ended by itself (exit code 2)") != std::string::npos, text);
    BOOST_TEST(text.find("no-such-flag") != std::string::npos, text);
    BOOST_TEST(text.find("node 3 ended", text.find("node 3 ended") + 1) == std::string::npos, text);
    BOOST_TEST(text.find("node 1") == std::string::npos, text);
}

BOOST_AUTO_TEST_CASE(reserves_ports_for_another_program, *boost::unit_test::disabled())
{
    const auto& suite = boost::unit_test::framework::master_test_suite();
    BOOST_TEST_REQUIRE(suite.argc == 2);
    const auto from = static_cast<std::uint16_t>(std::stoul(suite.argv[1]));
    std::cout << "ports:";
    for (auto port : free_ports(300, from))
        std::cout << ' ' << port;
    std::cout << std::endl;
}
