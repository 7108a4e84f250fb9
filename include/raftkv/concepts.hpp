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
#include <string>
#include <string_view>
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
/// - `s.first_index()`: the first index held: 1 for a new store, snapshot index + 1 once
///   the log was compacted or a snapshot installed.
/// - `s.last_index()`: the last index held, or first_index() - 1 when empty.
/// - `s.durable_index()`: entries up to this index survive a crash. Always
///   <= last_index(). A store that makes appends durable before `append` returns keeps it
///   equal to last_index(); one that syncs in the background lets it lag and tells the
///   node's driver when it advances, who then calls `basic_node::on_log_durable()`. A
///   background sync covers the entries it was started for: when it completes after the
///   suffix it covered was discarded, it must not raise durable_index() over the new
///   entries (tag each sync with the last index and term it covers).
/// - `s.term_at(i)`: the term of entry i. REQUIRES: first_index() - 1 <= i <= last_index().
///   `term_at(0)` is 0; `term_at(first_index() - 1)` is the snapshot's term.
/// - `s.entries(lo, hi, max_bytes)`: copies of entries [lo, hi), stopping before the
///   payload total would exceed `max_bytes`, but always at least one entry.
///   REQUIRES: first_index() <= lo < hi <= last_index() + 1.
/// - `s.append(es)`: `es` is non-empty, contiguous, and first_index() <= `es.front().index`
///   <= last_index() + 1. Entries at and after `es.front().index` are discarded first (the
///   conflicting suffix), then `es` is appended. The new entries are readable at once;
///   they are durable once durable_index() reaches them. Discarding entries lowers
///   durable_index() to at most `es.front().index - 1`.
/// - `s.compact(i, members)`: drops the entries up to and including `i`, which a durable
///   snapshot covers; first_index() becomes i + 1, term_at(i) stays readable and
///   base_members() becomes `members` (the configuration in force at `i`). Durable, or at
///   least never undone by a crash without the entries after `i` surviving it. An `i`
///   before first_index() does nothing. REQUIRES: i <= durable_index().
/// - `s.install_snapshot(meta)`: drops every entry and restarts the log after the
///   snapshot: first_index() == last_index() + 1 == meta.index + 1, term_at(meta.index)
///   == meta.term, durable_index() == meta.index, base_members() == meta.members. Durable
///   when it returns. Any index is allowed, before or past the current log (a node
///   records the configuration a new cluster starts with as a snapshot at index 0).
/// - `s.base_members()`: the configuration in force at first_index() - 1, as the last
///   compact() or install_snapshot() gave it; empty for a new store (and for one written
///   before stores kept it). The configuration in force at a later index is that of the
///   last config entry at or before it, if any.
template <class S>
concept log_store = requires(S& s, const S& cs, index_t i, std::size_t n,
                             std::span<const log_entry> es, const hard_state& hs,
                             const snapshot_meta& meta) {
    { cs.saved_hard_state() } -> std::same_as<hard_state>;
    { s.save_hard_state(hs) } -> std::same_as<void>;
    { cs.first_index() } -> std::same_as<index_t>;
    { cs.last_index() } -> std::same_as<index_t>;
    { cs.durable_index() } -> std::same_as<index_t>;
    { cs.term_at(i) } -> std::same_as<term_t>;
    { cs.entries(i, i, n) } -> std::same_as<std::vector<log_entry>>;
    { s.append(es) } -> std::same_as<void>;
    { s.compact(i, meta.members) } -> std::same_as<void>;
    { s.install_snapshot(meta) } -> std::same_as<void>;
    { cs.base_members() } -> std::same_as<membership>;
};

/// A point-in-time view of a state machine's applied state, read in chunks.
///
/// - `r.index()`: the applied index the view reflects.
/// - `r.read(out, max_bytes)`: replaces `out` with the next chunk of the snapshot's byte
///   stream, of at most about `max_bytes` (a single record may exceed it), and returns
///   true when that chunk is the last. An empty state may be one empty, last chunk.
///   REQUIRES: no earlier call returned true.
template <class R>
concept snapshot_reader = std::movable<R> && requires(R& r, const R& cr, std::string& out, std::size_t n) {
    { cr.index() } -> std::same_as<index_t>;
    { r.read(out, n) } -> std::same_as<bool>;
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
///   persists its state with the applied index, the snapshot's index for one restored
///   from a snapshot.
/// - `m.snapshot_index()`: the applied state up to this index survives a crash (the
///   machine's durable snapshot); the node may drop the log up to it. 0 when nothing
///   survives. <= applied_index(). A machine that persists every apply keeps it equal
///   to applied_index().
/// - `m.take_snapshot()`: asks the machine to make its applied state survive a crash.
///   snapshot_index() reaches applied_index() when it returns or later (the node looks
///   again on every tick). Must not stop apply() for long: copy-on-write or a storage
///   engine's own snapshot, not a full copy made on the caller's thread.
/// - `m.snapshot()`: a `snapshot_reader` over the state as of applied_index(), readable
///   while apply() goes on (a LevelDB snapshot, a copy-on-write view). The node reads it
///   in chunks to stream it to a follower; it never holds the whole of it.
/// - `m.begin_restore(meta)`, `m.restore_chunk(data)`, `m.finish_restore()`: replaces the
///   state with a snapshot received in chunks, in order. Until finish_restore() the
///   current state, applied_index() and snapshot() are unchanged; finish_restore()
///   replaces them at once, durably before it returns, after which applied_index() ==
///   snapshot_index() == meta.index. A begin_restore() discards a restore in progress;
///   `m.abort_restore()` discards it without starting another. A chunk that does not
///   decode throws, and so does finish_restore() on a stream that is incomplete; the node
///   then calls abort_restore() and asks for the snapshot again (the bytes came from the
///   network: they must not stop the node).
template <class M>
concept state_machine =
    std::default_initializable<typename M::result_type> && std::movable<typename M::result_type> &&
    snapshot_reader<typename M::snapshot_reader> &&
    requires(M& m, const M& cm, std::span<const log_entry> batch,
             std::span<typename M::result_type> results, const snapshot_meta& meta, std::string_view data) {
        { m.apply(batch, results) } -> std::same_as<void>;
        { cm.applied_index() } -> std::same_as<index_t>;
        { cm.snapshot_index() } -> std::same_as<index_t>;
        { m.take_snapshot() } -> std::same_as<void>;
        { m.snapshot() } -> std::same_as<typename M::snapshot_reader>;
        { m.begin_restore(meta) } -> std::same_as<void>;
        { m.restore_chunk(data) } -> std::same_as<void>;
        { m.finish_restore() } -> std::same_as<void>;
        { m.abort_restore() } -> std::same_as<void>;
    };

// clang-format on

} // namespace raftkv

#endif
