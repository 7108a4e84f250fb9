#ifndef RAFTKV_TEST_ARCHETYPES_HPP
#define RAFTKV_TEST_ARCHETYPES_HPP

// Types that offer exactly what each concept requires and nothing more. Instantiating
// basic_node with them proves the core asks its policies for nothing undocumented.
// They are declared, never defined: the archetype test only compiles.

#include <raftkv/concepts.hpp>

#include <concepts>
#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace raftkv::archetypes {

class transport {
public:
    transport(const transport&) = delete;
    transport& operator=(const transport&) = delete;
    void send(message&& m);
};

class log_store {
public:
    log_store(const log_store&) = delete;
    log_store& operator=(const log_store&) = delete;
    hard_state saved_hard_state() const;
    void save_hard_state(const hard_state& hs);
    index_t first_index() const;
    index_t last_index() const;
    index_t durable_index() const;
    term_t term_at(index_t i) const;
    std::vector<log_entry> entries(index_t lo, index_t hi, std::size_t max_bytes) const;
    void append(std::span<const log_entry> entries);
    void compact(index_t i, const membership& members);
    void install_snapshot(const snapshot_meta& meta);
    membership base_members() const;
};

/// Movable but not copyable: a reader may own a storage engine's snapshot handle.
class snapshot_reader {
public:
    snapshot_reader(snapshot_reader&&);
    snapshot_reader& operator=(snapshot_reader&&);
    index_t index() const;
    bool read(std::string& out, std::size_t max_bytes);
};

struct result {
    result() = default;
    result(result&&) = default;
    result& operator=(result&&) = default;
};

class state_machine {
public:
    using result_type = result;
    using snapshot_reader = archetypes::snapshot_reader;
    state_machine(const state_machine&) = delete;
    state_machine& operator=(const state_machine&) = delete;
    void apply(std::span<const log_entry> batch, std::span<result_type> results);
    index_t applied_index() const;
    index_t snapshot_index() const;
    void take_snapshot();
    snapshot_reader snapshot();
    void begin_restore(const snapshot_meta& meta);
    void restore_chunk(std::string_view data);
    void finish_restore();
    void abort_restore();
};

static_assert(raftkv::transport<transport>);
static_assert(raftkv::log_store<log_store>);
static_assert(raftkv::snapshot_reader<snapshot_reader>);
static_assert(!std::copyable<snapshot_reader>);
static_assert(raftkv::state_machine<state_machine>);

} // namespace raftkv::archetypes

#endif
