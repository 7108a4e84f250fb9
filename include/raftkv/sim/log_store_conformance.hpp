#ifndef RAFTKV_SIM_LOG_STORE_CONFORMANCE_HPP
#define RAFTKV_SIM_LOG_STORE_CONFORMANCE_HPP

// A conformance test for `raftkv::log_store` models, to run from any test framework:
// it exercises appends, truncation, durability, compaction and snapshot installs (with
// the configurations they record), and reopens the store between steps to check what
// survives. It throws log_store_conformance_failure naming the step and what differed.

#include <raftkv/concepts.hpp>
#include <raftkv/types.hpp>

#include <cstddef>
#include <functional>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

namespace raftkv::sim {

class log_store_conformance_failure : public std::logic_error {
public:
    using std::logic_error::logic_error;
};

/// How the conformance test reaches the store under test.
template <log_store Store>
struct log_store_conformance_options {
    /// Returns the store over the test's storage. The first call gets a new, empty store;
    /// each later call either returns the same object (a volatile store) or closes the
    /// previous one and opens the same storage again (a persistent store), so the test
    /// can check that what must be durable survives.
    std::function<Store&()> open;
    /// Makes every appended entry durable, for stores that sync in the background; leave
    /// it empty for stores that are durable when append returns.
    std::function<void(Store&)> sync;
};

namespace detail {

inline std::vector<log_entry> conformance_entries(index_t first, std::vector<term_t> terms)
{
    std::vector<log_entry> out;
    for (std::size_t k = 0; k < terms.size(); ++k) {
        const index_t i = first + k;
        out.push_back(
            log_entry{terms[k], i, k % 3 == 2 ? entry_type::noop : entry_type::normal,
                      k % 3 == 2 ? std::string() : "e" + std::to_string(i) + std::string(k % 5, '\0')});
    }
    return out;
}

/// A configuration for the conformance test, with every part of a membership set.
inline membership conformance_members(node_id first, bool joint)
{
    membership m;
    m.voters = {first, first + 1, first + 2};
    if (joint)
        m.outgoing = {first, first + 1, first + 3};
    m.learners = {first + 4};
    m.info = {{first, "host-" + std::to_string(first) + ":7000"}, {first + 4, std::string("\0\xff", 2)}};
    return m;
}

template <log_store Store>
class log_store_conformance {
public:
    explicit log_store_conformance(const log_store_conformance_options<Store>& o) : o_(o) {}

    void run()
    {
        step_ = "a new store";
        Store* s = &o_.open();
        expect(s->first_index() == 1 && s->last_index() == 0, "is empty, first index 1");
        expect(s->durable_index() == 0, "has durable index 0");
        expect(s->term_at(0) == 0, "has term 0 at index 0");
        expect(s->saved_hard_state() == hard_state{}, "has an empty hard state");
        expect(s->base_members() == membership{}, "has an empty base configuration");

        // How a node records the configuration a new cluster starts with.
        step_ = "install_snapshot at index 0 on a new store";
        const membership bootstrap = conformance_members(1, false);
        s->install_snapshot(snapshot_meta{.index = 0, .term = 0, .members = bootstrap});
        expect_snapshot_start(*s, 0, 0);
        expect(s->base_members() == bootstrap, "has the snapshot's configuration as its base configuration");
        s = &o_.open();
        expect_snapshot_start(*s, 0, 0);
        expect(s->base_members() == bootstrap, "keeps the base configuration across a reopen");

        step_ = "save_hard_state";
        s->save_hard_state(hard_state{3, 2});
        s = &o_.open();
        expect(s->saved_hard_state() == (hard_state{3, 2}), "keeps the saved hard state across a reopen");
        expect(s->base_members() == bootstrap, "keeps the base configuration across a reopen");

        step_ = "append";
        append(*s, conformance_entries(1, {1, 1, 2, 2, 3, 3}));
        expect_log(*s, 1, conformance_entries(1, {1, 1, 2, 2, 3, 3}));
        make_durable(*s);
        expect(s->durable_index() == 6, "is durable up to 6 after a sync");
        s = &o_.open();
        expect_log(*s, 1, conformance_entries(1, {1, 1, 2, 2, 3, 3}));
        expect(s->saved_hard_state() == (hard_state{3, 2}), "keeps the hard state after appends");
        expect(s->base_members() == bootstrap, "keeps the base configuration after appends");

        step_ = "entries(lo, hi, max_bytes)";
        expect(s->entries(2, 5, 0).size() == 1, "returns one entry when max_bytes is 0");
        expect(s->entries(1, 7, std::numeric_limits<std::size_t>::max()).size() == 6, "returns [lo, hi)");
        expect(s->entries(1, 7, 6).size() < 6, "stops before max_bytes is exceeded");

        step_ = "a truncating append";
        append(*s, conformance_entries(4, {4, 4}));
        expect(s->durable_index() <= 3 || s->durable_index() == s->last_index(),
               "lowers durable_index to before the replaced entries (or is durable on append)");
        std::vector<log_entry> expected = conformance_entries(1, {1, 1, 2});
        for (const log_entry& e : conformance_entries(4, {4, 4}))
            expected.push_back(e);
        expect_log(*s, 1, expected);
        make_durable(*s);
        s = &o_.open();
        expect_log(*s, 1, expected);

        step_ = "compact";
        const membership joint = conformance_members(10, true);
        s->compact(2, joint);
        expect(s->first_index() == 3 && s->term_at(2) == 1, "starts at 3 with the term of entry 2 kept");
        expect(s->base_members() == joint, "has the compaction's configuration as its base configuration");
        expect_log(*s, 3, {expected.begin() + 2, expected.end()});
        s->compact(1, conformance_members(20, false)); // below the start: nothing to do
        expect(s->first_index() == 3, "ignores a compaction below its start");
        expect(s->base_members() == joint, "keeps its base configuration on a compaction below its start");
        s = &o_.open();
        expect(s->first_index() == 3 && s->term_at(2) == 1, "keeps its start across a reopen");
        expect(s->base_members() == joint, "keeps its base configuration across a reopen");
        expect_log(*s, 3, {expected.begin() + 2, expected.end()});
        append(*s, conformance_entries(3, {5}));
        expect_log(*s, 3, conformance_entries(3, {5}));
        expect(s->term_at(2) == 1, "keeps the snapshot term after a truncation at its first index");
        expect(s->base_members() == joint,
               "keeps its base configuration after a truncation at its first index");
        make_durable(*s);
        s->compact(3, membership{});
        expect(s->first_index() == 4 && s->last_index() == 3 && s->term_at(3) == 5, "can compact everything");
        expect(s->base_members() == membership{}, "takes an empty configuration from a compaction");
        append(*s, conformance_entries(4, {5, 5}));
        make_durable(*s);
        s = &o_.open();
        expect_log(*s, 4, conformance_entries(4, {5, 5}));
        expect(s->base_members() == membership{}, "keeps an empty base configuration across a reopen");
        membership single;
        single.voters = {7};
        s->compact(4, single);
        expect(s->base_members() == single, "has the last compaction's configuration");
        s = &o_.open();
        const std::vector<log_entry> tail = conformance_entries(4, {5, 5});
        expect_log(*s, 5, {tail.begin() + 1, tail.end()});
        expect(s->base_members() == single, "keeps the last compaction's configuration across a reopen");

        step_ = "install_snapshot past the log";
        const membership past = conformance_members(30, false);
        s->install_snapshot(snapshot_meta{.index = 20, .term = 7, .members = past});
        expect_snapshot_start(*s, 20, 7);
        expect(s->base_members() == past, "has the snapshot's configuration as its base configuration");
        s = &o_.open();
        expect_snapshot_start(*s, 20, 7);
        expect(s->base_members() == past, "keeps the snapshot's configuration across a reopen");
        append(*s, conformance_entries(21, {7, 8}));
        make_durable(*s);
        s = &o_.open();
        expect_log(*s, 21, conformance_entries(21, {7, 8}));
        expect(s->base_members() == past, "keeps the snapshot's configuration after appends");

        step_ = "install_snapshot inside the log";
        const membership inside = conformance_members(40, true);
        s->install_snapshot(snapshot_meta{.index = 21, .term = 7, .members = inside});
        expect_snapshot_start(*s, 21, 7);
        expect(s->base_members() == inside, "has the snapshot's configuration as its base configuration");

        step_ = "install_snapshot before the log";
        s->install_snapshot(snapshot_meta{.index = 5, .term = 2, .members = {}});
        expect_snapshot_start(*s, 5, 2);
        expect(s->base_members() == membership{}, "takes an empty configuration from a snapshot");
        s = &o_.open();
        expect_snapshot_start(*s, 5, 2);
        expect(s->base_members() == membership{}, "keeps an empty base configuration across a reopen");
        expect(s->saved_hard_state() == (hard_state{3, 2}), "keeps the hard state through snapshot installs");
    }

private:
    void append(Store& s, const std::vector<log_entry>& es) { s.append(std::span<const log_entry>(es)); }

    void make_durable(Store& s)
    {
        if (o_.sync)
            o_.sync(s);
        expect(s.durable_index() == s.last_index(), "is durable up to its last index after a sync");
    }

    void expect_log(const Store& s, index_t first, const std::vector<log_entry>& es)
    {
        expect(s.first_index() == first, "starts at index " + std::to_string(first) + " (it starts at " +
                                             std::to_string(s.first_index()) + ")");
        expect(s.last_index() == first + es.size() - 1,
               "ends at index " + std::to_string(first + es.size() - 1) + " (it ends at " +
                   std::to_string(s.last_index()) + ")");
        for (const log_entry& e : es)
            expect(s.term_at(e.index) == e.term,
                   "has term " + std::to_string(e.term) + " at " + std::to_string(e.index));
        if (!es.empty())
            expect(s.entries(first, first + es.size(), std::numeric_limits<std::size_t>::max()) == es,
                   "returns the entries appended, with their types and data");
    }

    void expect_snapshot_start(const Store& s, index_t index, term_t term)
    {
        expect(s.first_index() == index + 1 && s.last_index() == index,
               "holds no entry and starts after index " + std::to_string(index));
        expect(s.term_at(index) == term, "has the snapshot's term at its index");
        expect(s.durable_index() == index, "is durable up to the snapshot");
    }

    void expect(bool ok, const std::string& what)
    {
        if (!ok)
            throw log_store_conformance_failure("log store conformance: after " + step_ + ", the store " +
                                                what);
    }

    const log_store_conformance_options<Store>& o_;
    std::string step_;
};

} // namespace detail

/// Runs the conformance test on the store `options.open` gives. Throws
/// log_store_conformance_failure on the first property that does not hold (and whatever
/// the store itself throws).
template <log_store Store>
void check_log_store_conformance(const log_store_conformance_options<Store>& options)
{
    detail::log_store_conformance<Store>(options).run();
}

} // namespace raftkv::sim

#endif
