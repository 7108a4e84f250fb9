#ifndef RAFTKV_DETAIL_SNAPSHOT_SENDER_HPP
#define RAFTKV_DETAIL_SNAPSHOT_SENDER_HPP

#include <raftkv/concepts.hpp>
#include <raftkv/messages.hpp>
#include <raftkv/types.hpp>

#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <utility>

namespace raftkv::detail {

/// A leader's side of one snapshot transfer to one follower: reads the snapshot in chunks
/// as the window allows, keeps the chunks not yet acknowledged (at most `window_bytes`
/// plus one chunk) so a lost one can be sent again, and interprets the follower's answers.
/// It holds no more of the snapshot than that window.
template <snapshot_reader Reader>
class snapshot_sender {
public:
    /// What an install_snapshot_response means for the transfer. A follower that lost
    /// what it received (it crashed) answers with an offset behind what it acknowledged
    /// before; so does a late answer, so neither restarts the transfer: the follower
    /// stalls, and resends (see resends()) tell the two apart.
    enum class ack { ignored, progress, done };

    bool active() const noexcept { return reader_.has_value(); }
    const snapshot_meta& meta() const noexcept { return meta_; }
    std::uint64_t transfer() const noexcept { return transfer_; }

    /// Starts transfer number `transfer` of `reader`, whose snapshot `meta` describes.
    void start(Reader reader, snapshot_meta meta, std::uint64_t transfer)
    {
        reader_.emplace(std::move(reader));
        meta_ = std::move(meta);
        transfer_ = transfer;
        unacked_.clear();
        unacked_bytes_ = 0;
        acked_ = sent_end_ = 0;
        fast_resent_at_ = no_offset;
        read_all_ = false;
        resends_ = 0;
    }

    /// Ends the transfer and releases the snapshot.
    void stop() noexcept
    {
        reader_.reset();
        unacked_.clear();
        unacked_bytes_ = 0;
    }

    /// Reads and sends chunks of at most `chunk_bytes` while fewer than `window_bytes`
    /// are unacknowledged. `send(install_snapshot_request)` puts one on the wire.
    template <class Send>
    void fill(std::size_t chunk_bytes, std::size_t window_bytes, Send&& send)
    {
        while (active() && !read_all_ && unacked_bytes_ < window_bytes) {
            chunk c{.offset = sent_end_, .data = {}, .done = false};
            c.done = reader_->read(c.data, chunk_bytes);
            read_all_ = c.done;
            sent_end_ += c.data.size();
            unacked_bytes_ += charge(c);
            unacked_.push_back(std::move(c));
            send(request(unacked_.back()));
        }
    }

    /// Sends every unacknowledged chunk again, oldest first (after the follower stalled).
    template <class Send>
    void resend(Send&& send)
    {
        ++resends_;
        for (const chunk& c : unacked_)
            send(request(c));
    }

    /// Sends the oldest unacknowledged chunk again, once per acknowledged offset: the
    /// follower answered a later chunk with the offset it still waits for, so that one
    /// was lost or overtaken (a fast retransmit, as TCP's after a duplicate ack).
    template <class Send>
    void resend_first(Send&& send)
    {
        if (unacked_.empty() || fast_resent_at_ == acked_)
            return;
        fast_resent_at_ = acked_;
        send(request(unacked_.front()));
    }

    /// How many times resend() ran since the follower last made progress.
    std::uint32_t resends() const noexcept { return resends_; }

    ack on_response(const install_snapshot_response& r)
    {
        if (!active() || r.transfer != transfer_)
            return ack::ignored;
        if (r.done)
            return r.index == meta_.index ? ack::done : ack::ignored;
        if (r.offset <= acked_ || r.offset > sent_end_)
            return ack::ignored;
        acked_ = r.offset;
        resends_ = 0;
        while (!unacked_.empty() && unacked_.front().offset + unacked_.front().data.size() <= acked_ &&
               !unacked_.front().done) {
            unacked_bytes_ -= charge(unacked_.front());
            unacked_.pop_front();
        }
        return ack::progress;
    }

private:
    struct chunk {
        std::uint64_t offset = 0;
        std::string data;
        bool done = false;
    };

    // What a chunk counts against the window: at least a byte, so that a reader returning
    // empty chunks cannot make fill() read forever.
    static std::size_t charge(const chunk& c) noexcept { return c.data.empty() ? 1 : c.data.size(); }

    install_snapshot_request request(const chunk& c) const
    {
        return {.meta = meta_, .transfer = transfer_, .offset = c.offset, .data = c.data, .done = c.done};
    }

    std::optional<Reader> reader_;
    snapshot_meta meta_;
    std::uint64_t transfer_ = 0;
    std::deque<chunk> unacked_;
    std::size_t unacked_bytes_ = 0;
    /// The follower has every byte before acked_; chunks were read up to sent_end_.
    std::uint64_t acked_ = 0;
    std::uint64_t sent_end_ = 0;
    static constexpr std::uint64_t no_offset = ~std::uint64_t{0};
    std::uint64_t fast_resent_at_ = no_offset;
    bool read_all_ = false;
    std::uint32_t resends_ = 0;
};

} // namespace raftkv::detail

#endif
