// Backup files (backup.hpp): the header's text, a whole file checked, and a restore that
// leaves a data directory a node opens with the backup's state and its log after it.
#include "backup.hpp"

#include "leveldb/temp_dir.hpp"

#include <raftkv/kv_command.hpp>
#include <raftkv/leveldb/kv_state_machine.hpp>
#include <raftkv/wal/log_store.hpp>

#define BOOST_TEST_MODULE server_backup
#include <boost/test/unit_test.hpp>

#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using namespace raftkv::server;
using raftkv::test::temp_dir;

/// Writes a backup of a state machine holding a=1 (index 1), b=2 (index 2), then a
/// delete of a (index 3), to `file`; returns its index.
// Writes a backup of a state machine that applied `commands` (by default: put a, put b,
// delete a), at indexes 1, 2, ...
raftkv::index_t write_backup(const std::filesystem::path& dir, const std::filesystem::path& file,
                             const std::vector<std::string>& commands = {raftkv::encode_put("a", "1"),
                                                                         raftkv::encode_put("b", "2"),
                                                                         raftkv::encode_del("a")})
{
    raftkv::leveldb::kv_state_machine machine(dir);
    std::vector<raftkv::log_entry> batch;
    for (const std::string& command : commands)
        batch.push_back(
            {.term = 1, .index = batch.size() + 1, .type = raftkv::entry_type::normal, .data = command});
    std::vector<raftkv::kv_result> results(batch.size());
    machine.apply(batch, results);
    auto reader = machine.snapshot();
    std::ofstream out(file, std::ios::binary);
    out << format_backup_header({.index = reader.index(), .cluster_id = 0x1234, .node = 2});
    std::string chunk;
    for (bool last = false; !last;) {
        last = reader.read(chunk, 16);
        out << chunk;
    }
    return reader.index();
}

std::string contents(const std::filesystem::path& file)
{
    std::ifstream in(file, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), {}};
}

void write(const std::filesystem::path& file, const std::string& text)
{
    std::ofstream(file, std::ios::binary) << text;
}

std::string error_of(const std::filesystem::path& file)
{
    try {
        std::uint64_t bytes = 0;
        verify_backup(file, bytes);
    } catch (const std::runtime_error& e) {
        return e.what();
    }
    return "";
}

} // namespace

BOOST_AUTO_TEST_CASE(the_header_is_read_back_and_a_bad_one_says_why)
{
    const std::string text =
        format_backup_header({.index = 1042, .cluster_id = 0x23cbf0697f22948b, .node = 3});
    // The check is the CRC-32C of the lines before it (a fixed value: no build changes it).
    BOOST_TEST(text == "raftkv-backup 1\nindex 1042\ncluster 0x23cbf0697f22948b\nnode 3\ncheck 33691c29\n\n");
    std::size_t size = 0;
    std::string error;
    const auto h = parse_backup_header(text + "RKVSNAP", size, error);
    BOOST_TEST_REQUIRE(h.has_value(), error);
    BOOST_TEST(h->index == 1042u);
    BOOST_TEST(h->cluster_id == 0x23cbf0697f22948bu);
    BOOST_TEST(h->node == 3u);
    BOOST_TEST(size == text.size());

    // Not whole yet: no error, more bytes may complete it.
    BOOST_TEST(!parse_backup_header(text.substr(0, 20), size, error).has_value());
    BOOST_TEST(error.empty());
    BOOST_TEST(!parse_backup_header("raftkv-back", size, error).has_value());
    BOOST_TEST(error.empty());
    // A later release's extra line is skipped.
    BOOST_TEST(
        parse_backup_header("raftkv-backup 1\nindex 5\ncreated 2026\ncluster 0x0000000000000001\nnode 1\n\n",
                            size, error)
            .has_value(),
        error);

    const auto refused = [&](std::string data) {
        parse_backup_header(data, size, error);
        return error;
    };
    BOOST_TEST(refused("RKVSNAP\x03").find("does not start with") != std::string::npos);
    BOOST_TEST(refused("raftkv-backup 2\nindex 5\n\n").find("first line") != std::string::npos);
    BOOST_TEST(refused("raftkv-backup 1\nindex five\ncluster 0x0000000000000001\nnode 1\n\n")
                   .find("'index five' does not parse") != std::string::npos);
    BOOST_TEST(
        refused("raftkv-backup 1\nindex 5\ncluster 0x0000000000000001\nnode 0\n\n").find("does not parse") !=
        std::string::npos);
    BOOST_TEST(refused("raftkv-backup 1\nindex 5\nnode 1\n\n").find("lacks") != std::string::npos);
    BOOST_TEST(refused("raftkv-backup 1\n" + std::string(max_backup_header_bytes, 'x'))
                   .find("does not end within") != std::string::npos);

    // A header whose lines were changed after it was written (a flipped bit, an edit) no
    // longer matches its check: not the cluster, the node, the index nor the check itself.
    for (const auto& [from, to] :
         std::vector<std::pair<std::string, std::string>>{{"0x23cbf0697f22948b", "0x23cbf0697f22948a"},
                                                          {"node 3", "node 7"},
                                                          {"index 1042", "index 1043"},
                                                          {"check 33691c29", "check 33691c28"}}) {
        std::string damaged = text;
        damaged.replace(damaged.find(from), from.size(), to);
        BOOST_TEST(refused(damaged).find("its header is damaged") != std::string::npos, from << " -> " << to);
    }
    // A header without one (written before checks were) is taken as it is.
    BOOST_TEST(
        parse_backup_header("raftkv-backup 1\nindex 5\ncluster 0x0000000000000001\nnode 1\n\n", size, error)
            .has_value(),
        error);
}

BOOST_AUTO_TEST_CASE(a_whole_backup_passes_and_a_cut_or_damaged_one_is_refused)
{
    temp_dir dir;
    const auto file = dir.path() / "b.backup";
    const raftkv::index_t index = write_backup(dir.path() / "source", file);
    BOOST_TEST(index == 3u);
    std::uint64_t bytes = 0;
    BOOST_TEST(verify_backup(file, bytes).index == 3u);
    BOOST_TEST(bytes == std::filesystem::file_size(file));

    const std::string whole = contents(file);
    const std::size_t header_end = whole.find("\n\n") + 2;
    for (std::size_t cut : {std::size_t{0}, std::size_t{10}, header_end, header_end + 3, whole.size() - 1}) {
        write(dir.path() / "cut", whole.substr(0, cut));
        BOOST_TEST(!error_of(dir.path() / "cut").empty(), "cut at " << cut);
    }
    BOOST_TEST(error_of(dir.path() / "cut").find("is incomplete") != std::string::npos);
    write(dir.path() / "cut", whole.substr(0, header_end));
    BOOST_TEST(error_of(dir.path() / "cut")
                   .ends_with("is incomplete: nothing follows its header (the state it holds is missing)"));
    write(dir.path() / "cut", whole.substr(0, header_end + 3));
    BOOST_TEST(error_of(dir.path() / "cut")
                   .ends_with("is incomplete: it ends with 3 bytes of an incomplete stream header"),
               error_of(dir.path() / "cut"));
    std::string flipped = whole;
    flipped[flipped.size() - 12] ^= 1;
    write(dir.path() / "flipped", flipped);
    BOOST_TEST(error_of(dir.path() / "flipped").find("is damaged") != std::string::npos);
    write(dir.path() / "longer", whole + "x");
    BOOST_TEST(error_of(dir.path() / "longer").find("is damaged") != std::string::npos);
    BOOST_TEST(error_of(dir.path() / "absent").find("cannot open") != std::string::npos);
}

// Where the backed-up cluster's nodes serve HTTP ("node.<id>.http" records, with or without an
// addition's tag) says nothing of the new cluster's members under the same ids: a restore drops
// it, and keeps everything else.
BOOST_AUTO_TEST_CASE(a_restore_drops_where_the_backed_up_clusters_nodes_serve_http)
{
    temp_dir dir;
    const auto file = dir.path() / "b.backup";
    write_backup(dir.path() / "source", file,
                 {raftkv::encode_meta("node.1.http", "10.0.0.1:8080"),
                  raftkv::encode_meta("node.4.http.0x6a0c1f9e22d4b871", "10.0.0.4:8080"),
                  raftkv::encode_meta("nodes", "kept"), raftkv::encode_put("node.1.http", "a user key")});
    raftkv::membership members;
    members.voters = {1};
    const auto data = dir.path() / "node";
    BOOST_TEST(restore_backup(file, data, members).index == 4u);
    raftkv::leveldb::kv_state_machine machine(data / "state");
    BOOST_TEST(!machine.get_meta("node.1.http").has_value());
    BOOST_TEST(!machine.get_meta("node.4.http.0x6a0c1f9e22d4b871").has_value());
    BOOST_TEST(machine.get_meta("nodes").value_or("") == "kept");
    BOOST_TEST(machine.get("node.1.http").value_or("") == "a user key");
}

BOOST_AUTO_TEST_CASE(a_restore_gives_the_state_at_the_backups_index_and_a_log_after_it)
{
    temp_dir dir;
    const auto file = dir.path() / "b.backup";
    write_backup(dir.path() / "source", file);
    raftkv::membership members;
    members.voters = {7};
    const auto data = dir.path() / "node";
    const backup_header h = restore_backup(file, data, members);
    BOOST_TEST(h.index == 3u);
    BOOST_TEST(h.node == 2u);
    {
        raftkv::leveldb::kv_state_machine machine(data / "state");
        BOOST_TEST(machine.applied_index() == 3u);
        BOOST_TEST(!machine.get("a").has_value());
        const auto b = machine.get_versioned("b");
        BOOST_TEST_REQUIRE(b.has_value());
        BOOST_TEST(b->value == "2");
        BOOST_TEST(b->version == 2u, "the version the key had");
    }
    {
        raftkv::wal::log_store log(data / "wal");
        BOOST_TEST(log.first_index() == 4u);
        BOOST_TEST(log.last_index() == 3u);
        BOOST_TEST(log.term_at(3) == 1u);
        BOOST_TEST((log.base_members() == members));
        BOOST_TEST(log.saved_hard_state().term == 1u);
    }
    // Until the server has recorded the node (finish_restore()), the directory is a restore
    // that did not finish: restoring again starts over.
    BOOST_TEST(restore_unfinished(data));
    BOOST_TEST(restore_backup(file, data, members).index == 3u);
    finish_restore(data);
    BOOST_TEST(!restore_unfinished(data));
    // Once finished, the directory holds a node: a second restore is refused.
    BOOST_CHECK_THROW(restore_backup(file, data, members), std::runtime_error);

    // A bad file leaves a new directory as it found it.
    write(dir.path() / "cut", contents(file).substr(0, 60));
    const auto other = dir.path() / "other";
    BOOST_CHECK_THROW(restore_backup(dir.path() / "cut", other, members), std::runtime_error);
    BOOST_TEST(!std::filesystem::exists(other / "state"));
    BOOST_TEST(!std::filesystem::exists(other / "wal"));
    BOOST_TEST(!restore_unfinished(other));
}
