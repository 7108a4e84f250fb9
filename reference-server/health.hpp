#ifndef RAFTKV_SERVER_HEALTH_HPP
#define RAFTKV_SERVER_HEALTH_HPP

// The logic behind GET /health, /livez and /readyz that needs no running node: coalescing
// the linearizable reads that health checks make, reading the ?timeout= of a check, and
// deciding whether a node is ready. api.cpp answers the requests with it; the unit tests
// (test/server/health_test.cpp) drive it on their own.
//
// GET /health is 200 only when a ReadIndex round (the path a linearizable GET takes; a
// follower asks its leader) succeeds within the check's timeout. Checks arriving together
// share one round, and a round's result answers the checks of the next `reuse` too, so a
// crowd of probers costs the cluster about one heartbeat round per `reuse`.

#include <raftkv/types.hpp>

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace raftkv::server {

struct service_status;
struct storage_status;

/// The longest ?timeout= a health check may ask for.
inline constexpr std::chrono::milliseconds max_health_timeout{30000};

/// How far the applied index may trail the commit index for /readyz to answer 200.
inline constexpr std::uint64_t ready_max_apply_lag = 1000;

/// What the read_coalescer did for the checks so far (GET /status "health_checks").
struct health_check_counts {
    /// Checks made (check() calls).
    std::uint64_t checks = 0;
    /// ReadIndex rounds started; each other check joined one in flight or reused a result.
    std::uint64_t rounds = 0;
    /// Checks that waited for a round another check started.
    std::uint64_t joined = 0;
    /// Checks answered from the result of a round that had ended within `reuse`.
    std::uint64_t reused = 0;
};

/** Shares linearizable-read rounds among concurrent health checks.

    A check joins the round in flight if one started within the check's own timeout,
    takes the result of the last round if it ended within `reuse` (successful or not),
    and otherwise starts a round. A check waits for its round at most its timeout; the
    round goes on, and its result serves the checks that follow.

    @par Thread Safety
    check() and counts() may be called from any thread, concurrently. The round starter
    is called without the lock held, and may call its completion from any thread, once,
    possibly before it returns.
*/
class read_coalescer {
public:
    /// Called with the function to call once the round ends: an empty error code when the
    /// read was confirmed, else why not.
    using round_starter = std::function<void(std::function<void(std::error_code)>)>;

    read_coalescer(round_starter start, std::chrono::milliseconds reuse);
    ~read_coalescer();

    read_coalescer(const read_coalescer&) = delete;
    read_coalescer& operator=(const read_coalescer&) = delete;

    /// The outcome of the round this check used: empty when it succeeded; the round's
    /// error; or raftkv::errc::timeout when it did not end within `timeout`. Completes on
    /// the awaiting coroutine's executor.
    boost::asio::awaitable<std::error_code> check(std::chrono::milliseconds timeout);

    health_check_counts counts() const;

private:
    struct round;
    struct state;
    std::shared_ptr<state> state_;
};

/// The timeout a health check asks for in the query of `target` ("?timeout=500ms"):
/// milliseconds as a bare number or with "ms", or seconds with "s"; between 1 ms and
/// max_health_timeout. `fallback` when the query names none. Nothing, and `error` set,
/// when the value is malformed or out of range.
std::optional<std::chrono::milliseconds>
health_timeout(std::string_view target, std::chrono::milliseconds fallback, std::string& error);

/// Why a node that is not a member of the configuration in force and follows no leader
/// serves nothing: it was removed (or is being removed by a change it has not seen end),
/// and nobody sends it entries any more. For its answers and its log ("node 2 is not a
/// member of the cluster's configuration at index 55 (voters 1,3): it was removed ...").
/// Nothing when the node is a member, or follows a leader (one that is still removing it
/// goes on replicating to it until the removal commits), or holds no configuration at all
/// (a node that joined, before the leader first reached it).
std::optional<std::string> outside_configuration(const node_status& n);

/// As above for a node that was admitted (service_status::admitted), and also when the node
/// follows no leader and heard from a member's list that it was removed
/// (service_status::removal_heard).
std::optional<std::string> outside_configuration(const service_status& s);

/// Why a node is not ready to serve: a short fixed `reason` and a `message` with details.
struct not_ready {
    std::string reason;
    std::string message;
};

/// Why a node in state `s` with storage `storage` is not ready to serve (GET /readyz), or
/// nothing when it is: "storage failed"; "not a member" of the configuration in force (a
/// voter, an outgoing voter or a learner); "no leader"; "installing snapshot"; or
/// "applying log", when its applied index trails its commit index by more than `max_lag`.
std::optional<not_ready> readiness_problem(const service_status& s, const storage_status& storage,
                                           std::uint64_t max_lag = ready_max_apply_lag);

} // namespace raftkv::server

#endif
