#ifndef RAFTKV_TEST_SUPPORT_KV_SESSION_CHECKS_HPP
#define RAFTKV_TEST_SUPPORT_KV_SESSION_CHECKS_HPP

// Checks of the client-session rules (<raftkv/kv_sessions.hpp>) that every key-value state
// machine must pass alike: the simulator's and the LevelDB one run the same scenarios.
// Include after <boost/test/unit_test.hpp>.

#include <raftkv/kv_command.hpp>
#include <raftkv/kv_sessions.hpp>
#include <raftkv/types.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace raftkv::test {

/// A session stamp with small limits, so that tests reach them.
inline kv_client_session stamp(std::uint64_t client, std::uint64_t sequence, std::uint64_t expiry = 1000,
                               std::uint32_t max_sessions = 100)
{
    return kv_client_session{client, sequence, expiry, max_sessions};
}

inline kv_result ok_result(bool found, index_t version, bool replayed = false)
{
    return kv_result{found, kv_status::ok, version, replayed};
}

inline const kv_result stale_result{false, kv_status::stale_sequence, 0, false};
inline const kv_result reused_result{false, kv_status::sequence_reused, 0, false};

/// Applies commands to a machine as entries following its applied index.
template <class Machine>
class session_driver {
public:
    explicit session_driver(Machine& m) : m_(&m) {}

    std::vector<kv_result> apply(const std::vector<std::string>& commands)
    {
        std::vector<log_entry> batch;
        for (const auto& c : commands)
            batch.push_back(log_entry{1, m_->applied_index() + batch.size() + 1, entry_type::normal, c});
        std::vector<kv_result> results(batch.size());
        m_->apply(batch, results);
        return results;
    }

    kv_result apply(const std::string& command) { return apply(std::vector<std::string>{command}).front(); }

    /// Applies `n` plain puts of key "filler".
    void fill(int n)
    {
        std::vector<std::string> commands;
        for (int k = 0; k < n; ++k)
            commands.push_back(encode_put("filler", std::to_string(k)));
        apply(commands);
    }

private:
    Machine* m_;
};

/// A put and a delete each apply once; their retries (in the same batch or later) answer
/// the original result, marked replayed, and change nothing.
template <class Machine>
void check_session_applies_once(Machine& m)
{
    session_driver d(m);
    const kv_precondition none{};
    BOOST_TEST((d.apply(encode_put("k", "v1", none, stamp(7, 1))) == ok_result(true, 1)));
    BOOST_TEST((d.apply(encode_put("k", "v1", none, stamp(7, 1))) == ok_result(true, 1, true)));
    BOOST_TEST(m.get("k").value() == "v1");
    const auto batch =
        d.apply({encode_del("k", none, stamp(7, 2)), encode_put("k", "v3", none, stamp(7, 3)),
                 encode_del("k", none, stamp(7, 2)), encode_put("k", "v3", none, stamp(7, 3))});
    BOOST_TEST((batch == std::vector<kv_result>{ok_result(true, 1), ok_result(true, 4),
                                                ok_result(true, 1, true), ok_result(true, 4, true)}));
    BOOST_TEST(m.get("k").value() == "v3");
    // Another client's sequence 1 is its own.
    BOOST_TEST((d.apply(encode_del("k", none, stamp(8, 1))) == ok_result(true, 4)));
    BOOST_TEST((d.apply(encode_del("k", none, stamp(8, 1))) == ok_result(true, 4, true)));
    BOOST_TEST((d.apply(encode_del("k", none, stamp(7, 4))) == ok_result(false, 0)));
    BOOST_TEST(!m.get("k").has_value());
    BOOST_TEST(m.sessions().size() == 2u);
}

/// A sequence reused for another request (another op, key, value or precondition) is
/// refused and changes nothing, in the same batch or later; the request first applied under
/// it still replays, and the table records nothing of the refusals.
template <class Machine>
void check_session_refuses_a_reused_sequence(Machine& m)
{
    session_driver d(m);
    const kv_precondition none{};
    BOOST_TEST((d.apply(encode_put("k", "v1", none, stamp(7, 1))) == ok_result(true, 1)));
    const kv_session before = *m.sessions().find(7);
    const auto refused = d.apply(
        {encode_put("k", "v2", none, stamp(7, 1)), encode_put("k2", "v1", none, stamp(7, 1)),
         encode_del("k", none, stamp(7, 1)), encode_put("k", "v1", kv_precondition{1, false}, stamp(7, 1)),
         encode_put("k", "v1", kv_precondition{std::nullopt, true}, stamp(7, 1))});
    BOOST_TEST((refused == std::vector<kv_result>(5, reused_result)));
    BOOST_TEST(m.get("k").value() == "v1");
    BOOST_TEST(!m.get("k2").has_value());
    BOOST_TEST(m.sessions().find(7)->results == before.results);
    BOOST_TEST(m.sessions().find(7)->last_index == 6u); // a refused entry still counts as the client's
    BOOST_TEST((d.apply(encode_put("k", "v1", none, stamp(7, 1))) == ok_result(true, 1, true)));
    // A failed precondition is recorded like a success: only the same request replays it.
    const kv_result failed{true, kv_status::precondition_failed, 1, false};
    BOOST_TEST((d.apply(encode_del("k", kv_precondition{9, false}, stamp(7, 2))) == failed));
    BOOST_TEST((d.apply(encode_del("k", kv_precondition{1, false}, stamp(7, 2))) == reused_result));
    BOOST_TEST(m.get("k").value() == "v1");
    // Another client's sequence 1 is its own.
    BOOST_TEST((d.apply(encode_put("k", "v2", none, stamp(8, 1))) == ok_result(true, 10)));
}

/// A compare-and-set retried after it succeeded answers its success, not a failed
/// precondition; a failed one retried answers its failure even once it would hold.
template <class Machine>
void check_session_replays_preconditions(Machine& m)
{
    session_driver d(m);
    d.apply(encode_put("k", "0"));
    const kv_precondition at_1{1, false};
    BOOST_TEST((d.apply(encode_put("k", "1", at_1, stamp(5, 1))) == ok_result(true, 2)));
    BOOST_TEST((d.apply(encode_put("k", "1", at_1, stamp(5, 1))) == ok_result(true, 2, true)));
    const kv_precondition absent{std::nullopt, true};
    const kv_result failed{true, kv_status::precondition_failed, 2, false};
    BOOST_TEST((d.apply(encode_put("k", "x", absent, stamp(5, 2))) == failed));
    d.apply(encode_del("k"));
    kv_result replayed_failure = failed;
    replayed_failure.replayed = true;
    BOOST_TEST((d.apply(encode_put("k", "x", absent, stamp(5, 2))) == replayed_failure));
    BOOST_TEST(!m.get("k").has_value());
}

/// A session keeps the results of its kv_session_window highest sequences: an older one is
/// answered stale_sequence and not applied; a sequence skipped but within them applies.
template <class Machine>
void check_session_window(Machine& m)
{
    session_driver d(m);
    const kv_precondition none{};
    const std::uint64_t n = kv_session_window + 8;
    std::vector<std::string> commands;
    for (std::uint64_t s = 1; s <= n; s += 1)
        if (s != 20)
            commands.push_back(encode_put("k" + std::to_string(s), "v", none, stamp(3, s)));
    d.apply(commands); // indexes 1 to n - 1: sequences 1 to 7 fall out of the window
    BOOST_TEST((d.apply(encode_put("k1", "again", none, stamp(3, 1))) == stale_result));
    BOOST_TEST((d.apply(encode_put("k7", "again", none, stamp(3, 7))) == stale_result));
    BOOST_TEST(m.get("k1").value() == "v");
    BOOST_TEST(d.apply(encode_put("k8", "v", none, stamp(3, 8))).replayed);
    BOOST_TEST((d.apply(encode_put("k8", "again", none, stamp(3, 8))) == reused_result));
    // Sequence 20 was never applied and is above the forgotten ones: it applies.
    const kv_result r20 = d.apply(encode_put("k20", "v", none, stamp(3, 20)));
    BOOST_TEST((r20.status == kv_status::ok));
    BOOST_TEST(!r20.replayed);
    BOOST_TEST(m.get("k20").value() == "v");
    // Recording 20 forgot one more sequence (8, the lowest kept).
    BOOST_TEST((d.apply(encode_put("k8", "v", none, stamp(3, 8))) == stale_result));
    BOOST_TEST(d.apply(encode_put("k9", "v", none, stamp(3, 9))).replayed);
    BOOST_TEST(d.apply(encode_put("k" + std::to_string(n), "v", none, stamp(3, n))).replayed);
    BOOST_TEST(m.get("k8").value() == "v");
    BOOST_TEST(m.sessions().find(3)->results.size() == kv_session_window);
    BOOST_TEST(m.sessions().find(3)->forgotten == 8u);
}

/// A session expires once `expiry` entries followed its client's last entry, counted in
/// log entries of any kind; any entry of the client (a replay too) keeps it alive.
template <class Machine>
void check_session_expiry(Machine& m)
{
    session_driver d(m);
    const kv_precondition none{};
    const std::uint64_t expiry = 5;
    BOOST_TEST((d.apply(encode_put("k", "a", none, stamp(1, 1, expiry))) == ok_result(true, 1)));
    d.fill(4); // indexes 2 to 5
    // Index 6: 1 + expiry, the last entry that finds the session.
    BOOST_TEST((d.apply(encode_put("k", "a", none, stamp(1, 1, expiry))) == ok_result(true, 1, true)));
    d.fill(5); // indexes 7 to 11
    // Index 12: five entries followed the last one (6): expired, so a new session.
    BOOST_TEST((d.apply(encode_put("k", "a", none, stamp(1, 1, expiry))) == ok_result(true, 12)));
    BOOST_TEST(m.sessions().find(1)->last_index == 12u);
    // Expiry is checked for every session at each session entry.
    d.apply(encode_put("other", "b", none, stamp(2, 1, expiry))); // index 13
    d.fill(5);                                                    // 14 to 18
    d.apply(encode_put("other", "b", none, stamp(2, 2, expiry))); // 19: 12 + 5 < 19
    BOOST_TEST(m.sessions().size() == 1u);
    BOOST_TEST(m.sessions().find(1) == nullptr);
}

/// Past `max_sessions` the session whose last entry is the oldest goes; an evicted
/// client's next entry starts a new session.
template <class Machine>
void check_session_bound(Machine& m)
{
    session_driver d(m);
    const kv_precondition none{};
    const auto put = [&](std::uint64_t client, std::uint64_t seq) {
        return d.apply(encode_put("k" + std::to_string(client), "v", none, stamp(client, seq, 1000, 3)));
    };
    put(1, 1);
    put(2, 1);
    put(3, 1);
    BOOST_TEST(put(1, 1).replayed); // 1 is now the most recent
    put(4, 1);                      // evicts 2, the least recently used
    BOOST_TEST(m.sessions().size() == 3u);
    BOOST_TEST(m.sessions().find(2) == nullptr);
    BOOST_TEST(m.sessions().find(1) != nullptr);
    const kv_result again = put(2, 1); // applied again: its session was gone
    BOOST_TEST(!again.replayed);
    BOOST_TEST(again.version == 6u);
    BOOST_TEST(m.sessions().find(3) == nullptr); // 3 was now the oldest
    BOOST_TEST(m.sessions().size() == 3u);
}

/// Builds a session table through `m` worth snapshotting: replays, a forgotten range,
/// several clients.
template <class Machine>
void apply_sample_sessions(Machine& m)
{
    session_driver d(m);
    const kv_precondition none{};
    for (std::uint64_t s = 1; s <= kv_session_window + 3; ++s)
        d.apply(encode_put("a", std::to_string(s), none, stamp(11, s)));
    d.apply(encode_del("a", none, stamp(12, 1)));
    d.apply(encode_put("b", "x", kv_precondition{std::nullopt, true}, stamp(0xffffffffffffffffu, 9)));
    d.apply(encode_put("b", "y", kv_precondition{std::nullopt, true}, stamp(13, 1)));
}

} // namespace raftkv::test

#endif
