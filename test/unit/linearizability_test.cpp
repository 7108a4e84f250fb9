#include <raftkv/sim/linearizability.hpp>

#define BOOST_TEST_MODULE linearizability
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

namespace {

using raftkv::sim::check_kv_history;
using raftkv::sim::check_outcome;
using raftkv::sim::check_result;
using raftkv::sim::kv_history;
using raftkv::sim::kv_op;
using raftkv::sim::kv_op_kind;

kv_op make_op(std::uint64_t client, kv_op_kind kind, std::string key, std::uint64_t call, std::uint64_t ret)
{
    kv_op op;
    op.client = client;
    op.kind = kind;
    op.key = std::move(key);
    op.call = call;
    op.ret = ret;
    return op;
}

kv_op put(std::uint64_t client, std::string key, std::string value, std::uint64_t call, std::uint64_t ret)
{
    kv_op op = make_op(client, kv_op_kind::put, std::move(key), call, ret);
    op.value = std::move(value);
    return op;
}

/// A get that found `result`, or found nothing when `result` is nullopt.
kv_op get(std::uint64_t client, std::string key, std::optional<std::string> result, std::uint64_t call,
          std::uint64_t ret)
{
    kv_op op = make_op(client, kv_op_kind::get, std::move(key), call, ret);
    op.found = result.has_value();
    op.result = result.value_or("");
    return op;
}

kv_op del(std::uint64_t client, std::string key, bool found, std::uint64_t call, std::uint64_t ret)
{
    kv_op op = make_op(client, kv_op_kind::del, std::move(key), call, ret);
    op.found = found;
    return op;
}

kv_op create(std::uint64_t client, std::string key, std::string value, bool existed, std::uint64_t call,
             std::uint64_t ret)
{
    kv_op op = make_op(client, kv_op_kind::create, std::move(key), call, ret);
    op.value = std::move(value);
    op.found = existed;
    return op;
}

/// `op` with its outcome lost: it never returned.
kv_op indeterminate(kv_op op)
{
    op.indeterminate = true;
    op.ret = std::numeric_limits<std::uint64_t>::max();
    return op;
}

check_outcome outcome_of(const kv_history& h)
{
    const check_result r = check_kv_history(h);
    BOOST_TEST_INFO(r.explanation);
    return r.outcome;
}

bool contains(const std::vector<std::size_t>& v, std::size_t x)
{
    return std::find(v.begin(), v.end(), x) != v.end();
}

} // namespace

BOOST_AUTO_TEST_SUITE(linearizable_histories)

BOOST_AUTO_TEST_CASE(empty_history_is_linearizable)
{
    const check_result r = check_kv_history({});
    BOOST_TEST((r.outcome == check_outcome::ok));
    BOOST_TEST(r.key.empty());
    BOOST_TEST(r.offending.empty());
    BOOST_TEST(r.explanation.empty());
}

BOOST_AUTO_TEST_CASE(sequential_history_following_the_model_is_linearizable)
{
    const kv_history h{
        get(1, "k", std::nullopt, 0, 1),
        put(1, "k", "a", 2, 3),
        get(2, "k", "a", 4, 5),
        put(2, "k", "b", 6, 7),
        get(1, "k", "b", 8, 9),
        del(1, "k", true, 10, 11),
        get(2, "k", std::nullopt, 12, 13),
        del(2, "k", false, 14, 15),
        put(1, "k", "c", 16, 17),
        get(1, "k", "c", 18, 19),
    };
    BOOST_TEST((outcome_of(h) == check_outcome::ok));
}

BOOST_AUTO_TEST_CASE(get_concurrent_with_a_put_may_see_the_old_value)
{
    const kv_history h{put(1, "k", "old", 0, 10), put(1, "k", "new", 20, 40), get(2, "k", "old", 25, 30)};
    BOOST_TEST((outcome_of(h) == check_outcome::ok));
}

BOOST_AUTO_TEST_CASE(get_concurrent_with_a_put_may_see_the_new_value)
{
    const kv_history h{put(1, "k", "old", 0, 10), put(1, "k", "new", 20, 40), get(2, "k", "new", 25, 30)};
    BOOST_TEST((outcome_of(h) == check_outcome::ok));
}

BOOST_AUTO_TEST_CASE(concurrent_puts_may_take_effect_in_either_order)
{
    const kv_history h{put(1, "k", "a", 0, 10), put(2, "k", "b", 0, 10), get(3, "k", "a", 20, 30)};
    BOOST_TEST((outcome_of(h) == check_outcome::ok));
    const kv_history h2{put(1, "k", "a", 0, 10), put(2, "k", "b", 0, 10), get(3, "k", "b", 20, 30)};
    BOOST_TEST((outcome_of(h2) == check_outcome::ok));
}

BOOST_AUTO_TEST_CASE(indeterminate_put_may_be_seen_later)
{
    const kv_history h{put(1, "k", "a", 0, 10), indeterminate(put(2, "k", "b", 20, 0)),
                       get(3, "k", "a", 100, 110), get(3, "k", "b", 120, 130), get(1, "k", "b", 500, 510)};
    BOOST_TEST((outcome_of(h) == check_outcome::ok));
}

BOOST_AUTO_TEST_CASE(indeterminate_put_may_never_take_effect)
{
    const kv_history h{put(1, "k", "a", 0, 10), indeterminate(put(2, "k", "b", 20, 0)),
                       get(3, "k", "a", 100, 110), get(3, "k", "a", 900, 910)};
    BOOST_TEST((outcome_of(h) == check_outcome::ok));
}

BOOST_AUTO_TEST_CASE(indeterminate_put_on_an_absent_key_may_never_take_effect)
{
    const kv_history h{indeterminate(put(2, "k", "b", 0, 0)), get(3, "k", std::nullopt, 100, 110)};
    BOOST_TEST((outcome_of(h) == check_outcome::ok));
}

BOOST_AUTO_TEST_CASE(indeterminate_del_may_or_may_not_take_effect)
{
    const kv_history took{put(1, "k", "a", 0, 10), indeterminate(del(2, "k", false, 20, 0)),
                          get(3, "k", std::nullopt, 100, 110)};
    BOOST_TEST((outcome_of(took) == check_outcome::ok));
    const kv_history did_not{put(1, "k", "a", 0, 10), indeterminate(del(2, "k", false, 20, 0)),
                             get(3, "k", "a", 100, 110)};
    BOOST_TEST((outcome_of(did_not) == check_outcome::ok));
}

BOOST_AUTO_TEST_CASE(indeterminate_get_is_ignored_whatever_it_reports)
{
    const kv_history h{put(1, "k", "a", 0, 10), indeterminate(get(2, "k", "never written", 20, 0)),
                       get(3, "k", "a", 30, 40)};
    BOOST_TEST((outcome_of(h) == check_outcome::ok));
}

BOOST_AUTO_TEST_CASE(del_reports_whether_the_key_existed)
{
    const kv_history h{del(1, "k", false, 0, 1), put(1, "k", "a", 2, 3), del(2, "k", true, 4, 5),
                       del(2, "k", false, 6, 7), get(1, "k", std::nullopt, 8, 9)};
    BOOST_TEST((outcome_of(h) == check_outcome::ok));
}

BOOST_AUTO_TEST_CASE(concurrent_dels_may_split_found_and_not_found)
{
    const kv_history h{put(1, "k", "a", 0, 10), del(2, "k", false, 20, 30), del(3, "k", true, 20, 30)};
    BOOST_TEST((outcome_of(h) == check_outcome::ok));
}

BOOST_AUTO_TEST_CASE(operation_called_before_another_returns_overlaps_it)
{
    const kv_history h{put(1, "k", "a", 0, 10), get(2, "k", std::nullopt, 9, 20)};
    BOOST_TEST((outcome_of(h) == check_outcome::ok));
}

BOOST_AUTO_TEST_CASE(instant_operations_at_the_same_time_are_concurrent)
{
    const kv_history saw{put(1, "k", "a", 5, 5), get(2, "k", "a", 5, 5)};
    BOOST_TEST((outcome_of(saw) == check_outcome::ok));
    const kv_history missed{put(1, "k", "a", 5, 5), get(2, "k", std::nullopt, 5, 5)};
    BOOST_TEST((outcome_of(missed) == check_outcome::ok));
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(illegal_histories)

BOOST_AUTO_TEST_CASE(stale_read_after_a_completed_write_is_illegal)
{
    const kv_history h{put(1, "k", "a", 0, 10), put(1, "k", "b", 20, 30), get(2, "k", "a", 40, 50)};
    BOOST_TEST((outcome_of(h) == check_outcome::illegal));
}

BOOST_AUTO_TEST_CASE(missing_a_completed_write_is_illegal)
{
    const kv_history h{put(1, "k", "a", 0, 10), get(2, "k", std::nullopt, 20, 30)};
    BOOST_TEST((outcome_of(h) == check_outcome::illegal));
}

BOOST_AUTO_TEST_CASE(get_of_a_value_never_written_is_illegal)
{
    const kv_history h{put(1, "k", "a", 0, 10), get(2, "k", "z", 5, 30)};
    BOOST_TEST((outcome_of(h) == check_outcome::illegal));
}

BOOST_AUTO_TEST_CASE(sequential_gets_cannot_see_the_value_go_backwards)
{
    const kv_history h{put(1, "k", "a", 0, 10), put(1, "k", "b", 20, 100), get(2, "k", "b", 30, 40),
                       get(2, "k", "a", 50, 60)};
    BOOST_TEST((outcome_of(h) == check_outcome::illegal));
}

BOOST_AUTO_TEST_CASE(del_cannot_report_not_found_when_the_key_certainly_existed)
{
    const kv_history h{put(1, "k", "a", 0, 10), del(2, "k", false, 20, 30)};
    BOOST_TEST((outcome_of(h) == check_outcome::illegal));
}

BOOST_AUTO_TEST_CASE(del_cannot_report_found_on_a_key_never_written)
{
    const kv_history h{del(1, "k", true, 0, 10)};
    BOOST_TEST((outcome_of(h) == check_outcome::illegal));
}

BOOST_AUTO_TEST_CASE(concurrent_dels_cannot_both_find_a_key_written_once)
{
    const kv_history h{put(1, "k", "a", 0, 10), del(2, "k", true, 20, 30), del(3, "k", true, 20, 30)};
    BOOST_TEST((outcome_of(h) == check_outcome::illegal));
}

BOOST_AUTO_TEST_CASE(operation_returning_when_another_is_called_precedes_it)
{
    const kv_history h{put(1, "k", "a", 0, 10), get(2, "k", std::nullopt, 10, 20)};
    BOOST_TEST((outcome_of(h) == check_outcome::illegal));
}

BOOST_AUTO_TEST_CASE(instant_operation_follows_a_return_at_its_time)
{
    const kv_history h{put(1, "k", "a", 0, 5), get(2, "k", std::nullopt, 5, 5)};
    BOOST_TEST((outcome_of(h) == check_outcome::illegal));
}

BOOST_AUTO_TEST_CASE(indeterminate_put_cannot_take_effect_before_its_call)
{
    const kv_history h{get(1, "k", "b", 0, 10), indeterminate(put(2, "k", "b", 20, 0))};
    BOOST_TEST((outcome_of(h) == check_outcome::illegal));
}

BOOST_AUTO_TEST_CASE(indeterminate_put_takes_effect_at_most_once)
{
    const kv_history h{indeterminate(put(1, "k", "a", 0, 0)), get(2, "k", "a", 10, 20),
                       put(3, "k", "b", 30, 40), get(2, "k", "a", 50, 60)};
    BOOST_TEST((outcome_of(h) == check_outcome::illegal));
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(reporting)

BOOST_AUTO_TEST_CASE(offending_is_the_longest_prefix_then_the_ops_that_cannot_extend_it)
{
    const kv_history h{put(1, "k", "a", 0, 10), put(1, "k", "b", 20, 30), get(2, "k", "a", 40, 50)};
    const check_result r = check_kv_history(h);
    BOOST_TEST_MESSAGE(r.explanation);
    BOOST_TEST((r.outcome == check_outcome::illegal));
    BOOST_TEST(r.key == "k");
    BOOST_TEST(r.offending == (std::vector<std::size_t>{0, 1, 2}));
    BOOST_TEST(r.explanation.find("#2 client 2: get -> \"a\", call 40, ret 50") != std::string::npos);
    BOOST_TEST(r.explanation.find("the key holds \"b\"") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(only_the_illegal_key_is_reported_among_several)
{
    const kv_history h{
        put(1, "a", "1", 0, 10),  put(2, "b", "1", 0, 10),  put(3, "c", "1", 0, 10),
        get(1, "a", "1", 20, 30), get(2, "b", "1", 20, 30), get(3, "c", "1", 20, 30),
        put(1, "b", "2", 40, 50), get(2, "a", "1", 60, 70), get(3, "b", "1", 60, 70),
        get(1, "c", "1", 60, 70),
    };
    const check_result r = check_kv_history(h);
    BOOST_TEST_MESSAGE(r.explanation);
    BOOST_TEST((r.outcome == check_outcome::illegal));
    BOOST_TEST(r.key == "b");
    BOOST_TEST(contains(r.offending, 8));
    for (std::size_t i : r.offending) {
        BOOST_TEST(h[i].key == "b");
    }
    BOOST_TEST(r.explanation.find("key \"b\"") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(explanation_escapes_unprintable_values)
{
    const kv_history h{put(1, "k\n", "a\"b\x01", 0, 10), get(2, "k\n", std::nullopt, 20, 30)};
    const check_result r = check_kv_history(h);
    BOOST_TEST((r.outcome == check_outcome::illegal));
    BOOST_TEST(r.explanation.find("key \"k\\x0a\"") != std::string::npos);
    BOOST_TEST(r.explanation.find("put \"a\\\"b\\x01\"") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(tiny_budget_on_a_highly_concurrent_history_gives_unknown)
{
    // Everything overlaps, and one get saw a value nobody wrote: proving that needs the
    // whole exponential search space.
    kv_history h;
    for (int i = 0; i < 40; ++i) {
        // Not "v" + std::to_string(i): GCC 12 at -O3 reports a false -Wrestrict on it.
        std::string value = "v";
        value += std::to_string(i);
        h.push_back(put(1, "k", value, 0, 1000));
        h.push_back(get(2, "k", value, 0, 1000));
    }
    h.push_back(get(3, "k", "never written", 0, 1000));
    h.push_back(put(4, "other", "x", 0, 10));

    const auto start = std::chrono::steady_clock::now();
    const check_result r = check_kv_history(h, std::chrono::milliseconds(1));
    const auto elapsed = std::chrono::steady_clock::now() - start;
    BOOST_TEST_MESSAGE(r.explanation);
    BOOST_TEST((r.outcome == check_outcome::unknown));
    BOOST_TEST(r.key == "k");
    BOOST_TEST(r.explanation.find("time budget") != std::string::npos);
    BOOST_TEST(elapsed < std::chrono::seconds(1));
}

BOOST_AUTO_TEST_CASE(illegal_key_is_reported_even_when_another_key_exhausts_the_budget)
{
    kv_history h;
    for (int i = 0; i < 40; ++i) {
        // Not "v" + std::to_string(i): GCC 12 at -O3 reports a false -Wrestrict on it.
        std::string value = "v";
        value += std::to_string(i);
        h.push_back(put(1, "k", value, 0, 1000));
        h.push_back(get(2, "k", value, 0, 1000));
    }
    h.push_back(get(3, "k", "never written", 0, 1000));
    h.push_back(put(4, "other", "x", 0, 10));
    h.push_back(get(4, "other", std::nullopt, 20, 30));

    const check_result r = check_kv_history(h, std::chrono::milliseconds(1));
    BOOST_TEST((r.outcome == check_outcome::illegal));
    BOOST_TEST(r.key == "other");
    BOOST_TEST(r.offending == (std::vector<std::size_t>{81, 82}));
}

BOOST_AUTO_TEST_SUITE_END()

namespace {

struct random_history_shape {
    std::size_t ops = 2000;
    std::size_t keys = 8;
    /// Calls and returns are at most this far from the true linearization point, which
    /// are 10 apart.
    std::uint64_t window = 100;
    /// Chance in percent that a put or del is indeterminate, or that a get is.
    int indeterminate_percent = 5;
};

/// A history that is linearizable by construction: operations run one at a time against
/// a real map, at times 10 apart, then their call and return are moved a random distance
/// away from that instant. Some puts and dels are indeterminate, having taken effect or not.
kv_history random_linearizable_history(std::uint64_t seed, const random_history_shape& shape)
{
    std::mt19937_64 rng(seed);
    const auto uniform = [&rng](std::uint64_t n) {
        return std::uniform_int_distribution<std::uint64_t>(0, n - 1)(rng);
    };
    std::map<std::string, std::string> model;
    kv_history h;
    for (std::size_t i = 0; i < shape.ops; ++i) {
        const std::uint64_t at = 1000 + 10 * i;
        kv_op op = make_op(uniform(16), kv_op_kind::get, "k" + std::to_string(uniform(shape.keys)),
                           at - uniform(shape.window + 1), at + uniform(shape.window + 1));
        const bool lost = uniform(100) < static_cast<std::uint64_t>(shape.indeterminate_percent);
        const bool took_effect = !lost || uniform(2) == 0;
        const auto it = model.find(op.key);
        switch (uniform(5)) {
        case 0:
        case 1:
            op.kind = kv_op_kind::get;
            op.found = it != model.end();
            op.result = op.found ? it->second : "";
            break;
        case 2:
        case 3:
            op.kind = kv_op_kind::put;
            op.value = uniform(4) == 0 ? "shared" + std::to_string(uniform(3)) : "v" + std::to_string(i);
            if (took_effect) {
                model[op.key] = op.value;
            }
            break;
        default:
            op.kind = kv_op_kind::del;
            op.found = it != model.end();
            if (took_effect && op.found) {
                model.erase(it);
            }
            break;
        }
        h.push_back(lost ? indeterminate(op) : op);
    }
    return h;
}

check_result timed_check(const kv_history& h, const char* what)
{
    const auto start = std::chrono::steady_clock::now();
    check_result r = check_kv_history(h);
    const auto us =
        std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - start);
    BOOST_TEST_MESSAGE(what << ": " << h.size() << " ops checked in " << us.count() << " us");
    return r;
}

const random_history_shape shapes[] = {
    {.ops = 2000, .keys = 8, .window = 100, .indeterminate_percent = 5},
    {.ops = 2000, .keys = 5, .window = 200, .indeterminate_percent = 5},
    {.ops = 2000, .keys = 10, .window = 50, .indeterminate_percent = 0},
    {.ops = 1000, .keys = 3, .window = 150, .indeterminate_percent = 10},
};

/// Whether `p` must take effect before `o`, by the time conventions of check_kv_history.
bool precedes(const kv_op& p, const kv_op& o)
{
    if (p.indeterminate) {
        return false;
    }
    const bool p_instant = p.ret <= p.call;
    const bool o_instant = !o.indeterminate && o.ret <= o.call;
    const std::uint64_t p_ret = std::max(p.ret, p.call);
    return p_ret < o.call || (p_ret == o.call && !(p_instant && o_instant));
}

/// Linearizability by trying every order: the reference the checker must agree with.
bool linearizable_by_brute_force(const kv_history& h, std::vector<bool>& done,
                                 std::map<std::string, std::string>& state)
{
    bool only_indeterminate_left = true;
    for (std::size_t i = 0; i < h.size(); ++i) {
        only_indeterminate_left = only_indeterminate_left && (done[i] || h[i].indeterminate);
    }
    if (only_indeterminate_left) {
        return true;
    }
    for (std::size_t i = 0; i < h.size(); ++i) {
        bool minimal = !done[i];
        for (std::size_t j = 0; minimal && j < h.size(); ++j) {
            minimal = done[j] || j == i || !precedes(h[j], h[i]);
        }
        if (!minimal) {
            continue;
        }
        const kv_op& op = h[i];
        const auto it = state.find(op.key);
        const bool present = it != state.end();
        const std::map<std::string, std::string> before = state;
        if (op.kind == kv_op_kind::get &&
            !(op.indeterminate || (op.found ? present && it->second == op.result : !present))) {
            continue;
        }
        if (op.kind == kv_op_kind::del && !op.indeterminate && op.found != present) {
            continue;
        }
        if (op.kind == kv_op_kind::put) {
            state[op.key] = op.value;
        } else if (op.kind == kv_op_kind::del) {
            state.erase(op.key);
        }
        done[i] = true;
        const bool ok = linearizable_by_brute_force(h, done, state);
        done[i] = false;
        state = before;
        if (ok) {
            return true;
        }
    }
    return false;
}

kv_history random_small_history(std::mt19937_64& rng)
{
    const auto uniform = [&rng](std::uint64_t n) {
        return std::uniform_int_distribution<std::uint64_t>(0, n - 1)(rng);
    };
    const char* values[] = {"a", "b", "c"};
    kv_history h;
    const std::size_t n = 1 + uniform(8);
    for (std::size_t i = 0; i < n; ++i) {
        const std::uint64_t call = uniform(10);
        kv_op op = make_op(uniform(3), kv_op_kind::get, uniform(4) == 0 ? "y" : "x", call, call + uniform(5));
        op.kind = static_cast<kv_op_kind>(uniform(3));
        op.found = uniform(2) == 0;
        op.result = op.found ? values[uniform(3)] : "";
        op.value = values[uniform(3)];
        h.push_back(uniform(5) == 0 ? indeterminate(op) : op);
    }
    return h;
}

} // namespace

BOOST_AUTO_TEST_SUITE(randomized)

BOOST_AUTO_TEST_CASE(history_with_windows_around_true_linearization_points_is_linearizable)
{
    for (std::uint64_t seed = 1; seed <= 5; ++seed) {
        for (const random_history_shape& shape : shapes) {
            BOOST_TEST_CONTEXT("seed " << seed << ", keys " << shape.keys << ", window " << shape.window)
            {
                const kv_history h = random_linearizable_history(seed, shape);
                const check_result r = timed_check(h, "linearizable");
                BOOST_TEST_INFO(r.explanation);
                BOOST_TEST((r.outcome == check_outcome::ok));
            }
        }
    }
}

BOOST_AUTO_TEST_CASE(corrupting_one_read_of_a_linearizable_history_makes_it_illegal)
{
    for (std::uint64_t seed = 1; seed <= 5; ++seed) {
        for (const random_history_shape& shape : shapes) {
            BOOST_TEST_CONTEXT("seed " << seed << ", keys " << shape.keys << ", window " << shape.window)
            {
                kv_history h = random_linearizable_history(seed, shape);
                std::size_t victim = h.size() / 2;
                while (h[victim].kind != kv_op_kind::get || h[victim].indeterminate) {
                    ++victim;
                }
                h[victim].found = true;
                h[victim].result = "corrupt";
                const check_result r = timed_check(h, "corrupted");
                BOOST_TEST_INFO(r.explanation);
                BOOST_TEST((r.outcome == check_outcome::illegal));
                BOOST_TEST(r.key == h[victim].key);
                BOOST_TEST(contains(r.offending, victim));
            }
        }
    }
}

BOOST_AUTO_TEST_CASE(agrees_with_brute_force_on_small_random_histories)
{
    std::mt19937_64 rng(42);
    std::size_t illegal = 0;
    for (int round = 0; round < 10000; ++round) {
        const kv_history h = random_small_history(rng);
        std::vector<bool> done(h.size(), false);
        std::map<std::string, std::string> state;
        const bool expected = linearizable_by_brute_force(h, done, state);
        const check_result r = check_kv_history(h);
        BOOST_TEST_INFO("round " << round << "\n" << r.explanation);
        BOOST_TEST((r.outcome == (expected ? check_outcome::ok : check_outcome::illegal)));
        illegal += expected ? 0 : 1;
    }
    BOOST_TEST_MESSAGE(illegal << " of 10000 small random histories are illegal");
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(create_only_puts)

BOOST_AUTO_TEST_CASE(one_of_two_racing_creates_wins)
{
    const kv_history h{
        create(1, "k", "a", false, 0, 10),
        create(2, "k", "b", true, 1, 9),
        get(3, "k", "a", 11, 12),
    };
    BOOST_TEST((outcome_of(h) == check_outcome::ok));
}

BOOST_AUTO_TEST_CASE(two_creates_that_both_win_without_a_delete_between_are_illegal)
{
    const kv_history h{
        create(1, "k", "a", false, 0, 10),
        create(2, "k", "b", false, 1, 9),
    };
    BOOST_TEST((outcome_of(h) == check_outcome::illegal));
    const kv_history with_delete{
        create(1, "k", "a", false, 0, 2),
        del(3, "k", true, 3, 4),
        create(2, "k", "b", false, 5, 6),
    };
    BOOST_TEST((outcome_of(with_delete) == check_outcome::ok));
}

BOOST_AUTO_TEST_CASE(a_create_that_failed_on_an_absent_key_is_illegal)
{
    const kv_history h{create(1, "k", "a", true, 0, 1)};
    BOOST_TEST((outcome_of(h) == check_outcome::illegal));
}

BOOST_AUTO_TEST_CASE(an_indeterminate_create_may_or_may_not_have_won)
{
    const kv_history won{
        indeterminate(create(1, "k", "a", false, 0, 1)),
        create(2, "k", "b", true, 5, 6),
        get(3, "k", "a", 7, 8),
    };
    BOOST_TEST((outcome_of(won) == check_outcome::ok));
    const kv_history never{
        indeterminate(create(1, "k", "a", false, 0, 1)),
        create(2, "k", "b", false, 5, 6),
        get(3, "k", "b", 7, 8),
    };
    BOOST_TEST((outcome_of(never) == check_outcome::ok));
}

BOOST_AUTO_TEST_SUITE_END()
