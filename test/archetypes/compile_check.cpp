// Compiled, never linked: instantiating every member of basic_node with the archetypes
// proves the core uses nothing of its policies beyond what the concepts require.

#include "archetypes/archetypes.hpp"

#include <raftkv/node.hpp>

template class raftkv::basic_node<raftkv::archetypes::transport, raftkv::archetypes::log_store,
                                  raftkv::archetypes::state_machine>;
