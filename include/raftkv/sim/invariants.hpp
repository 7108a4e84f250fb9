#ifndef RAFTKV_SIM_INVARIANTS_HPP
#define RAFTKV_SIM_INVARIANTS_HPP

// Raft's safety properties (Raft paper, Figure 3), checked on the simulator's nodes after
// every step: election safety, log matching, leader completeness, state machine safety,
// plus the monotonicity of terms and commit indexes, and the rules of configuration
// changes (a leader is a voter, one change at a time, each node's configuration follows its
// log, commits need a quorum of the configuration in force).

#include <raftkv/detail/quorum.hpp>
#include <raftkv/membership.hpp>
#include <raftkv/sim/detail/format.hpp>
#include <raftkv/sim/detail/hash.hpp>
#include <raftkv/types.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace raftkv::sim {

/// Thrown when a Raft safety property does not hold. The message names the property,
/// the nodes, the term and the index involved.
class invariant_violation : public std::logic_error {
public:
    using std::logic_error::logic_error;
};

/// What the checker reads of a node after a step.
struct node_view {
    node_id id = no_node;
    raftkv::role role = role::follower;
    term_t term = 0;
    index_t commit = 0;
    index_t applied = 0;
    /// The configuration in force on the node (basic_node::members()) and the index it comes
    /// from (members_index()); without it the configuration checks are skipped.
    const membership* members = nullptr;
    index_t members_index = 0;
};

/** Checks Raft's safety properties incrementally, over all nodes and all time.

    The driver tells the checker when a node starts (`on_start`), what it applies
    (`on_applied`), and after every step shows it each live node (`check`) with the
    lowest log index that changed since the previous check. Each check costs time in
    proportion to what changed, not to the length of the logs.

    - election safety: at most one leader per term, ever;
    - log matching: two entries with the same index and term have identical logs up to
      them, on every node and at every time (a fingerprint of each log prefix is kept);
    - leader completeness: a node that becomes leader of term T holds every entry that
      was known committed in a term before T;
    - state machine safety: no two nodes ever apply different entries at one index, and
      every node commits the same entries;
    - terms never decrease on a node; commit and applied indexes never decrease within
      one incarnation of a node, commit stays within the log and applied within commit;
    - configurations (when the view carries one): the configuration in force on a node is
      that of the last config entry in its log, or its store's base_members() at the log's
      start; no log holds two config entries above the highest index known committed (one
      change at a time); a node is a voter of its configuration when it is first seen
      leading a term (or of the one before, which the one in force removed it from), and
      a leader that no longer is one (it removed itself) has not yet committed that
      configuration; and (check_commit_quorum(), which the driver calls with
      every node's store) an index first seen committed is held durably by a quorum of the
      configuration in force on the node that committed it (joint-aware).

    @par Thread Safety
    Distinct objects: safe. Shared objects: unsafe.
*/
class invariant_checker {
public:
    /// A node starts, first or after a crash, with its state machine at `applied`.
    void on_start(node_id id, index_t applied)
    {
        node_record& r = nodes_[id];
        r.commit = applied;
        r.applied = applied;
        r.leader_term_checked = 0;
    }

    /// Node `id` applied the entry at `index` that its apply handler reports with `term`;
    /// `entry` is what its log holds there, if anything. An entry the node compacted
    /// away before reporting it (`compacted`) is checked against the committed log's
    /// term alone. A violation found here is thrown by the next `check`, so that it
    /// never unwinds through the node.
    void on_applied(node_id id, index_t index, term_t term, const log_entry* entry, bool compacted = false)
    {
        if (pending_)
            return;
        node_record& r = nodes_[id];
        if (index != r.applied + 1)
            return fail("apply order: node " + std::to_string(id) + " applied index " +
                        std::to_string(index) + " after index " + std::to_string(r.applied));
        r.applied = index;
        if (compacted) {
            unverified_.push_back(applied_entry{term, index, id}); // once the commit is recorded
            return;
        }
        if (!entry || entry->term != term || entry->index != index)
            return fail("apply: node " + std::to_string(id) + " applied index " + std::to_string(index) +
                        " in term " + std::to_string(term) + " but its log holds " +
                        (entry ? "term " + std::to_string(entry->term) : std::string("no entry")) + " there");
        record_applied(id, index, term, detail::hash_bytes(entry->data));
    }

    /// Node `id` replaced its state machine with a snapshot of the state up to `index`.
    void on_restored(node_id id, index_t index)
    {
        if (pending_)
            return;
        node_record& r = nodes_[id];
        if (index > committed_.size())
            return fail("snapshot: node " + std::to_string(id) + " restored a snapshot up to index " +
                        std::to_string(index) + ", beyond the highest index known committed (" +
                        std::to_string(committed_.size()) + ")");
        if (index < r.applied)
            return fail("snapshot: node " + std::to_string(id) + " restored a snapshot up to index " +
                        std::to_string(index) + " after applying index " + std::to_string(r.applied));
        r.applied = index;
    }

    /// Checks node `v` whose log is `store`, of which entries from `changed_from` on may
    /// have changed since its previous check (anything above last_index() is fine).
    /// Throws invariant_violation when a property does not hold.
    template <class LogStore>
    void check(const node_view& v, const LogStore& store, index_t changed_from)
    {
        if (pending_)
            throw invariant_violation(*pending_);
        node_record& r = nodes_[v.id];
        if (v.term < r.term)
            violation("term monotonicity: node " + name(v) + " went back from term " +
                      std::to_string(r.term));
        r.term = v.term;
        update_log(v, r, store, changed_from);
        check_commit(v, r, store.last_index());
        if (v.members)
            check_config_in_force(v, r, store);
        if (v.role == role::leader)
            check_leader(v, r, store);
        record_commit(v, r);
        if (v.members)
            check_one_change(v, r);
        verify_compacted_applies();
    }

    /// Checks that `index`, just seen committed for the first time on node `by` whose
    /// configuration in force is `m`, is held by a quorum of `m` (a majority of its voters
    /// and, during a joint change, of its outgoing voters). `holds(id)` says whether node
    /// `id`'s store holds the committed entry at `index` durably (or a snapshot past it).
    /// Throws invariant_violation when it is not.
    template <class Holds>
    void check_commit_quorum(node_id by, const membership& m, index_t index, Holds&& holds)
    {
        if (pending_)
            throw invariant_violation(*pending_);
        if (m.voters.empty())
            violation("commit quorum: node " + std::to_string(by) + " committed index " +
                      std::to_string(index) + " under a configuration without voters");
        const std::uint64_t q = raftkv::detail::joint_value(
            m, [&](node_id id) -> std::uint64_t { return holds(id) ? 1 : 0; }, scratch_);
        if (q == 0)
            violation("commit quorum: node " + std::to_string(by) + " committed index " +
                      std::to_string(index) + " (term " + std::to_string(committed_[index - 1].entry_term) +
                      ") which no quorum of its configuration " + describe(m) + " holds durably");
    }

    /// "voters {1,2,3} outgoing {..} learners {..}", for messages.
    static std::string describe(const membership& m)
    {
        const auto list = [](const std::vector<node_id>& ids) { return detail::id_list(ids); };
        std::string s = "voters " + list(m.voters);
        if (m.joint())
            s += " outgoing " + list(m.outgoing);
        if (!m.learners.empty())
            s += " learners " + list(m.learners);
        return s;
    }

    /// The leader of each term that had one, as observed.
    const std::map<term_t, node_id>& leaders() const noexcept { return leaders_; }

    /// The highest index known committed by any node.
    index_t committed_index() const noexcept { return committed_.size(); }

    /// The term of the committed entry at `index`, if known committed.
    std::optional<term_t> committed_term(index_t index) const
    {
        if (index == 0 || index > committed_.size())
            return std::nullopt;
        return committed_[index - 1].entry_term;
    }

private:
    struct log_position {
        term_t term = 0;
        std::uint64_t prefix = 0;
    };
    struct node_record {
        /// log[i - 1] is the term of entry i and the fingerprint of entries 1..i.
        std::vector<log_position> log;
        term_t term = 0;
        index_t commit = 0;
        index_t applied = 0;
        term_t leader_term_checked = 0;
        /// The config entries of the retained log, in index order.
        std::vector<std::pair<index_t, membership>> configs;
    };
    struct committed_entry {
        term_t entry_term = 0;
        std::uint64_t prefix = 0;
        /// The term of the node that first saw it committed: leaders of later terms must hold it.
        term_t commit_term = 0;
    };
    struct applied_entry {
        term_t term = 0;
        std::uint64_t data = 0;
        node_id by = no_node;
    };
    struct entry_key {
        index_t index;
        term_t term;
        friend bool operator==(const entry_key&, const entry_key&) = default;
    };
    struct entry_key_hash {
        std::size_t operator()(const entry_key& k) const noexcept
        {
            return static_cast<std::size_t>(detail::hash_combine(k.index, k.term));
        }
    };
    struct fingerprint {
        std::uint64_t prefix = 0;
        node_id by = no_node;
    };

    static std::uint64_t extend(std::uint64_t prev, const log_entry& e) noexcept
    {
        std::uint64_t h = detail::hash_combine(prev, e.term);
        h = detail::hash_combine(h, static_cast<std::uint64_t>(e.type));
        return detail::hash_combine(h, detail::hash_bytes(e.data));
    }

    static std::string name(const node_view& v)
    {
        return std::to_string(v.id) + " (" + to_string(v.role) + ", term " + std::to_string(v.term) + ")";
    }

    [[noreturn]] static void violation(const std::string& what)
    {
        throw invariant_violation("invariant violated: " + what);
    }

    void fail(std::string what) { pending_ = "invariant violated: " + std::move(what); }

    template <class LogStore>
    void update_log(const node_view& v, node_record& r, const LogStore& store, index_t changed_from)
    {
        const index_t last = store.last_index();
        index_t from = std::min<index_t>(changed_from, r.log.size() + 1);
        from = std::min<index_t>(from, last + 1);
        if (from < store.first_index()) {
            // The log starts after a snapshot whose entries are gone: they must be the
            // committed ones, and the snapshot's term that of the committed entry.
            const index_t base = store.first_index() - 1;
            if (base > committed_.size())
                violation("snapshot: node " + name(v) + "'s log starts after index " + std::to_string(base) +
                          ", beyond the highest index known committed (" + std::to_string(committed_.size()) +
                          ")");
            if (committed_[base - 1].entry_term != store.term_at(base))
                violation("snapshot: node " + name(v) + "'s log starts after index " + std::to_string(base) +
                          " of term " + std::to_string(store.term_at(base)) +
                          " but the entry committed there is of term " +
                          std::to_string(committed_[base - 1].entry_term));
            r.log.resize(base);
            for (index_t i = 1; i <= base; ++i)
                r.log[i - 1] = log_position{committed_[i - 1].entry_term, committed_[i - 1].prefix};
            from = base + 1;
        }
        r.log.resize(from - 1);
        const index_t first = store.first_index();
        std::erase_if(r.configs, [&](const auto& c) { return c.first >= from || c.first < first; });
        constexpr index_t chunk = 256;
        while (from <= last) {
            const index_t hi = std::min<index_t>(last + 1, from + chunk);
            for (const log_entry& e : store.entries(from, hi, std::numeric_limits<std::size_t>::max())) {
                if (e.index != from)
                    violation("log store: node " + name(v) + " returned index " + std::to_string(e.index) +
                              " for index " + std::to_string(from));
                const std::uint64_t prefix = extend(r.log.empty() ? 0 : r.log.back().prefix, e);
                r.log.push_back(log_position{e.term, prefix});
                match_entry(v, from, e.term, prefix);
                if (e.type == entry_type::config) {
                    auto m = decode_membership(e.data);
                    if (!m)
                        violation("config entry: node " + name(v) + " holds at index " +
                                  std::to_string(from) + " a config entry that does not decode");
                    r.configs.emplace_back(from, std::move(*m));
                }
                ++from;
            }
        }
    }

    void match_entry(const node_view& v, index_t index, term_t term, std::uint64_t prefix)
    {
        const auto [it, inserted] = entries_.try_emplace(entry_key{index, term}, fingerprint{prefix, v.id});
        if (!inserted && it->second.prefix != prefix)
            violation("log matching: node " + name(v) + " holds an entry at index " + std::to_string(index) +
                      " of term " + std::to_string(term) + " whose log up to it differs from node " +
                      std::to_string(it->second.by) + "'s entry with the same index and term");
    }

    void check_commit(const node_view& v, const node_record& r, index_t last_index) const
    {
        if (v.commit < r.commit)
            violation("commit monotonicity: node " + name(v) + " moved its commit index back from " +
                      std::to_string(r.commit) + " to " + std::to_string(v.commit));
        if (v.commit > last_index)
            violation("commit within log: node " + name(v) + " has commit index " + std::to_string(v.commit) +
                      " beyond its last index " + std::to_string(last_index));
        if (v.applied > v.commit)
            violation("applied within commit: node " + name(v) + " applied index " +
                      std::to_string(v.applied) + " beyond its commit index " + std::to_string(v.commit));
    }

    // The node's bookkeeping of its configuration follows its log: the last config entry
    // it holds, or the configuration its store recorded at the log's start.
    template <class LogStore>
    void check_config_in_force(const node_view& v, const node_record& r, const LogStore& store)
    {
        if (!r.configs.empty()) {
            const auto& [index, m] = r.configs.back();
            if (v.members_index != index || *v.members != m)
                violation("configuration in force: node " + name(v) + " uses " + describe(*v.members) +
                          " from index " + std::to_string(v.members_index) +
                          " but the last config entry in its log is " + describe(m) + " at index " +
                          std::to_string(index));
            return;
        }
        const index_t base = store.first_index() - 1;
        const membership m = store.base_members();
        if (v.members_index != base || *v.members != m)
            violation("configuration in force: node " + name(v) + " uses " + describe(*v.members) +
                      " from index " + std::to_string(v.members_index) +
                      " but its log holds no config entry and its store's configuration at index " +
                      std::to_string(base) + " is " + describe(m));
    }

    // One change at a time: a leader appends a configuration only once the one in force
    // committed, so no log (a prefix of some leader's) holds two above the commit point.
    void check_one_change(const node_view& v, const node_record& r) const
    {
        const index_t committed = committed_.size();
        if (r.configs.size() < 2 || r.configs[r.configs.size() - 2].first <= committed)
            return;
        violation("one change at a time: node " + name(v) + " holds config entries at indexes " +
                  std::to_string(r.configs[r.configs.size() - 2].first) + " and " +
                  std::to_string(r.configs.back().first) +
                  ", both above the highest index known committed (" + std::to_string(committed) + ")");
    }

    template <class LogStore>
    void check_leader(const node_view& v, node_record& r, const LogStore& store)
    {
        const auto [it, inserted] = leaders_.try_emplace(v.term, v.id);
        if (!inserted && it->second != v.id)
            violation("election safety: nodes " + std::to_string(it->second) + " and " +
                      std::to_string(v.id) + " were both leader of term " + std::to_string(v.term));
        if (v.members && !v.members->is_voter(v.id)) {
            // Only a leader that removed itself, until that configuration commits. A leader
            // elected as an outgoing voter of a committed joint configuration leaves it in the
            // input that elected it, so it may be seen first under the configuration after;
            // and a node whose removal is not committed yet campaigns as a voter of the
            // configuration before (may_campaign()), so it may lead under the one after.
            const bool was_voter = r.configs.size() >= 2
                                       ? r.configs[r.configs.size() - 2].second.is_voter(v.id)
                                   : r.configs.size() == 1 ? store.base_members().is_voter(v.id)
                                                           : false;
            const bool voter_before =
                !r.configs.empty() && r.configs.back().first == v.members_index && was_voter;
            if (r.leader_term_checked != v.term && !voter_before)
                violation("leader is a voter: node " + name(v) + " leads under " + describe(*v.members) +
                          " (index " + std::to_string(v.members_index) + "), of which it is not a voter");
            if (v.members_index <= v.commit)
                violation("removed leader steps down: node " + name(v) + " still leads after committing " +
                          describe(*v.members) + " (index " + std::to_string(v.members_index) +
                          "), which removed it");
        }
        if (r.leader_term_checked == v.term)
            return;
        r.leader_term_checked = v.term;
        // Committed entries form a prefix: checking the fingerprint of the longest prefix
        // committed before this term checks all of it.
        index_t n = committed_.size();
        while (n > 0 && committed_[n - 1].commit_term >= v.term)
            --n;
        if (n == 0)
            return;
        if (r.log.size() < n || r.log[n - 1].prefix != committed_[n - 1].prefix)
            violation("leader completeness: node " + name(v) + " became leader without committed entry " +
                      describe_missing(r, n));
    }

    std::string describe_missing(const node_record& r, index_t n) const
    {
        index_t i = 1;
        while (i < n && i <= r.log.size() && r.log[i - 1].prefix == committed_[i - 1].prefix)
            ++i;
        const committed_entry& c = committed_[i - 1];
        return "at index " + std::to_string(i) + " (term " + std::to_string(c.entry_term) +
               ", committed in term " + std::to_string(c.commit_term) + ")";
    }

    void record_commit(const node_view& v, node_record& r)
    {
        if (v.commit <= r.commit)
            return;
        r.commit = v.commit;
        const index_t known = committed_.size();
        const index_t at = std::min<index_t>(known, v.commit);
        if (at > 0 && r.log[at - 1].prefix != committed_[at - 1].prefix)
            violation("state machine safety: node " + name(v) + " committed index " +
                      std::to_string(v.commit) + " but its log up to index " + std::to_string(at) +
                      " differs from what was committed");
        for (index_t i = known + 1; i <= v.commit; ++i)
            committed_.push_back(committed_entry{r.log[i - 1].term, r.log[i - 1].prefix, v.term});
    }

    // An applied entry that was compacted before it was reported must be the committed
    // entry of its index (`data` holds the index here).
    void verify_compacted_applies()
    {
        std::erase_if(unverified_, [&](const applied_entry& a) {
            if (a.data > committed_.size())
                return false;
            if (committed_[a.data - 1].entry_term != a.term)
                violation("apply: node " + std::to_string(a.by) + " applied index " + std::to_string(a.data) +
                          " in term " + std::to_string(a.term) +
                          ", but the entry committed there is of term " +
                          std::to_string(committed_[a.data - 1].entry_term));
            return true;
        });
    }

    void record_applied(node_id id, index_t index, term_t term, std::uint64_t data)
    {
        if (applied_.size() < index)
            applied_.resize(index);
        applied_entry& a = applied_[index - 1];
        if (a.by == no_node) {
            a = applied_entry{term, data, id};
            return;
        }
        if (a.term != term || a.data != data)
            fail("state machine safety: node " + std::to_string(id) + " applied at index " +
                 std::to_string(index) + " an entry of term " + std::to_string(term) + " but node " +
                 std::to_string(a.by) + " applied one of term " + std::to_string(a.term) +
                 (a.term == term ? " with other data" : ""));
    }

    std::map<node_id, node_record> nodes_;
    std::map<term_t, node_id> leaders_;
    std::unordered_map<entry_key, fingerprint, entry_key_hash> entries_;
    std::vector<committed_entry> committed_;
    std::vector<applied_entry> applied_;
    std::vector<applied_entry> unverified_;
    std::optional<std::string> pending_;
    std::vector<std::uint64_t> scratch_;
};

} // namespace raftkv::sim

#endif
