#ifndef RAFTKV_SIM_LINEARIZABILITY_HPP
#define RAFTKV_SIM_LINEARIZABILITY_HPP

/** A linearizability checker for key-value histories.

    check_kv_history() decides whether the operations of a kv_history could have taken
    effect one at a time, each at some instant between its call and its return, with every
    get and del reporting what a single copy of the map would have reported at that
    instant. Each key starts absent; put sets it; del erases it and reports whether it
    existed; get reports whether it exists and its value.

    Keys are independent, so each key's operations are checked on their own. The search is
    Wing & Gong's with Lowe's memoization, as in the Go library porcupine: it linearizes
    calls depth first, never visiting the same (set of linearized operations, state) twice.
    Indeterminate operations are tried only where they make an operation's outcome
    possible. The search is exponential in the worst case (many concurrent operations on
    one key, or many indeterminate ones), so it runs under a time budget; a history found
    linearizable is usually decided fast, while proving a long one illegal may take the
    whole search.

    Time conventions:
    @li An operation that returns at t precedes one called at t (returns sort before calls
        at equal times): record a later call time when the two may really have overlapped.
    @li An operation with `ret <= call` takes effect exactly at `call`.
    @li An indeterminate put or del may take effect at any time after its call, or never;
        an indeterminate del may report either outcome. An indeterminate get is ignored.

    @par Example
    @code
    raftkv::sim::check_result r = raftkv::sim::check_kv_history(history);
    if (r.outcome == raftkv::sim::check_outcome::illegal) {
        std::cerr << r.explanation;
    }
    @endcode

    @par Thread Safety
    check_kv_history() shares no state between calls: concurrent calls are safe.
*/

#include <raftkv/sim/detail/kv_explain.hpp>
#include <raftkv/sim/detail/kv_register_model.hpp>
#include <raftkv/sim/detail/linearization_search.hpp>
#include <raftkv/sim/history.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace raftkv::sim {

enum class check_outcome {
    /// The history is linearizable.
    ok,
    /// Some key's operations are not linearizable.
    illegal,
    /// The check gave up on some key (time budget or memory limit), and found no key illegal.
    unknown,
};

struct check_result {
    check_outcome outcome = check_outcome::ok;

    /// The key whose operations are illegal, or the first the check gave up on. Empty when ok.
    std::string key;

    /// Indexes into the history: the longest linearizable prefix of the key's operations that
    /// the search found (in linearization order), then the operations pending after it, none
    /// of which can take effect next. For `unknown`, the deepest such dead
    /// end met before giving up, if any. Empty when ok.
    std::vector<std::size_t> offending;

    /// Several lines saying what went wrong, listing the offending operations (the prefix
    /// cut to its last few) with their client, kind, value or outcome, call and return.
    std::string explanation;
};

namespace detail {

inline std::chrono::steady_clock::time_point deadline_after(std::chrono::milliseconds budget)
{
    using clock = std::chrono::steady_clock;
    const clock::time_point now = clock::now();
    const auto room = std::chrono::duration_cast<std::chrono::milliseconds>(clock::time_point::max() - now);
    if (budget >= room) {
        return clock::time_point::max();
    }
    return budget.count() <= 0 ? now : now + budget;
}

inline std::string headline(const key_ops& group, const search_result& r, std::chrono::milliseconds budget)
{
    std::string s = "key " + quote(group.key) + ": ";
    const std::string ops = std::to_string(group.ops.size()) + " operations";
    const std::string gave_up =
        "gave up on its " + ops + " after " + std::to_string(r.steps) + " search steps: ";
    switch (r.outcome) {
    case search_outcome::linearizable: return s + "its " + ops + " are linearizable.\n";
    case search_outcome::not_linearizable: return s + "its " + ops + " are not linearizable.\n";
    case search_outcome::out_of_time:
        return s + gave_up + "the time budget of " + std::to_string(budget.count()) + " ms ran out.\n";
    case search_outcome::out_of_memory:
        return s + gave_up + "the memo reached its limit of " +
               std::to_string(default_max_cache_bytes >> 20) + " MiB.\n";
    }
    return s;
}

/// Checks the operations on one key.
inline check_result check_key(const kv_history& history, const key_ops& group, const search_limits& limits,
                              std::chrono::milliseconds budget)
{
    std::vector<op_interval> intervals;
    intervals.reserve(group.ops.size());
    for (std::size_t i : group.ops) {
        intervals.push_back(op_interval{history[i].call, history[i].ret, history[i].indeterminate});
    }
    const std::vector<search_event> events = order_events(intervals);
    const kv_register_model model{history, group.ops};
    const auto step = [&model](std::int32_t state, std::uint32_t op) { return model.step(state, op); };
    const search_result r =
        linearization_search{events, group.ops.size(), step, kv_register_model::absent}.run(limits);
    if (r.outcome == search_outcome::linearizable) {
        return {};
    }

    std::vector<std::size_t> prefix;
    std::vector<std::size_t> stuck;
    for (std::uint32_t op : r.prefix) {
        prefix.push_back(group.ops[op]);
    }
    for (std::uint32_t op : r.stuck) {
        stuck.push_back(group.ops[op]);
    }
    std::optional<std::size_t> due;
    if (r.due) {
        due = group.ops[*r.due];
    }

    check_result out;
    out.outcome =
        r.outcome == search_outcome::not_linearizable ? check_outcome::illegal : check_outcome::unknown;
    out.key = group.key;
    out.explanation = headline(group, r, budget);
    if (!r.stuck.empty()) {
        out.explanation += explain_dead_end(history, prefix, stuck, due);
    }
    out.offending = std::move(prefix);
    out.offending.insert(out.offending.end(), stuck.begin(), stuck.end());
    return out;
}

} // namespace detail

/// Checks that `history` is linearizable under the key-value model described above.
///
/// Returns `ok` when it is, `illegal` with the first illegal key found otherwise, and
/// `unknown` when the search gave up on some key and found no other illegal. The search
/// gives up on a key when `budget` (wall clock, for the whole history, checked every 1024
/// search steps, so small keys are decided whatever the budget) runs out, or when its memo
/// reaches 512 MiB. Keys are checked smallest first.
///
/// REQUIRES: the history has fewer than 2^31 operations on any one key.
inline check_result check_kv_history(const kv_history& history,
                                     std::chrono::milliseconds budget = std::chrono::seconds(10))
{
    const detail::search_limits limits{.deadline = detail::deadline_after(budget)};
    check_result first_unknown;
    for (const detail::key_ops& group : detail::partition_by_key(history)) {
        check_result r = detail::check_key(history, group, limits, budget);
        if (r.outcome == check_outcome::illegal) {
            return r;
        }
        if (r.outcome == check_outcome::unknown && first_unknown.outcome == check_outcome::ok) {
            first_unknown = std::move(r);
        }
    }
    return first_unknown;
}

} // namespace raftkv::sim

#endif
