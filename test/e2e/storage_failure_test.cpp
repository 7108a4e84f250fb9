// raftkv-server when its disk fills up: the node goes out of service (503, /status,
// /health) without exiting, and comes back from its data directory once space returns,
// with every acknowledged write.
//
// The data directory is a size-limited tmpfs, which takes mounting: the tests are skipped
// with a message where mount(2) is not permitted (run them as root, as CI does).
#define BOOST_TEST_MODULE raftkv_e2e_storage_failure
#include <boost/test/unit_test.hpp>

#include "harness.hpp"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

namespace {

using namespace raftkv::e2e;

// Room for the log's first segment (reserved whole: 64 MiB), LevelDB, and recovery's
// requirement of free space (a segment and 16 MiB) once the filler is gone.
constexpr const char* tmpfs_size = "size=192m";

/// A tmpfs mounted on `dir` (created if missing) for as long as it lives; detached lazily,
/// so a process still using it does not keep it mounted.
class tmpfs_mount {
public:
    explicit tmpfs_mount(const std::filesystem::path& dir, const std::string& size = tmpfs_size) : dir_(dir)
    {
        std::filesystem::create_directories(dir);
        if (::mount("tmpfs", dir.c_str(), "tmpfs", 0, size.c_str()) != 0)
            error_ = std::strerror(errno);
    }

    /// Changes the size limit ("size=256m"); empty on success, else why not.
    std::string resize(const std::string& size)
    {
        if (::mount("tmpfs", dir_.c_str(), "tmpfs", MS_REMOUNT, size.c_str()) != 0)
            return std::strerror(errno);
        return {};
    }
    ~tmpfs_mount()
    {
        if (error_.empty())
            ::umount2(dir_.c_str(), MNT_DETACH);
    }
    tmpfs_mount(const tmpfs_mount&) = delete;
    tmpfs_mount& operator=(const tmpfs_mount&) = delete;

    /// Empty once mounted; otherwise why it is not.
    const std::string& error() const noexcept { return error_; }

private:
    std::filesystem::path dir_;
    std::string error_;
};

boost::test_tools::assertion_result can_mount_tmpfs(boost::unit_test::test_unit_id)
{
    temp_dir dir;
    tmpfs_mount m(dir / "probe");
    boost::test_tools::assertion_result r(m.error().empty());
    if (!m.error().empty()) {
        const std::string why = "skipped: cannot mount a size-limited tmpfs (" + m.error() +
                                "); these tests fill a file system and need mount(2), e.g. root";
        r.message() << why;
        static bool said = false; // also at the default log level, once
        if (!std::exchange(said, true))
            std::cerr << why << "\n";
    }
    return r;
}

/// Sets or clears the immutable attribute of `path` (chattr +i / -i); empty on success,
/// else why not. An immutable file can be neither written nor opened for writing.
std::string set_immutable(const std::filesystem::path& path, bool on)
{
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return std::strerror(errno);
    int flags = 0;
    std::string error;
    if (::ioctl(fd, FS_IOC_GETFLAGS, &flags) != 0) {
        error = std::strerror(errno);
    } else {
        flags = on ? (flags | FS_IMMUTABLE_FL) : (flags & ~FS_IMMUTABLE_FL);
        if (::ioctl(fd, FS_IOC_SETFLAGS, &flags) != 0)
            error = std::strerror(errno);
    }
    ::close(fd);
    return error;
}

boost::test_tools::assertion_result can_make_files_immutable(boost::unit_test::test_unit_id)
{
    temp_dir dir;
    const std::filesystem::path probe = dir / "probe";
    std::ofstream(probe) << "x";
    // The test needs what ext4 does: a write through a descriptor opened before the file
    // became immutable fails (not every file system checks).
    const int fd = ::open(probe.c_str(), O_WRONLY | O_CLOEXEC);
    std::string error = set_immutable(probe, true);
    if (error.empty() && fd >= 0 && ::write(fd, "y", 1) == 1)
        error = "a descriptor opened before still writes";
    if (fd >= 0)
        ::close(fd);
    set_immutable(probe, false);
    boost::test_tools::assertion_result r(error.empty());
    if (!error.empty())
        r.message() << "skipped: cannot make a file immutable in " << dir.path() << " (" << error
                    << "); this test needs a file system such as ext4 with chattr +i, and "
                       "CAP_LINUX_IMMUTABLE, e.g. root";
    return r;
}

/// Writes `path` until the file system is full; the bytes written.
std::uint64_t fill(const std::filesystem::path& path)
{
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    BOOST_TEST_REQUIRE(fd >= 0, "cannot create " << path << ": " << std::strerror(errno));
    std::uint64_t written = 0;
    const std::string block(1 << 20, 'f');
    for (std::size_t size = block.size(); size >= 512;) {
        const ssize_t n = ::write(fd, block.data(), size);
        if (n > 0)
            written += static_cast<std::uint64_t>(n);
        else
            size /= 2;
    }
    ::close(fd);
    return written;
}

std::size_t count_lines_with(const std::filesystem::path& file, const std::string& text)
{
    std::ifstream in(file);
    std::size_t n = 0;
    for (std::string line; std::getline(in, line);)
        n += line.find(text) != std::string::npos;
    return n;
}

bool contains(const std::string& s, const std::string& part)
{
    return s.find(part) != std::string::npos;
}

} // namespace

BOOST_AUTO_TEST_CASE(a_full_disk_takes_the_node_out_of_service_until_space_returns,
                     *boost::unit_test::precondition(can_mount_tmpfs))
{
    cluster c{1, false};
    const node_spec& node = c.spec(1);
    tmpfs_mount disk(node.data_dir);
    BOOST_TEST_REQUIRE(disk.error().empty(), disk.error());
    c.start(1);
    BOOST_TEST_REQUIRE(c.wait_healthy(1, 20s), "the node never reported /health 200");
    const std::uint16_t port = node.http_port;

    std::map<std::string, std::string> acknowledged;
    for (int i = 0; i < 20; ++i) {
        const std::string key = "before-" + std::to_string(i), value = "value " + std::to_string(i);
        const auto r = put(port, key, value);
        BOOST_TEST_REQUIRE(r.status == 200, describe(r));
        acknowledged[key] = value;
    }

    const std::filesystem::path filler = node.data_dir / "filler";
    BOOST_TEST_MESSAGE("filled " << (fill(filler) >> 20) << " MiB");

    // The log's segment is reserved ahead, so the state machine's next write is the one that
    // finds the disk full; a few may still fit in a partly used page.
    const std::string value(4096, 'v');
    http_response failure;
    for (int i = 0; i < 500 && failure.status == 0; ++i) {
        const std::string key = "during-" + std::to_string(i);
        const auto r = put(port, key, value, 10s);
        if (r.status == 200)
            acknowledged[key] = value;
        else
            failure = r;
    }
    BOOST_TEST_REQUIRE(failure.status == 503, "the write that met the full disk: " << describe(failure));
    BOOST_TEST(is_error(failure, 503));
    const std::string message = parse_json(failure.body).string("error").value_or("");
    BOOST_TEST(contains(message, "storage failure"), message);
    BOOST_TEST(contains(message, "No space left on device"), message);
    BOOST_TEST(contains(message, "outcome is unknown"), message);
    BOOST_TEST_REQUIRE(c.running(1), "the server exited on a full disk");

    // Out of service, and saying why, until the disk has room again.
    const auto later = put(port, "refused", "x");
    BOOST_TEST(later.status == 503, describe(later));
    BOOST_TEST(contains(later.body, "did not take effect"), describe(later));
    const auto read = get(port, "before-0");
    BOOST_TEST(read.status == 503, describe(read));
    BOOST_TEST(contains(read.body, "storage failure"), describe(read));
    const auto health = request(port, "GET", "/health");
    BOOST_TEST(health.status == 503, describe(health));
    BOOST_TEST(contains(health.body, "No space left on device"), describe(health));
    const auto status = request(port, "GET", "/status");
    BOOST_TEST(status.status == 200, describe(status));
    BOOST_TEST(contains(status.body, "\"storage\":{\"state\":\"failed\""), describe(status));
    BOOST_TEST(contains(status.body, "\"role\":\"unavailable\""), describe(status));
    BOOST_TEST(get_status(port).has_value(), "the /status body still parses");

    // Out of service, its storage closed, the node still keeps --inspect out of its directory
    // (whose stores' locks the node's re-opening needs).
    const run_result busy = run_server({"--data-dir", node.data_dir.string(), "--inspect"});
    BOOST_TEST_REQUIRE(busy.status.has_value());
    BOOST_TEST(busy.status->code == 1, busy.out << busy.err);
    BOOST_TEST(contains(busy.err, "cannot lock the data directory"), busy.err);

    // Several probes fail before the space returns: the failure is logged once.
    std::this_thread::sleep_for(5s);
    BOOST_TEST_REQUIRE(c.running(1));
    std::filesystem::remove(filler);
    BOOST_TEST_REQUIRE(c.wait_healthy(1, 20s), "the node did not recover once space returned");

    for (const auto& [key, expected] : acknowledged) {
        const auto r = get(port, key);
        BOOST_TEST(r.status == 200, key << ": " << describe(r));
        BOOST_TEST(parse_json(r.body).string("value").value_or("<none>") == expected, key);
    }
    const auto after = put(port, "after", "works");
    BOOST_TEST(after.status == 200, describe(after));
    BOOST_TEST(parse_json(get(port, "after").body).string("value").value_or("") == "works");
    BOOST_TEST(contains(request(port, "GET", "/status").body, "\"storage\":{\"state\":\"ok\"}"));
    BOOST_TEST(count_lines_with(node.log_file, "storage failure:") == 1u);
    BOOST_TEST(count_lines_with(node.log_file, "storage works again: re-opened") == 1u);
    BOOST_TEST(c.running(1));

    // Stopped, on a disk full again: --inspect reads the directory all the same (LevelDB's
    // recovery of its own log, which a start writes, stays in memory).
    BOOST_TEST_REQUIRE(c.terminate(1).has_value());
    fill(filler);
    const run_result inspected = run_server({"--data-dir", node.data_dir.string(), "--inspect"});
    BOOST_TEST_REQUIRE(inspected.status.has_value());
    BOOST_TEST(inspected.status->code == 0, inspected.out << inspected.err);
    BOOST_TEST(contains(inspected.out, "state           applied to "), inspected.out);
    std::filesystem::remove(filler);
}

BOOST_AUTO_TEST_CASE(a_node_out_of_service_leaves_a_cluster_that_goes_on_and_catches_up_when_back,
                     *boost::unit_test::precondition(can_mount_tmpfs))
{
    cluster c{3, false};
    tmpfs_mount disk(c.spec(3).data_dir);
    BOOST_TEST_REQUIRE(disk.error().empty(), disk.error());
    c.start_all();
    auto leader = c.wait_ready(20s);
    BOOST_TEST_REQUIRE(leader.has_value(), "no leader");
    if (*leader == 3) {
        const auto moved = request(c.http_port(3), "POST", "/cluster/leader", "{\"id\": 1}");
        BOOST_TEST_REQUIRE(moved.status == 200, describe(moved));
        leader = c.wait_ready(20s);
        BOOST_TEST_REQUIRE((leader && *leader != 3), "leadership did not move off node 3");
    }
    const std::uint16_t via = c.http_port(*leader);

    const std::filesystem::path filler = c.spec(3).data_dir / "filler";
    fill(filler);
    // Node 3 fails at its next apply; the two others keep committing.
    std::map<std::string, std::string> acknowledged;
    for (int i = 0; i < 200; ++i) {
        std::string key = "k"; // not "k" + std::to_string(i): a false -Wrestrict (GCC 12, -O3)
        key += std::to_string(i);
        const std::string value(2048, static_cast<char>('a' + i % 26));
        const auto r = put(via, key, value, 10s);
        if (r.status == 200)
            acknowledged[key] = value;
    }
    BOOST_TEST(acknowledged.size() >= 190u, "the cluster kept serving with one node down");
    BOOST_TEST_REQUIRE(wait_until(
                           [&] {
                               const auto h = request(c.http_port(3), "GET", "/health");
                               return h.status == 503 && contains(h.body, "storage failure");
                           },
                           10s),
                       "node 3 did not go out of service");
    BOOST_TEST_REQUIRE(c.running(3));

    std::filesystem::remove(filler);
    BOOST_TEST_REQUIRE(c.wait_healthy(3, 20s), "node 3 did not recover");
    // Back in the cluster: it serves every acknowledged write (reads are linearizable).
    for (const auto& [key, expected] : acknowledged) {
        const auto r = get(c.http_port(3), key);
        BOOST_TEST(r.status == 200, key << ": " << describe(r));
        BOOST_TEST(parse_json(r.body).string("value").value_or("<none>") == expected, key);
    }
}

// The log on a file system of its own, with room for one segment only: the write that
// needs the next one fails on the log's background thread, which reports it only by its
// durable index stalling; the server must notice, and recover once there is room.
BOOST_AUTO_TEST_CASE(a_full_log_file_system_takes_the_node_out_of_service_until_it_grows,
                     *boost::unit_test::precondition(can_mount_tmpfs))
{
    cluster c{1, false};
    const node_spec& node = c.spec(1);
    tmpfs_mount data(node.data_dir, "size=256m");
    BOOST_TEST_REQUIRE(data.error().empty(), data.error());
    tmpfs_mount wal(node.data_dir / "wal", "size=256m");
    BOOST_TEST_REQUIRE(wal.error().empty(), wal.error());
    c.start(1);
    BOOST_TEST_REQUIRE(c.wait_healthy(1, 20s), "the node never reported /health 200");
    const std::uint16_t port = node.http_port;
    // Starting takes two segments for a moment; from now on there is room for one.
    BOOST_TEST_REQUIRE(wait_until([&] { return wal.resize("size=72m").empty(); }, 5s));

    std::map<std::string, std::string> acknowledged;
    http_response failure;
    for (int i = 0; i < 100 && failure.status == 0; ++i) {
        const std::string key = "big-" + std::to_string(i),
                          value(1000 * 1000, static_cast<char>('a' + i % 26));
        const auto r = put(port, key, value, 10s);
        if (r.status == 200)
            acknowledged[key] = value;
        else
            failure = r;
    }
    BOOST_TEST_REQUIRE(failure.status == 503, "the write that met the full log: " << describe(failure));
    BOOST_TEST(contains(failure.body, "storage failure: raftkv wal: cannot reserve space (64 MiB) for"),
               describe(failure));
    BOOST_TEST(contains(failure.body, "No space left on device"), describe(failure));
    BOOST_TEST(acknowledged.size() >= 60u, "about 64 MiB of writes fit in the first segment");
    BOOST_TEST_REQUIRE(c.running(1), "the server exited when its log filled up");
    const auto health = request(port, "GET", "/health");
    BOOST_TEST(health.status == 503, describe(health));

    BOOST_TEST_REQUIRE(wal.resize("size=256m").empty());
    BOOST_TEST_REQUIRE(c.wait_healthy(1, 20s), "the node did not recover once the log had room");
    // Every eighth and the last: reading back 64 MiB takes long in a debug build.
    for (const auto& [key, expected] : acknowledged) {
        const int i = std::stoi(key.substr(4));
        if (i % 8 != 0 && i + 1 != static_cast<int>(acknowledged.size()))
            continue;
        const auto r = get(port, key);
        BOOST_TEST(r.status == 200, key << ": " << describe(r));
        BOOST_TEST((parse_json(r.body).string("value").value_or("<none>") == expected), key);
    }
    const auto after = put(port, "after", "works");
    BOOST_TEST(after.status == 200, describe(after));
    BOOST_TEST(count_lines_with(node.log_file, "storage failure:") == 1u);
}

// A failed node whose log turns out damaged when it re-opens it stays out of service, says
// so, and does not exit (a restart would refuse it the same way) or try again.
BOOST_AUTO_TEST_CASE(a_node_whose_storage_does_not_reopen_stays_out_of_service,
                     *boost::unit_test::precondition(can_mount_tmpfs))
{
    cluster c{1, false};
    const node_spec& node = c.spec(1);
    tmpfs_mount disk(node.data_dir);
    BOOST_TEST_REQUIRE(disk.error().empty(), disk.error());
    c.start(1);
    BOOST_TEST_REQUIRE(c.wait_healthy(1, 20s), "the node never reported /health 200");
    const std::uint16_t port = node.http_port;

    const std::filesystem::path filler = node.data_dir / "filler";
    fill(filler);
    http_response failure;
    for (int i = 0; i < 500 && failure.status == 0; ++i) {
        std::string key = "k"; // not "k" + std::to_string(i): a false -Wrestrict (GCC 12, -O3)
        key += std::to_string(i);
        const auto r = put(port, key, std::string(4096, 'v'), 10s);
        if (r.status != 200)
            failure = r;
    }
    BOOST_TEST_REQUIRE(failure.status == 503, describe(failure));

    // The segment's header overwritten: the log no longer opens.
    for (const auto& f : std::filesystem::directory_iterator(node.data_dir / "wal"))
        if (f.path().extension() == ".log") {
            std::fstream out(f.path(), std::ios::in | std::ios::out | std::ios::binary);
            out.write("garbage!", 8);
        }
    std::filesystem::remove(filler);
    BOOST_TEST_REQUIRE(
        wait_until([&] { return contains(request(port, "GET", "/status").body, "\"retrying\":false"); }, 15s),
        "the node did not give up re-opening a damaged log");
    const auto status = request(port, "GET", "/status");
    BOOST_TEST(contains(status.body, "cannot re-open the storage"), describe(status));
    BOOST_TEST(contains(status.body, "bad segment header"), describe(status));
    const auto health = request(port, "GET", "/health");
    BOOST_TEST(health.status == 503, describe(health));
    const auto write = put(port, "refused", "x");
    BOOST_TEST(write.status == 503, describe(write));
    BOOST_TEST(contains(write.body, "until it is repaired and restarted"), describe(write));
    BOOST_TEST(count_lines_with(node.log_file, "cannot re-open the storage") == 1u);
    // Out of service is no reason to refuse a clean stop.
    const auto exit = c.terminate(1);
    BOOST_TEST_REQUIRE(exit.has_value(), "SIGTERM did not stop the node");
    BOOST_TEST((exit->exited && exit->code == 0), *exit);
}

// A log segment the node may no longer write (made immutable, as a mistaken chattr or a
// file system remounted read-only would): the write fails, and so does re-opening, for a
// reason of the system rather than of the data; the node keeps trying, and serves again,
// with every acknowledged write, once the file may be written again. No restart.
BOOST_AUTO_TEST_CASE(a_storage_that_does_not_reopen_for_a_reason_of_the_system_is_tried_again,
                     *boost::unit_test::precondition(can_make_files_immutable))
{
    cluster c{1, false};
    const node_spec& node = c.spec(1);
    c.start(1);
    BOOST_TEST_REQUIRE(c.wait_healthy(1, 20s), "the node never reported /health 200");
    const std::uint16_t port = node.http_port;
    std::map<std::string, std::string> acknowledged;
    for (int i = 0; i < 10; ++i) {
        std::string key = "k";
        key += std::to_string(i);
        BOOST_TEST_REQUIRE(put(port, key, "v").status == 200);
        acknowledged[key] = "v";
    }
    std::vector<std::filesystem::path> segments;
    for (const auto& f : std::filesystem::directory_iterator(node.data_dir / "wal"))
        if (f.path().extension() == ".log")
            segments.push_back(f.path());
    std::sort(segments.begin(), segments.end());
    BOOST_TEST_REQUIRE(!segments.empty());
    const std::filesystem::path active = segments.back();
    struct unlock_on_exit {
        std::filesystem::path path;
        ~unlock_on_exit() { set_immutable(path, false); } // else the directory stays behind
    } unlock{active};
    BOOST_TEST_REQUIRE(set_immutable(active, true).empty());

    const auto failure = put(port, "refused", "x", 10s);
    BOOST_TEST_REQUIRE(failure.status == 503, describe(failure));
    BOOST_TEST(contains(failure.body, "Operation not permitted"), describe(failure));
    BOOST_TEST_REQUIRE(
        wait_until([&] { return count_lines_with(node.log_file, "cannot re-open the storage yet") > 0; },
                   20s),
        "re-opening was not tried, or not said to be tried again");
    const auto status = request(port, "GET", "/status");
    BOOST_TEST(contains(status.body, "\"retrying\":true"), describe(status));
    BOOST_TEST(count_lines_with(node.log_file, "; this node stays out of service until") == 0u);

    BOOST_TEST_REQUIRE(set_immutable(active, false).empty());
    BOOST_TEST_REQUIRE(c.wait_healthy(1, 40s), "the node did not serve again once the log could be written");
    for (const auto& [key, expected] : acknowledged) {
        const auto r = get(port, key);
        BOOST_TEST(r.status == 200, key << ": " << describe(r));
        BOOST_TEST(parse_json(r.body).string("value").value_or("<none>") == expected, key);
    }
    BOOST_TEST(put(port, "after", "works").status == 200);
    BOOST_TEST(count_lines_with(node.log_file, "storage works again: re-opened") == 1u);
    BOOST_TEST(count_lines_with(node.log_file, "cannot re-open the storage yet") == 1u);
}

// A table of the state machine cut short while the node was down. Which table holds what
// depends on LevelDB's background work, so three outcomes are correct: the node refuses to
// start (a record it reads at start-up is in the table), it serves every read correctly (the
// table held only superseded data), or the first read that touches the table takes the node
// out of service like a failed write would (503, /readyz failing), for good. Never a 500 for every
// read of the damage while the node reports itself healthy, and never a wrong value.
BOOST_AUTO_TEST_CASE(a_read_of_a_damaged_table_takes_the_node_out_of_service)
{
    // Snapshots every 50 entries flush the state machine's writes into tables.
    cluster c{1, false, {"--snapshot-entries", "50"}};
    const node_spec& node = c.spec(1);
    c.start(1);
    BOOST_TEST_REQUIRE(c.wait_healthy(1, 20s), "the node never reported /health 200");
    const std::uint16_t port = node.http_port;
    const std::string value(300, 'v');
    for (int i = 0; i < 300; ++i) {
        std::string key = "k";
        key += std::to_string(i);
        const auto r = put(port, key, value);
        BOOST_TEST_REQUIRE(r.status == 200, describe(r));
    }
    // LevelDB writes its tables in the background: wait for one worth cutting, then cut
    // every such table, so that a read of the user's keys likely meets the damage.
    const auto tables = [&] {
        std::vector<std::filesystem::path> out;
        for (const auto& f : std::filesystem::directory_iterator(node.data_dir / "state"))
            // LevelDB may delete a table meanwhile (a compaction).
            if (std::error_code ec; f.path().extension() == ".ldb" && f.file_size(ec) > 4000u && !ec)
                out.push_back(f.path());
        return out;
    };
    BOOST_TEST_REQUIRE(wait_until([&] { return !tables().empty(); }, 20s),
                       "no table of the state machine to damage");
    c.terminate(1, SIGKILL);
    std::vector<std::string> damaged;
    for (const auto& table : tables()) {
        std::filesystem::resize_file(table, 4000);
        damaged.push_back(table.filename().string());
    }
    const auto names_damage = [&](const std::string& text) {
        return std::any_of(damaged.begin(), damaged.end(),
                           [&](const std::string& name) { return contains(text, name); });
    };

    c.start(1);
    if (!c.wait_healthy(1, 20s)) {
        const auto exit = c.terminate(1);
        BOOST_TEST_REQUIRE(exit.has_value());
        BOOST_TEST((exit->exited && exit->code == 1), "neither serving nor refusing: " << *exit);
        std::ifstream log(node.log_file);
        const std::string text{std::istreambuf_iterator<char>(log), std::istreambuf_iterator<char>()};
        BOOST_TEST(names_damage(text), "the refusal does not name a damaged table");
        return;
    }
    http_response failure;
    for (int i = 0; i < 300 && failure.status == 0; ++i) {
        std::string key = "k";
        key += std::to_string(i);
        const auto r = get(port, key);
        BOOST_TEST_REQUIRE(r.status != 500, describe(r));
        if (r.status != 200)
            failure = r;
        else
            BOOST_TEST(contains(r.body, value), describe(r));
    }
    if (failure.status != 0) {
        BOOST_TEST(failure.status == 503, describe(failure));
        BOOST_TEST(contains(failure.body, "storage failure"), describe(failure));
        // The node goes out of service on its strand, just after answering; it re-opens
        // its storage 2 s later, so /readyz and /status are looked at in between.
        BOOST_TEST(wait_until(
                       [&] {
                           return request(port, "GET", "/readyz").status == 503 &&
                                  names_damage(request(port, "GET", "/status").body);
                       },
                       2s),
                   "/readyz and /status did not report the damaged table");
        // Damage does not mend: the node does not re-open its storage only to meet it again.
        BOOST_TEST(contains(request(port, "GET", "/status").body, "\"retrying\":false"));
        BOOST_TEST(count_lines_with(node.log_file, "the data fails its checks") == 1u);
    }
    const auto exit = c.terminate(1);
    BOOST_TEST_REQUIRE(exit.has_value(), "SIGTERM did not stop the node");
    // The offline check reads every table and names the damage, which a read met (a table
    // the start found obsolete and deleted is not there to find).
    const run_result inspected = run_server({"--data-dir", node.data_dir.string(), "--inspect"});
    BOOST_TEST_REQUIRE(inspected.status.has_value());
    if (failure.status != 0 || inspected.status->code != 0) {
        BOOST_TEST(inspected.status->code == 1, inspected.out << inspected.err);
        BOOST_TEST(contains(inspected.out, "problem         the state's table "), inspected.out);
        BOOST_TEST(names_damage(inspected.out), inspected.out);
    }
}

// A first start that cannot reserve its log on a full disk exits 1 and takes back what it
// began: the next start, with room, is a first start again, not one of a directory that
// lost its identity file.
BOOST_AUTO_TEST_CASE(a_first_start_on_a_full_disk_leaves_nothing_behind,
                     *boost::unit_test::precondition(can_mount_tmpfs))
{
    temp_dir dir;
    tmpfs_mount small(dir / "small", "size=30m"); // less than the log's first segment
    BOOST_TEST_REQUIRE(small.error().empty(), small.error());
    const std::vector<std::uint16_t> ports = free_ports(2);
    const auto args = [&](const std::filesystem::path& data) {
        return std::vector<std::string>{"--data-dir", data.string(),
                                        "--http",     "127.0.0.1:" + std::to_string(ports[0]),
                                        "--raft",     "127.0.0.1:" + std::to_string(ports[1])};
    };
    for (const std::filesystem::path& data : {dir / "small" / "node", dir / "small"}) {
        const run_result r = run_server(args(data), 20s);
        BOOST_TEST_REQUIRE(r.status.has_value(), data);
        BOOST_TEST(r.status->code == 1, data << ": " << r.err);
        BOOST_TEST(contains(r.err, "No space left on device"), r.err);
        // How short the disk is, since a segment is reserved whole.
        BOOST_TEST(contains(r.err, "MiB free there; the log reserves each segment whole)"), r.err);
        BOOST_TEST(std::filesystem::is_empty(dir / "small"), data);
    }
    // With room, a first start like any other (stopped by the harness after a while).
    BOOST_TEST_REQUIRE(small.resize("size=192m").empty());
    const run_result r = run_server(args(dir / "small" / "node"), 3s);
    BOOST_TEST(contains(r.err, "started"), r.err);
    BOOST_TEST(!contains(r.err, "no identity file"), r.err);
}

// --inspect reports the log whatever the state is: an empty state directory reads as an
// empty state (a start fills it from the log), and one that cannot be opened, or a file where
// the directory should be, is a problem below the log's report rather than an error that hides it.
BOOST_AUTO_TEST_CASE(inspect_reports_the_log_whatever_the_state_is)
{
    cluster c{1, false};
    const node_spec& node = c.spec(1);
    c.start(1);
    BOOST_TEST_REQUIRE(c.wait_healthy(1, 20s), "the node never reported /health 200");
    for (int i = 0; i < 5; ++i)
        BOOST_TEST_REQUIRE(put(node.http_port, "k" + std::to_string(i), "v").status == 200);
    BOOST_TEST_REQUIRE(c.terminate(1, SIGKILL).has_value()); // the writes stay in LevelDB's log
    const std::filesystem::path state = node.data_dir / "state", kept = node.data_dir / "state.kept";
    const auto inspect = [&] { return run_server({"--data-dir", node.data_dir.string(), "--inspect"}); };

    // A damaged record in LevelDB's own log, which a start skips (its entries are applied
    // again from the Raft log): said on its own line, not a problem.
    std::filesystem::path leveldb_log;
    for (const auto& f : std::filesystem::directory_iterator(state))
        if (f.path().extension() == ".log" && f.file_size() > 64)
            leveldb_log = f.path();
    BOOST_TEST_REQUIRE(!leveldb_log.empty(), "no LevelDB log with records in " << state);
    {
        std::fstream f(leveldb_log, std::ios::in | std::ios::out | std::ios::binary);
        f.seekp(20);
        f.put('\x5a').put('\xa5');
    }
    run_result r = inspect();
    BOOST_TEST_REQUIRE(r.status.has_value());
    BOOST_TEST(r.status->code == 0, r.out << r.err);
    BOOST_TEST(contains(r.out, "state log       damaged records in LevelDB's own log"), r.out);

    std::filesystem::rename(state, kept);
    std::filesystem::create_directory(state);
    r = inspect();
    BOOST_TEST_REQUIRE(r.status.has_value());
    BOOST_TEST(r.status->code == 0, r.out << r.err);
    BOOST_TEST(contains(r.out, "state           applied to 0, checkpoint at 0"), r.out);
    BOOST_TEST(std::filesystem::is_empty(state));

    std::filesystem::remove(state);
    std::filesystem::rename(kept, state);
    std::filesystem::remove(state / "CURRENT");
    r = inspect();
    BOOST_TEST_REQUIRE(r.status.has_value());
    BOOST_TEST(r.status->code == 1, r.out << r.err);
    BOOST_TEST(contains(r.out, "log             entries 1 to "), r.out);
    BOOST_TEST(contains(r.out, "state           unreadable"), r.out);
    BOOST_TEST(contains(r.out, "problem         the state cannot be opened (a start fails on it): "), r.out);
    BOOST_TEST(contains(r.out, "CURRENT file is missing"), r.out);

    std::filesystem::remove_all(state);
    std::ofstream(state) << "not a directory";
    r = inspect();
    BOOST_TEST_REQUIRE(r.status.has_value());
    BOOST_TEST(r.status->code == 1, r.out << r.err);
    BOOST_TEST(contains(r.out, "is not a directory (a start fails on it)"), r.out);
}
