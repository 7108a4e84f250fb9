#include "identity.hpp"
#include "join.hpp"

#include "backup.hpp"

#include "durable_file.hpp"
#include "leveldb/temp_dir.hpp"
#include "peer_incarnations.hpp"

#define BOOST_TEST_MODULE server_identity
#include <boost/test/unit_test.hpp>

#include <filesystem>
#include <fstream>
#include <regex>
#include <string>

namespace {

using namespace raftkv::server;
using raftkv::test::temp_dir;

/// An identity file's `text` as version 1 wrote it, without the checksum line: edits to it
/// then meet the checks of its fields rather than the checksum's.
std::string as_version_1(std::string text)
{
    text.replace(0, identity_header.size(), identity_header_v1);
    text.erase(text.rfind("checksum "));
    return text;
}

std::map<raftkv::node_id, host_port> three_members()
{
    return {{1, {"127.0.0.1", 9081}}, {2, {"127.0.0.1", 9082}}, {3, {"127.0.0.1", 9083}}};
}

server_config node(raftkv::node_id id, const std::filesystem::path& dir)
{
    server_config c;
    c.id = id;
    c.data_dir = dir;
    c.peers = three_members();
    c.peers_given = true;
    c.raft = c.peers.at(id);
    c.http = c.advertise_http = {"127.0.0.1", static_cast<std::uint16_t>(8080 + id)};
    return c;
}

/// Records node `id`'s identity in `dir`, as its first start does.
void bootstrap(raftkv::node_id id, const std::filesystem::path& dir)
{
    server_config c = node(id, dir);
    const identity_plan plan = plan_identity(c);
    BOOST_TEST_REQUIRE(plan.write);
    write_identity(dir, plan.id);
}

std::string conflict_of(server_config c)
{
    try {
        plan_identity(c);
    } catch (const config_error& e) {
        return e.what();
    }
    return "<no conflict>";
}

} // namespace

BOOST_AUTO_TEST_CASE(every_member_derives_the_same_cluster_id_and_the_token_changes_it)
{
    const auto a = derive_cluster_id(three_members(), "");
    BOOST_TEST(a != 0u);
    BOOST_TEST(derive_cluster_id(three_members(), "") == a);
    BOOST_TEST(derive_cluster_id(three_members(), "prod") != a);
    auto other = three_members();
    other.at(3).port = 9999;
    BOOST_TEST(derive_cluster_id(other, "") != a);
}

BOOST_AUTO_TEST_CASE(identity_files_round_trip_and_malformed_ones_are_rejected)
{
    temp_dir dir;
    server_config c = node(2, dir.path());
    c.cluster_token = "prod";
    const identity id = identity_from(c);
    std::string error;
    const auto parsed = parse_identity(format_identity(id), error);
    BOOST_TEST_REQUIRE(parsed.has_value(), error);
    BOOST_TEST((*parsed == id));
    BOOST_TEST(format_identity(id).starts_with("raftkv-identity 2\n"));
    BOOST_TEST(format_identity(id).find("\nchecksum 0x") != std::string::npos);

    BOOST_TEST(!parse_identity("raftkv-identity 2\n", error).has_value());
    BOOST_TEST(!parse_identity("raftkv-identity 3\n", error).has_value());
    // Any changed character is caught by the checksum, the incarnation's digits included,
    // which nothing else checks.
    const std::string text = format_identity(id);
    for (std::size_t at = text.find('\n') + 1; at < text.rfind("checksum"); ++at) {
        std::string damaged = text;
        damaged[at] = damaged[at] == '1' ? '2' : '1';
        BOOST_TEST(!parse_identity(damaged, error).has_value(), damaged);
    }
    BOOST_TEST(!parse_identity(as_version_1(text).substr(identity_header_v1.size() + 1), error));
    // A version 1 file (no checksum) is read, and its fields are still checked.
    const auto v1 = parse_identity(as_version_1(text), error);
    BOOST_TEST_REQUIRE(v1.has_value(), error);
    BOOST_TEST((*v1 == id));
    std::string tampered = as_version_1(text);
    tampered.replace(tampered.find("9083"), 4, "9084");
    BOOST_TEST(!parse_identity(tampered, error).has_value());
    BOOST_TEST(error.find("cluster id") != std::string::npos, error);

    // Where it listens for HTTP, when other than what it advertises.
    identity listening = id;
    listening.listen_http = host_port{"0.0.0.0", 8082};
    const std::string listening_text = format_identity(listening);
    BOOST_TEST(listening_text.find("\nhttp 127.0.0.1:8082\nlisten-http 0.0.0.0:8082\n") != std::string::npos,
               listening_text);
    const auto listening_back = parse_identity(listening_text, error);
    BOOST_TEST_REQUIRE(listening_back.has_value(), error);
    BOOST_TEST((*listening_back == listening));
    std::string twice = as_version_1(listening_text);
    twice.insert(twice.find("listen-http"), "listen-http 0.0.0.0:8084\n");
    BOOST_TEST(!parse_identity(twice, error).has_value());
    std::string bad_listen = as_version_1(listening_text);
    bad_listen.replace(bad_listen.find("0.0.0.0:8082"), 12, "nowhere");
    BOOST_TEST(!parse_identity(bad_listen, error).has_value());
    BOOST_TEST(error.find("bad address") != std::string::npos, error);

    // A node that joined keeps the cluster's id, which its members list does not derive.
    identity joined = id;
    joined.joined = true;
    joined.cluster_id = 0x1234;
    const auto joined_back = parse_identity(format_identity(joined), error);
    BOOST_TEST_REQUIRE(joined_back.has_value(), error);
    BOOST_TEST((*joined_back == joined));

    std::ofstream(dir / "identity") << "garbage\n";
    BOOST_CHECK_THROW(read_identity(dir.path()), std::runtime_error);
}

BOOST_AUTO_TEST_CASE(the_identity_is_written_once_and_read_back)
{
    temp_dir dir;
    BOOST_TEST(!read_identity(dir / "data").has_value());
    bootstrap(2, dir / "data");
    const auto id = read_identity(dir / "data");
    BOOST_TEST_REQUIRE(id.has_value());
    BOOST_TEST(id->id == 2u);
    BOOST_TEST((id->members == three_members()));
    BOOST_TEST(!std::filesystem::exists(dir / "data" / "identity.tmp"));

    server_config again = node(2, dir / "data");
    const identity_plan plan = plan_identity(again);
    BOOST_TEST(!plan.write);
    BOOST_TEST(again.cluster_id == id->cluster_id);
}

BOOST_AUTO_TEST_CASE(a_restart_without_peers_takes_the_recorded_members)
{
    temp_dir dir;
    bootstrap(3, dir.path());
    server_config c;
    c.id = 3;
    c.data_dir = dir.path();
    plan_identity(c);
    BOOST_TEST((c.peers == three_members()));
    BOOST_TEST(c.raft.to_string() == "127.0.0.1:9083");
}

// A restart without --http listens where the node last did, and advertises what it last
// did; a start that moves it records where, for the next one. --raft is not carried over.
BOOST_AUTO_TEST_CASE(a_restart_without_http_listens_where_the_node_last_did)
{
    temp_dir dir;
    server_config first = node(3, dir.path());
    first.raft = {"0.0.0.0", 9083}; // listens on every interface; dialed at its member line
    first.raft_given = true;
    first.http = {"0.0.0.0", 8083};
    first.advertise_http = {"10.0.0.3", 8083};
    first.http_given = first.advertise_http_given = true;
    identity_plan plan = plan_identity(first);
    BOOST_TEST_REQUIRE(plan.write);
    write_identity(dir.path(), plan.id);

    const auto restart = [&] {
        server_config c;
        c.id = 3;
        c.data_dir = dir.path();
        return c;
    };
    server_config bare = restart();
    plan = plan_identity(bare);
    BOOST_TEST(!plan.write);
    BOOST_TEST(!plan.rewrite);
    BOOST_TEST(bare.http.to_string() == "0.0.0.0:8083");
    BOOST_TEST(bare.advertise_http.to_string() == "10.0.0.3:8083");
    BOOST_TEST(bare.raft.to_string() == "127.0.0.1:9083"); // its member line
    // The same wildcard again, without --advertise-http: what it advertised with it.
    server_config again = restart();
    again.http = {"0.0.0.0", 8083};
    again.http_given = true;
    plan = plan_identity(again);
    BOOST_TEST(!plan.rewrite);
    BOOST_TEST(again.advertise_http.to_string() == "10.0.0.3:8083");

    // Moved: recorded, and the next bare restart follows.
    server_config moved = restart();
    moved.http = moved.advertise_http = {"127.0.0.1", 18083};
    moved.http_given = true;
    moved.raft = {"127.0.0.1", 19083};
    moved.raft_given = true;
    plan = plan_identity(moved);
    BOOST_TEST(!plan.write);
    BOOST_TEST(plan.rewrite);
    BOOST_TEST(plan.id.http.to_string() == "127.0.0.1:18083");
    BOOST_TEST(!plan.id.listen_http.has_value()); // it advertises where it listens
    write_identity(dir.path(), plan.id);
    bare = restart();
    plan = plan_identity(bare);
    BOOST_TEST(!plan.rewrite);
    BOOST_TEST(bare.http.to_string() == "127.0.0.1:18083");
    BOOST_TEST(bare.advertise_http.to_string() == "127.0.0.1:18083");
    BOOST_TEST(bare.raft.to_string() == "127.0.0.1:9083");
    BOOST_TEST((bare.peers == three_members()));

    // Only --advertise-http: it listens where it did, and advertises the new address.
    server_config advertised = restart();
    advertised.advertise_http = {"10.0.0.9", 18083};
    advertised.advertise_http_given = true;
    plan = plan_identity(advertised);
    BOOST_TEST(advertised.http.to_string() == "127.0.0.1:18083");
    BOOST_TEST(plan.rewrite);
    BOOST_TEST(plan.id.http.to_string() == "10.0.0.9:18083");
    BOOST_TEST(plan.id.listen_http.value_or(host_port{}).to_string() == "127.0.0.1:18083");
}

BOOST_AUTO_TEST_CASE(flags_that_contradict_the_identity_are_refused_with_one_line)
{
    temp_dir dir;
    bootstrap(2, dir.path());

    server_config other_id = node(3, dir.path());
    const std::string id_error = conflict_of(other_id);
    BOOST_TEST(id_error.find("--id is 3") != std::string::npos, id_error);
    BOOST_TEST(id_error.find("start it with --id 2") != std::string::npos, id_error);
    BOOST_TEST(id_error.find('\n') == std::string::npos);

    server_config only_self = node(2, dir.path());
    only_self.peers = {{2, {"127.0.0.1", 9082}}};
    BOOST_TEST(conflict_of(only_self).find("--peers is 2=127.0.0.1:9082") != std::string::npos);

    server_config token = node(2, dir.path());
    token.cluster_token = "other";
    BOOST_TEST(conflict_of(token).find("start it without --cluster-token") != std::string::npos);

    // A node that joined was bootstrapped with no list: it is not offered one.
    temp_dir joined_dir;
    identity joined;
    joined.id = 4;
    joined.cluster_id = 0x1234;
    joined.members = three_members();
    joined.members.emplace(4, host_port{"127.0.0.1", 9084});
    joined.http = {"127.0.0.1", 8084};
    joined.incarnation = 7;
    joined.joined = true;
    write_identity(joined_dir.path(), joined);
    server_config peers = node(1, joined_dir.path());
    peers.id = 4;
    const std::string joined_error = conflict_of(peers);
    BOOST_TEST(joined_error.find("it joined that cluster (--join)") != std::string::npos, joined_error);
    BOOST_TEST(joined_error.find("bootstrapped with") == std::string::npos, joined_error);
}

BOOST_AUTO_TEST_CASE(a_forced_member_gets_a_new_cluster_of_its_own_that_it_can_read_back)
{
    temp_dir dir;
    bootstrap(2, dir.path());
    const identity old = *read_identity(dir.path());

    server_config wrong;
    wrong.id = 2;
    wrong.data_dir = dir.path();
    wrong.force_new_cluster = old.cluster_id ^ 1;
    BOOST_CHECK_EXCEPTION(plan_identity(wrong), config_error, [](const config_error& e) {
        return std::string(e.what()).find("start it without --force-new-cluster") != std::string::npos;
    });
    server_config empty;
    empty.data_dir = dir / "empty";
    empty.force_new_cluster = old.cluster_id;
    BOOST_CHECK_THROW(plan_identity(empty), config_error);

    server_config c;
    c.id = 2;
    c.data_dir = dir.path();
    c.force_new_cluster = old.cluster_id;
    const identity_plan plan = plan_identity(c);
    BOOST_TEST(plan.write);
    BOOST_TEST(plan.forced_from == old.cluster_id);
    BOOST_TEST(plan.id.cluster_id != old.cluster_id);
    BOOST_TEST(plan.id.incarnation != old.incarnation);
    BOOST_TEST((plan.id.members == std::map<raftkv::node_id, host_port>{{2, old.members.at(2)}}));
    BOOST_TEST((c.peers == plan.id.members));
    BOOST_TEST(c.raft.to_string() == old.members.at(2).to_string());
    BOOST_TEST(c.http.to_string() == old.http.to_string()); // where it served before
    BOOST_TEST(plan.id.http.to_string() == old.http.to_string());
    BOOST_TEST(c.cluster_id == plan.id.cluster_id);

    // Its file reads back, and its id still guards it against edits.
    std::string error;
    const auto back = parse_identity(format_identity(plan.id), error);
    BOOST_TEST_REQUIRE(back.has_value(), error);
    BOOST_TEST((*back == plan.id));
    std::string tampered = as_version_1(format_identity(plan.id));
    tampered.replace(tampered.find("forced-from 0x") + 14, 1,
                     tampered[tampered.find("forced-from 0x") + 14] == 'a' ? "b" : "a");
    BOOST_TEST(!parse_identity(tampered, error).has_value());
}

BOOST_AUTO_TEST_CASE(members_restored_from_one_backup_share_an_id_and_from_another_do_not)
{
    temp_dir dir;
    // Only the header is read when planning (restore_backup() checks the whole file later).
    const auto backup = [&](const std::string& name, std::uint64_t cluster, raftkv::index_t index) {
        const std::filesystem::path file = dir / name;
        std::ofstream(file) << format_backup_header({.index = index, .cluster_id = cluster, .node = 1});
        return file;
    };
    const auto a = backup("a", 0x5d0c3c7be7d2f14aull, 1042),
               same = backup("same", 0x5d0c3c7be7d2f14aull, 1042),
               later = backup("later", 0x5d0c3c7be7d2f14aull, 1043), other = backup("other", 0x1111ull, 1042);
    const auto plan_for = [&](raftkv::node_id id, const std::filesystem::path& file) {
        server_config c = node(id, dir / ("node-" + std::to_string(id) + "-" + file.filename().string()));
        c.restore_backup = file;
        const identity_plan plan = plan_identity(c);
        BOOST_TEST(c.cluster_id == plan.id.cluster_id);
        return plan.id;
    };
    const identity one = plan_for(1, a), two = plan_for(2, same);
    BOOST_TEST(one.restored_from_cluster == 0x5d0c3c7be7d2f14aull);
    BOOST_TEST(one.restored_from_index == 1042u);
    BOOST_TEST(one.cluster_id == two.cluster_id);
    BOOST_TEST(one.cluster_id != derive_cluster_id(three_members(), ""),
               "not the id of a bootstrapped cluster");
    BOOST_TEST(plan_for(3, later).cluster_id != one.cluster_id);
    BOOST_TEST(plan_for(3, other).cluster_id != one.cluster_id);

    // Its file reads back, and its id still guards it against edits.
    std::string error;
    const auto back = parse_identity(format_identity(one), error);
    BOOST_TEST_REQUIRE(back.has_value(), error);
    BOOST_TEST((*back == one));
    std::string tampered = as_version_1(format_identity(one));
    tampered.replace(tampered.find(" 1042\n"), 6, " 1043\n");
    BOOST_TEST(!parse_identity(tampered, error).has_value());
    BOOST_TEST(error.find("does not match") != std::string::npos, error);
    std::string garbled = as_version_1(format_identity(one));
    garbled.replace(garbled.find(" 1042\n"), 6, " x\n");
    BOOST_TEST(!parse_identity(garbled, error).has_value());
    BOOST_TEST(error.find("bad restored-from") != std::string::npos, error);

    server_config missing = node(1, dir / "missing");
    missing.restore_backup = dir / "no-such-backup";
    BOOST_CHECK_THROW(plan_identity(missing), std::runtime_error);
}

BOOST_AUTO_TEST_CASE(raft_data_without_an_identity_is_adopted)
{
    temp_dir dir;
    std::filesystem::create_directories(dir / "wal");
    server_config c = node(1, dir.path());
    const identity_plan plan = plan_identity(c);
    BOOST_TEST(plan.write);
    BOOST_TEST(plan.adopted);
    BOOST_TEST(c.cluster_id == derive_cluster_id(three_members(), ""));

    temp_dir empty;
    server_config fresh = node(1, empty.path());
    BOOST_TEST(!plan_identity(fresh).adopted);
}

BOOST_AUTO_TEST_CASE(the_incarnation_round_trips_and_differs_between_data_directories)
{
    temp_dir a, b;
    bootstrap(1, a.path());
    bootstrap(1, b.path());
    const auto first = read_identity(a.path());
    const auto second = read_identity(b.path());
    BOOST_TEST_REQUIRE((first && second));
    BOOST_TEST(first->incarnation != 0u);
    BOOST_TEST(first->incarnation != second->incarnation, "a wiped and re-created directory is another one");
    BOOST_TEST(first->cluster_id == second->cluster_id);

    server_config again = node(1, a.path());
    const identity_plan plan = plan_identity(again);
    BOOST_TEST(!plan.write);
    BOOST_TEST(again.incarnation == first->incarnation);

    std::string error;
    std::string text = as_version_1(format_identity(*first));
    BOOST_TEST(text.find("\nincarnation 0x") != std::string::npos, text);
    text.replace(text.find("incarnation 0x") + 14, 16, "0000000000000000");
    BOOST_TEST(!parse_identity(text, error).has_value());
    BOOST_TEST(error.find("bad incarnation") != std::string::npos, error);
}

BOOST_AUTO_TEST_CASE(an_identity_file_without_an_incarnation_gets_one_and_is_rewritten)
{
    temp_dir dir;
    server_config c = node(2, dir.path());
    identity old = identity_from(c);
    old.incarnation = 0; // as a release without incarnations wrote it
    write_identity(dir.path(), old);
    BOOST_TEST(format_identity(old).find("incarnation") == std::string::npos);
    const auto read = read_identity(dir.path());
    BOOST_TEST_REQUIRE(read.has_value());
    BOOST_TEST(read->incarnation == 0u);

    const identity_plan plan = plan_identity(c);
    BOOST_TEST(plan.write);
    BOOST_TEST(!plan.adopted);
    BOOST_TEST(plan.id.incarnation != 0u);
    BOOST_TEST(c.incarnation == plan.id.incarnation);
    write_identity(dir.path(), plan.id);

    server_config again = node(2, dir.path());
    BOOST_TEST(!plan_identity(again).write);
    BOOST_TEST(again.incarnation == plan.id.incarnation);
}

BOOST_AUTO_TEST_CASE(peers_files_round_trip_and_malformed_ones_are_rejected)
{
    temp_dir dir;
    BOOST_TEST(read_peer_incarnations(dir.path()).empty());
    const peer_incarnations peers{{1, {0x9c41f0d2a7e35b18, 0}}, {3, {7, 0x6a0c1f9e22d4b871}}};
    write_peer_incarnations(dir.path(), peers);
    BOOST_TEST((read_peer_incarnations(dir.path()) == peers));
    BOOST_TEST(!std::filesystem::exists(dir / "peers.tmp"));
    BOOST_TEST((incarnations_of(peers) ==
                std::map<raftkv::node_id, std::uint64_t>{{1, 0x9c41f0d2a7e35b18}, {3, 7}}));
    const std::string text = format_peer_incarnations(peers);
    const std::string lines =
        "raftkv-peers 2\nincarnation 1 0x9c41f0d2a7e35b18\nincarnation 3 0x0000000000000007 "
        "added 0x6a0c1f9e22d4b871\n";
    BOOST_TEST(text.starts_with(lines), text);
    BOOST_TEST(std::regex_match(text.substr(lines.size()), std::regex("checksum 0x[0-9a-f]{8}\n")), text);

    // A damaged file that still parses is refused: each digit of the first incarnation
    // changed in turn, and one line dropped.
    std::string error;
    for (std::size_t at = lines.find("0x9c") + 2; at < lines.find("0x9c") + 18; ++at) {
        std::string damaged = text;
        damaged[at] = damaged[at] == '0' ? '1' : '0';
        BOOST_TEST(!parse_peer_incarnations(damaged, error).has_value(), damaged);
        BOOST_TEST(error.find("checksum does not match") != std::string::npos, error);
    }
    std::string shorter = text;
    shorter.erase(shorter.find("incarnation 3"), shorter.find("checksum") - shorter.find("incarnation 3"));
    BOOST_TEST(!parse_peer_incarnations(shorter, error).has_value());
    BOOST_TEST(!parse_peer_incarnations(lines, error).has_value());
    BOOST_TEST(error == "no checksum line");
    BOOST_TEST(!parse_peer_incarnations(text + "incarnation 4 0x0000000000000009\n", error).has_value());

    // A file of the version before checksums is read as it is (it had no tags either).
    const auto v1 = parse_peer_incarnations(
        "raftkv-peers 1\nincarnation 1 0x9c41f0d2a7e35b18\nincarnation 3 0x0000000000000007\n", error);
    BOOST_TEST_REQUIRE(v1.has_value(), error);
    BOOST_TEST((*v1 == peer_incarnations{{1, {0x9c41f0d2a7e35b18, 0}}, {3, {7, 0}}}));
    BOOST_TEST(!parse_peer_incarnations(
        "raftkv-peers 1\nincarnation 3 0x0000000000000007 added 0x6a0c1f9e22d4b871\n", error));
    std::string bad_tag = with_checksum("raftkv-peers 2\nincarnation 3 0x0000000000000007 added x\n");
    BOOST_TEST(!parse_peer_incarnations(bad_tag, error).has_value());
    BOOST_TEST(!parse_peer_incarnations("raftkv-peers 3\n", error).has_value());
    BOOST_TEST(!parse_peer_incarnations("raftkv-peers 1\nincarnation 1 0x0000000000000000\n", error));
    BOOST_TEST(!parse_peer_incarnations("raftkv-peers 1\nincarnation 1 0x1\n", error));
    BOOST_TEST(!parse_peer_incarnations(
        "raftkv-peers 1\nincarnation 1 0x0000000000000001\nincarnation 1 0x0000000000000002\n", error));
    BOOST_TEST(error.find("line 3") != std::string::npos, error);

    std::ofstream(dir / "peers") << "garbage\n";
    BOOST_CHECK_THROW(read_peer_incarnations(dir.path()), std::runtime_error);
}

// ---- The member list --join reads ----------------------------------------------------

BOOST_AUTO_TEST_CASE(a_member_list_names_who_answered_its_leader_and_the_members_addresses)
{
    using raftkv::server::parse_cluster_view;
    const auto v = parse_cluster_view(
        R"({"id":2,"cluster_id":"00000000000abcde","members":[)"
        R"({"id":1,"raft":"h:1","http":"h:8001","role":"voter","incarnation":"9c41f0d2a7e35b18"},)"
        R"({"id":2,"raft":"h:2","http":null,"role":"voter"},)"
        R"({"id":4,"raft":"h:4","http":"h:8004","role":"learner"}],"members_index":7,"joint":false,"leader":1,)"
        R"("members_committed":true})");
    BOOST_TEST(v.cluster_id == 0xabcdeu);
    BOOST_TEST(v.members_committed);
    BOOST_TEST(v.answered_by.value_or(0) == 2u);
    BOOST_TEST(v.leader.value_or(0) == 1u);
    BOOST_TEST(v.raft.size() == 3u);
    BOOST_TEST(v.http.size() == 2u);
    BOOST_TEST(v.http.at(4).to_string() == "h:8004");
    BOOST_TEST((v.learners == std::vector<raftkv::node_id>{4}));
    // The data directories the answering node recorded for the members that greeted it.
    BOOST_TEST(v.incarnations.size() == 1u);
    BOOST_TEST(v.incarnations.at(1) == 0x9c41f0d2a7e35b18u);
    // An answer without "id" (an older release) or with no leader known.
    const auto old =
        parse_cluster_view(R"({"cluster_id":"1","members":[{"id":1,"raft":"h:1"}],"leader":null})");
    BOOST_TEST(!old.answered_by.has_value());
    BOOST_TEST(!old.leader.has_value());
    BOOST_TEST(!old.members_committed, "a list that does not say is not known committed");
    BOOST_CHECK_THROW(parse_cluster_view(R"({"cluster_id":"1","members":[],"members_committed":1})"),
                      std::runtime_error);
    BOOST_CHECK_THROW(parse_cluster_view(R"({"id":0,"cluster_id":"1","members":[]})"), std::runtime_error);
    for (const char* bad : {R"("x1")", R"("0")", "17", R"("")"})
        BOOST_CHECK_THROW(
            parse_cluster_view(std::string(R"({"cluster_id":"1","members":[{"id":1,"raft":"h:1",)") +
                               R"("incarnation":)" + bad + "}]}"),
            std::runtime_error);
    BOOST_CHECK_THROW(parse_cluster_view(R"({"id":"2","cluster_id":"1","members":[]})"), std::runtime_error);
}

BOOST_AUTO_TEST_CASE(a_file_written_atomically_leaves_no_temporary_file_when_it_fails)
{
    temp_dir dir;
    std::filesystem::create_directories(dir / "identity" / "in-the-way"); // a directory in its place
    BOOST_CHECK_THROW(write_file_atomically(dir / "identity", "text"), std::runtime_error);
    BOOST_TEST(!std::filesystem::exists(dir / "identity.tmp"));
    write_file_atomically(dir / "other", "text");
    BOOST_TEST(read_small_file(dir / "other").value_or("") == "text");
    BOOST_TEST(!std::filesystem::exists(dir / "other.tmp"));
}
