#ifndef RAFTKV_TEST_NEMESIS_PROXY_HPP
#define RAFTKV_TEST_NEMESIS_PROXY_HPP

// A fault-injecting TCP proxy for raftkv Raft connections, run on a thread of its own.
//
// For every node j it listens on one port, which the cluster lists as j's Raft address
// (--peers, harness node_spec::dial_port), and forwards what arrives to j's real Raft port.
// Every node's peer list must be the same (the cluster id is derived from it), so the proxy
// cannot give each sender a port of its own; it tells senders apart by the greeting instead:
// the first 48 bytes of every Raft connection name the sender (docs/transport.md). A
// connection only ever carries its dialer's messages, so a rule on the ordered pair
// (from, to) acts on one direction of the traffic between two nodes.
//
//     proxy p;
//     const auto port = p.add_destination(2, real_raft_port_of_2);  // list 2 at 127.0.0.1:port
//     p.set(1, 2, link_rule::drop());   // node 1's messages no longer reach node 2
//     p.heal();                         // every link passes again
//
// @par Thread Safety
// Every member function may be called from any thread.

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>

namespace raftkv::nemesis {

/// What happens to the messages one node sends another.
struct link_rule {
    enum class kind {
        pass,  ///< forwarded as they come
        drop,  ///< connections closed, and new ones closed (after half a second) once their
               ///< greeting names the sender
        stall, ///< held (a black hole): nothing is forwarded, connections stay open, and
               ///< what was held is delivered, late, once the rule changes
        delay, ///< forwarded `delay` after it arrived
    };
    kind what = kind::pass;
    std::chrono::milliseconds delay{0};

    static link_rule pass() { return {}; }
    static link_rule drop() { return {kind::drop, {}}; }
    static link_rule stall() { return {kind::stall, {}}; }
    static link_rule delayed(std::chrono::milliseconds d) { return {kind::delay, d}; }

    friend bool operator==(const link_rule&, const link_rule&) = default;
};

/// "pass", "drop", "stall" or "delay 120ms".
std::string to_string(const link_rule& r);

class proxy {
public:
    /// Starts the proxy's thread. Throws std::system_error if it cannot.
    proxy();
    /// Closes every connection and stops the thread.
    ~proxy();
    proxy(const proxy&) = delete;
    proxy& operator=(const proxy&) = delete;

    /// Listens on a free port of 127.0.0.1 for connections meant for node `to`, which
    /// listens at 127.0.0.1:target_port; returns the port. While nothing listens there (the
    /// node is down), connections are accepted and closed after half a second.
    std::uint16_t add_destination(std::uint64_t to, std::uint16_t target_port);

    /// Sets the rule for node `from`'s messages to node `to`; existing connections follow it
    /// at once (a dropped link's connections are closed).
    void set(std::uint64_t from, std::uint64_t to, link_rule rule);
    /// The rule in force for `from` -> `to` (pass unless set).
    link_rule rule(std::uint64_t from, std::uint64_t to) const;
    /// Every link passes again.
    void heal();

    /// Connections accepted and closed by a drop rule so far.
    std::uint64_t refused() const;
    /// Connections forwarded to their destination so far.
    std::uint64_t forwarded() const;

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

} // namespace raftkv::nemesis

#endif
