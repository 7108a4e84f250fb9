#ifndef RAFTKV_TEST_SUPPORT_MANUAL_CLUSTER_HPP
#define RAFTKV_TEST_SUPPORT_MANUAL_CLUSTER_HPP

// A cluster of basic_nodes over in-memory stores whose network is a set of outboxes the
// test empties explicitly, so each test decides exactly what is delivered and when. For
// the unit tests of the core's rules; randomized, fault-heavy tests use <raftkv/sim/>.

#include <raftkv/memory_log_store.hpp>
#include <raftkv/node.hpp>

#include "support/list_machine.hpp"

#include <boost/test/unit_test.hpp>

#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

namespace raftkv::test {

using raftkv::index_t;
using raftkv::message;
using raftkv::node_id;
using raftkv::role;

// Options for tests that need plain Raft, without PreVote and CheckQuorum.
inline raftkv::options plain_raft(std::size_t max_entries_per_append = 256)
{
    raftkv::options o;
    o.pre_vote = false;
    o.check_quorum = false;
    o.max_entries_per_append = max_entries_per_append;
    return o;
}

struct recording_transport {
    std::vector<message> sent;
    void send(message m) { sent.push_back(std::move(m)); }
};

using node_t = raftkv::basic_node<recording_transport, raftkv::memory_log_store, list_machine>;

struct member {
    recording_transport transport;
    raftkv::memory_log_store store;
    list_machine machine;
    std::unique_ptr<node_t> node;
    std::vector<std::pair<index_t, std::size_t>> applied;
    std::vector<std::pair<std::uint64_t, std::error_code>> reads;
};

// A cluster whose network is a set of outboxes the test empties explicitly.
struct cluster {
    explicit cluster(std::size_t n, bool sync_on_append = true, raftkv::options base = {})
        : sync_on_append_(sync_on_append)
    {
        for (node_id id = 1; id <= n; ++id)
            base.members.voters.push_back(id);
        base_ = base;
        for (node_id id = 1; id <= n; ++id) {
            members_.push_back(std::make_unique<member>());
            members_.back()->store = raftkv::memory_log_store(sync_on_append);
            start(id);
        }
    }

    /// Starts a node outside the configuration, with an empty store and no bootstrap
    /// configuration: it waits to be added. Returns its id (the next after the others).
    node_id add_spare()
    {
        members_.push_back(std::make_unique<member>());
        members_.back()->store = raftkv::memory_log_store(sync_on_append_);
        const node_id id = members_.size();
        spares_.insert(id);
        start(id);
        return id;
    }

    void start(node_id id)
    {
        raftkv::options o = base_;
        o.id = id;
        if (spares_.contains(id))
            o.members = {};
        o.random_seed = id * 7919 + restarts_++;
        member& m = at(id);
        m.machine = list_machine::from(m.machine.saved); // its durable snapshot survives
        m.node = std::make_unique<node_t>(o, m.transport, m.store, m.machine);
        m.node->on_apply([&m](index_t i, raftkv::term_t, std::size_t& r) { m.applied.emplace_back(i, r); });
        m.node->on_read([&m](std::uint64_t id, std::error_code ec) { m.reads.emplace_back(id, ec); });
    }

    member& at(node_id id) { return *members_[id - 1]; }
    node_t& node(node_id id) { return *at(id).node; }

    // Delivers messages until none are left, dropping those on cut links.
    void deliver_all()
    {
        for (bool any = true; any;) {
            any = false;
            for (auto& m : members_) {
                auto out = std::move(m->transport.sent);
                m->transport.sent.clear();
                for (auto& msg : out) {
                    any = true;
                    if (!cut_.contains({msg.from, msg.to}))
                        node(msg.to).step(std::move(msg));
                }
            }
        }
    }

    // Delivers only the messages already sent, not their answers.
    void deliver_one_hop()
    {
        std::vector<message> out;
        for (auto& m : members_) {
            for (auto& msg : m->transport.sent)
                out.push_back(std::move(msg));
            m->transport.sent.clear();
        }
        for (auto& msg : out) {
            if (!cut_.contains({msg.from, msg.to}))
                node(msg.to).step(std::move(msg));
        }
    }

    void tick_all(int ticks)
    {
        for (int t = 0; t < ticks; ++t) {
            for (auto& m : members_)
                m->node->tick();
            deliver_all();
        }
    }

    void isolate(node_id id)
    {
        for (node_id other = 1; other <= 64; ++other) {
            cut_.insert({id, other});
            cut_.insert({other, id});
        }
    }
    void heal() { cut_.clear(); }

    node_id elect(node_id id)
    {
        node(id).campaign();
        deliver_all();
        BOOST_REQUIRE(node(id).role() == role::leader);
        return id;
    }

    raftkv::propose_result propose(node_id id, std::string cmd)
    {
        auto r = node(id).propose(std::move(cmd));
        node(id).on_log_durable();
        deliver_all();
        return r;
    }

    std::size_t size() const { return members_.size(); }

    bool sync_on_append_;
    std::set<node_id> spares_;
    raftkv::options base_;
    std::vector<std::unique_ptr<member>> members_;
    std::set<std::pair<node_id, node_id>> cut_;
    std::uint64_t restarts_ = 0;
};

} // namespace raftkv::test

#endif
