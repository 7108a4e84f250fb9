#ifndef RAFTKV_SIM_LOG_STORE_HPP
#define RAFTKV_SIM_LOG_STORE_HPP

// The simulator's log store: a memory_log_store that also remembers the lowest index it
// changed, so the invariant checker re-hashes only what changed after each step, and whose
// syncs can be made to hang (a stalled disk).

#include <raftkv/memory_log_store.hpp>
#include <raftkv/types.hpp>

#include <algorithm>
#include <limits>
#include <span>
#include <utility>
#include <vector>

namespace raftkv::sim {

/** A `memory_log_store` that records which part of the log changed, and whose disk can hang.

    Behaves exactly as `memory_log_store` (it is one) until `stall()`: from then on no
    sync completes, and with `sync_on_append` appends are no longer durable at once either.
    The syncs asked for meanwhile (`sync_to()`, `sync()`) are remembered, and `resume()`
    completes those that still cover entries in the log, as a disk that comes back would.
    The hard state, installed snapshots and compaction stay durable on return, as the
    `log_store` concept requires. A stall outlives `crash()` (it is the disk's), the
    syncs pending at the crash do not. `take_changed_from()` reports the lowest index
    written or dropped since the previous call.

    @par Thread Safety
    Distinct objects: safe. Shared objects: unsafe.
*/
class sim_log_store : public memory_log_store {
public:
    /// Returned by take_changed_from() when nothing changed.
    static constexpr index_t unchanged = std::numeric_limits<index_t>::max();

    explicit sim_log_store(bool sync_on_append = true)
        : memory_log_store(false), sync_on_append_(sync_on_append)
    {
    }

    void append(std::span<const log_entry> es)
    {
        if (!es.empty())
            changed_from_ = std::min(changed_from_, es.front().index);
        memory_log_store::append(es);
        if (sync_on_append_ && !stalled_)
            memory_log_store::sync();
    }

    /// Restarts the log after the snapshot: every entry changed.
    void install_snapshot(const snapshot_meta& meta)
    {
        changed_from_ = 1;
        memory_log_store::install_snapshot(meta);
    }

    /// As memory_log_store::sync(), unless the disk is stalled: then the sync is held
    /// until resume() and nothing becomes durable now.
    bool sync() { return sync_to(last_index(), term_at(last_index())); }

    /// As memory_log_store::sync_to(), unless the disk is stalled: then the sync is held
    /// until resume() and nothing becomes durable now.
    bool sync_to(index_t index, term_t term)
    {
        if (!stalled_)
            return memory_log_store::sync_to(index, term);
        held_.emplace_back(index, term);
        return false;
    }

    /// Makes the disk hang: no sync completes until resume().
    void stall() noexcept { stalled_ = true; }

    /// Ends a stall: completes the syncs held meanwhile that still cover entries of the
    /// log (and, with sync_on_append, everything). Returns true if durable_index() advanced.
    bool resume()
    {
        stalled_ = false;
        bool advanced = false;
        for (const auto& [index, term] : std::exchange(held_, {}))
            advanced = memory_log_store::sync_to(index, term) || advanced;
        if (sync_on_append_)
            advanced = memory_log_store::sync() || advanced;
        return advanced;
    }

    bool stalled() const noexcept { return stalled_; }

    /// Drops every entry that is not durable, and the syncs in flight, as a crash would.
    void crash()
    {
        changed_from_ = std::min(changed_from_, durable_index() + 1);
        held_.clear();
        memory_log_store::crash();
    }

    /// The lowest index appended, overwritten or dropped since the last call, or
    /// `unchanged`; then forgets it.
    index_t take_changed_from() noexcept { return std::exchange(changed_from_, unchanged); }

private:
    bool sync_on_append_;
    bool stalled_ = false;
    /// Syncs asked for while stalled: the last entry (index, term) each covers.
    std::vector<std::pair<index_t, term_t>> held_;
    index_t changed_from_ = unchanged;
};

} // namespace raftkv::sim

#endif
