#ifndef RAFTKV_TEST_LEVELDB_SUPPORT_HPP
#define RAFTKV_TEST_LEVELDB_SUPPORT_HPP

// Helpers shared by the LevelDB adapter's tests: raw access to a database behind a closed
// store, and the check that opening a damaged one fails with a clear message. Include it
// after <boost/test/unit_test.hpp>, which the test's BOOST_TEST_MODULE must come before.

#include <boost/test/unit_test.hpp>
#include <leveldb/db.h>

#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>

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

} // namespace raftkv::test

#endif
