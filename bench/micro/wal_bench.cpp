// The write-ahead log: appends of one entry each, as a leader makes them under load, with
// group commit merging them into few fdatasyncs. Measured in a directory under /tmp (set
// TMPDIR to measure another disk).

#include <raftkv/wal/log_store.hpp>

#include <benchmark/benchmark.h>

#include <filesystem>
#include <random>
#include <string>
#include <vector>

namespace {

std::filesystem::path fresh_dir()
{
    std::random_device rd;
    auto dir = std::filesystem::temp_directory_path() / ("raftkv-wal-bench-" + std::to_string(rd()));
    std::filesystem::remove_all(dir);
    return dir;
}

// range(0) appends of one entry, then one wait for all of them to be durable.
void wal_append_group_commit(benchmark::State& state)
{
    const auto dir = fresh_dir();
    {
        raftkv::wal::log_store store(dir);
        raftkv::index_t next = 1;
        std::vector<raftkv::log_entry> one(1);
        for (auto _ : state) {
            for (std::int64_t k = 0; k < state.range(0); ++k) {
                one[0] = raftkv::log_entry{1, next++, raftkv::entry_type::normal, std::string(150, 'v')};
                store.append(one);
            }
            store.sync();
            if (next > 200'000) {
                state.PauseTiming();
                store.compact(next - 1, {});
                state.ResumeTiming();
            }
        }
        state.SetItemsProcessed(state.iterations() * state.range(0));
    }
    std::filesystem::remove_all(dir);
}
BENCHMARK(wal_append_group_commit)->Arg(1)->Arg(64)->Arg(1024)->UseRealTime();

} // namespace
