#include "health.hpp"

#include "kv_service.hpp"
#include "member_info.hpp"
#include "request_parsing.hpp"

#include <raftkv/error.hpp>

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <charconv>
#include <utility>

namespace raftkv::server {

namespace asio = boost::asio;
using clock = std::chrono::steady_clock;

namespace {

using completion = std::function<void(std::error_code)>;

/// One check waiting for a round: what completes it, on its own executor (taken by whichever
/// comes first, the round's end or the timeout), and its timer.
struct pending_check {
    completion deliver; // under state::mutex
    std::shared_ptr<asio::steady_timer> timer;
};

} // namespace

struct read_coalescer::round {
    clock::time_point started;
    clock::time_point ended;
    bool done = false;
    std::error_code result;
    std::vector<std::shared_ptr<pending_check>> waiters;
};

struct read_coalescer::state {
    round_starter start;
    std::chrono::milliseconds reuse;
    mutable std::mutex mutex;
    std::shared_ptr<round> in_flight;  // the newest round, until it ends
    std::shared_ptr<round> last_ended; // the latest-started round that ended
    health_check_counts counts;

    void finish(const std::shared_ptr<round>& r, std::error_code ec)
    {
        std::vector<std::shared_ptr<pending_check>> waiters;
        std::vector<completion> handlers;
        {
            const std::lock_guard lock(mutex);
            if (r->done)
                return;
            r->done = true;
            r->result = ec;
            r->ended = clock::now();
            if (in_flight == r)
                in_flight.reset();
            if (!last_ended || last_ended->started <= r->started)
                last_ended = r;
            waiters = std::move(r->waiters);
            for (const auto& w : waiters)
                if (w->deliver)
                    handlers.push_back(std::exchange(w->deliver, nullptr));
        }
        for (const auto& w : waiters)
            asio::post(w->timer->get_executor(), [t = w->timer] { t->cancel(); });
        for (auto& h : handlers)
            h(ec);
    }

    // The timer of `w` expired first.
    void time_out(const std::shared_ptr<pending_check>& w)
    {
        completion h;
        {
            const std::lock_guard lock(mutex);
            h = std::exchange(w->deliver, nullptr);
        }
        if (h)
            h(make_error_code(raftkv::errc::timeout));
    }
};

read_coalescer::read_coalescer(round_starter start, std::chrono::milliseconds reuse)
    : state_(std::make_shared<state>())
{
    state_->start = std::move(start);
    state_->reuse = reuse;
}

read_coalescer::~read_coalescer() = default;

asio::awaitable<std::error_code> read_coalescer::check(std::chrono::milliseconds timeout)
{
    std::shared_ptr<round> r;
    bool start = false;
    {
        const std::lock_guard lock(state_->mutex);
        ++state_->counts.checks;
        const auto now = clock::now();
        const std::shared_ptr<round>& last = state_->last_ended;
        if (last && now - last->ended <= state_->reuse) {
            ++state_->counts.reused;
            r = last;
        } else if (state_->in_flight && now - state_->in_flight->started < timeout) {
            ++state_->counts.joined;
            r = state_->in_flight;
        } else {
            ++state_->counts.rounds;
            r = std::make_shared<round>();
            r->started = now;
            state_->in_flight = r;
            start = true;
        }
        if (r->done) {
            const std::error_code result = r->result;
            co_return result;
        }
    }
    // The awaitable below registers the check when awaited, after the round started: a
    // round that ended by then completes it at once.
    std::shared_ptr<state> s = state_;
    const auto deadline = clock::now() + timeout;
    auto wait = [s, r, deadline](auto handler) {
        auto w = std::make_shared<pending_check>();
        const auto ex = asio::get_associated_executor(handler);
        w->timer = std::make_shared<asio::steady_timer>(asio::make_strand(ex), deadline);
        auto h = std::make_shared<decltype(handler)>(std::move(handler));
        w->deliver = [ex, h](std::error_code ec) { asio::post(ex, [h, ec] { std::move (*h)(ec); }); };
        w->timer->async_wait([s, w](boost::system::error_code ec) {
            if (!ec)
                s->time_out(w);
        });
        std::error_code done_with;
        bool done = false;
        {
            const std::lock_guard lock(s->mutex);
            if (r->done) {
                done = true;
                done_with = r->result;
            } else {
                r->waiters.push_back(w);
            }
        }
        if (done) {
            asio::post(w->timer->get_executor(), [t = w->timer] { t->cancel(); });
            std::exchange(w->deliver, nullptr)(done_with);
        }
    };
    auto waiting = asio::async_initiate<const asio::use_awaitable_t<>&, void(std::error_code)>(
        std::move(wait), asio::use_awaitable);
    if (start)
        s->start([s, r](std::error_code ec) { s->finish(r, ec); });
    const std::error_code result = co_await std::move(waiting);
    co_return result;
}

health_check_counts read_coalescer::counts() const
{
    const std::lock_guard lock(state_->mutex);
    return state_->counts;
}

std::optional<std::chrono::milliseconds>
health_timeout(std::string_view target, std::chrono::milliseconds fallback, std::string& error)
{
    std::optional<std::string> value;
    query_params params(target);
    while (std::optional<query_param> param = params.next()) {
        if (param->malformed) {
            error = malformed_query_error(*param);
            return std::nullopt;
        }
        if (param->name != "timeout")
            continue;
        if (value) {
            error = "timeout given more than once";
            return std::nullopt;
        }
        value = std::move(param->value);
    }
    if (!value)
        return fallback;
    const std::string_view text = *value;
    std::uint64_t number = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), number);
    const std::string_view unit = text.substr(static_cast<std::size_t>(end - text.data()));
    const std::string bad = "timeout must be 1ms to " + std::to_string(max_health_timeout.count()) +
                            "ms (milliseconds, or seconds with 's'); got '" +
                            std::string(text.substr(0, 32)) + (text.size() > 32 ? "...'" : "'");
    std::uint64_t scale = 0;
    if (unit.empty() || unit == "ms")
        scale = 1;
    else if (unit == "s")
        scale = 1000;
    if (ec != std::errc{} || end == text.data() || scale == 0 || number == 0 ||
        number > static_cast<std::uint64_t>(max_health_timeout.count()) / scale) {
        error = bad;
        return std::nullopt;
    }
    return std::chrono::milliseconds(number * scale);
}

std::optional<std::string> outside_configuration(const node_status& n)
{
    // A node that joined holds no configuration until the leader first reaches it: it has
    // not been removed, it has not heard yet.
    if (n.members.contains(n.id) || n.leader != no_node || n.members.empty())
        return std::nullopt;
    return "node " + std::to_string(n.id) + " is not a member of the cluster's configuration at index " +
           std::to_string(n.members_index) + " (" + describe_members(n.members) +
           "): it was removed and serves nothing; send requests to a member, and stop this node (to "
           "bring it back, add it again with an empty data directory)";
}

std::optional<std::string> outside_configuration(const service_status& s)
{
    if (std::optional<std::string> outside = outside_configuration(s.node); outside && s.admitted)
        return outside;
    if (s.removal_heard && s.node.leader == no_node)
        return s.removal_heard;
    return std::nullopt;
}

std::optional<not_ready> readiness_problem(const service_status& s, const storage_status& storage,
                                           std::uint64_t max_lag)
{
    if (storage.failed())
        return not_ready{"storage failed", "storage failure: " + storage.error};
    const node_status& n = s.node;
    if (std::optional<std::string> outside = outside_configuration(s))
        return not_ready{"not a member", std::move(*outside)};
    if (!n.members.contains(n.id))
        return not_ready{"not a member", "not a member of the configuration in force (index " +
                                             std::to_string(n.members_index) + ": " +
                                             describe_members(n.members) + ")"};
    if (n.leader == no_node)
        return not_ready{"no leader", "no leader"};
    if (n.restoring_snapshot)
        return not_ready{"installing snapshot", "installing a snapshot from the leader"};
    if (n.commit_index > n.applied_index && n.commit_index - n.applied_index > max_lag)
        return not_ready{"applying log", "applying the log: applied index " +
                                             std::to_string(n.applied_index) + ", commit index " +
                                             std::to_string(n.commit_index)};
    return std::nullopt;
}

} // namespace raftkv::server
