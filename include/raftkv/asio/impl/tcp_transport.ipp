#ifndef RAFTKV_ASIO_IMPL_TCP_TRANSPORT_IPP
#define RAFTKV_ASIO_IMPL_TCP_TRANSPORT_IPP

// tcp_transport's members. Compiled once, into raftkv::asio (see src.ipp).

#include <raftkv/asio/tcp_transport.hpp>

#include <raftkv/asio/detail/incarnation_book.hpp>
#include <raftkv/asio/detail/peer_stream.hpp>
#include <raftkv/asio/detail/tcp_listener.hpp>
#include <raftkv/asio/detail/tcp_peer_link.hpp>
#include <raftkv/log.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/socket_base.hpp>
#include <boost/asio/strand.hpp>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <set>
#include <stdexcept>
#include <utility>

namespace raftkv::asio {

namespace detail {

/// An acceptor open and bound to `ep`, not yet listening.
inline boost::asio::ip::tcp::acceptor bound_acceptor(const boost::asio::any_io_executor& ex,
                                                     const boost::asio::ip::tcp::endpoint& ep)
{
    boost::asio::ip::tcp::acceptor acceptor(ex);
    acceptor.open(ep.protocol());
    acceptor.set_option(boost::asio::socket_base::reuse_address(true));
    acceptor.bind(ep);
    return acceptor;
}

/// The executor under `ex` when it is a strand, so that the transport's links and
/// connections get strands of their own beside it rather than inside it; `ex` otherwise.
inline boost::asio::any_io_executor io_executor_of(const boost::asio::any_io_executor& ex)
{
    if (const auto* s = ex.target<boost::asio::strand<boost::asio::any_io_executor>>())
        return s->get_inner_executor();
    if (const auto* s = ex.target<boost::asio::strand<boost::asio::io_context::executor_type>>())
        return s->get_inner_executor();
    return ex;
}

/// The ids in `peers` but `self`: the members whose incarnations the transport records.
inline std::set<node_id> member_ids(const std::map<node_id, tcp_transport::endpoint_type>& peers,
                                    node_id self)
{
    std::set<node_id> ids;
    for (const auto& entry : peers)
        if (entry.first != self)
            ids.insert(entry.first);
    return ids;
}

inline void check(const tcp_transport_options& o)
{
    if (o.max_frame_bytes <= frame_size({}))
        throw std::invalid_argument("raftkv: tcp_transport_options::max_frame_bytes is too small");
    if (o.max_queued_messages == 0)
        throw std::invalid_argument("raftkv: tcp_transport_options::max_queued_messages must be positive");
    if (o.reconnect_delay_min.count() <= 0 || o.reconnect_delay_max < o.reconnect_delay_min)
        throw std::invalid_argument(
            "raftkv: tcp_transport_options needs 0 < reconnect_delay_min <= reconnect_delay_max");
    if (o.greeting_timeout.count() <= 0)
        throw std::invalid_argument("raftkv: tcp_transport_options::greeting_timeout must be positive");
    if (o.frame_timeout.count() <= 0)
        throw std::invalid_argument("raftkv: tcp_transport_options::frame_timeout must be positive");
    if (o.max_ungreeted_connections == 0)
        throw std::invalid_argument(
            "raftkv: tcp_transport_options::max_ungreeted_connections must be positive");
}

} // namespace detail

tcp_transport::tcp_transport(executor_type ex, node_id self, std::map<node_id, endpoint_type> peers,
                             endpoint_type listen_on, receive_handler on_receive,
                             tcp_transport_options options)
    : tcp_transport(detail::bound_acceptor(ex, listen_on), self, std::move(peers), std::move(on_receive),
                    options)
{
}

tcp_transport::tcp_transport(boost::asio::ip::tcp::acceptor acceptor, node_id self,
                             std::map<node_id, endpoint_type> peers, receive_handler on_receive,
                             tcp_transport_options options)
    : executor_(acceptor.get_executor()), self_(self), options_(options)
{
    detail::check(options_);
    // No frame can be larger than its 32-bit length field allows.
    options_.max_frame_bytes = std::min<std::size_t>(
        options_.max_frame_bytes, frame_header_size + std::numeric_limits<std::uint32_t>::max());
    acceptor.listen();
    local_endpoint_ = acceptor.local_endpoint();
    const boost::asio::any_io_executor io = detail::io_executor_of(executor_);
    incarnations_ = std::make_shared<detail::incarnation_book>(options_.incarnation,
                                                               std::move(options_.known_incarnations));
    options_.known_incarnations.clear();
    incarnations_->set_members(detail::member_ids(peers, self_));
    if (options_.tls) {
        tls_ = std::make_shared<detail::tls_context>(*options_.tls);
        // Its peers will refuse it; say why here too, where the operator looks first.
        if (const std::string own = tls_->own_common_name(); own != detail::node_common_name(self_))
            raftkv::log_message(
                log_severity::warning,
                "peer TLS certificate " + options_.tls->certificate_file + " is for CN=" + own +
                    ", not this node's CN=" + detail::node_common_name(self_) + ": its peers will refuse it");
    }
    for (const auto& [id, endpoint] : peers)
        if (id != self_)
            links_.emplace(id,
                           std::make_shared<detail::tcp_peer_link>(boost::asio::make_strand(io), self_, id,
                                                                   endpoint, options_, incarnations_, tls_));
    listener_ = std::make_shared<detail::tcp_listener>(std::move(acceptor), io, self_, options_,
                                                       incarnations_, tls_, std::move(on_receive));
    listener_->start();
    // Peers learn each other's incarnation from the greetings, before any election needs it.
    if (options_.incarnation != 0)
        for (const auto& [id, link] : links_)
            link->start();
}

tcp_transport::~tcp_transport()
{
    stop();
}

void tcp_transport::send(message m)
{
    if (stopped_)
        return;
    if (const auto link = links_.find(m.to); link != links_.end())
        link->second->send(std::move(m));
    else if (m.to != self_ && options_.on_unknown_peer)
        options_.on_unknown_peer(m.to);
}

void tcp_transport::set_peers(std::map<node_id, endpoint_type> peers)
{
    boost::asio::post(executor_,
                      [this, alive = std::weak_ptr<char>(alive_), peers = std::move(peers)]() mutable {
                          if (alive.lock())
                              apply_peers(std::move(peers));
                      });
}

void tcp_transport::apply_peers(std::map<node_id, endpoint_type> peers)
{
    if (stopped_)
        return;
    peers.erase(self_);
    for (node_id id : incarnations_->set_members(detail::member_ids(peers, self_)))
        if (options_.incarnation != 0 && listener_)
            listener_->regreet(id);
    for (auto link = links_.begin(); link != links_.end();) {
        const auto wanted = peers.find(link->first);
        if (wanted != peers.end() && wanted->second == link->second->remote()) {
            ++link;
            continue;
        }
        link->second->stop();
        link = links_.erase(link);
    }
    const boost::asio::any_io_executor io = detail::io_executor_of(executor_);
    for (const auto& [id, endpoint] : peers)
        if (!links_.contains(id)) {
            auto link = std::make_shared<detail::tcp_peer_link>(boost::asio::make_strand(io), self_, id,
                                                                endpoint, options_, incarnations_, tls_);
            links_.emplace(id, link);
            if (options_.incarnation != 0)
                link->start(); // greet it now, as the constructor does every first peer
        }
}

void tcp_transport::reload_tls()
{
    if (!tls_)
        throw std::logic_error("tcp_transport::reload_tls: the transport has no peer TLS");
    tls_->reload(*options_.tls, detail::node_common_name(self_));
}

void tcp_transport::forget_incarnation(node_id peer)
{
    incarnations_->forget(peer);
}

void tcp_transport::retire_incarnation(node_id peer, std::uint64_t incarnation)
{
    // A connection it greeted with before may still be open: what comes over it would be
    // taken for the member's (a leader would count its answers as the new member's log).
    // Closed, it must greet again.
    if (incarnations_->retire(peer, incarnation) && listener_)
        listener_->regreet(peer);
}

void tcp_transport::stop()
{
    if (stopped_)
        return;
    stopped_ = true;
    listener_->stop();
    for (const auto& [id, link] : links_)
        link->stop();
}

} // namespace raftkv::asio

#endif
