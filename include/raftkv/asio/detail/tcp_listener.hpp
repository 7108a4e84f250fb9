#ifndef RAFTKV_ASIO_DETAIL_TCP_LISTENER_HPP
#define RAFTKV_ASIO_DETAIL_TCP_LISTENER_HPP

// The incoming half of tcp_transport: the acceptor, and the connections peers dialed to
// us, which are only read from. Included by impl/tcp_transport.ipp only.

#include <raftkv/asio/codec.hpp>
#include <raftkv/asio/detail/endpoint_name.hpp>
#include <raftkv/asio/detail/greeting.hpp>
#include <raftkv/asio/detail/incarnation_book.hpp>
#include <raftkv/asio/detail/peer_stream.hpp>
#include <raftkv/asio/tcp_transport.hpp>
#include <raftkv/log.hpp>
#include <raftkv/messages.hpp>

#include <boost/asio/buffer.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace raftkv::asio::detail {

class tcp_listener;

/// One connection a peer dialed to us: reads the greeting, then frames, decoding them on
/// a strand of its own, and hands their messages to the listener. With peer TLS, a
/// TLS handshake comes first, and the greeted sender must be the node its certificate
/// names. A failed handshake, a greeting that
/// does not come within the greeting timeout or does not fit this node, a frame whose
/// payload does not come within the frame timeout, a message from another sender than the
/// greeted one, a newer connection greeting with the same sender, and any protocol error
/// close it, with one line to the log (raftkv/log.hpp).
///
/// Frames are read into one buffer, at most read_chunk_bytes per read, so the buffer
/// grows only as bytes arrive, whatever a header announced; every whole frame a read
/// completes is decoded, and their messages go to the listener together. Under load a
/// read brings several frames (a leader's answers to a follower's reads come one frame
/// each): one read and one hand-over for all of them, not two reads each.
///
/// Lifetime: kept alive by its one pending read (shared_from_this); the listener holds
/// only a weak_ptr, to close it on stop().
class tcp_inbound_connection final : public std::enable_shared_from_this<tcp_inbound_connection> {
public:
    /// The most bytes one read asks for, and so the most memory a frame takes ahead of
    /// the bytes that arrived.
    static constexpr std::size_t read_chunk_bytes = std::size_t{64} << 10;

    /// Counts as an ungreeted connection of `listener` until it greets or closes.
    tcp_inbound_connection(boost::asio::ip::tcp::socket socket, std::shared_ptr<tcp_listener> listener);
    ~tcp_inbound_connection();

    void start();

    /// Closes the socket on the connection's strand. Safe from any thread.
    void close_soon()
    {
        boost::asio::post(deadline_.get_executor(), [self = shared_from_this()] { self->close(); });
    }

    /// Closes the connection on its strand, with a line saying a newer connection from the
    /// same peer took its place. Safe from any thread.
    void replace_soon()
    {
        boost::asio::post(deadline_.get_executor(), [self = shared_from_this()] {
            if (self->stream_.socket().is_open())
                self->drop("replaced by a newer connection from node " + std::to_string(self->peer_),
                           log_severity::info);
        });
    }

    /// Closes the connection on its strand, with a line saying its peer, a member now, is
    /// to greet again. Safe from any thread.
    void close_to_regreet()
    {
        boost::asio::post(deadline_.get_executor(), [self = shared_from_this()] {
            if (self->stream_.socket().is_open())
                self->drop("closed: node " + std::to_string(self->peer_) +
                               " is to greet again, to have its data directory recorded",
                           log_severity::info);
        });
    }

private:
    void close();
    void release_ungreeted();

    void on_handshake(const boost::system::error_code& ec);
    void on_greeting_magic(const boost::system::error_code& ec);
    void on_greeting(const boost::system::error_code& ec);
    void refuse(const std::string& why);
    void read_frames();
    void on_read(const boost::system::error_code& ec, std::size_t n);
    bool take_frames();
    void arm_frame_deadline();
    void drop(const std::string& why, log_severity severity = log_severity::warning);

    std::shared_ptr<tcp_listener> listener_;
    peer_stream stream_;
    boost::asio::steady_timer deadline_; // the greeting's, then that of a frame in progress
    std::string remote_;
    greeting_bytes greeting_{};
    node_id peer_ = no_node; // the greeted sender
    bool ungreeted_ = true;  // counted among the listener's ungreeted connections
    /// Bytes received: [begin_, end_) not yet decoded, at most one frame's worth (whole
    /// frames are decoded as soon as they are in); the size is what reads may fill.
    std::string in_;
    std::size_t begin_ = 0;
    std::size_t end_ = 0;
    std::size_t expected_ = 0;   // the payload length of the frame in progress, once its header is in
    std::uint64_t frame_ = 0;    // counts frames decoded, so a stale deadline finds itself stale
    bool in_frame_ = false;      // a frame's header is in and its payload is not: its deadline runs
    std::vector<message> batch_; // the messages of the frames one read completed
};

/// Accepts connections and delivers what they receive to the transport's receive
/// handler, as long as it is not stopped.
///
/// Lifetime: shared by the transport, by the pending accept, and by every inbound
/// connection, so the receive handler outlives every completion that might reach it.
/// stop() only sets a flag and closes sockets; it never destroys the handler, since
/// stop() may be running inside it.
class tcp_listener final : public std::enable_shared_from_this<tcp_listener> {
public:
    /// Accepts on `acceptor` (whose executor is the transport's) and gives each connection
    /// a strand on `io`.
    tcp_listener(boost::asio::ip::tcp::acceptor acceptor, boost::asio::any_io_executor io, node_id self,
                 const tcp_transport_options& options, std::shared_ptr<incarnation_book> incarnations,
                 std::shared_ptr<tls_context> tls, tcp_transport::receive_handler on_receive)
        : tls_(std::move(tls)), acceptor_(std::move(acceptor)), retry_timer_(acceptor_.get_executor()),
          io_(std::move(io)), self_(self), max_frame_bytes_(options.max_frame_bytes),
          cluster_id_(options.cluster_id), greeting_timeout_(options.greeting_timeout),
          frame_timeout_(options.frame_timeout), max_ungreeted_(options.max_ungreeted_connections),
          incarnations_(std::move(incarnations)), on_learned_(options.on_incarnation_learned),
          on_conflict_(options.on_identity_conflict), on_receive_(std::move(on_receive))
    {
    }

    void start() { accept(); }

    void stop()
    {
        stopped_ = true;
        boost::system::error_code ignored;
        acceptor_.close(ignored);
        retry_timer_.cancel();
        for (const auto& weak : connections_)
            if (auto connection = weak.lock())
                connection->close_soon();
        connections_.clear();
        std::lock_guard lock(greeted_mutex_);
        greeted_.clear();
    }

    bool stopped() const noexcept { return stopped_; }
    std::size_t max_frame_bytes() const noexcept { return max_frame_bytes_; }
    std::uint64_t cluster_id() const noexcept { return cluster_id_; }
    node_id self() const noexcept { return self_; }
    std::chrono::milliseconds greeting_timeout() const noexcept { return greeting_timeout_; }
    std::chrono::milliseconds frame_timeout() const noexcept { return frame_timeout_; }
    /// The TLS context of every accepted connection; null without peer TLS.
    tls_context* tls() const noexcept { return tls_.get(); }

    /// One ungreeted connection greeted or closed. Called on a connection's strand, or
    /// wherever the connection is destroyed.
    void ungreeted_done() noexcept { ungreeted_.fetch_sub(1); }

    /// Logs that a connection from `remote` was refused for `why`: at once the first time,
    /// then at most once every 10 s for the same reason, with how many were not logged (a
    /// refused peer dials again and again). Called on a connection's strand.
    void log_refusal(const std::string& remote, const std::string& why)
    {
        const auto now = std::chrono::steady_clock::now();
        std::size_t unlogged = 0;
        {
            std::lock_guard lock(refusals_mutex_);
            if (refusals_.size() > 64)
                refusals_.clear(); // many distinct reasons: forget them rather than grow
            auto [it, first] = refusals_.try_emplace(why, refusal_log{now, 0});
            if (!first && now - it->second.logged < std::chrono::seconds(10)) {
                ++it->second.unlogged;
                return;
            }
            unlogged = std::exchange(it->second.unlogged, 0);
            it->second.logged = now;
        }
        raftkv::log_message(
            log_severity::warning,
            "refused connection from " + remote + ": " + why +
                (unlogged ? " (and " + std::to_string(unlogged) + " more for this reason since the last line)"
                          : std::string()));
    }

    /// Makes `connection` the one greeted connection of `peer`, closing the one it
    /// replaces, if any: a peer that dials again has given up on its older connection.
    /// Called on a connection's strand.
    void greeted(node_id peer, const std::shared_ptr<tcp_inbound_connection>& connection)
    {
        std::shared_ptr<tcp_inbound_connection> older;
        {
            std::lock_guard lock(greeted_mutex_);
            if (stopped_)
                return;
            std::erase_if(greeted_, [](const auto& entry) { return entry.second.expired(); });
            auto& slot = greeted_[peer];
            older = slot.lock();
            slot = connection;
        }
        if (older && older != connection)
            older->replace_soon();
    }

    /// Closes the connection `peer` greeted with, if any, so that it dials and greets again:
    /// accepted before `peer` was a member, its incarnation was not recorded. Any thread.
    void regreet(node_id peer)
    {
        std::shared_ptr<tcp_inbound_connection> connection;
        {
            std::lock_guard lock(greeted_mutex_);
            if (const auto it = greeted_.find(peer); it != greeted_.end())
                connection = it->second.lock();
        }
        if (connection)
            connection->close_to_regreet();
    }

    /// incarnation_book::unrecorded_member(). Any thread.
    bool unrecorded_member(node_id peer) const { return incarnations_->unrecorded_member(peer); }

    /// Checks the incarnations of greeting `g`; the reason to refuse the connection, or "".
    /// Reports what it learned or found (on the transport's executor, before any message
    /// delivered later by the same connection). Called on a connection's strand.
    std::string admit(const greeting& g)
    {
        std::uint64_t recorded = 0;
        switch (incarnations_->admit(g, recorded)) {
        case incarnation_verdict::accept: return {};
        case incarnation_verdict::learn:
            post_if_running([from = g.from, incarnation = g.from_incarnation](tcp_listener& l) {
                if (l.on_learned_)
                    l.on_learned_(from, incarnation);
            });
            return {};
        case incarnation_verdict::new_sender_directory: return new_directory_reason(g, recorded);
        case incarnation_verdict::retired_sender_directory: return retired_directory_reason(g);
        case incarnation_verdict::replaced_receiver_directory: break;
        }
        std::string why = replaced_directory_reason(g, incarnations_->self());
        post_if_running([from = g.from, why](tcp_listener& l) {
            if (l.on_conflict_)
                l.on_conflict_(from, why);
        });
        return why + ": this node's data directory is not the one its peers knew";
    }

    /// Hands the messages of `batch` addressed to this node to the receive handler, on the
    /// transport's executor, unless stopped by then. Called on a connection's strand.
    void deliver(std::vector<message> batch)
    {
        boost::asio::post(acceptor_.get_executor(),
                          [self = shared_from_this(), batch = std::move(batch)]() mutable {
                              for (message& m : batch) {
                                  if (self->stopped_) // the receive handler may stop the transport
                                      return;
                                  if (m.to == self->self_)
                                      self->on_receive_(std::move(m));
                              }
                          });
    }

private:
    /// Runs `f(*this)` on the transport's executor unless the listener is stopped by then.
    template <class F>
    void post_if_running(F f)
    {
        boost::asio::post(acceptor_.get_executor(), [self = shared_from_this(), f = std::move(f)]() mutable {
            if (!self->stopped_)
                f(*self);
        });
    }

    void accept()
    {
        acceptor_.async_accept(boost::asio::make_strand(io_),
                               [self = shared_from_this()](const boost::system::error_code& ec,
                                                           boost::asio::ip::tcp::socket socket) {
                                   self->on_accept(ec, std::move(socket));
                               });
    }

    void on_accept(const boost::system::error_code& ec, boost::asio::ip::tcp::socket socket)
    {
        if (stopped_)
            return;
        if (ec) {
            // Typically out of file descriptors: pause rather than spin.
            raftkv::log_message(log_severity::error,
                                "accept failed: " + ec.message() + "; retrying in 100 ms");
            retry_timer_.expires_after(std::chrono::milliseconds(100));
            retry_timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
                if (!ec && !self->stopped_)
                    self->accept();
            });
            return;
        }
        if (ungreeted_.load() >= max_ungreeted_) {
            refuse_excess(std::move(socket));
            accept();
            return;
        }
        ungreeted_.fetch_add(1);
        std::erase_if(connections_, [](const auto& weak) { return weak.expired(); });
        auto connection = std::make_shared<tcp_inbound_connection>(std::move(socket), shared_from_this());
        connections_.push_back(connection);
        connection->start();
        accept();
    }

    /// Closes a connection accepted beyond max_ungreeted_connections, and says so at most
    /// once a second, with how many were closed since the last line.
    void refuse_excess(boost::asio::ip::tcp::socket socket)
    {
        boost::system::error_code ignored;
        socket.close(ignored);
        ++excess_refused_;
        const auto now = std::chrono::steady_clock::now();
        if (excess_logged_ && now - *excess_logged_ < std::chrono::seconds(1))
            return;
        excess_logged_ = now;
        raftkv::log_message(log_severity::warning,
                            "closed " + std::to_string(excess_refused_) +
                                " incoming connection(s) at once: " + std::to_string(max_ungreeted_) +
                                " connections have not greeted yet (max_ungreeted_connections)");
        excess_refused_ = 0;
    }

    std::shared_ptr<tls_context> tls_;
    boost::asio::ip::tcp::acceptor acceptor_;
    boost::asio::steady_timer retry_timer_;
    boost::asio::any_io_executor io_;
    node_id self_;
    std::size_t max_frame_bytes_;
    std::uint64_t cluster_id_;
    std::chrono::milliseconds greeting_timeout_;
    std::chrono::milliseconds frame_timeout_;
    std::size_t max_ungreeted_;
    std::shared_ptr<incarnation_book> incarnations_;
    std::function<void(node_id, std::uint64_t)> on_learned_;
    std::function<void(node_id, std::string)> on_conflict_;
    tcp_transport::receive_handler on_receive_;
    std::vector<std::weak_ptr<tcp_inbound_connection>> connections_;
    std::atomic<std::size_t> ungreeted_{0};
    std::size_t excess_refused_ = 0; // since the last line about them
    std::optional<std::chrono::steady_clock::time_point> excess_logged_;
    struct refusal_log {
        std::chrono::steady_clock::time_point logged;
        std::size_t unlogged = 0;
    };
    std::mutex refusals_mutex_;
    std::map<std::string, refusal_log> refusals_; // by reason; guarded by refusals_mutex_
    std::mutex greeted_mutex_;
    std::map<node_id, std::weak_ptr<tcp_inbound_connection>> greeted_; // guarded by greeted_mutex_
    std::atomic<bool> stopped_{false};
};

inline tcp_inbound_connection::tcp_inbound_connection(boost::asio::ip::tcp::socket socket,
                                                      std::shared_ptr<tcp_listener> listener)
    : listener_(std::move(listener)), stream_(std::move(socket), listener_->tls()),
      deadline_(stream_.socket().get_executor())
{
    boost::system::error_code ec;
    const auto remote = stream_.socket().remote_endpoint(ec);
    remote_ = ec ? std::string("an unknown peer") : endpoint_name(remote);
}

inline tcp_inbound_connection::~tcp_inbound_connection()
{
    release_ungreeted();
}

inline void tcp_inbound_connection::release_ungreeted()
{
    if (ungreeted_) {
        ungreeted_ = false;
        listener_->ungreeted_done();
    }
}

inline void tcp_inbound_connection::close()
{
    deadline_.cancel();
    stream_.close();
    release_ungreeted();
}

inline void tcp_inbound_connection::start()
{
    deadline_.expires_after(listener_->greeting_timeout());
    deadline_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
        if (!ec && self->peer_ == no_node && self->stream_.socket().is_open())
            self->drop("no greeting within " + std::to_string(self->listener_->greeting_timeout().count()) +
                       " ms");
    });
    stream_.async_handshake(
        false, [self = shared_from_this()](const boost::system::error_code& ec) { self->on_handshake(ec); });
}

inline void tcp_inbound_connection::on_handshake(const boost::system::error_code& ec)
{
    if (listener_->stopped() || !stream_.socket().is_open())
        return close();
    if (ec)
        return refuse(stream_.handshake_failure(ec));
    // The magic first, so that a client of another protocol is refused at once rather than
    // when the timeout ends.
    stream_.async_read(boost::asio::buffer(greeting_.data(), 4),
                       [self = shared_from_this()](const boost::system::error_code& ec, std::size_t) {
                           self->on_greeting_magic(ec);
                       });
}

inline void tcp_inbound_connection::on_greeting_magic(const boost::system::error_code& ec)
{
    if (ec || listener_->stopped())
        return close();
    if (!has_greeting_magic(greeting_))
        return refuse(greeting_[0] == 0x16 ? "a TLS handshake: the peer uses peer TLS, this node does not"
                                           : no_greeting_reason);
    stream_.async_read(boost::asio::buffer(greeting_.data() + 4, greeting_.size() - 4),
                       [self = shared_from_this()](const boost::system::error_code& ec, std::size_t) {
                           self->on_greeting(ec);
                       });
}

inline void tcp_inbound_connection::on_greeting(const boost::system::error_code& ec)
{
    deadline_.cancel();
    if (ec || listener_->stopped())
        return close();
    greeting g;
    if (std::string why = check_greeting(greeting_, listener_->cluster_id(), listener_->self(), g);
        !why.empty())
        return refuse(why);
    if (std::string why = stream_.check_peer(g.from); !why.empty())
        return refuse(why);
    if (std::string why = listener_->admit(g); !why.empty())
        return refuse(why);
    peer_ = g.from;
    release_ungreeted();
    listener_->greeted(peer_, shared_from_this());
    // Its peers changed between the check and now, making it a member unrecorded: greeted
    // again, it is recorded (set_peers() closes the connections greeted before).
    if (g.from_incarnation != 0 && listener_->unrecorded_member(g.from))
        return drop("closed: node " + std::to_string(peer_) +
                        " is to greet again, to have its data directory recorded",
                    log_severity::info);
    read_frames();
}

// Reads what the peer sent next into the end of in_, after moving the undecoded bytes
// (part of one frame) to the front.
inline void tcp_inbound_connection::read_frames()
{
    if (begin_ != 0) {
        std::copy(in_.begin() + static_cast<std::ptrdiff_t>(begin_),
                  in_.begin() + static_cast<std::ptrdiff_t>(end_), in_.begin());
        end_ -= begin_;
        begin_ = 0;
    }
    // Do not let one large frame pin its buffer for the connection's whole life.
    if (end_ == 0 && in_.size() > (std::size_t{1} << 20))
        in_ = std::string();
    if (in_.size() < end_ + read_chunk_bytes)
        in_.resize(end_ + read_chunk_bytes);
    stream_.async_read_some(boost::asio::buffer(in_.data() + end_, read_chunk_bytes),
                            [self = shared_from_this()](const boost::system::error_code& ec, std::size_t n) {
                                self->on_read(ec, n);
                            });
}

inline void tcp_inbound_connection::on_read(const boost::system::error_code& ec, std::size_t n)
{
    if (ec || listener_->stopped())
        return close(); // the peer went away (or we stop): nothing to report
    end_ += n;
    const bool good = take_frames();
    if (!batch_.empty()) { // the frames before a bad one count, as if they had come alone
        listener_->deliver(std::move(batch_));
        batch_ = {};
    }
    if (good)
        read_frames();
}

// Decodes every whole frame in [begin_, end_) into batch_, up to a bad one, and runs the
// deadline of a frame left incomplete. False if a bad frame dropped the connection.
inline bool tcp_inbound_connection::take_frames()
{
    for (;;) {
        const std::size_t have = end_ - begin_;
        if (have < frame_header_size)
            break;
        std::error_code bad;
        const std::size_t size = parse_frame_header(
            std::span<const char, frame_header_size>(in_.data() + begin_, frame_header_size),
            listener_->max_frame_bytes(), bad);
        if (bad) {
            drop(bad.message());
            return false;
        }
        if (have - frame_header_size < size) {
            if (!in_frame_) { // the header just came in
                in_frame_ = true;
                expected_ = size;
                arm_frame_deadline();
            }
            break;
        }
        auto messages = decode_payload(std::string_view(in_.data() + begin_ + frame_header_size, size));
        if (!messages) {
            drop("malformed payload of " + std::to_string(size) + " bytes");
            return false;
        }
        for (const message& m : *messages)
            if (m.from != peer_) {
                drop("a message from node " + std::to_string(m.from) + " on the connection of node " +
                     std::to_string(peer_));
                return false;
            }
        std::move(messages->begin(), messages->end(), std::back_inserter(batch_));
        begin_ += frame_header_size + size;
        ++frame_;
        in_frame_ = false; // a deadline still pending finds frame_ moved on
    }
    if (begin_ == end_)
        begin_ = end_ = 0;
    return true;
}

inline void tcp_inbound_connection::arm_frame_deadline()
{
    deadline_.expires_after(listener_->frame_timeout());
    deadline_.async_wait([self = shared_from_this(), frame = frame_](const boost::system::error_code& ec) {
        if (ec || frame != self->frame_ || !self->in_frame_ || !self->stream_.socket().is_open())
            return;
        self->drop("a frame of " + std::to_string(self->expected_) + " payload bytes did not arrive within " +
                   std::to_string(self->listener_->frame_timeout().count()) + " ms (" +
                   std::to_string(self->end_ - self->begin_ - frame_header_size) + " bytes did)");
    });
}

inline void tcp_inbound_connection::refuse(const std::string& why)
{
    listener_->log_refusal(remote_, why);
    close();
}

inline void tcp_inbound_connection::drop(const std::string& why, log_severity severity)
{
    raftkv::log_message(severity, "closing connection from " + remote_ + ": " + why);
    close();
}

} // namespace raftkv::asio::detail

#endif
