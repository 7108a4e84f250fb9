// The instantiations instances.hpp declares: see there.
#include "instances.hpp"

template class raftkv::basic_node<raftkv::sim::sim_transport, raftkv::sim::sim_log_store,
                                  raftkv::sim::kv_state_machine>;
template class raftkv::sim::cluster<raftkv::sim::kv_state_machine, raftkv::sim::sim_log_store>;
template class raftkv::sim::kv_workload<raftkv::sim::kv_state_machine>;
template class raftkv::sim::fault_injector<raftkv::sim::kv_state_machine>;
