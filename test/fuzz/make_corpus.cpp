// Writes the seed corpora of the fuzz targets: small valid inputs, made with the encoders
// the product uses, and near-valid ones (cut short, one field off). Deterministic, so the
// committed corpus can be checked against it:
//
//     fuzz_make_corpus DIR           writes DIR/<target>/<seed> (DIR: test/fuzz/corpus)
//     fuzz_make_corpus --check DIR   exits 1, naming the seed, if DIR differs from what it
//                                    would write (a CTest test runs this, so a format change
//                                    that makes the seeds stale is noticed)
//
// Inputs the fuzzer found are kept by libFuzzer in its own working corpus; only seeds a
// person chose belong here.

#include "wal_input.hpp"

#include "config.hpp"
#include "member_info.hpp"

#include <raftkv/asio/codec.hpp>
#include <raftkv/asio/detail/greeting.hpp>
#include <raftkv/kv_command.hpp>
#include <raftkv/membership.hpp>
#include <raftkv/wal/log_store.hpp>

#include "leveldb/temp_dir.hpp"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace {

using namespace raftkv;
using seeds = std::map<std::string, std::string>; // name -> bytes

std::string binary_data(std::size_t n)
{
    std::string s;
    for (std::size_t i = 0; i < n; ++i)
        s.push_back(static_cast<char>(i % 256));
    return s;
}

membership three_members()
{
    membership m{{1, 2, 3}};
    for (node_id id : m.voters)
        m.info[id] =
            server::encode_member_info({"127.0.0.1", static_cast<std::uint16_t>(9080 + id)},
                                       server::host_port{"127.0.0.1", static_cast<std::uint16_t>(8080 + id)});
    return m;
}

membership joint_members()
{
    membership m = three_members();
    m.outgoing = {1, 2};
    m.learners = {4};
    m.info[4] = server::encode_member_info({"::1", 9084});
    return m;
}

// ---- frame --------------------------------------------------------------------------

seeds frame_seeds()
{
    const std::vector<std::pair<std::string, message>> messages = {
        {"vote_request", {1, 2, 3, vote_request{.last_log_index = 10, .last_log_term = 2, .pre_vote = true}}},
        {"vote_response", {2, 1, 3, vote_response{.granted = true}}},
        {"append_request",
         {1, 2, 3,
          append_request{.prev_index = 9,
                         .prev_term = 2,
                         .commit = 8,
                         .entries = {{3, 10, entry_type::normal, encode_put("k", "v")},
                                     {3, 11, entry_type::noop, ""},
                                     {3, 12, entry_type::config, encode_membership(three_members())}}}}},
        {"append_response",
         {2, 1, 3,
          append_response{.success = false,
                          .match_index = 0,
                          .reject_index = 9,
                          .conflict_index = 5,
                          .conflict_term = 1}}},
        {"heartbeat", {1, 2, 3, heartbeat{.commit = 12, .read_seq = 4}}},
        {"heartbeat_response", {2, 1, 3, heartbeat_response{.read_seq = 4}}},
        {"timeout_now", {1, 2, 3, timeout_now{}}},
        {"install_snapshot_request",
         {1, 2, 3,
          install_snapshot_request{.meta = {.index = 100, .term = 3, .members = joint_members()},
                                   .transfer = 7,
                                   .offset = 0,
                                   .data = binary_data(64),
                                   .done = true}}},
        {"install_snapshot_response",
         {2, 1, 3, install_snapshot_response{.transfer = 7, .index = 100, .offset = 64, .done = true}}},
        {"read_index_request", {2, 1, 3, read_index_request{.request = 5}}},
        {"read_index_response", {1, 2, 3, read_index_response{.request = 5, .index = 12, .success = true}}},
        {"forward_request",
         {2, 1, 3,
          forward_request{
              .id = 1, .nonce = 2, .seq = 3, .commands = {encode_put("a", "b"), encode_del("c")}}}},
        {"forward_response", {1, 2, 3, forward_response{.id = 1, .index = 13, .error = 0}}},
    };
    seeds out;
    std::vector<message> all;
    for (const auto& [name, m] : messages) {
        out[name] = asio::encode_frame(std::span(&m, 1));
        all.push_back(m);
    }
    out["empty_batch"] = asio::encode_frame(std::span<const message>());
    const std::string batch = asio::encode_frame(all);
    out["batch_of_every_type"] = batch;
    out["near_cut_short"] = batch.substr(0, batch.size() - 1);
    std::string old = out["heartbeat"];
    old[5] = static_cast<char>(asio::frame_version - 1);
    out["near_old_version"] = old;
    std::string bad_bool = out["vote_response"];
    bad_bool[bad_bool.size() - 2] = 2;
    out["near_bool_out_of_range"] = bad_bool;
    return out;
}

// ---- greeting -----------------------------------------------------------------------

std::string greeting_input(const asio::detail::greeting& g, std::uint64_t cluster, node_id self,
                           std::uint64_t self_incarnation, std::uint64_t recorded)
{
    const asio::detail::greeting_bytes bytes = asio::detail::encode_greeting(g);
    std::string out(bytes.begin(), bytes.end());
    for (std::uint64_t v : {cluster, self, self_incarnation, recorded})
        for (int i = 7; i >= 0; --i)
            out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
    return out;
}

seeds greeting_seeds()
{
    asio::detail::greeting g;
    g.cluster_id = 0x1234'5678'9abc'def0;
    g.from = 2;
    g.to = 1;
    g.from_incarnation = 0x1111;
    g.to_incarnation = 0x2222;
    seeds out;
    out["accepted"] = greeting_input(g, g.cluster_id, 1, 0x2222, 0x1111);
    out["accepted_learns_incarnation"] = greeting_input(g, g.cluster_id, 1, 0x2222, 0);
    out["new_sender_directory"] = greeting_input(g, g.cluster_id, 1, 0x2222, 0x3333);
    out["replaced_receiver_directory"] = greeting_input(g, g.cluster_id, 1, 0x4444, 0x1111);
    out["other_cluster"] = greeting_input(g, 0x99, 1, 0, 0);
    out["wrong_receiver"] = greeting_input(g, 0, 3, 0, 0);
    asio::detail::greeting self = g;
    self.from = 1;
    out["own_id"] = greeting_input(self, 0, 1, 0, 0);
    asio::detail::greeting old = g;
    old.version = 1;
    out["old_version"] = greeting_input(old, 0, 1, 0, 0);
    std::string frame = asio::encode_frame(std::span<const message>());
    frame.resize(asio::detail::greeting_size + 32, '\0');
    out["a_frame_instead"] = frame;
    return out;
}

// ---- membership ---------------------------------------------------------------------

seeds membership_seeds()
{
    seeds out;
    out["config_one_voter"] = encode_membership(membership{{1}});
    out["config_three"] = encode_membership(three_members());
    out["config_joint"] = encode_membership(joint_members());
    out["config_empty"] = encode_membership(membership{});
    const std::string joint = encode_membership(joint_members());
    out["near_config_cut_short"] = joint.substr(0, joint.size() - 1);
    out["kv_put"] = encode_put("key", "value");
    out["kv_put_binary"] = encode_put(binary_data(8), binary_data(300));
    out["kv_del"] = encode_del("key");
    out["kv_meta"] = encode_meta("http/1", "127.0.0.1:8081");
    out["near_kv_del_with_value"] = encode_del("key") + "x";
    out["kv_put_if_absent"] = encode_put("key", "value", kv_precondition{std::nullopt, true});
    out["kv_put_session"] = encode_put("key", "value", {}, kv_client_session{7, 3});
    out["kv_del_if_match_session"] =
        encode_del("key", kv_precondition{5, false}, kv_client_session{7, 4, 100, 10});
    out["member_info"] = server::encode_member_info({"10.0.0.4", 9080}, server::host_port{"10.0.0.4", 8080});
    out["member_info_v6"] = server::encode_member_info({"::1", 9080});
    out["near_member_info_bad_port"] = R"({"raft":"10.0.0.4:0","http":"h:65536"})";
    return out;
}

// ---- http_request -------------------------------------------------------------------

/// A request with `head` (request line and header fields, each ending in CRLF) and `body`.
std::string with_body(const std::string& head, const std::string& body)
{
    return head + "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

seeds http_seeds()
{
    seeds out;
    out["put"] = with_body("PUT /kv/key HTTP/1.1\r\nHost: n1\r\nContent-Type: application/json\r\n",
                           R"({"value": "v\u00e9"})");
    out["get_encoded_key"] = "GET /kv/a%20b%C3%A9?x=1 HTTP/1.1\r\nHost: n1\r\n\r\n";
    out["delete"] = "DELETE /kv/key HTTP/1.0\r\n\r\n";
    out["pipelined"] = "GET /kv/a HTTP/1.1\r\nHost: n1\r\n\r\n"
                       "PUT /kv/b HTTP/1.1\r\nHost: n1\r\nContent-Length: 14\r\n\r\n{\"value\": \"x\"}"
                       "GET /status HTTP/1.1\r\nHost: n1\r\nConnection: close\r\n\r\n";
    out["put_chunked"] = "PUT /kv/c HTTP/1.1\r\nHost: n1\r\nTransfer-Encoding: chunked\r\n\r\n"
                         "6\r\n{\"valu\r\n8\r\ne\": \"x\"}\r\n0\r\n\r\n";
    out["put_expect_continue"] =
        "PUT /kv/d HTTP/1.1\r\nHost: n1\r\nExpect: 100-continue\r\nContent-Length: 14\r\n\r\n"
        "{\"value\": \"y\"}";
    const std::string member =
        R"({"id": 4, "raft": "127.0.0.1:9084", "http": "127.0.0.1:8084", "learner": true})";
    out["add_member"] = with_body("POST /cluster/members HTTP/1.1\r\nHost: n1\r\n", member);
    out["promote_member"] =
        "POST /cluster/members/4/promote HTTP/1.1\r\nHost: n1\r\nContent-Length: 0\r\n\r\n";
    out["body_alone"] = R"({"value": "a\"b\\c\n", "other": [1, 2.5, null, true]})";
    out["key_alone"] = "caf%C3%A9%2Fx";
    out["near_bad_escape"] = "GET /kv/%zz HTTP/1.1\r\n\r\n";
    out["near_not_utf8"] = "GET /kv/%C0%AF HTTP/1.1\r\n\r\n";
    out["near_wrong_length"] = "PUT /kv/e HTTP/1.1\r\nContent-Length: 99\r\n\r\n{\"value\": \"z\"}";
    out["near_method"] = "PATCH /kv/f HTTP/1.1\r\n\r\n";
    out["conditional_get"] = "GET /kv/g HTTP/1.1\r\nHost: n1\r\nIf-Match: \"7\"\r\n"
                             "If-None-Match: W/\"7\", \"x,y\" ,, 9\r\nIf-None-Match: *\r\n\r\n"
                             "HEAD /kv/g HTTP/1.1\r\nHost: n1\r\nIf-None-Match: \"12\"\r\n\r\n";
    out["conditions_alone"] = "\"11\", W/\"12\", \"abc\"";
    return out;
}

// ---- server_config ------------------------------------------------------------------

/// The config file's text, then the flags, NUL-separated (what the target reads).
std::string nul_joined(std::initializer_list<std::string> parts)
{
    std::string out;
    for (auto it = parts.begin(); it != parts.end(); ++it) {
        if (it != parts.begin())
            out.push_back('\0');
        out += *it;
    }
    return out;
}

seeds config_seeds()
{
    seeds out;
    out["file_full"] =
        "id: 2\ndata-dir: /var/lib/raftkv/2\nhttp: 127.0.0.1:8082\nadvertise-http: 10.0.0.2:8082\n"
        "raft: 127.0.0.1:9082\npeers:\n  1: 127.0.0.1:9081\n  2: 127.0.0.1:9082\n  3: 127.0.0.1:9083\n"
        "cluster-token: t0k3n\ntick-ms: 10\nelection-ticks: 30\nheartbeat-ticks: 5\n"
        "request-timeout-ms: 5000\nsnapshot-entries: 10000\nsnapshot-catchup-entries: 5000\n"
        "log-level: debug\nthreads: 4\n";
    out["file_peers_string"] = "id: 1\npeers: \"1=[::1]:9081,2=[::1]:9082\"\n";
    out["file_join"] = "id: 5\njoin: http://127.0.0.1:8081/\n";
    out["file_empty"] = "";
    out["near_file_unknown_key"] = "id: 1\nlerner: true\n";
    out["near_file_list"] = "peers: [1, 2]\nid: {a: b}\n";
    out["near_file_bad_yaml"] = "id: [1\n  - x: 'y\n";
    out["flags"] = nul_joined({"", "--id", "2", "--peers=1=127.0.0.1:9081,2=127.0.0.1:9082", "--http",
                               "0.0.0.0:8080", "--advertise-http", "10.0.0.2:8080", "--log-level=warn"});
    out["flags_with_file"] = nul_joined({out["file_join"], "--id", "6", "--threads=8"});
    out["near_flags_repeated"] = nul_joined({"", "--id", "1", "--id=2"});
    return out;
}

// ---- wal_recovery -------------------------------------------------------------------

log_entry entry(term_t term, index_t index, std::string data)
{
    return {term, index, entry_type::normal, std::move(data)};
}

/// Segment 1 as the store writes it (one group per operation), trailing zeros dropped.
std::string store_segment(const std::function<void(wal::log_store&)>& write)
{
    const test::temp_dir dir;
    {
        wal::log_store store(dir.path(), {.segment_bytes = 16 * 1024});
        write(store);
        store.sync();
    }
    std::ifstream in(dir.path() / fuzz::wal_input::segment_name(1), std::ios::binary);
    std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    while (!data.empty() && data.back() == '\0')
        data.pop_back();
    return data;
}

std::string u16(std::size_t n)
{
    return {static_cast<char>((n >> 8) & 0xff), static_cast<char>(n & 0xff)};
}

std::string group(const std::string& payload)
{
    return "G" + u16(payload.size()) + payload;
}

std::string entry_records(std::initializer_list<log_entry> es)
{
    std::string out;
    for (const auto& e : es)
        wal::detail::put_entry_record(out, e);
    return out;
}

std::string base_record(wal::detail::record_kind kind, index_t index, term_t term, const membership& m)
{
    std::string out;
    wal::detail::put_base_record(out, kind, index, term, encode_membership(m));
    return out;
}

seeds wal_seeds()
{
    using wal::detail::record_kind;
    seeds out;
    const auto append = [](wal::log_store& s, std::initializer_list<log_entry> es) {
        s.append(std::vector<log_entry>(es));
        s.sync();
    };
    const std::string written = store_segment([&](wal::log_store& s) {
        append(s, {entry(1, 1, encode_put("a", "1")), entry(1, 2, encode_put("b", "2"))});
        append(s, {entry(2, 3, encode_del("a"))});
        append(s, {entry(2, 4, encode_membership(three_members()))});
    });
    out["raw_entries"] = '\0' + written;
    out["raw_torn_tail"] = '\0' + written.substr(0, written.size() - 5);
    std::string damaged = written;
    damaged[wal::detail::segment_header_size + 40] ^= 1;
    out["raw_damaged_first_group"] = '\0' + damaged;
    out["raw_compacted"] = '\0' + store_segment([&](wal::log_store& s) {
                               append(s, {entry(1, 1, "x"), entry(1, 2, "y"), entry(2, 3, "z")});
                               s.compact(2, three_members());
                               s.sync(); // a group of its own, whatever the timing
                               append(s, {entry(3, 3, "conflict replaced")});
                           });
    out["raw_snapshot"] = '\0' + store_segment([&](wal::log_store& s) {
                              s.install_snapshot({.index = 50, .term = 4, .members = joint_members()});
                              append(s, {entry(4, 51, "after")});
                          });
    out["raw_not_a_segment"] = std::string(1, '\0') + "not a segment at all";

    const std::string hard_state = [] {
        std::string h(64, '\0');
        const std::string slot = [] {
            std::string s(32, '\0');
            wal::detail::put_u32(s.data(), 0x53485752);
            wal::detail::put_u64(s.data() + 8, 1);
            wal::detail::put_u64(s.data() + 16, 3);
            wal::detail::put_u64(s.data() + 24, 2);
            wal::detail::put_u32(s.data() + 4, wal::detail::crc32c(s.data() + 8, 24));
            return s;
        }();
        h.replace(32, 32, slot);
        return "H" + h;
    }();
    out["structured_entries"] = "\x01S\x02" + group(entry_records({entry(1, 1, "a"), entry(1, 2, "b")})) +
                                group(entry_records({entry(2, 2, "replaces b"), entry(2, 3, "c")})) +
                                hard_state;
    out["structured_two_segments"] = "\x01S\x02" +
                                     group(entry_records({entry(1, 1, "a"), entry(1, 2, "b")})) + "S\x02" +
                                     group(base_record(record_kind::compact, 2, 1, three_members())) +
                                     group(entry_records({entry(1, 3, "c")}));
    out["structured_gap_covered"] = "\x01S\x02" + group(entry_records({entry(1, 1, "a")})) + "S\x82" +
                                    group(entry_records({entry(1, 5, "e")})) +
                                    group(base_record(record_kind::compact, 4, 1, membership{{1}}));
    out["structured_snapshot"] = "\x01S\x02" +
                                 group(base_record(record_kind::snapshot, 9, 2, joint_members())) +
                                 group(entry_records({entry(2, 10, "j")}));
    std::string v1;
    v1 += static_cast<char>(record_kind::compact);
    v1.append(8, '\0');
    v1[1] = 3;
    v1.append(8, '\0');
    v1[9] = 1;
    out["structured_version_1"] = "\x01S\x01" + group(v1 + entry_records({entry(1, 4, "d")}));
    out["structured_torn"] =
        "\x01S\x02" + group(entry_records({entry(1, 1, "a")})) + "R" + u16(12) + "RWG1 torn...";
    out["near_structured_damaged_then_valid"] =
        "\x01S\x02R" + u16(32) + std::string(32, '\x7f') + group(entry_records({entry(1, 1, "a")}));
    out["near_structured_term_decreases"] =
        "\x01S\x02" + group(entry_records({entry(2, 1, "a"), entry(1, 2, "b")}));
    return out;
}

std::map<std::string, seeds> all_seeds()
{
    return {
        {"frame", frame_seeds()},       {"greeting", greeting_seeds()},    {"membership", membership_seeds()},
        {"http_request", http_seeds()}, {"server_config", config_seeds()}, {"wal_recovery", wal_seeds()},
    };
}

std::string read(const std::filesystem::path& path)
{
    std::ifstream in(path, std::ios::binary);
    return {(std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>()};
}

} // namespace

int main(int argc, char** argv)
{
    const bool check = argc == 3 && std::string(argv[1]) == "--check";
    if (argc != 2 && !check) {
        std::fprintf(stderr, "usage: %s [--check] CORPUS_DIR\n", argv[0]);
        return 2;
    }
    const std::filesystem::path root = argv[argc - 1];
    int problems = 0;
    for (const auto& [target, files] : all_seeds()) {
        const std::filesystem::path dir = root / target;
        if (!check) {
            std::filesystem::create_directories(dir);
            for (const auto& [name, bytes] : files)
                fuzz::wal_input::write_file(dir / name, bytes);
            std::printf("%s: %zu seeds\n", dir.c_str(), files.size());
            continue;
        }
        std::set<std::string> on_disk;
        std::error_code ec;
        for (const auto& item : std::filesystem::directory_iterator(dir, ec))
            on_disk.insert(item.path().filename().string());
        for (const auto& [name, bytes] : files) {
            if (!on_disk.erase(name) || read(dir / name) != bytes) {
                std::fprintf(stderr, "%s: missing or stale\n", (dir / name).c_str());
                ++problems;
            }
        }
        for (const auto& name : on_disk) {
            std::fprintf(stderr, "%s: not written by this program\n", (dir / name).c_str());
            ++problems;
        }
    }
    if (problems != 0)
        std::fprintf(stderr, "regenerate the seeds: fuzz_make_corpus %s\n", root.c_str());
    return problems == 0 ? 0 : 1;
}
