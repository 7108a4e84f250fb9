#ifndef RAFTKV_SERVER_LOG_HPP
#define RAFTKV_SERVER_LOG_HPP

// raftkv-server's log: one line per event on stderr, filtered by level. Thread-safe.

#include <raftkv/types.hpp>

#include <optional>
#include <string>
#include <string_view>

namespace raftkv::server {

enum class log_level { error, warn, info, debug };

/// "error", "warn", "info" or "debug"; nothing for any other name.
std::optional<log_level> parse_log_level(std::string_view name);

/// Lines below `level` are dropped. Default: info.
void set_log_level(log_level level);

/// Lines start with "raftkv-server[<id>]: " once the id is set, "raftkv-server: " before.
void set_log_node(node_id id);

bool log_enabled(log_level level);

/// Writes `message` as one line (a warning or error says so), if `level` is enabled.
void log(log_level level, std::string_view message);

/// A short random id (8 lowercase hex digits) that ties an answer a client sees to the log
/// line that holds the details: the answer names it, the details stay in the log.
std::string new_error_id();

} // namespace raftkv::server

#endif
