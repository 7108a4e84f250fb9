#ifndef RAFTKV_MEMORY_LOG_STORE_HPP
#define RAFTKV_MEMORY_LOG_STORE_HPP

#include <raftkv/types.hpp>

#include <cassert>
#include <cstddef>
#include <span>
#include <vector>

namespace raftkv {

/** An in-memory model of the `log_store` concept.

    Holds the log and hard state in memory. It also models durability, so tests can
    exercise a store whose appends become durable later: with `sync_on_append` (the
    default) every append is durable at once; without it, entries stay volatile until
    `sync()`, and `crash()` drops whatever was not durable, as a power cut would.
    The hard state is always durable once saved, as the concept requires.

    @par Thread Safety
    Distinct objects: safe. Shared objects: unsafe.
*/
class memory_log_store {
public:
    explicit memory_log_store(bool sync_on_append = true) : sync_on_append_(sync_on_append) {}

    hard_state saved_hard_state() const { return hard_state_; }
    void save_hard_state(const hard_state& hs) { hard_state_ = hs; }

    index_t first_index() const noexcept { return 1; }
    index_t last_index() const noexcept { return entries_.size(); }
    index_t durable_index() const noexcept { return durable_; }

    term_t term_at(index_t i) const
    {
        assert(i <= last_index());
        return i == 0 ? 0 : entries_[i - 1].term;
    }

    std::vector<log_entry> entries(index_t lo, index_t hi, std::size_t max_bytes) const
    {
        assert(first_index() <= lo && lo < hi && hi <= last_index() + 1);
        std::vector<log_entry> out;
        std::size_t bytes = 0;
        for (index_t i = lo; i < hi; ++i) {
            const log_entry& e = entries_[i - 1];
            bytes += e.data.size();
            if (!out.empty() && bytes > max_bytes)
                break;
            out.push_back(e);
        }
        return out;
    }

    void append(std::span<const log_entry> es)
    {
        assert(!es.empty() && es.front().index >= 1 && es.front().index <= last_index() + 1);
        const index_t from = es.front().index;
        entries_.resize(from - 1);
        if (durable_ > from - 1)
            durable_ = from - 1;
        entries_.insert(entries_.end(), es.begin(), es.end());
        if (sync_on_append_)
            durable_ = last_index();
    }

    /// Makes every entry durable. Returns true if durable_index() advanced.
    bool sync() noexcept
    {
        const bool advanced = durable_ < last_index();
        durable_ = last_index();
        return advanced;
    }

    /// Drops every entry that is not durable, as a crash would.
    void crash() { entries_.resize(durable_); }

    /// All entries held, for inspection by tests. Entry i is at position i - 1.
    const std::vector<log_entry>& all_entries() const noexcept { return entries_; }

private:
    bool sync_on_append_;
    hard_state hard_state_;
    std::vector<log_entry> entries_;
    index_t durable_ = 0;
};

} // namespace raftkv

#endif
