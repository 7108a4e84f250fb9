#ifndef RAFTKV_MEMORY_LOG_STORE_HPP
#define RAFTKV_MEMORY_LOG_STORE_HPP

#include <raftkv/types.hpp>

#include <cassert>
#include <cstddef>
#include <iterator>
#include <span>
#include <vector>

namespace raftkv {

/** An in-memory model of the `log_store` concept.

    Holds the log and hard state in memory. It also models durability, so tests can
    exercise a store whose appends become durable later: with `sync_on_append` (the
    default) every append is durable at once; without it, entries stay volatile until
    `sync()` (or `sync_to()`, a sync that covers what was appended when it started),
    and `crash()` drops whatever was not durable, as a power cut would. Compaction and
    snapshot installs keep only the retained entries in memory.
    The hard state is always durable once saved, as the concept requires.

    @par Thread Safety
    Distinct objects: safe. Shared objects: unsafe.
*/
class memory_log_store {
public:
    explicit memory_log_store(bool sync_on_append = true) : sync_on_append_(sync_on_append) {}

    hard_state saved_hard_state() const { return hard_state_; }
    void save_hard_state(const hard_state& hs) { hard_state_ = hs; }

    index_t first_index() const noexcept { return base_index_ + 1; }
    index_t last_index() const noexcept { return base_index_ + entries_.size(); }
    index_t durable_index() const noexcept { return durable_; }

    term_t term_at(index_t i) const
    {
        assert(i + 1 >= first_index() && i <= last_index());
        return i == base_index_ ? base_term_ : entries_[i - first_index()].term;
    }

    std::vector<log_entry> entries(index_t lo, index_t hi, std::size_t max_bytes) const
    {
        assert(first_index() <= lo && lo < hi && hi <= last_index() + 1);
        std::vector<log_entry> out;
        std::size_t bytes = 0;
        for (index_t i = lo; i < hi; ++i) {
            const log_entry& e = entries_[i - first_index()];
            bytes += e.data.size();
            if (!out.empty() && bytes > max_bytes)
                break;
            out.push_back(e);
        }
        return out;
    }

    void append(std::span<const log_entry> es)
    {
        assert(!es.empty() && es.front().index >= first_index() && es.front().index <= last_index() + 1);
        const index_t from = es.front().index;
        entries_.resize(from - first_index());
        if (durable_ > from - 1)
            durable_ = from - 1;
        entries_.insert(entries_.end(), es.begin(), es.end());
        if (sync_on_append_)
            durable_ = last_index();
    }

    /// Drops the entries up to and including `i` and keeps `members` as the configuration
    /// at `i`; nothing if `i` is before first_index(). REQUIRES: i <= durable_index().
    void compact(index_t i, const membership& members)
    {
        assert(i <= durable_index());
        if (i < first_index())
            return;
        base_term_ = term_at(i);
        entries_.erase(entries_.begin(), entries_.begin() + static_cast<std::ptrdiff_t>(i - base_index_));
        base_index_ = i;
        base_members_ = members;
    }

    /// Drops every entry; the log restarts after `meta.index`, under `meta.members`, durably.
    void install_snapshot(const snapshot_meta& meta)
    {
        entries_.clear();
        base_index_ = meta.index;
        base_term_ = meta.term;
        base_members_ = meta.members;
        durable_ = meta.index;
    }

    /// The configuration at first_index() - 1, as the last compact() or install_snapshot()
    /// gave it; empty for a new store.
    membership base_members() const { return base_members_; }

    /// Makes every entry durable. Returns true if durable_index() advanced.
    bool sync() noexcept
    {
        const bool advanced = durable_ < last_index();
        durable_ = last_index();
        return advanced;
    }

    /// Makes the entries up to `index` durable if the entry there still has `term`: a sync
    /// that started before the entries it covered were replaced must not cover the new
    /// ones. Returns true if durable_index() advanced.
    bool sync_to(index_t index, term_t term) noexcept
    {
        if (index <= durable_ || index > last_index() || index < first_index() || term_at(index) != term)
            return false;
        durable_ = index;
        return true;
    }

    /// Drops every entry that is not durable, as a crash would.
    void crash() { entries_.resize(durable_ - base_index_); }

    /// The entries held, for inspection by tests: entry i is at position i - first_index().
    const std::vector<log_entry>& all_entries() const noexcept { return entries_; }

private:
    bool sync_on_append_;
    hard_state hard_state_;
    index_t base_index_ = 0;
    term_t base_term_ = 0;
    membership base_members_;
    std::vector<log_entry> entries_;
    index_t durable_ = 0;
};

} // namespace raftkv

#endif
