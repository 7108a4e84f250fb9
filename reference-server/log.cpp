#include "log.hpp"

#include <raftkv/log.hpp>

#include <spdlog/formatter.h>
#include <spdlog/logger.h>
#include <spdlog/sinks/stdout_sinks.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <random>
#include <string>

namespace raftkv::server {

namespace {

std::atomic<log_level> current_level{log_level::info};
std::atomic<log_format> current_format{log_format::text};
std::atomic<node_id> current_node{no_node};
std::atomic<term_t> current_term{0};

// ---------------------------------------------------------------------------------------
// The line

void append_digits(std::string& out, std::uint64_t value, int width)
{
    char digits[20];
    int n = 0;
    do {
        digits[n++] = static_cast<char>('0' + value % 10);
        value /= 10;
    } while (value != 0);
    for (int k = n; k < width; ++k)
        out += '0';
    while (n > 0)
        out += digits[--n];
}

// 2026-12-03T14:05:09.123Z
void append_timestamp(std::string& out, std::chrono::system_clock::time_point time)
{
    using namespace std::chrono;
    const auto ms = floor<milliseconds>(time);
    const auto day = floor<days>(ms);
    const year_month_day date{day};
    const hh_mm_ss clock{ms - day};
    append_digits(out, static_cast<std::uint64_t>(static_cast<int>(date.year())), 4);
    out += '-';
    append_digits(out, static_cast<unsigned>(date.month()), 2);
    out += '-';
    append_digits(out, static_cast<unsigned>(date.day()), 2);
    out += 'T';
    append_digits(out, static_cast<std::uint64_t>(clock.hours().count()), 2);
    out += ':';
    append_digits(out, static_cast<std::uint64_t>(clock.minutes().count()), 2);
    out += ':';
    append_digits(out, static_cast<std::uint64_t>(clock.seconds().count()), 2);
    out += '.';
    append_digits(out, static_cast<std::uint64_t>(clock.subseconds().count()), 3);
    out += 'Z';
}

void append_unicode_escape(std::string& out, unsigned code)
{
    constexpr std::string_view hex = "0123456789abcdef";
    out += "\\u";
    for (int shift = 12; shift >= 0; shift -= 4)
        out += hex[(code >> shift) & 0xf];
}

// The length of the valid UTF-8 sequence at the start of `s`, or 0 if it does not start with
// one (Unicode Table 3-7: no overlong forms, no surrogates, nothing above U+10FFFF).
std::size_t utf8_sequence_length(std::string_view s)
{
    const auto byte = [&s](std::size_t k) { return static_cast<unsigned char>(s[k]); };
    const auto in = [](unsigned char b, unsigned lo, unsigned hi) { return b >= lo && b <= hi; };
    const unsigned char lead = byte(0);
    std::size_t length = 0;
    unsigned lo = 0x80, hi = 0xbf; // the range of the second byte
    if (in(lead, 0xc2, 0xdf)) {
        length = 2;
    } else if (in(lead, 0xe0, 0xef)) {
        length = 3;
        if (lead == 0xe0)
            lo = 0xa0;
        else if (lead == 0xed)
            hi = 0x9f;
    } else if (in(lead, 0xf0, 0xf4)) {
        length = 4;
        if (lead == 0xf0)
            lo = 0x90;
        else if (lead == 0xf4)
            hi = 0x8f;
    } else {
        return 0;
    }
    if (s.size() < length || !in(byte(1), lo, hi))
        return 0;
    for (std::size_t k = 2; k < length; ++k)
        if (!in(byte(k), 0x80, 0xbf))
            return 0;
    return length;
}

// The message with control characters escaped as in JSON; for `json`, also quotes and
// backslashes, and each byte that is not part of valid UTF-8 as U+FFFD.
bool needs_escape(unsigned char c, bool json)
{
    if (c < 0x20 || c == 0x7f)
        return true;
    return json && (c == '"' || c == '\\' || c >= 0x80);
}

void append_escaped(std::string& out, std::string_view message, bool json)
{
    std::size_t k = 0;
    while (k < message.size()) {
        std::size_t plain = k; // the run of bytes that go out as they are, appended at once
        while (plain < message.size() && !needs_escape(static_cast<unsigned char>(message[plain]), json))
            ++plain;
        out.append(message.substr(k, plain - k));
        if (plain == message.size())
            return;
        k = plain;
        const auto c = static_cast<unsigned char>(message[k]);
        if (c >= 0x80 && json) {
            const std::size_t length = utf8_sequence_length(message.substr(k));
            if (length == 0) {
                append_unicode_escape(out, 0xfffd);
                ++k;
            } else {
                out.append(message.substr(k, length));
                k += length;
            }
            continue;
        }
        ++k;
        switch (c) {
        case '\n': out += "\\n"; continue;
        case '\r': out += "\\r"; continue;
        case '\t': out += "\\t"; continue;
        case '"':
        case '\\':
            if (json)
                out += '\\';
            out += static_cast<char>(c);
            continue;
        default: break;
        }
        if (c < 0x20 || c == 0x7f)
            append_unicode_escape(out, c);
        else
            out += static_cast<char>(c);
    }
}

void append_text_line(std::string& out, const log_event& e)
{
    out.reserve(out.size() + e.message.size() + 64);
    append_timestamp(out, e.time);
    out += ' ';
    out += to_string(e.level);
    if (e.node != no_node) {
        out += " node=";
        append_digits(out, e.node, 1);
    }
    out += " term=";
    append_digits(out, e.term, 1);
    out += ' ';
    append_escaped(out, e.message, false);
    out += '\n';
}

void append_json_line(std::string& out, const log_event& e)
{
    out.reserve(out.size() + e.message.size() + 96);
    out += "{\"ts\":\"";
    append_timestamp(out, e.time);
    out += "\",\"level\":\"";
    out += to_string(e.level);
    out += "\",\"node\":";
    if (e.node != no_node)
        append_digits(out, e.node, 1);
    else
        out += "null";
    out += ",\"term\":";
    append_digits(out, e.term, 1);
    out += ",\"msg\":\"";
    append_escaped(out, e.message, true);
    out += "\"}\n";
}

// ---------------------------------------------------------------------------------------
// spdlog

spdlog::level::level_enum spdlog_level(log_level level)
{
    switch (level) {
    case log_level::error: return spdlog::level::err;
    case log_level::warn: return spdlog::level::warn;
    case log_level::info: return spdlog::level::info;
    case log_level::debug: return spdlog::level::debug;
    }
    return spdlog::level::info;
}

log_level server_level(spdlog::level::level_enum level)
{
    switch (level) {
    case spdlog::level::critical:
    case spdlog::level::err: return log_level::error;
    case spdlog::level::warn: return log_level::warn;
    case spdlog::level::info: return log_level::info;
    default: return log_level::debug;
    }
}

// Formats spdlog's message as format_log_line() does, with the node and term of the moment.
class line_formatter final : public spdlog::formatter {
public:
    void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override
    {
        thread_local std::string line;
        line.clear();
        const log_event event{msg.time, server_level(msg.level), current_node.load(std::memory_order_relaxed),
                              current_term.load(std::memory_order_relaxed),
                              std::string_view(msg.payload.data(), msg.payload.size())};
        format_log_line(current_format.load(std::memory_order_relaxed), event, line);
        dest.append(line.data(), line.data() + line.size());
    }

    std::unique_ptr<spdlog::formatter> clone() const override { return std::make_unique<line_formatter>(); }
};

// Synchronous: a line is on stderr (which spdlog flushes per line) when log() returns, so a
// process that stops at once right after (std::_Exit) loses none. The server logs a few lines
// per second at info; bench/micro/log_bench.cpp measures the cost per line.
spdlog::logger& logger()
{
    // Never destroyed: a thread may still log while static objects are torn down.
    static spdlog::logger* const instance = [] {
        auto sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
        sink->set_formatter(std::make_unique<line_formatter>());
        auto* l = new spdlog::logger("raftkv-server", std::move(sink));
        l->set_level(spdlog::level::trace); // log() filters first
        return l;
    }();
    return *instance;
}

log_level level_of(raftkv::log_severity severity)
{
    switch (severity) {
    case raftkv::log_severity::error: return log_level::error;
    case raftkv::log_severity::warning: return log_level::warn;
    case raftkv::log_severity::info: return log_level::info;
    case raftkv::log_severity::debug: return log_level::debug;
    }
    return log_level::info;
}

void library_line(raftkv::log_severity severity, std::string_view message) noexcept
{
    log(level_of(severity), message);
}

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

std::string_view to_string(log_level level) noexcept
{
    switch (level) {
    case log_level::error: return "error";
    case log_level::warn: return "warn";
    case log_level::info: return "info";
    case log_level::debug: return "debug";
    }
    return "info";
}

std::optional<log_format> parse_log_format(std::string_view name)
{
    if (name == "text")
        return log_format::text;
    if (name == "json")
        return log_format::json;
    return std::nullopt;
}

void set_log_level(log_level level)
{
    current_level = level;
}

void set_log_format(log_format format)
{
    current_format = format;
}

void set_log_node(node_id id)
{
    current_node = id;
}

void set_log_term(term_t term)
{
    current_term.store(term, std::memory_order_relaxed);
}

void route_library_log()
{
    raftkv::set_log_sink(&library_line);
}

bool log_enabled(log_level level)
{
    return level <= current_level.load(std::memory_order_relaxed);
}

void log(log_level level, std::string_view message)
{
    if (!log_enabled(level))
        return;
    try {
        logger().log(spdlog_level(level), spdlog::string_view_t(message.data(), message.size()));
    } catch (...) { // out of memory: the line is lost, the caller goes on
    }
}

void format_log_line(log_format format, const log_event& event, std::string& out)
{
    if (format == log_format::json)
        append_json_line(out, event);
    else
        append_text_line(out, event);
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
