#ifndef RAFTKV_ASIO_DETAIL_TCP_PEER_LINK_HPP
#define RAFTKV_ASIO_DETAIL_TCP_PEER_LINK_HPP

// The outgoing half of tcp_transport: one persistent connection to one peer, with its
// queue, batching writer and reconnection. Included by impl/tcp_transport.ipp only.

#include <raftkv/asio/codec.hpp>
#include <raftkv/asio/detail/endpoint_name.hpp>
#include <raftkv/asio/detail/greeting.hpp>
#include <raftkv/asio/detail/incarnation_book.hpp>
#include <raftkv/asio/detail/peer_stream.hpp>
#include <raftkv/asio/tcp_transport.hpp>
#include <raftkv/log.hpp>
#include <raftkv/messages.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

namespace raftkv::asio::detail {

/// Owns the connection this node dials to one peer. Only ever written to: the peer
/// sends its own messages over the connection it dials to us. The first bytes written on
/// each connection are the greeting (greeting.hpp), made when the connection opens. With
/// peer TLS, each connection starts with a TLS handshake, and the peer must present the
/// certificate of the node dialed.
///
/// Threads: the link runs on a strand of its own, so that encoding frames and writing them
/// never hold up the node's strand. send() and stop() are called on the transport's
/// executor and hand their work to the link's strand; everything else runs there.
///
/// Lifetime: shared by the transport and by the link's pending operations, each of which
/// holds shared_from_this(). After stop(), every completion finds `stopped_` and returns,
/// so the link dies once the last one has run.
///
/// Each connection attempt, and each failure, bumps `epoch_`; a completion of an older
/// connection only clears `writing_` (a single flag, so two writes are never in flight
/// together).
class tcp_peer_link final : public std::enable_shared_from_this<tcp_peer_link> {
public:
    tcp_peer_link(boost::asio::any_io_executor ex, node_id self, node_id peer,
                  boost::asio::ip::tcp::endpoint remote, const tcp_transport_options& options,
                  std::shared_ptr<const incarnation_book> incarnations, std::shared_ptr<tls_context> tls)
        : executor_(ex), timer_(ex), self_(self), peer_(peer), remote_(remote), options_(options),
          backoff_(options.reconnect_delay_min), incarnations_(std::move(incarnations)), tls_(std::move(tls))
    {
    }

    /// Where the link dials its peer; fixed for the link's life.
    const boost::asio::ip::tcp::endpoint& remote() const noexcept { return remote_; }
    /// Dials the peer now rather than on the first message, to greet it. Called on the
    /// transport's executor.
    void start()
    {
        boost::asio::post(executor_, [self = shared_from_this()] {
            if (!self->stopped_ && self->state_ == link_state::idle)
                self->connect();
        });
    }

    /// Queues `m` on the link's strand. Called on the transport's executor.
    void send(message m)
    {
        if (stopped_)
            return;
        boost::asio::post(executor_, [self = shared_from_this(), m = std::move(m)]() mutable {
            self->enqueue(std::move(m));
        });
    }

    /// Closes the connection, cancels the reconnection timer and drops the queue, on the
    /// link's strand. Called on the transport's executor; nothing is sent after it returns.
    void stop()
    {
        stopped_ = true;
        boost::asio::post(executor_, [self = shared_from_this()] { self->close(); });
    }

private:
    enum class link_state { idle, connecting, connected, backing_off };

    struct queued_message {
        message msg;
        std::size_t size; // encoded_size(msg)
    };

    /// Queues `m`, dialing the peer the first time, and schedules a write if none is
    /// scheduled or in flight.
    void enqueue(message m)
    {
        if (stopped_ || lost_)
            return; // a peer that went away hears only what is sent once it is back
        const std::size_t size = encoded_size(m);
        if (frame_size({}) + size > options_.max_frame_bytes) {
            log(log_severity::warning, "dropped a " + std::string(type_name(m)) + " of " +
                                           std::to_string(size) + " bytes, larger than max_frame_bytes");
            return;
        }
        queue_.push_back({std::move(m), size});
        queued_bytes_ += size;
        while (queue_.size() > options_.max_queued_messages ||
               (queued_bytes_ > options_.max_queued_bytes && queue_.size() > 1)) {
            queued_bytes_ -= queue_.front().size;
            queue_.pop_front();
        }
        if (state_ == link_state::idle)
            connect();
        else
            maybe_write();
    }

    void close()
    {
        timer_.cancel();
        if (stream_)
            stream_->close();
        queue_.clear();
        queued_bytes_ = 0;
    }

    void connect()
    {
        ++epoch_;
        state_ = link_state::connecting;
        // A stream per connection: a TLS session cannot be reused. Each operation holds the
        // stream it runs on, so an older connection's stays alive until its last completion.
        stream_ = std::make_shared<peer_stream>(boost::asio::ip::tcp::socket(executor_), tls_.get());
        stream_->socket().async_connect(remote_, [self = shared_from_this(), epoch = epoch_,
                                                  stream = stream_](const boost::system::error_code& ec) {
            self->on_connect(epoch, ec);
        });
    }

    void on_connect(std::uint64_t epoch, const boost::system::error_code& ec)
    {
        if (stopped_ || epoch != epoch_)
            return;
        if (ec)
            return fail("cannot connect", ec);
        boost::system::error_code ignored;
        stream_->socket().set_option(boost::asio::ip::tcp::no_delay(true), ignored);
        // A peer that accepts and never answers the handshake must not hold the link forever.
        timer_.expires_after(options_.greeting_timeout);
        timer_.async_wait([self = shared_from_this(), epoch = epoch_](const boost::system::error_code& ec) {
            if (!ec && !self->stopped_ && epoch == self->epoch_ && self->state_ == link_state::connecting)
                self->fail_because("TLS handshake timed out");
        });
        stream_->async_handshake(true,
                                 [self = shared_from_this(), epoch = epoch_, stream = stream_](
                                     const boost::system::error_code& ec) { self->on_handshake(epoch, ec); });
    }

    void on_handshake(std::uint64_t epoch, const boost::system::error_code& ec)
    {
        if (stopped_ || epoch != epoch_)
            return;
        timer_.cancel();
        if (ec)
            return fail_because(stream_->handshake_failure(ec));
        if (std::string why = stream_->check_peer(peer_); !why.empty())
            return fail_because("refused: " + why);
        state_ = link_state::connected;
        lost_ = false;
        established_at_ = std::chrono::steady_clock::now();
        greeting_ = make_greeting();
        greet_pending_ = true;
        watch_for_close();
        maybe_write();
    }

    /// The greeting of a new connection: it names the peer's incarnation as recorded now,
    /// which the listener may have learned or forgotten since the last connection.
    greeting_bytes make_greeting() const
    {
        return encode_greeting(greeting{.cluster_id = options_.cluster_id,
                                        .from = self_,
                                        .to = peer_,
                                        .from_incarnation = incarnations_->self(),
                                        .to_incarnation = incarnations_->recorded(peer_)});
    }

    /// The peer never writes on this connection, so a read completes only when the
    /// connection ends (or the peer breaks the protocol): this is how an idle link learns
    /// that its peer went away, or that the peer refused its greeting (and logged why).
    void watch_for_close()
    {
        stream_->async_read_some(boost::asio::buffer(&probe_, 1),
                                 [self = shared_from_this(), epoch = epoch_,
                                  stream = stream_](const boost::system::error_code& ec, std::size_t) {
                                     self->on_probe(epoch, ec);
                                 });
    }

    void on_probe(std::uint64_t epoch, const boost::system::error_code& ec)
    {
        if (stopped_ || epoch != epoch_)
            return;
        // A byte from a peer that never writes here: a TLS record (alert 0x15, handshake
        // 0x16) from a peer that speaks TLS to a node that does not.
        if (!ec && !stream_->is_tls() && (probe_ == 0x15 || probe_ == 0x16))
            return fail_because("connection lost: the peer answered in TLS (peer TLS is on there, off here)");
        fail("connection lost", ec ? ec : make_error_code(boost::asio::error::invalid_argument));
    }

    /// Schedules a write for after the current handler, so that every message sent by it
    /// goes into the same frame.
    void maybe_write()
    {
        if (writing_ || state_ != link_state::connected || (queue_.empty() && !greet_pending_))
            return;
        writing_ = true;
        boost::asio::post(executor_, [self = shared_from_this()] { self->write(); });
    }

    /// Encodes as much of the queue as fits one frame, and writes it, behind the greeting
    /// on a new connection.
    void write()
    {
        if (stopped_)
            return;
        if (state_ != link_state::connected || (queue_.empty() && !greet_pending_)) {
            writing_ = false;
            return;
        }
        frame_.clear();
        if (greet_pending_)
            frame_.append(greeting_.data(), greeting_.size());
        greet_pending_ = false;
        if (!queue_.empty())
            encode_batch();
        stream_->async_write(boost::asio::buffer(frame_),
                             [self = shared_from_this(), epoch = epoch_,
                              stream = stream_](const boost::system::error_code& ec, std::size_t) {
                                 self->on_write(epoch, ec);
                             });
    }

    /// Appends to frame_ one frame of as much of the queue as fits.
    void encode_batch()
    {
        std::size_t budget = options_.max_frame_bytes - frame_size({});
        batch_.clear();
        while (!queue_.empty() && queue_.front().size <= budget) {
            budget -= queue_.front().size;
            queued_bytes_ -= queue_.front().size;
            batch_.push_back(std::move(queue_.front().msg));
            queue_.pop_front();
        }
        encode_frame(batch_, frame_);
        batch_.clear();
    }

    void on_write(std::uint64_t epoch, const boost::system::error_code& ec)
    {
        writing_ = false;
        if (stopped_)
            return;
        if (ec && epoch == epoch_)
            return fail("write failed", ec); // the frame is lost: Raft will resend
        if (failure_logged_ && proven()) {
            log(log_severity::info, "connected");
            failure_logged_ = false;
        }
        maybe_write();
    }

    /// Whether the current connection has lasted long enough to count as made: a peer that
    /// refuses this node (a greeting or certificate it does not accept; with TLS 1.3 the
    /// dialer learns of a refused certificate only after its handshake) closes it at once.
    /// Until then the link keeps its backoff growing and logs no recovery, so that a
    /// refusal costs one line and a slowing trickle of attempts, not a line per attempt.
    bool proven() const
    {
        return state_ == link_state::connected &&
               std::chrono::steady_clock::now() - established_at_ >= std::chrono::seconds(1);
    }

    /// Drops the current connection and dials again after the backoff delay.
    void fail(const char* what, const boost::system::error_code& ec)
    {
        fail_because(std::string(what) + ": " + ec.message());
    }

    /// Drops the current connection, saying `why` the first time, and dials again after
    /// the backoff delay.
    void fail_because(const std::string& why)
    {
        if (proven()) {
            backoff_ = options_.reconnect_delay_min;
            failure_logged_ = false; // a new outage
        }
        if (!failure_logged_)
            log(log_severity::warning, why + "; retrying with backoff");
        failure_logged_ = true;
        if (options_.on_unreachable)
            options_.on_unreachable(peer_);
        // What was queued for a peer whose connection was lost, and what is sent until it is
        // back, was meant for the process that went away: it may come back as another one
        // (a member removed and added again with a new data directory), to which an old
        // heartbeat's commit index would be a lie. Raft resends whatever still matters.
        if (state_ == link_state::connected) {
            lost_ = true;
            queue_.clear();
            queued_bytes_ = 0;
        }
        ++epoch_; // later completions of this connection are stale
        state_ = link_state::backing_off;
        stream_->close();
        timer_.expires_after(backoff_);
        backoff_ = std::min(backoff_ * 2, options_.reconnect_delay_max);
        timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
            if (!ec && !self->stopped_)
                self->connect();
        });
    }

    void log(log_severity severity, const std::string& what) const
    {
        raftkv::log_message(severity, "link to node " + std::to_string(peer_) + " at " +
                                          endpoint_name(remote_) + ": " + what);
    }

    boost::asio::any_io_executor executor_; // the link's strand
    std::shared_ptr<peer_stream> stream_;   // the current connection's; null before the first
    boost::asio::steady_timer timer_;
    node_id self_;
    node_id peer_;
    boost::asio::ip::tcp::endpoint remote_;
    tcp_transport_options options_;
    std::chrono::milliseconds backoff_;
    std::chrono::steady_clock::time_point established_at_; // of the current connection
    std::shared_ptr<const incarnation_book> incarnations_;
    std::shared_ptr<tls_context> tls_; // null without peer TLS
    greeting_bytes greeting_{};        // the current connection's

    std::deque<queued_message> queue_;
    std::size_t queued_bytes_ = 0;
    std::vector<message> batch_; // reused, so a steady flow of batches allocates nothing
    std::string frame_;          // the frame being written; reused likewise

    link_state state_ = link_state::idle;
    std::uint64_t epoch_ = 0;
    bool writing_ = false; // a write is scheduled or in flight
    bool failure_logged_ = false;
    bool lost_ = false;          // the connection was lost and not yet made again: sends are dropped
    bool greet_pending_ = false; // the current connection's greeting is not yet written
    std::atomic<bool> stopped_{false};
    char probe_ = 0;
};

} // namespace raftkv::asio::detail

#endif
