// Encoding and decoding the frames of the TCP transport: what the leader pays per batch of
// entries it sends, and a follower per batch it receives.

#include <raftkv/asio/codec.hpp>

#include <benchmark/benchmark.h>

#include <string>
#include <vector>

namespace {

std::vector<raftkv::message> append_batch(std::size_t entries, std::size_t value_bytes)
{
    raftkv::append_request a;
    a.prev_index = 1000;
    a.prev_term = 3;
    a.commit = 999;
    for (std::size_t k = 0; k < entries; ++k)
        a.entries.push_back(
            raftkv::log_entry{3, 1001 + k, raftkv::entry_type::normal, std::string(value_bytes + 20, 'v')});
    raftkv::message m;
    m.from = 1;
    m.to = 2;
    m.term = 3;
    m.body = std::move(a);
    return {std::move(m)};
}

void encode_append(benchmark::State& state)
{
    const auto batch = append_batch(static_cast<std::size_t>(state.range(0)), 128);
    std::string frame;
    for (auto _ : state) {
        frame.clear();
        raftkv::asio::encode_frame(batch, frame);
        benchmark::DoNotOptimize(frame.data());
    }
    state.SetItemsProcessed(state.iterations() * state.range(0));
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * frame.size()));
}
BENCHMARK(encode_append)->Arg(1)->Arg(64)->Arg(256);

void decode_append(benchmark::State& state)
{
    const std::string frame =
        raftkv::asio::encode_frame(append_batch(static_cast<std::size_t>(state.range(0)), 128));
    const std::string_view payload = std::string_view(frame).substr(raftkv::asio::frame_header_size);
    for (auto _ : state) {
        auto decoded = raftkv::asio::decode_payload(payload);
        benchmark::DoNotOptimize(decoded);
    }
    state.SetItemsProcessed(state.iterations() * state.range(0));
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * frame.size()));
}
BENCHMARK(decode_append)->Arg(1)->Arg(64)->Arg(256);

} // namespace
