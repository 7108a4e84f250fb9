#ifndef RAFTKV_SIM_LOG_STORE_HPP
#define RAFTKV_SIM_LOG_STORE_HPP

// The simulator's log store: a memory_log_store that also remembers the lowest index it
// changed, so the invariant checker re-hashes only what changed after each step.

#include <raftkv/memory_log_store.hpp>
#include <raftkv/types.hpp>

#include <algorithm>
#include <limits>
#include <span>
#include <utility>

namespace raftkv::sim {

/** A `memory_log_store` that records which part of the log changed.

    Behaves exactly as `memory_log_store` (it is one); `take_changed_from()` reports the
    lowest index written or dropped since the previous call.

    @par Thread Safety
    Distinct objects: safe. Shared objects: unsafe.
*/
class sim_log_store : public memory_log_store {
public:
    /// Returned by take_changed_from() when nothing changed.
    static constexpr index_t unchanged = std::numeric_limits<index_t>::max();

    explicit sim_log_store(bool sync_on_append = true) : memory_log_store(sync_on_append) {}

    void append(std::span<const log_entry> es)
    {
        if (!es.empty())
            changed_from_ = std::min(changed_from_, es.front().index);
        memory_log_store::append(es);
    }

    /// Restarts the log after the snapshot: every entry changed.
    void install_snapshot(const snapshot_meta& meta)
    {
        changed_from_ = 1;
        memory_log_store::install_snapshot(meta);
    }

    /// Drops every entry that is not durable, as a crash would.
    void crash()
    {
        changed_from_ = std::min(changed_from_, durable_index() + 1);
        memory_log_store::crash();
    }

    /// The lowest index appended, overwritten or dropped since the last call, or
    /// `unchanged`; then forgets it.
    index_t take_changed_from() noexcept { return std::exchange(changed_from_, unchanged); }

private:
    index_t changed_from_ = unchanged;
};

} // namespace raftkv::sim

#endif
