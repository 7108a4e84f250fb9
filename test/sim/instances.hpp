#ifndef RAFTKV_TEST_SIM_INSTANCES_HPP
#define RAFTKV_TEST_SIM_INSTANCES_HPP

// The simulated cluster every scenario test runs, its node, and the workload and fault
// injector that drive it, compiled once in instances.cpp: each test then compiles its own
// scenarios only, not the whole of Raft again (two thirds of each test's compile time, under
// the asan preset).

#include <raftkv/node.hpp>
#include <raftkv/sim/cluster.hpp>
#include <raftkv/sim/fault_injector.hpp>
#include <raftkv/sim/kv_state_machine.hpp>
#include <raftkv/sim/kv_workload.hpp>
#include <raftkv/sim/log_store.hpp>
#include <raftkv/sim/transport.hpp>

extern template class raftkv::basic_node<raftkv::sim::sim_transport, raftkv::sim::sim_log_store,
                                         raftkv::sim::kv_state_machine>;
extern template class raftkv::sim::cluster<raftkv::sim::kv_state_machine, raftkv::sim::sim_log_store>;
extern template class raftkv::sim::kv_workload<raftkv::sim::kv_state_machine>;
extern template class raftkv::sim::fault_injector<raftkv::sim::kv_state_machine>;

#endif
