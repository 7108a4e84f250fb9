#ifndef RAFTKV_TEST_E2E_THREE_NODES_HPP
#define RAFTKV_TEST_E2E_THREE_NODES_HPP

// A test fixture: three running raftkv-server processes with a leader every node agrees
// on and forwards to.

#include "harness.hpp"

#include <boost/test/unit_test.hpp>

#include <chrono>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace raftkv::e2e {

struct three_nodes {
    cluster c;
    std::uint64_t leader = 0;

    /// Starts the nodes with `extra_args` on every command line and waits for a leader.
    explicit three_nodes(std::vector<std::string> extra_args = {}) : c(3, true, std::move(extra_args))
    {
        auto l = c.wait_ready(std::chrono::seconds(20));
        BOOST_TEST_REQUIRE(l.has_value(), "no leader that every node agrees on and forwards to within 20 s");
        leader = *l;
    }

    std::vector<std::uint64_t> followers() const
    {
        std::vector<std::uint64_t> out;
        for (std::uint64_t id = 1; id <= 3; ++id)
            if (id != leader)
                out.push_back(id);
        return out;
    }
};

} // namespace raftkv::e2e

#endif
