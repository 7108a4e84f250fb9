#ifndef RAFTKV_CONCEPTS_HPP
#define RAFTKV_CONCEPTS_HPP

// The policies a basic_node is built from. Each concept states the syntax; the
// comment above it, and docs/concepts/<name>.md, state the semantics a compiler
// cannot check. Indexes are 1-based; ranges are half-open [lo, hi).

#include <raftkv/messages.hpp>
#include <raftkv/types.hpp>

#include <concepts>
#include <cstddef>
#include <span>
#include <vector>

namespace raftkv {

// clang-format 14 cannot lay out compound requirements; the concepts keep their own layout.
// clang-format off

/// Delivers messages to other nodes.
///
/// `t.send(std::move(m))` queues `m` for node `m.to` and returns at once; it never
/// calls back into the node. Delivery is best effort: a message may be lost,
/// duplicated, delayed or reordered, and Raft copes with all of it. The transport owns
/// `m` once send returns.
template <class T>
concept transport = requires(T& t, message m) {
    { t.send(std::move(m)) } -> std::same_as<void>;
};

/// Stores the Raft log and the hard state.
///
/// - `s.saved_hard_state()`: the last hard state saved, or `{}` for a new store.
/// - `s.save_hard_state(hs)`: replaces the hard state; durable when it returns.
/// - `s.first_index()`: the first index held (1 until the log is compacted).
/// - `s.last_index()`: the last index held, or first_index() - 1 when empty.
/// - `s.durable_index()`: entries up to this index survive a crash. Always
///   <= last_index(). A store that makes appends durable before `append` returns keeps it
///   equal to last_index(); one that syncs in the background lets it lag and tells the
///   node's driver when it advances, who then calls `basic_node::on_log_durable()`.
/// - `s.term_at(i)`: the term of entry i. REQUIRES: first_index() - 1 <= i <= last_index().
///   `term_at(0)` is 0.
/// - `s.entries(lo, hi, max_bytes)`: copies of entries [lo, hi), stopping before the
///   payload total would exceed `max_bytes`, but always at least one entry.
///   REQUIRES: first_index() <= lo < hi <= last_index() + 1.
/// - `s.append(es)`: `es` is non-empty, contiguous, and `es.front().index` is at most
///   last_index() + 1. Entries at and after `es.front().index` are discarded first (the
///   conflicting suffix), then `es` is appended. The new entries are readable at once;
///   they are durable once durable_index() reaches them. Discarding entries lowers
///   durable_index() to at most `es.front().index - 1`.
template <class S>
concept log_store = requires(S& s, const S& cs, index_t i, std::size_t n,
                             std::span<const log_entry> es, const hard_state& hs) {
    { cs.saved_hard_state() } -> std::same_as<hard_state>;
    { s.save_hard_state(hs) } -> std::same_as<void>;
    { cs.first_index() } -> std::same_as<index_t>;
    { cs.last_index() } -> std::same_as<index_t>;
    { cs.durable_index() } -> std::same_as<index_t>;
    { cs.term_at(i) } -> std::same_as<term_t>;
    { cs.entries(i, i, n) } -> std::same_as<std::vector<log_entry>>;
    { s.append(es) } -> std::same_as<void>;
};

/// The replicated state machine.
///
/// - `M::result_type`: what applying one entry produces (returned to the proposer).
/// - `m.apply(batch, results)`: applies the committed entries of `batch`, in order, and
///   writes the outcome of `batch[k]` to `results[k]`. Called with contiguous batches in
///   log order, each entry exactly once. Entries of type noop and config carry no command
///   but are passed so the state machine can record the applied index. `apply` must be
///   deterministic (the same entries give the same state and results on every node) and
///   must not call back into the node.
/// - `m.applied_index()`: the index of the last entry applied, as it would be seen after
///   a restart: 0 for a state machine that starts empty, the stored index for one that
///   persists its state with the applied index.
template <class M>
concept state_machine =
    std::default_initializable<typename M::result_type> && std::movable<typename M::result_type> &&
    requires(M& m, const M& cm, std::span<const log_entry> batch,
             std::span<typename M::result_type> results) {
        { m.apply(batch, results) } -> std::same_as<void>;
        { cm.applied_index() } -> std::same_as<index_t>;
    };

// clang-format on

} // namespace raftkv

#endif
