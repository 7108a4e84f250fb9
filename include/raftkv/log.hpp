#ifndef RAFTKV_LOG_HPP
#define RAFTKV_LOG_HPP

/** Where the adapters' log lines go.

    The core and the simulator never log: they report through return values and callbacks.
    The adapters (raftkv::asio's transport, for instance) have events an operator should
    see that no caller asked about: a refused connection, a lost link to a peer, a
    certificate that names another node. They hand each such line to log_message(), which
    passes it to the sink installed with set_log_sink(), by default one line on stderr:

    @code
    raftkv: warning: refused connection from 10.0.0.3:41234: a peer of another cluster
    @endcode

    A program with a log of its own installs a sink once at start-up, before it starts an
    adapter, so the library's lines come out in its format:

    @code
    void to_my_log(raftkv::log_severity severity, std::string_view message) noexcept
    {
        my_log(severity == raftkv::log_severity::error ? my_level::error : my_level::info, message);
    }

    int main()
    {
        raftkv::set_log_sink(&to_my_log);
        ...
    }
    @endcode

    Lines that a peer can cause over and over (refused connections, lost links) are
    rate-limited by the adapter before they reach the sink.

    @par Thread Safety
    log_message() may be called from any thread at any time, and so the sink is called from
    the adapters' I/O threads, concurrently: it must be thread-safe, must not throw and
    should return quickly. set_log_sink() is safe to call concurrently with log_message()
    (a line already being handed over may still go to the previous sink), but is meant to be
    called once, before the adapters start.
*/

#include <atomic>
#include <cstdio>
#include <string>
#include <string_view>

namespace raftkv {

/// How much an adapter's log line matters, most severe first.
enum class log_severity {
    /// Something failed that the adapter cannot work around (it keeps retrying).
    error,
    /// Something is wrong outside the process (a peer, a file, the network); the adapter
    /// handles it.
    warning,
    /// A change of state worth a line (a link to a peer is up).
    info,
    /// Details for troubleshooting.
    debug,
};

/// "error", "warning", "info" or "debug".
constexpr std::string_view to_string(log_severity severity) noexcept
{
    switch (severity) {
    case log_severity::error: return "error";
    case log_severity::warning: return "warning";
    case log_severity::info: return "info";
    case log_severity::debug: return "debug";
    }
    return "unknown";
}

/// Receives every line the adapters log: its severity and its text, without a trailing
/// newline. Called from any thread; see the thread-safety note above.
using log_sink = void (*)(log_severity severity, std::string_view message) noexcept;

/// The sink used until set_log_sink() installs another: writes
/// "raftkv: [error: |warning: ]<message>\n" to stderr in one write.
inline void default_log_sink(log_severity severity, std::string_view message) noexcept
{
    try {
        std::string line = "raftkv: ";
        if (severity == log_severity::error || severity == log_severity::warning)
            line.append(to_string(severity)).append(": ");
        line.append(message).append(1, '\n');
        std::fwrite(line.data(), 1, line.size(), stderr);
    } catch (...) { // out of memory: drop the line
    }
}

namespace detail {
inline std::atomic<log_sink> current_log_sink{&default_log_sink};
} // namespace detail

/// Sends the adapters' lines to `sink` from now on; nullptr restores default_log_sink().
inline void set_log_sink(log_sink sink) noexcept
{
    detail::current_log_sink.store(sink ? sink : &default_log_sink, std::memory_order_release);
}

/// Hands one line to the installed sink. For adapters (and programs that want their lines
/// to go where the adapters' go).
inline void log_message(log_severity severity, std::string_view message) noexcept
{
    detail::current_log_sink.load(std::memory_order_acquire)(severity, message);
}

} // namespace raftkv

#endif
