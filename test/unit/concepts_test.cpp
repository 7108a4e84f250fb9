#include <raftkv/concepts.hpp>

#include "archetypes/archetypes.hpp"

#include <raftkv/memory_log_store.hpp>

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

BOOST_AUTO_TEST_CASE(concepts_reject_incomplete_policies)
{
    static_assert(!raftkv::transport<no_send>);
    static_assert(!raftkv::state_machine<wrong_apply>);
    static_assert(!raftkv::log_store<no_send>);
    BOOST_TEST(true);
}
