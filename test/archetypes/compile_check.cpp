// Compiled, never linked: instantiating every member of basic_node with the archetypes
// proves the core uses nothing of its policies beyond what the concepts require.

#include "archetypes/archetypes.hpp"

#include <raftkv/node.hpp>
#include <raftkv/sim/cluster.hpp>

template class raftkv::basic_node<raftkv::archetypes::transport, raftkv::archetypes::log_store,
                                  raftkv::archetypes::state_machine>;

// The simulator takes any machine the concept admits: one with no `disk` type and no default
// constructor too (whose cluster then needs a factory).
template class raftkv::sim::cluster<raftkv::archetypes::state_machine>;
