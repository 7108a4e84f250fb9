// The Raft core's own cost per entry: a single-node leader proposes a batch, makes it
// durable, commits and applies it, with a log store in memory and a machine that does
// nothing, so only the node's bookkeeping is measured.

#include <raftkv/memory_log_store.hpp>
#include <raftkv/node.hpp>

#include <benchmark/benchmark.h>

#include <string>
#include <vector>

namespace {

struct null_transport {
    void send(raftkv::message) {}
};

struct null_machine {
    using result_type = int;
    struct snapshot_reader {
        raftkv::index_t at = 0;
        raftkv::index_t index() const { return at; }
        bool read(std::string& out, std::size_t)
        {
            out.clear();
            return true;
        }
    };
    raftkv::index_t applied = 0;
    void apply(std::span<const raftkv::log_entry> batch, std::span<int>) { applied = batch.back().index; }
    raftkv::index_t applied_index() const { return applied; }
    raftkv::index_t snapshot_index() const { return applied; }
    void take_snapshot() {}
    snapshot_reader snapshot() { return {applied}; }
    void begin_restore(const raftkv::snapshot_meta&) {}
    void restore_chunk(std::string_view) {}
    void finish_restore() {}
    void abort_restore() {}
};

void node_propose_commit_apply(benchmark::State& state)
{
    raftkv::options o;
    o.id = 1;
    o.members.voters = {1};
    o.snapshot_entries = 50'000;
    o.snapshot_catchup_entries = 0;
    null_transport transport;
    raftkv::memory_log_store store;
    null_machine machine;
    raftkv::basic_node node(o, transport, store, machine);
    std::int64_t applied = 0;
    node.on_apply([&](raftkv::index_t, raftkv::term_t, int&) { ++applied; });
    node.campaign();
    std::vector<std::string> batch(static_cast<std::size_t>(state.range(0)));
    for (auto _ : state) {
        for (auto& c : batch)
            c.assign(150, 'c');
        node.propose(std::span<std::string>(batch));
        node.on_log_durable();
    }
    state.SetItemsProcessed(applied);
}
BENCHMARK(node_propose_commit_apply)->Arg(1)->Arg(64)->Arg(1024);

} // namespace
