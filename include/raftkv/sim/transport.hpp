#ifndef RAFTKV_SIM_TRANSPORT_HPP
#define RAFTKV_SIM_TRANSPORT_HPP

// The simulator's transport: it only collects what a node sends. The cluster drains it
// after each call into the node and lets the simulated network decide each message's fate.

#include <raftkv/concepts.hpp>
#include <raftkv/messages.hpp>

#include <utility>
#include <vector>

namespace raftkv::sim {

/** A `transport` that queues outgoing messages in memory until its owner takes them.

    @par Thread Safety
    Distinct objects: safe. Shared objects: unsafe.
*/
class sim_transport {
public:
    /// Queues `m`; never calls back into the node.
    void send(message m) { outbox_.push_back(std::move(m)); }

    /// The messages sent since the previous call, in the order sent.
    std::vector<message> take() { return std::exchange(outbox_, {}); }

    bool empty() const noexcept { return outbox_.empty(); }

private:
    std::vector<message> outbox_;
};

static_assert(transport<sim_transport>);

} // namespace raftkv::sim

#endif
