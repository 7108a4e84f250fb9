#include <raftkv/sim/sweep.hpp>

#define BOOST_TEST_MODULE sim_sweep
#include <boost/test/unit_test.hpp>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

// Random fault scenarios, one per seed: clients, partitions, crashes and restarts, lossy
// and duplicating links, lagging syncs; then heal, settle and check invariants, durability
// of acknowledged writes and linearizability.
//
// By default 500 seeds from 1. Environment overrides:
//   RAFTKV_SEED=<n>         replay one seed (what a failure report prints)
//   RAFTKV_SEEDS=<count>    run more seeds, e.g. RAFTKV_SEEDS=20000 for a long sweep
//   RAFTKV_FIRST_SEED=<n>   start somewhere else

using namespace raftkv::sim;

BOOST_AUTO_TEST_CASE(random_fault_scenarios_keep_raft_safe_and_linearizable)
{
    const std::vector<std::uint64_t> seeds = seeds_from_env(1, 500);
    std::size_t failed = 0, inconclusive = 0, operations = 0, installs = 0;
    const auto start = std::chrono::steady_clock::now();
    for (std::uint64_t seed : seeds) {
        const scenario_result r = run_random_scenario(seed);
        operations += r.operations;
        installs += r.snapshots_installed;
        if (!r.passed) {
            ++failed;
            BOOST_ERROR(r.report);
        } else if (r.inconclusive) {
            ++inconclusive;
            BOOST_TEST_MESSAGE(r.report);
        }
    }
    const auto seconds =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start)
            .count() /
        1000.0;
    BOOST_TEST_MESSAGE(seeds.size() << " seeds, " << operations << " client operations, " << installs
                                    << " snapshots installed, " << failed << " failed, " << inconclusive
                                    << " inconclusive, in " << seconds << " s");
}

// The same, with membership changes among the faults: learners added and promoted, voters
// added, removed (the leader too) and replaced through joint configurations, while nodes
// crash, partitions form, disks stall and new members catch up from snapshots. Fewer seeds
// by default (RAFTKV_MEMBERSHIP_SEEDS overrides; RAFTKV_SEED replays one here too).
BOOST_AUTO_TEST_CASE(random_membership_changes_under_faults_keep_raft_safe_and_linearizable)
{
    std::vector<std::uint64_t> seeds = seeds_from_env(1, 150);
    if (const char* n = std::getenv("RAFTKV_MEMBERSHIP_SEEDS"); n && !std::getenv("RAFTKV_SEED"))
        seeds = seeds_from_env(1, std::strtoull(n, nullptr, 10));
    scenario_params params;
    params.membership_changes = true;
    // Joint replacements are off until the core bug below is fixed (RAFTKV_JOINT=1 turns
    // them on): see the disabled test case after this one.
    params.faults.joint_changes = std::getenv("RAFTKV_JOINT") != nullptr;
    std::size_t failed = 0, inconclusive = 0, operations = 0, installs = 0;
    const auto start = std::chrono::steady_clock::now();
    for (std::uint64_t seed : seeds) {
        const scenario_result r = run_random_scenario(seed, params);
        operations += r.operations;
        installs += r.snapshots_installed;
        if (!r.passed) {
            ++failed;
            BOOST_ERROR(r.report);
        } else if (r.inconclusive) {
            ++inconclusive;
            BOOST_TEST_MESSAGE(r.report);
        }
    }
    const auto seconds =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start)
            .count() /
        1000.0;
    BOOST_TEST_MESSAGE(seeds.size() << " seeds with membership changes, " << operations
                                    << " client operations, " << installs << " snapshots installed, "
                                    << failed << " failed, " << inconclusive << " inconclusive, in "
                                    << seconds << " s");
}

// CORE BUG REPRO (disabled until include/raftkv/impl is fixed): with joint replacements in
// the membership sweep, seeds 11, 32, 41, 50, 70, 75, 82, 115, 120 (of 1..150) fail under
// ASan/UBSan with a heap-use-after-free (or division by zero) in
// detail::inflight_window::add(), from basic_node::handle_append_response()
// (impl/replication.hpp): it holds `p = progress_of(m.from)`, calls maybe_commit(), which
// on committing a joint configuration runs complete_config_change() -> append_config() ->
// note_appended() -> config_changed(), which erases the removed members from `peers_`
// and pushes the new ones, invalidating `p`; then maybe_send_timeout_now(*p) and
// send_append(*p, ...) use the dangling progress. Replay:
//   RAFTKV_JOINT=1 RAFTKV_SEED=11 ./test/sim/sim_sweep_test
//     --run_test=random_membership_changes_under_faults_keep_raft_safe_and_linearizable
BOOST_AUTO_TEST_CASE(joint_replacement_core_bug_repro, *boost::unit_test::disabled())
{
    scenario_params params;
    params.membership_changes = true;
    params.faults.joint_changes = true;
    for (std::uint64_t seed : {11, 32, 41}) {
        const scenario_result r = run_random_scenario(seed, params);
        BOOST_TEST(r.passed, r.report);
    }
}

namespace {

// A machine of the kind users write: a running sum of the commands' lengths, whose
// snapshot lives on a disk that survives the node's crashes. With `forgetful`, it comes
// back from a crash claiming its snapshot's index but with its sum lost: the bug the
// restart check exists to catch.
struct sum_machine {
    struct disk {
        raftkv::index_t index = 0;
        std::uint64_t sum = 0;
    };
    class snapshot_reader {
    public:
        snapshot_reader(raftkv::index_t index, std::uint64_t sum) : index_(index), sum_(sum) {}
        raftkv::index_t index() const { return index_; }
        bool read(std::string& out, std::size_t)
        {
            out = std::to_string(sum_);
            return true;
        }

    private:
        raftkv::index_t index_;
        std::uint64_t sum_;
    };
    using result_type = std::uint64_t;

    sum_machine(std::shared_ptr<disk> d, bool forgetful)
        : disk_(std::move(d)), applied_(disk_->index), sum_(forgetful ? 0 : disk_->sum)
    {
    }
    void apply(std::span<const raftkv::log_entry> batch, std::span<std::uint64_t> results)
    {
        for (std::size_t k = 0; k < batch.size(); ++k) {
            sum_ += batch[k].data.size();
            results[k] = sum_;
            applied_ = batch[k].index;
        }
    }
    raftkv::index_t applied_index() const { return applied_; }
    raftkv::index_t snapshot_index() const { return disk_->index; }
    void take_snapshot() { *disk_ = {applied_, sum_}; }
    snapshot_reader snapshot() const { return {applied_, sum_}; }
    void begin_restore(const raftkv::snapshot_meta& meta)
    {
        restoring_index_ = meta.index;
        restoring_.clear();
    }
    void restore_chunk(std::string_view data) { restoring_ += data; }
    void finish_restore()
    {
        applied_ = restoring_index_;
        sum_ = std::stoull(restoring_);
        take_snapshot();
    }
    void abort_restore() { restoring_.clear(); }

    std::shared_ptr<disk> disk_;
    raftkv::index_t applied_ = 0;
    std::uint64_t sum_ = 0;
    raftkv::index_t restoring_index_ = 0;
    std::string restoring_;
};

machine_scenario<sum_machine> sum_scenario(bool forgetful)
{
    auto disks = std::make_shared<std::map<raftkv::node_id, std::shared_ptr<sum_machine::disk>>>();
    return {.command = [](random_generator& rng) { return std::string(rng.uniform(1, 9), 'x'); },
            .same_state = [](const sum_machine& a, const sum_machine& b) { return a.sum_ == b.sum_; },
            .factory =
                [disks, forgetful](raftkv::node_id id) {
                    auto& d = (*disks)[id];
                    if (!d)
                        d = std::make_shared<sum_machine::disk>();
                    return std::make_unique<sum_machine>(d, forgetful);
                }};
}

} // namespace

BOOST_AUTO_TEST_CASE(a_machine_of_your_own_runs_the_random_scenarios)
{
    for (std::uint64_t seed : seeds_from_env(1, 50)) {
        const scenario_result r = run_machine_scenario(seed, sum_scenario(false));
        BOOST_TEST(r.passed, r.report);
    }
}

BOOST_AUTO_TEST_CASE(a_machine_that_loses_its_state_on_restart_fails_the_random_scenarios)
{
    std::size_t failed = 0;
    for (std::uint64_t seed = 1; seed <= 20; ++seed) {
        const scenario_result r = run_machine_scenario(seed, sum_scenario(true));
        if (!r.passed) {
            ++failed;
            BOOST_TEST(r.report.find("differs") != std::string::npos, r.report);
        }
    }
    BOOST_TEST(failed > 0u);
}
