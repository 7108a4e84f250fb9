#ifndef RAFTKV_SERVER_LOG_HPP
#define RAFTKV_SERVER_LOG_HPP

// raftkv-server's log: one line per event on stderr, filtered by level, written through
// spdlog. A line carries the time (RFC 3339, UTC, milliseconds), the level, the node id and
// its current term, then the message; as text or as one JSON object (docs/server.md, "Logs").
// Thread-safe; spdlog stays inside log.cpp.

#include <raftkv/types.hpp>

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace raftkv::server {

enum class log_level { error, warn, info, debug };

/// "error", "warn", "info" or "debug"; nothing for any other name.
std::optional<log_level> parse_log_level(std::string_view name);

/// The name parse_log_level() reads.
std::string_view to_string(log_level level) noexcept;

enum class log_format { text, json };

/// "text" or "json"; nothing for any other name.
std::optional<log_format> parse_log_format(std::string_view name);

/// Lines below `level` are dropped. Default: info.
void set_log_level(log_level level);

/// Default: text.
void set_log_format(log_format format);

/// The node id in every line from now on. Before it is set, lines carry none.
void set_log_node(node_id id);

/// The term in every line from now on (the node's current term, as last observed). One
/// relaxed atomic store: cheap enough to call on every status poll.
void set_log_term(term_t term);

/// Sends raftkv's own lines (raftkv/log.hpp: the transport's refusals, lost links) to log(),
/// so that they come out in the same format, mapped to the nearest level.
void route_library_log();

bool log_enabled(log_level level);

/// Writes `message` as one line, if `level` is enabled. Never throws.
void log(log_level level, std::string_view message);

/// One event of the log, as format_log_line() writes it.
struct log_event {
    std::chrono::system_clock::time_point time;
    log_level level = log_level::info;
    node_id node = no_node; ///< no_node: the line names no node
    term_t term = 0;
    std::string_view message;
};

/// Appends the line for `event` to `out`, newline included:
/// text: `2026-12-03T14:05:09.123Z info node=1 term=3 became leader`, control characters
/// in the message escaped as in JSON (\n, \u001b) so that an event stays one line;
/// json: `{"ts":"2026-12-03T14:05:09.123Z","level":"info","node":1,"term":3,"msg":"became leader"}`,
/// with "node":null before the id is known, and invalid UTF-8 in the message replaced by U+FFFD.
void format_log_line(log_format format, const log_event& event, std::string& out);

/// A short random id (8 lowercase hex digits) that ties an answer a client sees to the log
/// line that holds the details: the answer names it, the details stay in the log.
std::string new_error_id();

} // namespace raftkv::server

#endif
