#include "log.hpp"

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <mutex>
#include <random>
#include <string>

namespace raftkv::server {

namespace {
std::atomic<log_level> current_level{log_level::info};
std::atomic<node_id> current_node{no_node};
std::mutex output_mutex;
} // namespace

std::optional<log_level> parse_log_level(std::string_view name)
{
    if (name == "error")
        return log_level::error;
    if (name == "warn")
        return log_level::warn;
    if (name == "info")
        return log_level::info;
    if (name == "debug")
        return log_level::debug;
    return std::nullopt;
}

void set_log_level(log_level level)
{
    current_level = level;
}

void set_log_node(node_id id)
{
    current_node = id;
}

bool log_enabled(log_level level)
{
    return level <= current_level.load();
}

void log(log_level level, std::string_view message)
{
    if (!log_enabled(level))
        return;
    std::string line = "raftkv-server";
    if (const node_id id = current_node; id != no_node)
        line.append(1, '[').append(std::to_string(id)).append(1, ']');
    line += ": ";
    if (level == log_level::error)
        line += "error: ";
    else if (level == log_level::warn)
        line += "warning: ";
    line += message;
    line += '\n';
    std::lock_guard lock(output_mutex);
    std::fwrite(line.data(), 1, line.size(), stderr);
    std::fflush(stderr);
}

std::string new_error_id()
{
    thread_local std::mt19937 bits{std::random_device{}()};
    constexpr std::string_view digits = "0123456789abcdef";
    std::string id(8, '0');
    std::uint32_t v = bits();
    for (char& c : id) {
        c = digits[v & 0xf];
        v >>= 4;
    }
    return id;
}

} // namespace raftkv::server
