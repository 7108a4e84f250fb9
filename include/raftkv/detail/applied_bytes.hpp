#ifndef RAFTKV_DETAIL_APPLIED_BYTES_HPP
#define RAFTKV_DETAIL_APPLIED_BYTES_HPP

#include <raftkv/types.hpp>

#include <algorithm>
#include <cstdint>
#include <deque>

namespace raftkv::detail {

/// How many payload bytes were applied up to points of the log, so that a node can tell
/// how far back behind a snapshot a byte budget reaches (snapshot_catchup_bytes). One mark
/// per apply batch: its last index and the bytes applied through it since the origin, the
/// index where counting started (the node's start, or a restored snapshot), before which
/// sizes are unknown.
class applied_bytes {
public:
    /// Counts from `index` on; what the log holds up to it is of unknown size.
    void reset(index_t index) { marks_.assign(1, mark{index, total_}); }

    /// Entries up to `last` were applied, `bytes` of payload since the previous call.
    void applied(index_t last, std::uint64_t bytes)
    {
        total_ += bytes;
        marks_.push_back(mark{last, total_});
    }

    /// Bytes applied since the node started, a running count that never decreases.
    std::uint64_t total() const noexcept { return total_; }

    /// How far the log may be dropped so that the entries after that point, up to `upto`
    /// (a mark, where total() was `upto_total`), hold at most `budget` bytes: the first
    /// mark after which they fit. 0 when everything counted fits (what came before the
    /// origin, of unknown size, stays too), and never past `upto`.
    index_t keep_within(index_t upto, std::uint64_t upto_total, std::uint64_t budget) const
    {
        const mark& origin = marks_.front();
        if (upto_total <= origin.bytes || upto_total - origin.bytes <= budget)
            return 0;
        const std::uint64_t floor = upto_total - budget;
        // Marks are in index order, and so in order of bytes: one search, however many
        // batches a compaction held back by a snapshot transfer has let pile up.
        const auto first_fit = std::partition_point(marks_.begin(), marks_.end(),
                                                    [&](const mark& m) { return m.bytes < floor; });
        return first_fit != marks_.end() && first_fit->index <= upto ? first_fit->index : 0;
    }

    /// The log was dropped up to `index`: forgets the marks before it but the last, which
    /// still says how many bytes were applied up to the log's new start.
    void dropped_through(index_t index)
    {
        while (marks_.size() > 1 && marks_[1].index <= index)
            marks_.pop_front();
    }

    /// Marks held: one per apply batch since the log was last dropped.
    std::size_t marks() const noexcept { return marks_.size(); }

private:
    struct mark {
        index_t index = 0;
        std::uint64_t bytes = 0;
    };
    std::deque<mark> marks_{mark{}};
    std::uint64_t total_ = 0;
};

} // namespace raftkv::detail

#endif
