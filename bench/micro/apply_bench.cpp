// Applying a batch of puts to the LevelDB state machine, without a sync per batch (what
// raftkv-server does) and with one.

#include <raftkv/kv_command.hpp>
#include <raftkv/leveldb/kv_state_machine.hpp>

#include <benchmark/benchmark.h>

#include <filesystem>
#include <random>
#include <string>
#include <vector>

namespace {

void kv_apply_batch(benchmark::State& state)
{
    std::random_device rd;
    const auto dir = std::filesystem::temp_directory_path() / ("raftkv-apply-bench-" + std::to_string(rd()));
    {
        raftkv::leveldb::kv_state_machine machine(dir, {.sync = state.range(1) != 0});
        const auto n = static_cast<std::size_t>(state.range(0));
        std::vector<raftkv::log_entry> batch(n);
        std::vector<raftkv::kv_result> results(n);
        std::mt19937_64 random(1);
        raftkv::index_t next = 1;
        for (auto _ : state) {
            state.PauseTiming();
            for (auto& e : batch) {
                // Not "k" + std::to_string(...): GCC 12 at -O3 reports a false -Wrestrict on it.
                std::string key = "k";
                key += std::to_string(random() % 100'000);
                e = raftkv::log_entry{1, next++, raftkv::entry_type::normal,
                                      raftkv::encode_put(key, std::string(128, 'v'))};
            }
            state.ResumeTiming();
            machine.apply(batch, results);
        }
        state.SetItemsProcessed(state.iterations() * state.range(0));
    }
    std::filesystem::remove_all(dir);
}
BENCHMARK(kv_apply_batch)->ArgsProduct({{1, 64, 1024}, {0, 1}})->ArgNames({"batch", "sync"})->UseRealTime();

} // namespace
