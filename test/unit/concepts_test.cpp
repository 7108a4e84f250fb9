#include <raftkv/concepts.hpp>

#include "archetypes/archetypes.hpp"

#include <raftkv/memory_log_store.hpp>

#include <cstddef>
#include <span>
#include <string>
#include <vector>

#define BOOST_TEST_MODULE concepts
#include <boost/test/unit_test.hpp>

// basic_node itself is instantiated with the archetypes in test/archetypes/compile_check.cpp.

BOOST_AUTO_TEST_CASE(memory_log_store_models_log_store)
{
    static_assert(raftkv::log_store<raftkv::memory_log_store>);
    BOOST_TEST(raftkv::memory_log_store{}.last_index() == 0u);
}

struct no_send {};
struct wrong_apply {
    using result_type = int;
    void apply(std::span<const raftkv::log_entry>); // no results parameter
    raftkv::index_t applied_index() const;
};

/// A log store as the concept stood before snapshots: no compact, no install_snapshot.
struct log_store_without_compaction {
    raftkv::hard_state saved_hard_state() const;
    void save_hard_state(const raftkv::hard_state& hs);
    raftkv::index_t first_index() const;
    raftkv::index_t last_index() const;
    raftkv::index_t durable_index() const;
    raftkv::term_t term_at(raftkv::index_t i) const;
    std::vector<raftkv::log_entry> entries(raftkv::index_t lo, raftkv::index_t hi,
                                           std::size_t max_bytes) const;
    void append(std::span<const raftkv::log_entry> entries);
};

/// A state machine as the concept stood before snapshots: apply and applied_index only.
struct state_machine_without_snapshots {
    using result_type = int;
    void apply(std::span<const raftkv::log_entry> batch, std::span<int> results);
    raftkv::index_t applied_index() const;
};

/// Every snapshot member, but a reader type that cannot be read in chunks.
struct state_machine_with_unreadable_snapshot : raftkv::archetypes::state_machine {
    using snapshot_reader = std::string;
    snapshot_reader snapshot();
};

/// A reader that cannot be handed from the state machine to the node.
struct pinned_reader {
    pinned_reader(const pinned_reader&) = delete;
    pinned_reader& operator=(const pinned_reader&) = delete;
    raftkv::index_t index() const;
    bool read(std::string& out, std::size_t max_bytes);
};

BOOST_AUTO_TEST_CASE(concepts_reject_incomplete_policies)
{
    static_assert(!raftkv::transport<no_send>);
    static_assert(!raftkv::state_machine<wrong_apply>);
    static_assert(!raftkv::log_store<no_send>);
    BOOST_TEST(true);
}

BOOST_AUTO_TEST_CASE(concepts_reject_policies_without_snapshot_support)
{
    static_assert(!raftkv::log_store<log_store_without_compaction>);
    static_assert(!raftkv::state_machine<state_machine_without_snapshots>);
    static_assert(!raftkv::state_machine<state_machine_with_unreadable_snapshot>);
    static_assert(!raftkv::snapshot_reader<pinned_reader>);
    static_assert(raftkv::snapshot_reader<raftkv::archetypes::snapshot_reader>);
    BOOST_TEST(true);
}
