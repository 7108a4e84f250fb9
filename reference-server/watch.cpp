#include "watch.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>

#include <algorithm>
#include <array>
#include <charconv>
#include <limits>
#include <stdexcept>

// GCC 12 reports Asio's coroutine frame allocation, once one coroutine's start is inlined
// into another, as a mismatched new and delete (GCC PR 109224): a false positive.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

namespace raftkv::server {

namespace {

namespace asio = boost::asio;
namespace http = boost::beast::http;
namespace json = boost::json;
using clock = std::chrono::steady_clock;

constexpr auto nothrow_awaitable = asio::as_tuple(asio::use_awaitable);

// The most bytes of keys and values one write of a watch carries (at least one change).
constexpr std::size_t chunk_bytes = 256 * 1024;

// A decimal number that fits 64 bits (from_chars refuses one that does not).
std::optional<std::uint64_t> parse_decimal(std::string_view text)
{
    if (text.empty() || text.size() > 20)
        return std::nullopt;
    std::uint64_t n = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
    if (ec != std::errc{} || end != text.data() + text.size())
        return std::nullopt;
    return n;
}

checked_watch_request watch_rejected(http::status status, std::string error)
{
    return {std::nullopt, status, std::move(error)};
}

std::string sse_event(std::string_view event, std::optional<index_t> id, const std::string& data)
{
    std::string out;
    out.reserve(data.size() + 48);
    if (id)
        out.append("id: ").append(std::to_string(*id)).push_back('\n');
    out.append("event: ").append(event).push_back('\n');
    out.append("data: ").append(data).append("\n\n");
    return out;
}

} // namespace

std::optional<change_kind> change_of(const kv_command& command, const kv_result& result)
{
    if (!changed_user_key(command, result))
        return std::nullopt;
    return command.op == kv_command_op::put ? change_kind::put : change_kind::del;
}

// ---- change_journal ------------------------------------------------------------------

change_journal::change_journal(change_journal_options options) : options_(options)
{
    if (options_.max_entries == 0)
        throw std::invalid_argument("change_journal_options::max_entries must be at least 1");
}

void change_journal::start_at(index_t applied)
{
    std::vector<std::function<void()>> wake;
    {
        std::lock_guard lock(mutex_);
        if (!started_) {
            started_ = true;
            from_ = applied + 1;
            applied_ = applied;
            return;
        }
        if (applied <= applied_)
            return;
        restart_after(applied, "the node skipped it while re-opening its storage");
        wake = take_waiters();
    }
    for (auto& w : wake)
        w();
}

void change_journal::applied(std::span<const log_entry> batch, std::span<const kv_result> results)
{
    record(batch, [&](std::size_t k, const kv_command& c) { return change_of(c, results[k]); });
}

void change_journal::recovered(std::span<const log_entry> batch, std::span<const index_t> unchanged)
{
    {
        std::lock_guard lock(mutex_);
        if (!started_)
            gap_reason_ = "the node applied it before it started, further back than its log still holds";
    }
    record(batch, [&](std::size_t k, const kv_command& c) -> std::optional<change_kind> {
        if (c.op == kv_command_op::meta ||
            std::binary_search(unchanged.begin(), unchanged.end(), batch[k].index))
            return std::nullopt;
        return c.op == kv_command_op::put ? change_kind::put : change_kind::del;
    });
}

template <class KindOf>
void change_journal::record(std::span<const log_entry> batch, const KindOf& kind_of)
{
    if (batch.empty())
        return;
    std::vector<std::function<void()>> wake;
    {
        std::lock_guard lock(mutex_);
        if (!started_) {
            started_ = true;
            from_ = batch.front().index;
            applied_ = batch.front().index - 1;
        }
        if (batch.back().index <= applied_)
            return;
        if (batch.front().index > applied_ + 1)
            restart_after(batch.front().index - 1, "the node did not apply it one change at a time");
        for (std::size_t k = 0; k < batch.size(); ++k) {
            const log_entry& e = batch[k];
            if (e.index <= applied_ || e.type != entry_type::normal)
                continue;
            const std::optional<kv_command> c = decode_kv_command(e.data);
            if (!c)
                continue;
            const std::optional<change_kind> kind = kind_of(k, *c);
            if (!kind)
                continue;
            entry& added = entries_.emplace_back();
            added.c.index = e.index;
            added.c.kind = *kind;
            added.c.key.assign(c->key);
            if (*kind == change_kind::put)
                added.c.value.assign(c->value);
            added.offset = total_bytes_;
            const std::size_t n = cost(added.c);
            bytes_ += n;
            total_bytes_ += n;
        }
        applied_ = batch.back().index;
        evict_over_bounds();
        if (!waiters_.empty())
            wake = take_waiters();
    }
    for (auto& w : wake)
        w();
}

void change_journal::restored(index_t index)
{
    std::vector<std::function<void()>> wake;
    {
        std::lock_guard lock(mutex_);
        started_ = true;
        restart_after(std::max(index, applied_), "a snapshot replaced this node's state after it");
        wake = take_waiters();
    }
    for (auto& w : wake)
        w();
}

void change_journal::close()
{
    std::vector<std::function<void()>> wake;
    {
        std::lock_guard lock(mutex_);
        closed_ = true;
        wake = take_waiters();
    }
    for (auto& w : wake)
        w();
}

void change_journal::refuse(std::optional<std::string> why)
{
    std::vector<std::function<void()>> wake;
    {
        std::lock_guard lock(mutex_);
        refusal_ = std::move(why);
        if (refusal_)
            wake = take_waiters();
    }
    for (auto& w : wake)
        w();
}

// Under the mutex.
void change_journal::restart_after(index_t index, std::string reason)
{
    entries_.clear();
    bytes_ = 0;
    from_ = index + 1;
    applied_ = index;
    gap_reason_ = std::move(reason);
}

// Under the mutex.
void change_journal::evict_over_bounds()
{
    while (!entries_.empty() && (entries_.size() > options_.max_entries || bytes_ > options_.max_bytes)) {
        bytes_ -= cost(entries_.front().c);
        from_ = entries_.front().c.index + 1;
        entries_.pop_front();
        gap_reason_ = "the journal evicted it (--watch-history-entries, --watch-history-bytes)";
    }
}

// Under the mutex.
std::vector<std::function<void()>> change_journal::take_waiters()
{
    std::vector<std::function<void()>> out;
    out.reserve(waiters_.size());
    for (auto& [id, w] : waiters_)
        out.push_back(std::move(w));
    waiters_.clear();
    return out;
}

// Under the mutex.
std::deque<change_journal::entry>::const_iterator change_journal::first_at(index_t index) const
{
    return std::lower_bound(entries_.begin(), entries_.end(), index,
                            [](const entry& e, index_t i) { return e.c.index < i; });
}

change_journal::read_result change_journal::read(index_t from, std::string_view key, bool prefix,
                                                 std::size_t max_bytes) const
{
    read_result r;
    std::lock_guard lock(mutex_);
    r.applied = applied_;
    r.next = from;
    if (closed_) {
        r.status = read_status::closed;
        return r;
    }
    if (refusal_) {
        r.status = read_status::refused;
        r.reason = *refusal_;
        return r;
    }
    if (from < from_) {
        r.status = read_status::gone;
        r.reason = gap_reason_;
        return r;
    }
    std::size_t taken = 0;
    for (auto it = first_at(from); it != entries_.end(); ++it) {
        const change& c = it->c;
        const bool match = prefix ? std::string_view(c.key).starts_with(key) : c.key == key;
        if (!match)
            continue;
        if (!r.changes.empty() && taken + cost(c) > max_bytes) {
            r.next = c.index;
            return r;
        }
        taken += cost(c);
        r.changes.push_back(c);
    }
    r.next = std::max(from, applied_ + 1);
    return r;
}

index_t change_journal::resumable_from() const
{
    std::lock_guard lock(mutex_);
    return from_;
}

index_t change_journal::applied() const
{
    std::lock_guard lock(mutex_);
    return applied_;
}

std::uint64_t change_journal::total_bytes() const
{
    std::lock_guard lock(mutex_);
    return total_bytes_;
}

std::uint64_t change_journal::wait(index_t after, std::function<void()> wake)
{
    {
        std::lock_guard lock(mutex_);
        if (!closed_ && !refusal_ && applied_ <= after) {
            waiters_.emplace_back(++last_wait_id_, std::move(wake));
            return last_wait_id_;
        }
    }
    wake();
    return 0;
}

void change_journal::cancel_wait(std::uint64_t id)
{
    if (id == 0)
        return;
    std::lock_guard lock(mutex_);
    std::erase_if(waiters_, [id](const auto& w) { return w.first == id; });
}

bool change_journal::acquire_watcher()
{
    std::lock_guard lock(mutex_);
    if (watchers_ >= options_.max_watchers)
        return false;
    ++watchers_;
    return true;
}

void change_journal::release_watcher()
{
    std::lock_guard lock(mutex_);
    --watchers_;
}

std::size_t change_journal::watchers() const
{
    std::lock_guard lock(mutex_);
    return streaming_;
}

void change_journal::stream_began()
{
    std::lock_guard lock(mutex_);
    ++streaming_;
}

void change_journal::stream_ended()
{
    std::lock_guard lock(mutex_);
    --streaming_;
}

std::size_t change_journal::size() const
{
    std::lock_guard lock(mutex_);
    return entries_.size();
}

std::size_t change_journal::bytes() const
{
    std::lock_guard lock(mutex_);
    return bytes_;
}

// ---- The request ---------------------------------------------------------------------

checked_watch_request check_watch_request(std::string_view raw_key, std::string_view target,
                                          std::string_view accept,
                                          std::optional<std::string_view> last_event_id)
{
    watch_request w;
    static constexpr std::array<std::string_view, 3> names = {"prefix", "from", "progress_ms"};
    bool seen[names.size()] = {false, false, false};
    query_params params(target);
    while (const std::optional<query_param> param = params.next()) {
        if (param->malformed)
            return watch_rejected(http::status::bad_request, malformed_query_error(*param));
        const std::string_view name = param->name;
        const std::string_view raw = param->value;
        const auto known = std::find(names.begin(), names.end(), name);
        if (known == names.end())
            return watch_rejected(
                http::status::bad_request,
                unknown_parameter_error(name, "GET /watch", "prefix, from and progress_ms"));
        bool& once = seen[known - names.begin()];
        if (once)
            return watch_rejected(http::status::bad_request,
                                  "parameter '" + std::string(name) + "' given more than once");
        once = true;
        if (name == "prefix") {
            if (raw != "true" && raw != "false")
                return watch_rejected(http::status::bad_request, "'prefix' must be true or false");
            w.prefix = raw == "true";
        } else if (name == "from") {
            const std::optional<std::uint64_t> from = parse_decimal(raw);
            if (!from || *from == 0)
                return watch_rejected(http::status::bad_request,
                                      "'from' must be a log index, a whole number from 1");
            w.from = *from;
        } else {
            const std::optional<std::uint64_t> ms = parse_decimal(raw);
            if (!ms || *ms < static_cast<std::uint64_t>(min_watch_progress.count()) ||
                *ms > static_cast<std::uint64_t>(max_watch_progress.count()))
                return watch_rejected(http::status::bad_request,
                                      "'progress_ms' must be a whole number from " +
                                          std::to_string(min_watch_progress.count()) + " to " +
                                          std::to_string(max_watch_progress.count()));
            w.progress = std::chrono::milliseconds(*ms);
        }
    }
    if (raw_key.empty()) {
        if (!w.prefix)
            return watch_rejected(http::status::bad_request,
                                  "missing key (to watch every key: GET /watch/?prefix=true)");
    } else {
        checked_input key = check_key(raw_key);
        if (!key.value)
            return watch_rejected(key.status, key.error);
        w.key = std::move(*key.value);
    }
    if (last_event_id) {
        const std::optional<std::uint64_t> id = parse_decimal(*last_event_id);
        if (!id)
            return watch_rejected(http::status::bad_request, "Last-Event-ID must be a log index");
        if (*id == std::numeric_limits<std::uint64_t>::max())
            return watch_rejected(http::status::bad_request,
                                  "Last-Event-ID is the last log index there can be: no change follows it");
        w.from = *id + 1;
    }
    w.sse = accept.find("text/event-stream") != std::string_view::npos;
    return {std::move(w), http::status::ok, {}};
}

// ---- Lines ---------------------------------------------------------------------------

std::string format_change(const change& c, bool sse)
{
    const bool put = c.kind == change_kind::put;
    json::object o{{"index", c.index}, {"type", put ? "put" : "delete"}, {"key", c.key}};
    if (put)
        o["value"] = c.value;
    std::string line = json::serialize(o);
    if (sse)
        return sse_event(put ? "put" : "delete", c.index, line);
    line.push_back('\n');
    return line;
}

std::string format_progress(index_t index, index_t applied, bool sse)
{
    const json::object o{{"type", "progress"}, {"index", index}, {"applied_index", applied}};
    std::string line = json::serialize(o);
    if (sse)
        return sse_event("progress", index, line);
    line.push_back('\n');
    return line;
}

std::string format_end(std::string_view error, index_t resume_from, bool sse)
{
    const json::object o{{"type", "error"}, {"error", error}, {"resume_from", resume_from}};
    std::string line = json::serialize(o);
    if (sse)
        return sse_event("error", std::nullopt, line);
    line.push_back('\n');
    return line;
}

// ---- watch_stream --------------------------------------------------------------------

/// What the journal's wakers reach, on the watch's strand: the timer the watch waits on,
/// and while it writes, the writer to close if its client stopped reading.
struct watch_stream::waiter : std::enable_shared_from_this<watch_stream::waiter> {
    waiter(asio::any_io_executor ex, change_journal& j, std::size_t lag) : timer(ex), journal(j), max_lag(lag)
    {
    }

    /// A waker for change_journal::wait(): posts woken() to the watch's strand.
    std::function<void()> waker()
    {
        return [w = weak_from_this()] {
            if (const std::shared_ptr<waiter> self = w.lock())
                asio::post(self->timer.get_executor(), [self] { self->woken(); });
        };
    }

    void woken()
    {
        wait_id = 0;
        if (!out)
            return;
        if (!writing) {
            timer.cancel();
            return;
        }
        if (journal.total_bytes() - write_started_at > max_lag) {
            out->abort();
            return;
        }
        wait_id = journal.wait(journal.applied(), waker());
    }

    asio::steady_timer timer;
    change_journal& journal;
    std::size_t max_lag;
    stream_writer* out = nullptr; // while run() runs
    bool writing = false;
    std::uint64_t write_started_at = 0; // journal.total_bytes() when the write began
    std::uint64_t wait_id = 0;
};

watch_stream::watch_stream(change_journal& journal, watch_request request, index_t from,
                           std::size_t max_lag_bytes)
    : journal_(journal), request_(std::move(request)), next_(from), max_lag_bytes_(max_lag_bytes)
{
}

watch_stream::~watch_stream()
{
    journal_.release_watcher();
}

asio::awaitable<void> watch_stream::run(stream_writer& out)
{
    const auto ex = co_await asio::this_coro::executor;
    const auto w = std::make_shared<waiter>(ex, journal_, max_lag_bytes_);
    w->out = &out;
    // Runs once the response header went out: the client knows where the watch starts
    // (X-Raftkv-Watch-From) from the moment it is counted.
    journal_.stream_began();
    // A client that leaves while the watch waits for changes frees its slot at once, not
    // at the next progress line.
    out.when_closed([w] { w->timer.cancel(); });
    struct detach {
        waiter& w;
        ~detach()
        {
            w.out->when_closed(nullptr);
            w.out = nullptr;
            w.journal.cancel_wait(w.wait_id);
            w.journal.stream_ended();
        }
    } guard{*w};

    const bool sse = request_.sse;
    auto next_progress = clock::now() + request_.progress;
    std::string end;
    for (;;) {
        if (out.closed())
            co_return;
        if (out.stopping()) {
            end = format_end("the server is shutting down", next_, sse);
            break;
        }
        change_journal::read_result r = journal_.read(next_, request_.key, request_.prefix, chunk_bytes);
        if (r.status == change_journal::read_status::closed) {
            end = format_end("the server is shutting down", next_, sse);
            break;
        }
        if (r.status == change_journal::read_status::refused) {
            end = format_end(r.reason, next_, sse);
            break;
        }
        if (r.status == change_journal::read_status::gone) {
            end = format_end("this node no longer holds the changes from index " + std::to_string(next_) +
                                 ": " + r.reason,
                             next_, sse);
            break;
        }
        next_ = r.next;
        std::string lines;
        if (!r.changes.empty()) {
            for (const change& c : r.changes)
                lines += format_change(c, sse);
        } else if (clock::now() >= next_progress) {
            lines = format_progress(next_ - 1, r.applied, sse);
        }
        if (!lines.empty()) {
            w->writing = true;
            w->write_started_at = journal_.total_bytes();
            w->wait_id = journal_.wait(r.applied, w->waker());
            const bool sent = co_await out.write(lines);
            w->writing = false;
            journal_.cancel_wait(w->wait_id);
            w->wait_id = 0;
            if (!sent)
                co_return;
            next_progress = clock::now() + request_.progress;
            continue;
        }
        w->timer.expires_at(next_progress);
        w->wait_id = journal_.wait(next_ - 1, w->waker());
        co_await w->timer.async_wait(nothrow_awaitable);
        journal_.cancel_wait(w->wait_id);
        w->wait_id = 0;
    }
    co_await out.write(end);
}

} // namespace raftkv::server
