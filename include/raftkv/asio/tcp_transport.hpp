#ifndef RAFTKV_ASIO_TCP_TRANSPORT_HPP
#define RAFTKV_ASIO_TCP_TRANSPORT_HPP

// A raftkv::transport over TCP, built on Boost.Asio.
//
// Each node listens on one endpoint and dials every peer it sends to. The connection a
// node dials carries only its own outgoing messages, and a connection it accepts is only
// read from, so every pair of nodes uses two connections, one per direction, and no
// side ever has to decide which of two crossing connections wins. Messages go out in
// batches: send() queues a message for its peer, and each write drains the peer's queue
// into one frame (codec.hpp), encoded once. A link that fails reconnects by itself, with
// exponential backoff, and keeps queuing meanwhile, up to a bound past which the oldest
// messages are dropped: Raft repairs loss by itself. Every connection opens with a
// greeting (cluster id, sender and receiver id and incarnation, protocol version), and
// the listener refuses a connection whose greeting does not fit it, and any message on it
// that claims another sender. With tcp_transport_options::tls, every connection is mutual
// TLS first, and a peer must hold the certificate of the node it claims to be. What a
// connection can cost is bounded (frame memory as bytes arrive, a frame deadline, a cap on
// connections not yet greeted). docs/transport.md has the details.
//
// Example: two nodes of a cluster, on the strand their raftkv node runs on
//
//     auto strand = boost::asio::make_strand(io);
//     raftkv::asio::tcp_transport transport(
//         strand, 1, {{2, endpoint_of_2}, {3, endpoint_of_3}},
//         {boost::asio::ip::address_v4::any(), 7001},
//         [&node](raftkv::message m) { node.step(std::move(m)); });
//     transport.send(std::move(m)); // returns at once; m goes to node m.to
//
// @par Thread Safety
// Distinct objects: safe. Shared objects: unsafe. Every member function but set_peers()
// and forget_incarnation(), the destructor included, must be called on the transport's
// executor (or, before any of its work has run, from the thread that constructed it). The
// receive handler is invoked on that executor too, so a node running on the same strand
// needs no locking. When that executor is a strand, encoding, decoding and socket I/O run
// on strands of their own over the executor beneath it (one per peer link and per incoming
// connection), so a node's strand does none of that work.

#include <raftkv/asio/codec.hpp>
#include <raftkv/messages.hpp>
#include <raftkv/types.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

namespace raftkv::asio {

namespace detail {
class incarnation_book;
class tcp_listener;
class tcp_peer_link;
class tls_context;
} // namespace detail

/// The files of mutual TLS between nodes (tcp_transport_options::tls), all PEM.
struct tcp_transport_tls {
    /// This node's certificate (chain), whose subject common name must be
    /// "raftkv-node-<id>" for its peers to accept it.
    std::string certificate_file;
    /// The private key of that certificate.
    std::string private_key_file;
    /// The CA a peer's certificate must chain to.
    std::string ca_file;
};

/// Tunes a tcp_transport. Every node of a cluster should use the same max_frame_bytes.
struct tcp_transport_options {
    /// The largest frame, header included, this transport sends or accepts. A peer that
    /// announces a larger frame is disconnected; an outgoing message that alone would
    /// exceed it is dropped, with one line to the log (raftkv/log.hpp).
    /// Default: 64 MiB.
    std::size_t max_frame_bytes = default_max_frame_bytes;

    /// The most messages queued for one peer while its connection is down or busy.
    /// Beyond it the oldest queued messages are dropped.
    /// Default: 4096.
    std::size_t max_queued_messages = 4096;

    /// The most payload bytes (as counted by encoded_size) queued for one peer. Beyond it
    /// the oldest queued messages are dropped, though the newest message is always kept.
    /// Default: 64 MiB.
    std::size_t max_queued_bytes = std::size_t{64} << 20;

    /// How long a link waits before its first reconnection attempt. Each failed attempt
    /// doubles the wait, up to reconnect_delay_max; a successful connection resets it.
    /// Default: 50 ms.
    std::chrono::milliseconds reconnect_delay_min{50};

    /// The longest wait between two reconnection attempts.
    /// Default: 2 s.
    std::chrono::milliseconds reconnect_delay_max{2000};

    /// The cluster this node belongs to, sent in the greeting that opens every connection
    /// it dials. A connection whose greeting names another cluster is refused; 0 sends 0
    /// and accepts peers of any cluster (the sender id, the receiver id and the protocol
    /// version are checked all the same). Every node of a cluster should use the same id.
    /// Default: 0.
    std::uint64_t cluster_id = 0;

    /// How long an accepted connection may take to send its greeting before it is closed.
    /// Default: 5 s.
    std::chrono::milliseconds greeting_timeout{5000};

    /// How long the rest of a frame may take to arrive once its header has: a peer that
    /// announces a frame and then sends it slower than this (or not at all) is
    /// disconnected, with one line to the log (raftkv/log.hpp). Memory for a frame is taken
    /// only as its bytes arrive, so a stalled frame costs little meanwhile.
    /// Default: 30 s.
    std::chrono::milliseconds frame_timeout{30000};

    /// The most accepted connections that have not yet completed their greeting. A
    /// connection accepted beyond it is closed at once (counted, and logged at most once a
    /// second), so that a flood of idle connections cannot exhaust memory or descriptors.
    /// Greeted connections do not count: there is at most one per peer id, as a newer
    /// connection greeting with a peer's id replaces (closes) the older one.
    /// Default: 32.
    std::size_t max_ungreeted_connections = 32;

    /// This node's incarnation: a random nonzero number that names its data directory,
    /// drawn when the directory is created and kept with it. Every greeting carries the
    /// sender's incarnation and the one it recorded for the receiver, so that a member
    /// restarted with a lost data directory (which may have forgotten a vote) is refused
    /// by its peers, and learns from them that its data was lost (on_identity_conflict).
    /// A transport with an incarnation dials every peer at once, rather than on the first
    /// message, so that peers learn each other's before any election. 0 turns the feature
    /// off: greetings carry 0 and incarnations are neither checked nor recorded.
    /// Default: 0.
    std::uint64_t incarnation = 0;

    /// The incarnation recorded for each peer by an earlier run (what on_incarnation_learned
    /// reported). A peer without an entry is recorded the first time it greets.
    /// Default: none.
    std::map<node_id, std::uint64_t> known_incarnations;

    /// Called on the transport's executor when a peer's incarnation is first recorded,
    /// before any message of that connection reaches the receive handler, so that the
    /// caller can persist it. Not called when `incarnation` is 0. Only members (the peers
    /// given to the constructor or to set_peers()) are recorded: a node outside them, such
    /// as a removed member still running, is accepted without being recorded, so that its
    /// id can be added back with a new data directory.
    /// Default: none.
    std::function<void(node_id, std::uint64_t)> on_incarnation_learned;

    /// Called on the transport's executor, with the peer and one line saying why, when a peer greets
    /// this node with an incarnation other than its own: this node's data directory is not
    /// the one its peers knew (it was lost or replaced: it may have forgotten a vote, and
    /// should stop), or that peer's record is wrong (one peer's word alone cannot tell). The
    /// connection is refused, and so is every later one from a peer that knows this node by
    /// another incarnation (each calls this again).
    /// Default: none (the refusal is only logged).
    std::function<void(node_id peer, std::string why)> on_identity_conflict;

    /// Called on the transport's executor with the id of each message dropped because its
    /// node has no address here (it is not among the peers). A leader writes to a node
    /// outside the configuration to tell it that it was removed; the caller may add that
    /// node's address with set_peers(), so that the next such message gets through.
    /// Default: none.
    std::function<void(node_id)> on_unknown_peer;

    /// Called with a peer's id each time a connection to it cannot be made or is lost
    /// (before the backoff delay), from the thread that runs that peer's link: it must be
    /// safe from any thread. An address that stays unreachable may be out of date.
    /// Default: none.
    std::function<void(node_id)> on_unreachable;

    /// Mutual TLS on every connection, dialed and accepted: both ends present a certificate
    /// that must chain to `tls->ca_file`, and whose subject common name must be
    /// "raftkv-node-<id>" for the id the peer is (for a dialed connection, the id dialed;
    /// for an accepted one, the sender its greeting names, which follows inside TLS). A
    /// connection that fails either check, or whose peer does not speak TLS, is closed with
    /// one line to the log (raftkv/log.hpp). Every node of a cluster must use it, or none.
    /// Default: none (plain TCP).
    std::optional<tcp_transport_tls> tls;
};

/// Sends raftkv messages to the other members of a cluster over TCP, and hands the
/// messages they send to a receive handler. Models raftkv::transport.
class tcp_transport {
public:
    using executor_type = boost::asio::any_io_executor;
    using endpoint_type = boost::asio::ip::tcp::endpoint;

    /// Called with each message received for this node, on the transport's executor.
    using receive_handler = std::function<void(message)>;

    /// Listens on `listen_on` and starts accepting connections; dials a peer on the first
    /// message sent to it (or at once, with an incarnation).
    ///
    /// @param ex Runs all of the transport's work and every call of `on_receive`.
    /// @param self This node's id; received messages addressed to another node are dropped.
    /// @param peers The address of every other member. Messages to a node not listed are dropped.
    /// @param listen_on Where to accept connections from peers (port 0: any free port, see
    ///        local_endpoint()).
    /// @param on_receive Called once per message received for `self`.
    /// @throws boost::system::system_error when `listen_on` cannot be bound.
    /// @throws std::invalid_argument when `options` are inconsistent (a zero queue bound,
    ///         a frame limit smaller than an empty frame, a zero or inverted reconnect delay,
    ///         a zero timeout or connection cap).
    /// @throws std::runtime_error when `options.tls` names a file that cannot be read or
    ///         loaded, or a key that does not match its certificate.
    tcp_transport(executor_type ex, node_id self, std::map<node_id, endpoint_type> peers,
                  endpoint_type listen_on, receive_handler on_receive, tcp_transport_options options = {});

    /// Like the constructor above, but accepts on `acceptor`, which must be open and bound
    /// (the transport calls listen() on it). The transport's executor is the acceptor's.
    /// Useful for a socket handed over by a supervisor, or to learn the port of a node
    /// before it starts accepting (connections are refused until then).
    tcp_transport(boost::asio::ip::tcp::acceptor acceptor, node_id self,
                  std::map<node_id, endpoint_type> peers, receive_handler on_receive,
                  tcp_transport_options options = {});

    tcp_transport(const tcp_transport&) = delete;
    tcp_transport& operator=(const tcp_transport&) = delete;

    /// Calls stop().
    ~tcp_transport();

    /// Queues `m` for node `m.to` and returns at once; never calls the receive handler.
    /// Delivery is best effort. Messages to this node itself, to an unknown node (see
    /// on_unknown_peer), or sent after stop() are dropped.
    void send(message m);

    /// Makes `peers` the address of every other member from now on, as the cluster's
    /// configuration changes: a peer no longer listed has its connection closed and its
    /// queue dropped, a peer whose address changed is dialed again at the new one (its
    /// queue dropped: Raft resends), a new peer is dialed on the first message sent to it;
    /// the others keep their connections. An entry for this node itself is ignored.
    /// Unlike the other members, may be called from any thread: the change is posted to
    /// the transport's executor and takes effect there, in the order of the calls, unless
    /// the transport is stopped or destroyed first.
    void set_peers(std::map<node_id, endpoint_type> peers);

    /// Closes the listener and every connection, and drops every queued message. Pending
    /// operations complete with operation_aborted, and the receive handler is never called
    /// again. Idempotent.
    void stop();

    /// Reads the peer TLS files of the options again (the same paths: a certificate renewed
    /// in place): connections made from now on present and verify with them; those open
    /// keep theirs. Throws std::runtime_error, the files in use staying in use, when one
    /// does not load, the key does not match the certificate, or the certificate is not
    /// this node's (its common name); std::logic_error without peer TLS. Safe from any
    /// thread.
    void reload_tls();

    /// Forgets the incarnation recorded for `peer`, so that the next data directory
    /// greeting under that id is learned rather than refused (once the id is a peer
    /// again): for a member that was removed from the cluster and is added back with a new
    /// data directory. Safe from any thread.
    void forget_incarnation(node_id peer);

    /// Refuses, from now on, a greeting under `peer`'s id from data directory `incarnation`
    /// (and forgets it if it was recorded): the directory the id had before the member was
    /// removed and added back, on which an old process may still run. The first call for
    /// an (id, incarnation) also closes the connection `peer` greeted with, if any, so that
    /// nothing more arrives over a connection made before. Safe from any thread.
    void retire_incarnation(node_id peer, std::uint64_t incarnation);

    /// The endpoint the transport accepts connections on (with the actual port when it was
    /// asked to listen on port 0). Stays valid after stop().
    endpoint_type local_endpoint() const { return local_endpoint_; }

    executor_type get_executor() const { return executor_; }

private:
    void apply_peers(std::map<node_id, endpoint_type> peers);

    executor_type executor_;
    node_id self_;
    tcp_transport_options options_;
    endpoint_type local_endpoint_;
    bool stopped_ = false;
    // Shared because the pending operations of the listener and of each link keep them
    // alive after the transport is gone (they then find themselves stopped and finish).
    std::shared_ptr<detail::incarnation_book> incarnations_;
    std::shared_ptr<detail::tls_context> tls_; // null without peer TLS
    std::shared_ptr<detail::tcp_listener> listener_;
    std::map<node_id, std::shared_ptr<detail::tcp_peer_link>> links_;
    // Expires with the transport: set_peers' posted work checks it on the executor.
    std::shared_ptr<char> alive_ = std::make_shared<char>();
};

} // namespace raftkv::asio

#endif
