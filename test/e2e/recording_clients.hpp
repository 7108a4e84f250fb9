#ifndef RAFTKV_TEST_E2E_RECORDING_CLIENTS_HPP
#define RAFTKV_TEST_E2E_RECORDING_CLIENTS_HPP

// Client threads that write and read a few keys through the nodes of a harness cluster
// until stopped, recording every operation for the linearizability checker
// (<raftkv/sim/linearizability.hpp>). Shared by the end-to-end and fault-injection tests.
//
// A PUT answered anything but 200 (a 503, a timeout, a lost connection) is recorded as
// indeterminate: it may still take effect; one whose connection could not be opened was
// never sent and is left out. A GET answered neither 200 nor 404 observed nothing and is
// left out too.

#include "harness.hpp"

#include <raftkv/sim/history.hpp>
#include <raftkv/sim/linearizability.hpp>

#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace raftkv::e2e {

/// What recording_clients did, by outcome.
struct client_counts {
    std::size_t writes_ok = 0, writes_unknown = 0, writes_unsent = 0, reads_ok = 0, reads_failed = 0;
};

class recording_clients {
public:
    struct options {
        int clients = 3;
        std::size_t keys = 4;      ///< keys "k0" .. "k<keys-1>"
        milliseconds timeout = 2s; ///< per request
        std::uint64_t seed = 0;    ///< mixed into each client's random choices
        milliseconds pause = 0ms;  ///< between two operations of a client
    };

    /// Starts `opts.clients` threads that talk to the nodes `via` (picked at random per
    /// operation). The cluster's node table must not change while they run (add nodes first).
    recording_clients(cluster& c, std::vector<std::uint64_t> via, options opts)
        : c_(c), opts_(opts), via_(std::move(via))
    {
        for (int k = 0; k < opts_.clients; ++k)
            threads_.emplace_back([this, k] { run(static_cast<std::uint64_t>(k)); });
    }
    recording_clients(cluster& c, std::vector<std::uint64_t> via, int n)
        : recording_clients(c, std::move(via), options{.clients = n})
    {
    }
    ~recording_clients() { stop(); }
    recording_clients(const recording_clients&) = delete;
    recording_clients& operator=(const recording_clients&) = delete;

    /// Nodes the clients may also talk to from now on.
    void also_via(std::uint64_t id)
    {
        std::lock_guard lock(mutex_);
        via_.push_back(id);
    }
    /// Nodes the clients stop talking to (a member about to be removed).
    void not_via(std::uint64_t id)
    {
        std::lock_guard lock(mutex_);
        std::erase(via_, id);
    }

    /// Stops the clients and waits for their operations in flight.
    void stop()
    {
        stopping_ = true;
        for (auto& t : threads_)
            if (t.joinable())
                t.join();
    }

    /// Microseconds since the clients started: the history's clock.
    std::uint64_t now() const
    {
        return static_cast<std::uint64_t>(
            std::chrono::duration_cast<std::chrono::microseconds>(clock_type::now() - start_).count());
    }

    /// Appends an operation made outside the client threads (e.g. a final read).
    void record(raftkv::sim::kv_op op)
    {
        std::lock_guard lock(mutex_);
        history_.push_back(std::move(op));
    }

    raftkv::sim::kv_history history()
    {
        std::lock_guard lock(mutex_);
        return history_;
    }
    client_counts counts()
    {
        std::lock_guard lock(mutex_);
        return counts_;
    }
    std::size_t acknowledged_writes()
    {
        std::lock_guard lock(mutex_);
        return counts_.writes_ok;
    }

private:
    using clock_type = std::chrono::steady_clock;

    void run(std::uint64_t client)
    {
        std::mt19937_64 rng(opts_.seed * 1000003 + client * 7919 + 1);
        for (std::uint64_t n = 0; !stopping_; ++n) {
            if (opts_.pause.count() > 0)
                std::this_thread::sleep_for(opts_.pause);
            std::uint64_t node = 0;
            {
                std::lock_guard lock(mutex_);
                node = via_[rng() % via_.size()];
            }
            raftkv::sim::kv_op op;
            op.client = client;
            op.key = "k" + std::to_string(rng() % opts_.keys);
            op.call = now();
            bool ok = false, unsent = false;
            if (rng() % 2 == 0) {
                op.kind = raftkv::sim::kv_op_kind::put;
                op.value = "c" + std::to_string(client) + "-" + std::to_string(n);
                const auto r = put(c_.http_port(node), op.key, op.value, opts_.timeout);
                op.ret = now();
                ok = r.status == 200;
                unsent = r.status == 0 && r.body.starts_with("connect:");
                op.indeterminate = !ok; // it may still take effect
            } else {
                op.kind = raftkv::sim::kv_op_kind::get;
                const auto r = get(c_.http_port(node), op.key, opts_.timeout);
                op.ret = now();
                ok = r.status == 200 || r.status == 404;
                if (r.status == 200) {
                    op.found = true;
                    op.result = parse_json(r.body).string("value").value_or("");
                }
            }
            std::lock_guard lock(mutex_);
            if (op.kind == raftkv::sim::kv_op_kind::put)
                ++(ok ? counts_.writes_ok : unsent ? counts_.writes_unsent : counts_.writes_unknown);
            else
                ++(ok ? counts_.reads_ok : counts_.reads_failed);
            if (ok || (op.kind == raftkv::sim::kv_op_kind::put && !unsent))
                history_.push_back(std::move(op)); // a failed read or an unsent write had no effect
        }
    }

    cluster& c_;
    const options opts_;
    const clock_type::time_point start_ = clock_type::now();
    std::mutex mutex_;
    std::vector<std::uint64_t> via_;
    raftkv::sim::kv_history history_;
    client_counts counts_;
    std::atomic<bool> stopping_{false};
    std::vector<std::thread> threads_;
};

/// Checks `history` with the linearizability checker and fails the current test if it is
/// illegal (with the checker's explanation); a check that gave up is reported, not failed.
/// Returns the checker's result.
inline raftkv::sim::check_result
check_linearizable(const raftkv::sim::kv_history& history,
                   std::chrono::milliseconds budget = std::chrono::seconds(30))
{
    const auto result = raftkv::sim::check_kv_history(history, budget);
    const bool linearizable = result.outcome != raftkv::sim::check_outcome::illegal;
    BOOST_TEST(linearizable, result.explanation);
    if (result.outcome == raftkv::sim::check_outcome::unknown)
        BOOST_TEST_MESSAGE("the linearizability check gave up: " << result.explanation);
    return result;
}

} // namespace raftkv::e2e

#endif
