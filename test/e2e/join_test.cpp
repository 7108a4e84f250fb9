// raftkv-server clusters that change members while they serve: nodes join through --join,
// are promoted and removed while clients write, and a node whose data was wiped comes back
// under its id after being removed and added again. Every client history is checked for
// linearizability, and every acknowledged write must survive.
#define BOOST_TEST_MODULE raftkv_e2e_join
#include <boost/test/unit_test.hpp>

#include "../support/read_only_checks.hpp"
#include "harness.hpp"
#include "recording_clients.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace raftkv::e2e;

/// Sends `method target body` to the leader (any member forwards) until it answers
/// `expected` or `limit` passes: a change refused while another is in progress, or while
/// the learner catches up (409), is retried.
http_response until(cluster& c, std::uint64_t via, std::string_view method, const std::string& target,
                    const std::string& body, int expected, milliseconds limit = 20s)
{
    http_response last;
    wait_until(
        [&] {
            last = request(c.http_port(via), method, target, body, 5s);
            return last.status == expected;
        },
        limit, 100ms);
    return last;
}

/// The ids GET /cluster/members lists with `role`.
std::vector<std::uint64_t> members_with_role(cluster& c, std::uint64_t via, const std::string& role)
{
    const auto r = request(c.http_port(via), "GET", "/cluster/members");
    std::vector<std::uint64_t> out;
    for (std::uint64_t id = 1; id <= c.size(); ++id) {
        const std::string entry = "\"id\":" + std::to_string(id) + ",";
        const auto at = r.body.find(entry);
        if (at == std::string::npos)
            continue;
        const auto end = r.body.find('}', at);
        if (r.body.substr(at, end - at).find("\"role\":\"" + role + "\"") != std::string::npos)
            out.push_back(id);
    }
    return out;
}

void check_history(recording_clients& load)
{
    load.stop();
    const auto history = load.history();
    BOOST_TEST(load.acknowledged_writes() > 0u);
    BOOST_TEST_MESSAGE(history.size() << " operations, " << load.acknowledged_writes()
                                      << " acknowledged writes, checked for linearizability");
    check_linearizable(history, std::chrono::seconds(10));
}

/// Adds node `id` as a learner through `via`, starts it with --join, waits until it can be
/// promoted and promotes it.
void add_and_promote(cluster& c, std::uint64_t via, std::uint64_t id)
{
    const auto added = until(c, via, "POST", "/cluster/members", c.member_body(id, true), 201);
    BOOST_TEST_REQUIRE(added.status == 201, "adding node " << id << ": " << describe(added));
    c.start(id);
    const auto promoted =
        until(c, via, "POST", "/cluster/members/" + std::to_string(id) + "/promote", "", 200, 30s);
    BOOST_TEST_REQUIRE(promoted.status == 200, "promoting node " << id << ": " << describe(promoted));
}

/// The incarnation of node `id`'s data directory, as its DATA_DIR/identity says; "?" if none.
std::string incarnation_of(cluster& c, std::uint64_t id)
{
    const std::string text = read_tail(c.spec(id).data_dir / "identity");
    const std::size_t at = text.find("\nincarnation ");
    return at == std::string::npos ? std::string("?") : text.substr(at + 13, 18);
}

/// The incarnation node `by` recorded for node `id` in its DATA_DIR/peers; "none" if none.
std::string recorded_by(cluster& c, std::uint64_t by, std::uint64_t id)
{
    const std::string text = read_tail(c.spec(by).data_dir / "peers");
    const std::string line = "\nincarnation " + std::to_string(id) + " ";
    const std::size_t at = text.find(line);
    return at == std::string::npos ? std::string("none") : text.substr(at + line.size(), 18);
}

} // namespace

BOOST_AUTO_TEST_CASE(a_cluster_grows_to_five_and_shrinks_back_while_clients_write)
{
    cluster c(3);
    BOOST_TEST_REQUIRE(c.wait_ready(15s).has_value());
    // The nodes to add get their ports before the clients start: the clients read the
    // cluster's node table from their threads.
    const std::vector<std::uint64_t> added = {c.add_node(1), c.add_node(1)};
    recording_clients load(c, {1, 2, 3}, 3);

    for (std::uint64_t id : added) {
        add_and_promote(c, 1, id);
        load.also_via(id);
    }
    BOOST_TEST((members_with_role(c, 2, "voter") == std::vector<std::uint64_t>{1, 2, 3, 4, 5}));
    // Every member serves linearizable reads, the new ones too.
    for (std::uint64_t id = 1; id <= 5; ++id)
        BOOST_TEST(request(c.http_port(id), "GET", "/kv/none").status == 404, "node " << id);

    for (std::uint64_t id : {5, 4}) {
        load.not_via(id);
        const auto removed = until(c, 1, "DELETE", "/cluster/members/" + std::to_string(id), "", 200);
        BOOST_TEST_REQUIRE(removed.status == 200, "removing node " << id << ": " << describe(removed));
        c.terminate(id);
    }
    BOOST_TEST((members_with_role(c, 1, "voter") == std::vector<std::uint64_t>{1, 2, 3}));
    std::this_thread::sleep_for(500ms);
    check_history(load);
    BOOST_TEST(c.wait_ready(10s).has_value());
}

BOOST_AUTO_TEST_CASE(a_wiped_node_comes_back_after_being_removed_and_added_again)
{
    cluster c(3);
    const auto leader = c.wait_ready(15s);
    BOOST_TEST_REQUIRE(leader.has_value());
    const std::uint64_t wiped = *leader == 3 ? 2 : 3;
    const std::uint64_t via = *leader;
    for (int k = 0; k < 20; ++k)
        BOOST_TEST_REQUIRE(put(c.http_port(via), "before-" + std::to_string(k), "v").status == 200);

    // The way back: remove the member, add it again, start it empty with --join. Removed,
    // it is restarted once with its old data (an operator who has not yet noticed), and
    // greets the others anew: they must not record its old data directory again.
    const auto removed = until(c, via, "DELETE", "/cluster/members/" + std::to_string(wiped), "", 200);
    BOOST_TEST_REQUIRE(removed.status == 200, describe(removed));
    c.restart(wiped);
    std::this_thread::sleep_for(1500ms);
    c.kill9(wiped);
    std::filesystem::remove_all(c.spec(wiped).data_dir);
    c.set_join_via(wiped, via);
    add_and_promote(c, via, wiped);

    BOOST_TEST_REQUIRE(put(c.http_port(wiped), "after", "v").status == 200);
    for (int k = 0; k < 20; ++k)
        BOOST_TEST(get(c.http_port(wiped), "before-" + std::to_string(k)).status == 200, "before-" << k);
    // It is a voter again: the cluster commits with it and one other node.
    const std::uint64_t other = 6 - via - wiped;
    c.kill9(other);
    BOOST_TEST(put(c.http_port(via), "with-the-new-copy", "v", 10s).status == 200);
}

// A member that was down while another was removed and added back with a new data
// directory never saw the removal: it comes back with the old directory recorded for that
// id. The configuration tells it the member was added anew (each addition carries its own
// tag), so it drops the old record rather than refuse the new member, or, greeting it with
// the old one, have it stop.
// A node that joins has no configuration until the leader sends it one, and the answer it
// joined by lists no membership tags: the peers that greet it first are recorded before it
// knows their tags. A leader that was itself added later has one; the first configuration
// must not make the new node forget it, leaving the connection it greeted with unrecorded
// for as long as it lasts (and the node unprotected from that peer's lost data directory).
BOOST_AUTO_TEST_CASE(a_node_that_joins_through_an_added_leader_records_every_peer)
{
    cluster c(3);
    const auto first = c.wait_ready(15s);
    BOOST_TEST_REQUIRE(first.has_value());
    const std::uint64_t added = c.add_node(*first);
    add_and_promote(c, *first, added);
    const auto moved =
        until(c, *first, "POST", "/cluster/leader", "{\"id\": " + std::to_string(added) + "}", 200);
    BOOST_TEST_REQUIRE(moved.status == 200, describe(moved));
    BOOST_TEST_REQUIRE(wait_until([&] { return c.wait_for_leader(1s).value_or(0) == added; }, 10s));

    const std::uint64_t joined = c.add_node(added);
    const auto learner = until(c, added, "POST", "/cluster/members", c.member_body(joined, true), 201);
    BOOST_TEST_REQUIRE(learner.status == 201, describe(learner));
    c.start(joined);
    for (std::uint64_t id = 1; id <= added; ++id)
        BOOST_TEST(wait_until([&] { return recorded_by(c, joined, id) == incarnation_of(c, id); }, 20s),
                   "node " << joined << " records node " << id << " as " << recorded_by(c, joined, id)
                           << ", not " << incarnation_of(c, id)
                           << "; peers: " << read_tail(c.spec(joined).data_dir / "peers"));
    // What it recorded holds: the tags are those of the configuration in force, so a later
    // change (this learner's promotion) forgets none of it.
    const auto promoted =
        until(c, added, "POST", "/cluster/members/" + std::to_string(joined) + "/promote", "", 200, 30s);
    BOOST_TEST_REQUIRE(promoted.status == 200, describe(promoted));
    BOOST_TEST(put(c.http_port(joined), "k", "v").status == 200);
    for (std::uint64_t id = 1; id <= added; ++id)
        BOOST_TEST(recorded_by(c, joined, id) == incarnation_of(c, id), "node " << id);
}

BOOST_AUTO_TEST_CASE(a_member_down_while_another_was_replaced_learns_the_new_directory)
{
    cluster c(3);
    const auto leader = c.wait_ready(15s);
    BOOST_TEST_REQUIRE(leader.has_value());
    const std::uint64_t via = *leader, replaced = *leader == 3 ? 2 : 3;
    const std::uint64_t learner = c.add_node(via);
    const auto added = until(c, via, "POST", "/cluster/members", c.member_body(learner, true), 201);
    BOOST_TEST_REQUIRE(added.status == 201, describe(added));
    c.start(learner);
    const auto incarnation_of = [&](std::uint64_t id) { return ::incarnation_of(c, id); };
    const auto recorded_by = [&](std::uint64_t by, std::uint64_t id) { return ::recorded_by(c, by, id); };
    // A node records the peers that dial it, once it knows them as members (one that joined
    // learns them from the log: connections it took before are closed for them to greet
    // again); a follower dials every peer when it starts.
    BOOST_TEST(wait_until([&] { return recorded_by(learner, via) == incarnation_of(via); }, 20s),
               "the joined node records its leader " << recorded_by(learner, via));
    c.restart(replaced);
    BOOST_TEST_REQUIRE(
        wait_until([&] { return recorded_by(learner, replaced) == incarnation_of(replaced); }, 20s),
        recorded_by(learner, replaced) << " vs " << incarnation_of(replaced)
                                       << "; peers: " << read_tail(c.spec(learner).data_dir / "peers")
                                       << "; log: " << read_tail(c.spec(learner).log_file));
    const std::string old_directory = incarnation_of(replaced);
    BOOST_TEST_REQUIRE(c.terminate(learner).has_value());

    const auto removed = until(c, via, "DELETE", "/cluster/members/" + std::to_string(replaced), "", 200);
    BOOST_TEST_REQUIRE(removed.status == 200, describe(removed));
    c.kill9(replaced);
    std::filesystem::remove_all(c.spec(replaced).data_dir);
    c.set_join_via(replaced, via);
    add_and_promote(c, via, replaced);
    BOOST_TEST_REQUIRE(put(c.http_port(via), "after", "v").status == 200);
    BOOST_TEST_REQUIRE(incarnation_of(replaced) != old_directory);

    c.start(learner);
    BOOST_TEST(wait_until([&] { return recorded_by(learner, replaced) == incarnation_of(replaced); }, 20s),
               "the learner still records " << recorded_by(learner, replaced) << ", not "
                                            << incarnation_of(replaced));
    BOOST_TEST(c.running(replaced));
    const std::string replaced_log = read_tail(c.spec(replaced).log_file, 1 << 20);
    BOOST_TEST(replaced_log.find("fatal:") == std::string::npos, replaced_log);
    // Nor does it tell the operator to do again what was just done.
    BOOST_TEST(replaced_log.find("predates this start") == std::string::npos, replaced_log);
    BOOST_TEST(get(c.http_port(replaced), "after").status == 200);
}

// A removed member is not stopped by its removal. Its id added back (at a new address, a
// new process joining with an empty directory), the old process greets the members first:
// it must not be taken for the member added back, nor have the new one refused.
BOOST_AUTO_TEST_CASE(a_removed_members_process_still_running_does_not_take_its_id_back)
{
    cluster c(3);
    const auto leader = c.wait_ready(15s);
    BOOST_TEST_REQUIRE(leader.has_value());
    const std::uint64_t via = *leader, old = *leader == 3 ? 2 : 3;
    BOOST_TEST_REQUIRE(put(c.http_port(via), "before", "v").status == 200);
    const auto gone = until(c, via, "DELETE", "/cluster/members/" + std::to_string(old), "", 200);
    BOOST_TEST_REQUIRE(gone.status == 200, describe(gone));
    BOOST_TEST_REQUIRE(c.running(old));

    const std::vector<std::uint16_t> ports = free_ports(2);
    const std::string http = "127.0.0.1:" + std::to_string(ports[0]);
    const std::string raft = "127.0.0.1:" + std::to_string(ports[1]);
    const auto added = until(c, via, "POST", "/cluster/members",
                             R"({"id": )" + std::to_string(old) + R"(, "raft": ")" + raft +
                                 R"(", "http": ")" + http + R"(", "learner": true})",
                             201);
    BOOST_TEST_REQUIRE(added.status == 201, describe(added));
    // The old process is asked to greet again as soon as its id is a member: give it the time.
    std::this_thread::sleep_for(1s);
    const std::filesystem::path dir = c.dir().path() / "replacement";
    // It listens on every interface, where it was added at 127.0.0.1 (--raft may differ).
    const std::string wildcard = "0.0.0.0:" + std::to_string(ports[1]);
    process replacement(
        {"--id", std::to_string(old), "--data-dir", dir.string(), "--http", http, "--raft", wildcard,
         "--join", "http://" + c.spec(via).http_address()},
        {.program = {}, .stdout_file = c.dir().path() / "replacement.log", .stderr_file = {}, .cwd = {}});
    BOOST_TEST(wait_until([&] { return get(ports[0], "before").status == 200; }, 20s),
               "replacement running "
                   << replacement.running() << " " << replacement.status().value_or(exit_status{})
                   << "; GET: " << describe(get(ports[0], "before"))
                   << "; log: " << read_tail(c.dir().path() / "replacement.log", 1 << 20) << "; members at "
                   << via << ": " << request(c.http_port(via), "GET", "/cluster/members").body);
    const std::string refusal =
        "which node " + std::to_string(old) + " had before it was removed and added back";
    BOOST_TEST(read_tail(c.spec(via).log_file, 1 << 20).find(refusal) != std::string::npos,
               read_tail(c.spec(via).log_file));
    BOOST_TEST(c.running(old));
}

// A removed member keeps serving its last member list, which lacks the members added since:
// a node joining through it is told that it was removed, not that it was never added.
BOOST_AUTO_TEST_CASE(joining_through_a_removed_member_is_refused_and_says_why)
{
    cluster c(3);
    const auto leader = c.wait_ready(15s);
    BOOST_TEST_REQUIRE(leader.has_value());
    const std::uint64_t via = *leader, removed = *leader == 3 ? 2 : 3;
    const auto gone = until(c, via, "DELETE", "/cluster/members/" + std::to_string(removed), "", 200);
    BOOST_TEST_REQUIRE(gone.status == 200, describe(gone));
    const std::uint64_t id = c.add_node(via);
    const auto added = until(c, via, "POST", "/cluster/members", c.member_body(id, true), 201);
    BOOST_TEST_REQUIRE(added.status == 201, describe(added));
    // Once it knows it was removed (until then it names the leader, whose list --join reads).
    BOOST_TEST_REQUIRE(wait_until(
        [&] {
            const auto s = get_status(c.http_port(removed));
            return s && s->role == "removed";
        },
        10s));
    c.set_join_via(id, removed);
    c.start(id);
    BOOST_TEST_REQUIRE(wait_until([&] { return !c.running(id); }, 10s));
    const auto status = c.exit_of(id);
    BOOST_TEST_REQUIRE(status.has_value());
    BOOST_TEST(status->exited);
    BOOST_TEST(status->code == 2);
    const std::string log = read_tail(c.spec(id).log_file);
    BOOST_TEST(log.find("(node " + std::to_string(removed) +
                        ") is not in its own member list: it was removed") != std::string::npos,
               log);
    // Through a member it joins.
    c.set_join_via(id, via);
    std::filesystem::remove_all(c.spec(id).data_dir);
    c.start(id);
    BOOST_TEST(wait_until([&] { return get(c.http_port(id), "absent").status == 404; }, 20s),
               read_tail(c.spec(id).log_file));
}

// A joining node killed as it creates its storage never leaves Raft data without its
// identity (which no start could join with, and a start without --join would adopt as a
// cluster of its own): the next start with --join goes on, and the node catches up.
BOOST_AUTO_TEST_CASE(a_joining_node_killed_at_any_moment_of_its_first_start_joins_when_started_again)
{
    cluster c(3);
    const auto leader = c.wait_ready(15s);
    BOOST_TEST_REQUIRE(leader.has_value());
    const std::uint64_t id = c.add_node(*leader);
    const auto added = until(c, *leader, "POST", "/cluster/members", c.member_body(id, true), 201);
    BOOST_TEST_REQUIRE(added.status == 201, describe(added));
    const std::filesystem::path dir = c.spec(id).data_dir;
    for (int delay_ms = 0; delay_ms <= 300; delay_ms += 15) {
        c.start(id);
        std::this_thread::sleep_for(milliseconds(delay_ms));
        c.kill9(id);
        const bool raft_data = std::filesystem::exists(dir / "wal") || std::filesystem::exists(dir / "state");
        BOOST_TEST((!raft_data || std::filesystem::exists(dir / "identity")),
                   "killed " << delay_ms
                             << " ms into its first start, it left Raft data without an identity");
    }
    BOOST_TEST_REQUIRE(put(c.http_port(*leader), "while-joining", "1").status == 200);
    c.start(id);
    BOOST_TEST(wait_until(
        [&] {
            const http_response g = request(c.http_port(id), "GET", kv_target("while-joining"), {}, 2s);
            return g.status == 200 && parse_json(g.body).string("value") == "1";
        },
        30s, 200ms));
}

BOOST_AUTO_TEST_CASE(a_node_that_was_not_added_refuses_to_join)
{
    cluster c(3);
    BOOST_TEST_REQUIRE(c.wait_ready(15s).has_value());
    const std::uint64_t id = c.add_node(1);
    c.start(id);
    const bool exited = wait_until([&] { return !c.running(id); }, 10s);
    BOOST_TEST_REQUIRE(exited);
    const auto status = c.exit_of(id);
    BOOST_TEST_REQUIRE(status.has_value());
    BOOST_TEST(status->exited);
    BOOST_TEST(status->code == 2);
    const std::string log = read_tail(c.spec(id).log_file);
    BOOST_TEST(log.find("is not a member of the cluster") != std::string::npos, log);
    BOOST_TEST(log.find("POST") != std::string::npos, log);
}

// A member whose data directory was lost cannot come back empty through --join under the
// same addition: the members know its directory, which held its votes and the entries it
// acknowledged. It exits 2 saying how to come back (remove it, add it back), rather than wait
// for ever on peers that refuse it; also through a member that was down while it joined, and
// never recorded its directory.
BOOST_AUTO_TEST_CASE(a_member_that_lost_its_data_is_refused_when_it_joins_again_without_being_added_anew)
{
    cluster c(3);
    const auto leader = c.wait_ready(15s);
    BOOST_TEST_REQUIRE(leader.has_value());
    // A follower down while the node joins never records its directory: the join goes
    // through it later, and must go by its leader's list.
    const std::uint64_t down = *leader == 3 ? 2 : 3;
    c.kill9(down);
    const std::uint64_t id = c.add_node(*leader);
    const auto added = until(c, *leader, "POST", "/cluster/members", c.member_body(id, true), 201);
    BOOST_TEST_REQUIRE(added.status == 201, describe(added));
    c.start(id);
    BOOST_TEST_REQUIRE(put(c.http_port(*leader), "before", "v").status == 200);
    BOOST_TEST_REQUIRE(wait_until(
        [&] {
            return request(c.http_port(id), "GET", kv_target("before") + "?consistency=stale").status == 200;
        },
        30s, 200ms));
    const auto members = request(c.http_port(*leader), "GET", "/cluster/members");
    BOOST_TEST(members.body.find("\"incarnation\"") != std::string::npos, members.body);

    c.kill9(id);
    std::filesystem::remove_all(c.spec(id).data_dir);
    c.restart(down);
    BOOST_TEST_REQUIRE(wait_until(
        [&] {
            return request(c.http_port(down), "GET", kv_target("before") + "?consistency=stale").status ==
                   200;
        },
        30s, 200ms));
    const auto unrecorded = request(c.http_port(down), "GET", "/cluster/members");
    BOOST_TEST_REQUIRE(unrecorded.body.find("\"id\":" + std::to_string(id)) != std::string::npos,
                       unrecorded.body);
    c.set_join_via(id, down);
    c.start(id);
    BOOST_TEST_REQUIRE(wait_until([&] { return !c.running(id); }, 15s));
    const auto status = c.exit_of(id);
    BOOST_TEST_REQUIRE(status.has_value());
    BOOST_TEST((status->exited && status->code == 2), *status);
    const std::string log = read_tail(c.spec(id).log_file);
    BOOST_TEST(log.find("is a member the cluster already knows with a data directory of its own") !=
                   std::string::npos,
               log);
    BOOST_TEST(log.find("raftkv member remove " + std::to_string(id)) != std::string::npos, log);
}

// Added with one Raft address and started with --raft at another: nobody dials it where it
// listens, and its empty log has no configuration for the start-up check to compare with.
// The members' list it joins through has: it says so.
BOOST_AUTO_TEST_CASE(a_node_joining_at_another_raft_address_than_it_was_added_with_says_so)
{
    cluster c(3);
    const auto leader = c.wait_ready(15s);
    BOOST_TEST_REQUIRE(leader.has_value());
    const std::uint64_t id = c.add_node(*leader);
    const std::string elsewhere = "127.0.0.1:" + std::to_string(free_ports(1)[0]);
    const std::string body = "{\"id\": " + std::to_string(id) + ", \"raft\": \"" + elsewhere +
                             "\", \"http\": \"" + c.spec(id).http_address() + "\", \"learner\": true}";
    const auto added = until(c, *leader, "POST", "/cluster/members", body, 201);
    BOOST_TEST_REQUIRE(added.status == 201, describe(added));
    c.start(id);
    const std::string expected = "the members dial node " + std::to_string(id) + " at " + elsewhere;
    BOOST_TEST(
        wait_until([&] { return read_tail(c.spec(id).log_file).find(expected) != std::string::npos; }, 15s),
        read_tail(c.spec(id).log_file));
    BOOST_TEST(read_tail(c.spec(id).log_file).find("start it with --raft " + elsewhere) != std::string::npos);
}

// A node that joins replays the configurations of the cluster's past, several in one batch:
// a member added at a name that does not resolve, removed, and added again at an address
// that does. It dials that member where the configuration in force has it, and says nothing
// of the name no configuration in force has any more.
BOOST_AUTO_TEST_CASE(a_joiner_warns_only_of_addresses_the_configuration_in_force_holds)
{
    cluster c(3);
    const auto leader = c.wait_ready(15s);
    BOOST_TEST_REQUIRE(leader.has_value());
    const std::uint64_t moved = c.add_node(*leader);
    const std::string nowhere = "{\"id\": " + std::to_string(moved) +
                                ", \"raft\": \"nohost.invalid:" + std::to_string(c.raft_port(moved)) +
                                "\", \"http\": \"" + c.spec(moved).http_address() + "\", \"learner\": true}";
    BOOST_TEST_REQUIRE(until(c, *leader, "POST", "/cluster/members", nowhere, 201).status == 201);
    BOOST_TEST_REQUIRE(
        until(c, *leader, "DELETE", "/cluster/members/" + std::to_string(moved), "", 200).status == 200);
    BOOST_TEST_REQUIRE(
        until(c, *leader, "POST", "/cluster/members", c.member_body(moved, true), 201).status == 201);
    c.start(moved);

    const std::uint64_t joined = c.add_node(*leader);
    BOOST_TEST_REQUIRE(
        until(c, *leader, "POST", "/cluster/members", c.member_body(joined, true), 201).status == 201);
    c.start(joined);
    BOOST_TEST_REQUIRE(c.wait_healthy(joined, 20s), read_tail(c.spec(joined).log_file));
    // Both learners caught up: the joiner's writes (forwarded) and the moved member's reads.
    BOOST_TEST_REQUIRE(put(c.http_port(joined), "k", "v").status == 200);
    BOOST_TEST(wait_until([&] { return get(c.http_port(moved), "k").status == 200; }, 20s),
               read_tail(c.spec(moved).log_file));
    const std::string log = read_tail(c.spec(joined).log_file);
    BOOST_TEST(log.find("cannot resolve member " + std::to_string(moved)) == std::string::npos, log);
}

// Two of three members are lost for good. The survivor, started once with
// --force-new-cluster, becomes the only member of a new cluster with every write its log
// held, refuses a member of the old cluster that comes back, and grows again through --join.
BOOST_AUTO_TEST_CASE(a_survivor_of_a_lost_majority_is_forced_into_a_new_cluster_and_grows_again)
{
    cluster c(3);
    const auto leader = c.wait_ready(15s);
    BOOST_TEST_REQUIRE(leader.has_value());
    // A follower survives: it learns of commits a message later than the leader.
    const std::uint64_t survivor = *leader == 3 ? 2 : 3;
    const std::uint64_t lost = 6 - *leader - survivor;
    const auto written = put_many(c.http_port(*leader), "before-", 200);
    BOOST_TEST_REQUIRE(written.ok == 200u, written.first_failure);
    // Every acknowledged write is in the survivor's log (a majority holds it, and the test
    // waits for this one to be part of it).
    const auto at_leader = get_status(c.http_port(*leader));
    BOOST_TEST_REQUIRE(at_leader.has_value());
    BOOST_TEST_REQUIRE(wait_until(
        [&] {
            const auto s = get_status(c.http_port(survivor));
            return s && s->last_index >= at_leader->commit_index;
        },
        10s));
    const auto old_members = request(c.http_port(survivor), "GET", "/cluster/members");
    const std::string old_id = parse_json(old_members.body).string("cluster_id").value_or("");
    BOOST_TEST_REQUIRE(old_id.size() == 16u, describe(old_members));
    c.kill9(*leader);
    c.kill9(lost);
    BOOST_TEST(put(c.http_port(survivor), "alone", "x", 2s).status != 200); // no quorum
    const auto before_stop = get_status(c.http_port(survivor));
    BOOST_TEST_REQUIRE(before_stop.has_value());
    BOOST_TEST_REQUIRE(c.terminate(survivor).has_value());

    // --inspect reads the stopped survivor's data directory: what an operator compares
    // between survivors to choose the one to force. It changes nothing there (LevelDB's
    // recovery of its own log, which a start makes, stays in memory).
    auto inspect = c.args(survivor);
    inspect.push_back("--inspect");
    const auto untouched = raftkv::test::directory_snapshot(c.spec(survivor).data_dir);
    auto r = run_server(inspect);
    BOOST_TEST(r.status.value_or(exit_status{}).code == 0, r.err);
    BOOST_TEST((raftkv::test::directory_snapshot(c.spec(survivor).data_dir) == untouched),
               "--inspect changed the data directory");
    BOOST_TEST(r.out.find("node            " + std::to_string(survivor) + " of cluster 0x" + old_id) !=
                   std::string::npos,
               r.out);
    BOOST_TEST(r.out.find(" to " + std::to_string(before_stop->last_index) + ", the last of term ") !=
                   std::string::npos,
               r.out);
    BOOST_TEST(r.out.find("configuration   voters 1,2,3") != std::string::npos, r.out);
    BOOST_TEST(r.out.find("raft addresses  1=" + c.spec(1).raft_address() + ",2=" + c.spec(2).raft_address() +
                          ",3=" + c.spec(3).raft_address() + "\n") != std::string::npos,
               r.out);
    BOOST_TEST(r.out.find("state           applied to ") != std::string::npos, r.out);

    // The old member list, or a wrong cluster id, is refused before anything changes.
    auto forced = c.args(survivor);
    forced.insert(forced.end(), {"--force-new-cluster", old_id});
    r = run_server(forced);
    BOOST_TEST(r.status.value_or(exit_status{}).code == 2);
    BOOST_TEST(r.err.find("--peers naming only it") != std::string::npos, r.err);
    const auto peers = std::find(forced.begin(), forced.end(), "--peers");
    forced.erase(peers, peers + 2);
    auto wrong = forced;
    wrong.back() = "0x0123456789abcdef";
    r = run_server(wrong);
    BOOST_TEST(r.status.value_or(exit_status{}).code == 2);
    BOOST_TEST(r.err.find("--force-new-cluster names cluster 0x0123456789abcdef") != std::string::npos,
               r.err);

    // A start that cannot listen for Raft forces nothing: a forced log under the old
    // identity would rejoin the old cluster on the next start, contradicting it.
    {
        boost::asio::io_context io;
        const boost::asio::ip::tcp::acceptor busy(
            io, {boost::asio::ip::make_address("127.0.0.1"), c.spec(survivor).raft_port});
        r = run_server(forced);
        BOOST_TEST(r.status.value_or(exit_status{}).code == 1);
        BOOST_TEST(r.err.find("cannot listen for Raft") != std::string::npos, r.err);
    }
    r = run_server(inspect);
    BOOST_TEST(r.out.find("node            " + std::to_string(survivor) + " of cluster 0x" + old_id) !=
                   std::string::npos,
               r.out);
    BOOST_TEST(r.out.find("configuration   voters 1,2,3") != std::string::npos, r.out);

    c.start(survivor, forced);
    BOOST_TEST_REQUIRE(c.wait_healthy(survivor, 20s), read_tail(c.spec(survivor).log_file));
    BOOST_TEST(read_tail(c.spec(survivor).log_file).find("forced a new cluster") != std::string::npos);
    // A running node's storage is locked: --inspect says so rather than read it under the node.
    r = run_server(inspect);
    BOOST_TEST(r.status.value_or(exit_status{}).code == 1);
    BOOST_TEST(r.err.find("cannot lock") != std::string::npos, r.err);
    const auto kept = get_many(c.http_port(survivor), "before-", 200);
    BOOST_TEST(kept.ok == 200u, kept.first_failure);
    BOOST_TEST(put(c.http_port(survivor), "after", "v").status == 200);
    const auto st = get_status(c.http_port(survivor));
    BOOST_TEST_REQUIRE(st.has_value());
    BOOST_TEST(st->members.size() == 1u);
    BOOST_TEST(st->leader.value_or(0) == survivor);
    const std::string new_id = parse_json(request(c.http_port(survivor), "GET", "/cluster/members").body)
                                   .string("cluster_id")
                                   .value_or("");
    BOOST_TEST((new_id.size() == 16u && new_id != old_id), new_id);

    // The flag is for one start: the next one with it is refused, one without serves.
    BOOST_TEST_REQUIRE(c.terminate(survivor).has_value());
    r = run_server(forced);
    BOOST_TEST(r.status.value_or(exit_status{}).code == 2);
    BOOST_TEST(r.err.find("start it without --force-new-cluster") != std::string::npos, r.err);
    forced.resize(forced.size() - 2);
    c.start(survivor, forced);
    BOOST_TEST_REQUIRE(c.wait_healthy(survivor, 20s), read_tail(c.spec(survivor).log_file));
    BOOST_TEST(get(c.http_port(survivor), "after").status == 200);

    // A member of the old cluster that comes back with its data is refused at the Raft port.
    c.start(lost);
    BOOST_TEST(wait_until(
        [&] {
            const std::string log = read_tail(c.spec(survivor).log_file, 1 << 20);
            return log.find("refused connection from") != std::string::npos &&
                   log.find("cluster 0x" + old_id) != std::string::npos;
        },
        15s));
    BOOST_TEST(put(c.http_port(survivor), "still-alone", "v").status == 200);
    c.kill9(lost);

    // It grows again: the lost member's id, with an empty data directory, through --join.
    std::filesystem::remove_all(c.spec(lost).data_dir);
    c.set_join_via(lost, survivor);
    add_and_promote(c, survivor, lost);
    BOOST_TEST(put(c.http_port(lost), "grown", "v").status == 200);
    BOOST_TEST(get_many(c.http_port(lost), "before-", 200).ok == 200u);
    BOOST_TEST((members_with_role(c, survivor, "voter") ==
                std::vector<std::uint64_t>{std::min(survivor, lost), std::max(survivor, lost)}));
}
