#ifndef RAFTKV_SIM_DETAIL_LINEARIZATION_SEARCH_HPP
#define RAFTKV_SIM_DETAIL_LINEARIZATION_SEARCH_HPP

// The search for a linearization of one independent history (Wing & Gong, with Lowe's
// memoization, after the Go library porcupine), for any model whose state fits in an
// std::int32_t.

#include <raftkv/sim/detail/bitset.hpp>
#include <raftkv/sim/detail/hash.hpp>
#include <raftkv/sim/detail/linearization_cache.hpp>

#include <algorithm>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <tuple>
#include <utility>
#include <vector>

namespace raftkv::sim::detail {

/// When an operation was called and returned. An open-ended operation has no return:
/// it may take effect at any time after its call, or never.
struct op_interval {
    std::uint64_t call = 0;
    std::uint64_t ret = 0;
    bool open_ended = false;
};

/// A call or return of operation `op`, as placed in time order by order_events().
struct search_event {
    std::uint32_t op = 0;
    bool is_call = true;
};

/// The calls and returns of `ops` in time order; operation i is `ops[i]`.
///
/// At equal times returns come before calls, so an operation that returns at t precedes
/// one called at t. An operation with ret <= call takes effect at its call time: it follows
/// the returns at that time and precedes the calls, and is concurrent with others like it.
/// Open-ended operations have a call event only.
inline std::vector<search_event> order_events(std::span<const op_interval> ops)
{
    enum rank : int { positive_return, instant_call, instant_return, positive_call };
    std::vector<std::tuple<std::uint64_t, int, std::uint32_t, bool>> timed;
    timed.reserve(2 * ops.size());
    for (std::uint32_t i = 0; i < ops.size(); ++i) {
        const op_interval& o = ops[i];
        if (o.open_ended) {
            timed.emplace_back(o.call, positive_call, i, true);
        } else if (o.ret <= o.call) {
            timed.emplace_back(o.call, instant_call, i, true);
            timed.emplace_back(o.call, instant_return, i, false);
        } else {
            timed.emplace_back(o.call, positive_call, i, true);
            timed.emplace_back(o.ret, positive_return, i, false);
        }
    }
    std::sort(timed.begin(), timed.end());
    std::vector<search_event> events;
    events.reserve(timed.size());
    for (const auto& [time, r, op, is_call] : timed) {
        events.push_back(search_event{op, is_call});
    }
    return events;
}

/// The memory the memo of one search may use unless told otherwise: 512 MiB.
inline constexpr std::size_t default_max_cache_bytes = std::size_t{1} << 29;

/// Where the search stops trying.
struct search_limits {
    std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
    /// The memory the memo may use, in bytes.
    std::size_t max_cache_bytes = default_max_cache_bytes;
};

enum class search_outcome { linearizable, not_linearizable, out_of_time, out_of_memory };

struct search_result {
    search_outcome outcome = search_outcome::linearizable;
    /// The deepest dead end met (empty if none): the longest linearizable prefix, in
    /// linearization order ...
    std::vector<std::uint32_t> prefix;
    /// ... the operations pending after it, none of which extends it (of interchangeable
    /// open-ended operations, only the first) ...
    std::vector<std::uint32_t> stuck;
    /// ... and the one among them whose return came next, so it had to be linearized.
    std::optional<std::uint32_t> due;
    /// How many steps the search took: candidates tried, and dead ends met.
    std::uint64_t steps = 0;
};

/// Searches for a linearization of one history under a model.
///
/// `step(state, op)` returns the model state after operation `op` takes effect in
/// `state`, or nothing when `op`'s recorded outcome is impossible in `state`. States are
/// in [-1, 2^31 - 1).
///
/// Open-ended operations are what make histories with lost outcomes expensive: each may
/// take effect at any later point or never. The search linearizes one only right before
/// an operation with a return that its effect makes possible, which is enough when the
/// model is register-like: every operation either leaves the state unchanged or sets a
/// state that does not depend on the one before. Any linearization then has a form
/// where each open-ended operation is followed by one it enables: an open-ended
/// operation followed by a state-setting one that does not need it can be dropped, and
/// one followed by a read-only operation that does not need it can move after it.
/// Open-ended operations that set the same state are interchangeable once called, so
/// only the earliest called of those not yet linearized is tried, and the memo treats a
/// state as explored when one with the same linearized operations with a return, the same
/// model state, and no more of each group used, was.
///
/// REQUIRES: `step` is deterministic and register-like as above, and an open-ended
/// operation always succeeds and sets the same state whatever the state before. `events`
/// is order_events() of `op_count` operations.
template <class Step>
requires std::regular_invocable<const Step&, std::int32_t, std::uint32_t>
class linearization_search {
public:
    linearization_search(std::span<const search_event> events, std::size_t op_count, Step step,
                         std::int32_t initial_state)
        : step_(std::move(step)), state_(initial_state)
    {
        build_list(events, op_count);
        number_calls();
        group_open_ended();
    }

    search_result run(const search_limits& limits)
    {
        linearization_cache cache{key_.size(), group_used_.size(), limits.max_cache_bytes};
        search_result result;
        cursor at{.node = first()};
        while (returns_left_ > 0) {
            if ((++result.steps & 1023) == 0 && std::chrono::steady_clock::now() > limits.deadline) {
                result.outcome = search_outcome::out_of_time;
                return result;
            }
            if (const std::optional<std::uint32_t> candidate = next_candidate(at)) {
                switch (try_linearize(*candidate, at, cache)) {
                case attempt::extended: at = cursor{.node = first()}; break;
                case attempt::rejected: break;
                case attempt::out_of_memory: result.outcome = search_outcome::out_of_memory; return result;
                }
                continue;
            }
            if (!enabling()) {
                record_dead_end(at.first_return, result);
            }
            if (calls_.empty()) {
                result.outcome = search_outcome::not_linearizable;
                return result;
            }
            at = backtrack();
        }
        return result;
    }

private:
    static constexpr std::uint32_t none = ~std::uint32_t{0};

    enum class attempt { extended, rejected, out_of_memory };

    // One event. Calls and returns of operations with a return form a doubly linked list,
    // in time order, of those not linearized yet; node 0 is its head sentinel and the last
    // node its tail sentinel. Open-ended calls stay out of the list, in their groups.
    struct node {
        std::uint32_t prev = none;
        std::uint32_t next = none;
        std::uint32_t op = none;
        // The node of the matching return or call (none for an open-ended call); for a call
        // in the list, its number among those calls.
        std::uint32_t match = none;
        std::uint32_t bit = none;
        // For an open-ended call, its group of interchangeable calls.
        std::uint32_t group = none;
        bool is_call = false;

        bool open_ended() const noexcept { return is_call && match == none; }
    };

    // Where the search is among the candidates to linearize next: first the calls in the
    // list before its first return (`group` is none meanwhile), then the open-ended calls
    // made before that return, one group at a time.
    struct cursor {
        std::uint32_t node = none;
        std::uint32_t group = none;
        std::uint32_t first_return = none;
    };

    struct call_record {
        std::uint32_t node;
        std::int32_t state_before;
        // The candidates left to try after this one.
        cursor rest;
    };

    std::uint32_t first() const noexcept { return nodes_[0].next; }

    // Whether the last operation linearized is open-ended, so the next must be one it
    // enabled.
    bool enabling() const noexcept { return !calls_.empty() && nodes_[calls_.back().node].open_ended(); }

    // The next candidate at `at`, which moves past it; nothing when none is left.
    std::optional<std::uint32_t> next_candidate(cursor& at) const
    {
        if (at.group == none) {
            while (nodes_[at.node].is_call) {
                const std::uint32_t call = at.node;
                at.node = nodes_[call].next;
                if (!enabling() || !step_(calls_.back().state_before, nodes_[call].op)) {
                    return call;
                }
            }
            at.first_return = at.node;
            if (enabling()) {
                return std::nullopt;
            }
            at.group = 0;
        }
        while (at.group < group_used_.size()) {
            if (const std::optional<std::uint32_t> call = next_in_group(at.group++, at.first_return)) {
                return call;
            }
        }
        return std::nullopt;
    }

    // The first open-ended call of group `g` not linearized yet, if made before node `before`.
    std::optional<std::uint32_t> next_in_group(std::size_t g, std::uint32_t before) const
    {
        const std::vector<std::uint32_t>& members = group_members_[g];
        if (group_used_[g] < members.size() && members[group_used_[g]] < before) {
            return members[group_used_[g]];
        }
        return std::nullopt;
    }

    // Sets key_ to the memo's key for the linearized set and the model state `state`;
    // returns its hash. After an open-ended operation the search also depends on the state
    // before it. Calls before the first one not linearized are all linearized, so the key
    // holds the set from that one's word on, as far as the longest overlap reaches.
    std::uint64_t make_key(std::int32_t state, std::optional<std::int32_t> enabling_from)
    {
        std::uint64_t state_word = static_cast<std::uint32_t>(state);
        if (enabling_from) {
            state_word |= (std::uint64_t{1} << 63) | (static_cast<std::uint64_t>(*enabling_from + 1) << 32);
        }
        const std::span<const std::uint64_t> words = linearized_.words();
        const std::size_t full = linearized_.full_words();
        const std::size_t window = key_.size() - 2;
        for (std::size_t i = 0; i < window; ++i) {
            key_[i] = full + i < words.size() ? words[full + i] : 0;
        }
        key_[window] = full;
        key_[window + 1] = state_word;
        return linearized_.hash() ^ hash_finalize(state_word ^ 0xd6e8feb86659fd93ULL);
    }

    void build_list(std::span<const search_event> events, std::size_t op_count)
    {
        nodes_.resize(events.size() + 2);
        std::vector<std::uint32_t> call_node(op_count, none);
        for (std::uint32_t i = 0; i < events.size(); ++i) {
            node& n = nodes_[i + 1];
            n.op = events[i].op;
            n.is_call = events[i].is_call;
            if (n.is_call) {
                call_node[n.op] = i + 1;
            } else {
                nodes_[call_node[n.op]].match = i + 1;
                n.match = call_node[n.op];
                ++returns_left_;
            }
        }
        std::uint32_t last = 0;
        for (std::uint32_t i = 1; i < nodes_.size(); ++i) {
            if (!nodes_[i].open_ended()) {
                nodes_[last].next = i;
                nodes_[i].prev = last;
                last = i;
            }
        }
    }

    // Numbers the calls in the list in time order, and sizes the memo's keys: while a call
    // is pending, those linearized come at most `reach` calls after it.
    void number_calls()
    {
        std::uint32_t calls = 0;
        std::size_t reach = 0;
        for (std::uint32_t i = first(); i != nodes_.size() - 1; i = nodes_[i].next) {
            if (nodes_[i].is_call) {
                nodes_[i].bit = calls++;
            } else {
                reach = std::max<std::size_t>(reach, calls - 1 - nodes_[nodes_[i].match].bit);
            }
        }
        linearized_ = bitset{calls};
        key_.assign(reach / 64 + 4, 0);
    }

    // Groups the open-ended calls by the state they set.
    void group_open_ended()
    {
        std::map<std::int32_t, std::uint32_t> group_of_state;
        for (std::uint32_t i = 0; i < nodes_.size(); ++i) {
            if (nodes_[i].open_ended()) {
                const auto [it, added] = group_of_state.try_emplace(
                    *step_(state_, nodes_[i].op), static_cast<std::uint32_t>(group_members_.size()));
                if (added) {
                    group_members_.emplace_back();
                }
                nodes_[i].group = it->second;
                group_members_[it->second].push_back(i);
            }
        }
        group_used_.assign(group_members_.size(), 0);
    }

    // Linearizes the call at node `call` next, if the model allows it and the resulting
    // search state is not covered by one explored already. `rest` are the candidates after it.
    attempt try_linearize(std::uint32_t call, const cursor& rest, linearization_cache& cache)
    {
        const node& n = nodes_[call];
        const std::optional<std::int32_t> next = step_(state_, n.op);
        if (!next) {
            return attempt::rejected;
        }
        lift(call);
        const auto enabling_from = n.open_ended() ? std::optional{state_} : std::nullopt;
        const std::uint64_t hash = make_key(*next, enabling_from);
        switch (cache.insert(key_, hash, group_used_)) {
        case linearization_cache::insert_result::inserted: break;
        case linearization_cache::insert_result::covered: unlift(call); return attempt::rejected;
        case linearization_cache::insert_result::full: unlift(call); return attempt::out_of_memory;
        }
        calls_.push_back(call_record{call, state_, rest});
        state_ = *next;
        return attempt::extended;
    }

    // Undoes the last linearization; returns the candidates left after it.
    cursor backtrack()
    {
        const call_record top = calls_.back();
        calls_.pop_back();
        state_ = top.state_before;
        unlift(top.node);
        return top.rest;
    }

    // Marks the call at node `call` linearized: a call in the list leaves it, with its
    // return, and joins the linearized set; an open-ended call is counted in its group.
    void lift(std::uint32_t call)
    {
        const node& n = nodes_[call];
        if (n.open_ended()) {
            ++group_used_[n.group];
            return;
        }
        unlink(call);
        unlink(n.match);
        linearized_.set(n.bit);
        --returns_left_;
    }

    void unlift(std::uint32_t call)
    {
        const node& n = nodes_[call];
        if (n.open_ended()) {
            --group_used_[n.group];
            return;
        }
        relink(n.match);
        relink(call);
        linearized_.reset(n.bit);
        ++returns_left_;
    }

    void unlink(std::uint32_t i)
    {
        nodes_[nodes_[i].prev].next = nodes_[i].next;
        nodes_[nodes_[i].next].prev = nodes_[i].prev;
    }

    void relink(std::uint32_t i)
    {
        nodes_[nodes_[i].prev].next = i;
        nodes_[nodes_[i].next].prev = i;
    }

    // Keeps the deepest dead end: the prefix linearized so far, and the candidates that
    // came before `first_return`, the first return in the list.
    void record_dead_end(std::uint32_t first_return, search_result& result)
    {
        if (dead_end_seen_ && calls_.size() <= result.prefix.size()) {
            return;
        }
        dead_end_seen_ = true;
        result.prefix.clear();
        for (const call_record& c : calls_) {
            result.prefix.push_back(nodes_[c.node].op);
        }
        result.stuck.clear();
        for (std::uint32_t i = first(); i != first_return; i = nodes_[i].next) {
            result.stuck.push_back(nodes_[i].op);
        }
        for (std::size_t g = 0; g < group_used_.size(); ++g) {
            if (const std::optional<std::uint32_t> call = next_in_group(g, first_return)) {
                result.stuck.push_back(nodes_[*call].op);
            }
        }
        const bool is_return = first_return + 1 < nodes_.size();
        result.due = is_return ? std::optional{nodes_[first_return].op} : std::nullopt;
    }

    Step step_;
    std::int32_t state_;
    // The calls in the list linearized, by number.
    bitset linearized_{0};
    // Scratch space for the memo's key.
    std::vector<std::uint64_t> key_;
    std::vector<node> nodes_;
    // Open-ended calls that set the same state, by group, in time order.
    std::vector<std::vector<std::uint32_t>> group_members_;
    // How many calls of each group are linearized: always its first ones.
    std::vector<std::uint32_t> group_used_;
    std::vector<call_record> calls_;
    std::size_t returns_left_ = 0;
    bool dead_end_seen_ = false;
};

} // namespace raftkv::sim::detail

#endif
