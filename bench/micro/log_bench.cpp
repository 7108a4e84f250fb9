// The cost of one log line of raftkv-server: its spdlog logger with the server's formatter
// (reference-server/log.cpp), against the hand-written writer it replaced (a string, a mutex,
// fwrite and fflush), and spdlog's own pattern formatter, synchronous and asynchronous.
// Run with stderr sent to /dev/null, so the numbers are the cost of the line and one write(2):
//
//   build/release/bench/micro/raftkv_log_bench 2>/dev/null

#include "log.hpp"

#include <benchmark/benchmark.h>
#include <spdlog/async.h>
#include <spdlog/logger.h>
#include <spdlog/sinks/stdout_sinks.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

namespace {

using namespace raftkv::server;

// A typical line: a leader change or a refused peer connection.
constexpr std::string_view message =
    "refused connection from 10.0.0.3:41234: a peer of another cluster (cluster 0x50f6d177f1d58717)";

// The writer raftkv-server used before spdlog, as it was.
std::mutex handwritten_mutex;
void handwritten_log(log_level level, std::string_view text)
{
    std::string line = "raftkv-server";
    line.append(1, '[').append(std::to_string(1)).append(1, ']');
    line += ": ";
    if (level == log_level::error)
        line += "error: ";
    else if (level == log_level::warn)
        line += "warning: ";
    line += text;
    line += '\n';
    std::lock_guard lock(handwritten_mutex);
    std::fwrite(line.data(), 1, line.size(), stderr);
    std::fflush(stderr);
}

void handwritten_writer(benchmark::State& state)
{
    for (auto _ : state)
        handwritten_log(log_level::warn, message);
}
BENCHMARK(handwritten_writer)->Threads(1)->Threads(2);

void server_log(benchmark::State& state, log_format format)
{
    if (state.thread_index() == 0) {
        set_log_format(format);
        set_log_level(log_level::info);
        set_log_node(1);
        set_log_term(7);
    }
    for (auto _ : state)
        log(log_level::warn, message);
}
BENCHMARK_CAPTURE(server_log, text, log_format::text)->Threads(1)->Threads(2);
BENCHMARK_CAPTURE(server_log, json, log_format::json)->Threads(1)->Threads(2);

// A line below --log-level: what a debug line costs a server at info.
void server_log_filtered(benchmark::State& state)
{
    set_log_level(log_level::info);
    for (auto _ : state)
        log(log_level::debug, message);
}
BENCHMARK(server_log_filtered);

// The formatter alone, without spdlog or the write.
void format_line(benchmark::State& state, log_format format)
{
    std::string line;
    for (auto _ : state) {
        line.clear();
        format_log_line(format, {std::chrono::system_clock::now(), log_level::warn, 1, 7, message}, line);
        benchmark::DoNotOptimize(line.data());
    }
}
BENCHMARK_CAPTURE(format_line, text, log_format::text);
BENCHMARK_CAPTURE(format_line, json, log_format::json);

// spdlog's own pattern formatter, for comparison with the server's formatter.
void spdlog_pattern(benchmark::State& state)
{
    static const auto logger = [] {
        auto l =
            std::make_shared<spdlog::logger>("pattern", std::make_shared<spdlog::sinks::stderr_sink_mt>());
        l->set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %l node=1 term=7 %v", spdlog::pattern_time_type::utc);
        return l;
    }();
    for (auto _ : state)
        logger->warn(message);
}
BENCHMARK(spdlog_pattern)->Threads(1)->Threads(2);

// The same through spdlog's asynchronous logger: the caller's cost only (queueing); the
// background thread writes. Lines beyond the queue overwrite the oldest.
void spdlog_async_pattern(benchmark::State& state)
{
    static const auto logger = [] {
        spdlog::init_thread_pool(8192, 1);
        auto l = std::make_shared<spdlog::async_logger>(
            "async", std::make_shared<spdlog::sinks::stderr_sink_mt>(), spdlog::thread_pool(),
            spdlog::async_overflow_policy::overrun_oldest);
        l->set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %l node=1 term=7 %v", spdlog::pattern_time_type::utc);
        return l;
    }();
    for (auto _ : state)
        logger->warn(message);
}
BENCHMARK(spdlog_async_pattern)->Threads(1)->Threads(2);

} // namespace
