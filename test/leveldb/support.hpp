#ifndef RAFTKV_TEST_LEVELDB_SUPPORT_HPP
#define RAFTKV_TEST_LEVELDB_SUPPORT_HPP

// Helpers shared by the LevelDB adapter's tests: raw access to a database behind a closed
// store, the check that opening a damaged one fails with a clear message, and child
// processes for the crash tests. Include it after <boost/test/unit_test.hpp>, which the
// test's BOOST_TEST_MODULE must come before.

#include <boost/test/unit_test.hpp>
#include <leveldb/db.h>

#include <spawn.h>
#include <sys/wait.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

extern char** environ;

namespace raftkv::test {

/// The database under a (closed) store or state machine, opened directly with LevelDB.
inline std::unique_ptr<::leveldb::DB> open_raw(const std::filesystem::path& dir)
{
    ::leveldb::Options options;
    options.create_if_missing = true;
    ::leveldb::DB* db = nullptr;
    const ::leveldb::Status s = ::leveldb::DB::Open(options, dir.string(), &db);
    BOOST_TEST_REQUIRE(s.ok(), s.ToString());
    return std::unique_ptr<::leveldb::DB>(db);
}

/// Overwrites four bytes in the middle of each of LevelDB's write-ahead logs in `dir` of at
/// least `min_size` bytes (records written since the last table, damaged); whether it found one.
inline bool damage_leveldb_logs(const std::filesystem::path& dir, std::uintmax_t min_size)
{
    bool damaged = false;
    for (const auto& f : std::filesystem::directory_iterator(dir)) {
        if (f.path().extension() != ".log" || f.file_size() < min_size)
            continue;
        std::fstream file(f.path(), std::ios::in | std::ios::out | std::ios::binary);
        file.seekp(static_cast<std::streamoff>(f.file_size() / 2));
        file.write("\xde\xad\xbe\xef", 4);
        damaged = true;
    }
    return damaged;
}

/// Checks that opening a `Store` on `dir` throws std::runtime_error whose message names
/// the directory and contains `expected`.
template <class Store>
void check_open_fails(const std::filesystem::path& dir, const std::string& expected)
{
    try {
        Store s{dir};
        BOOST_ERROR("opening " << dir << " succeeded; expected an error containing '" << expected << "'");
    } catch (const std::runtime_error& e) {
        const std::string what = e.what();
        BOOST_TEST_MESSAGE("open failed as expected: " << what);
        BOOST_TEST(what.find(dir.string()) != std::string::npos, what);
        BOOST_TEST(what.find(expected) != std::string::npos, what);
    }
}

// ---- Child processes -------------------------------------------------------------------
//
// A test that needs another process (one that dies without closing its store) starts this
// executable again (run_child), never fork(): a fork copies LevelDB's process-wide state
// without its threads. Once any earlier test has had LevelDB compact or flush, Env::Default()
// counts its background thread as running; a forked child has no such thread, and its first
// flush (closing a database does one) waits for it forever. A fresh process has LevelDB's
// state as a fresh process does.

/// What a child does, on the directory it is given; its result is the process's exit code.
using child_role = int (*)(const std::filesystem::path& dir);

/// In a process started by run_child, runs the role it names and exits with its result (1
/// if it throws, 2 if no role has that name); otherwise returns. Call it from the
/// initializer of a namespace-scope variable of the test file, so that it runs before the
/// test framework does, once per executable with every role (a second call is never
/// reached: the first exits with 2 for a role it does not list):
///
///     [[maybe_unused]] const bool child = raftkv::test::serve_child_roles({{"crash", crash}});
inline bool serve_child_roles(std::initializer_list<std::pair<std::string_view, child_role>> roles)
{
    const char* role = std::getenv("RAFTKV_TEST_CHILD_ROLE");
    const char* dir = std::getenv("RAFTKV_TEST_CHILD_DIR");
    if (role == nullptr || dir == nullptr)
        return false;
    for (const auto& [name, run] : roles) {
        if (name != role)
            continue;
        int code = 1;
        try {
            code = run(dir);
        } catch (...) {
        }
        std::_Exit(code);
    }
    std::_Exit(2);
}

/// Runs `role` (serve_child_roles) on `dir` in a new process of this executable and waits
/// for it; returns its wait status.
inline int run_child(const std::string& role, const std::filesystem::path& dir)
{
    const std::string exe = std::filesystem::read_symlink("/proc/self/exe").string();
    std::vector<std::string> env;
    for (char** e = environ; *e != nullptr; ++e)
        if (!std::string_view(*e).starts_with("RAFTKV_TEST_CHILD_"))
            env.emplace_back(*e);
    env.push_back("RAFTKV_TEST_CHILD_ROLE=" + role);
    env.push_back("RAFTKV_TEST_CHILD_DIR=" + dir.string());
    std::vector<char*> envp;
    for (std::string& e : env)
        envp.push_back(e.data());
    envp.push_back(nullptr);
    std::string arg0 = exe;
    char* argv[] = {arg0.data(), nullptr};
    pid_t child = 0;
    const int spawned = ::posix_spawn(&child, exe.c_str(), nullptr, nullptr, argv, envp.data());
    BOOST_TEST_REQUIRE(spawned == 0, "cannot start " << exe << ": " << std::strerror(spawned));
    int status = 0;
    BOOST_TEST_REQUIRE(::waitpid(child, &status, 0) == child);
    return status;
}

} // namespace raftkv::test

#endif
