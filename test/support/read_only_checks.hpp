#ifndef RAFTKV_TEST_SUPPORT_READ_ONLY_CHECKS_HPP
#define RAFTKV_TEST_SUPPORT_READ_ONLY_CHECKS_HPP

// Checks of a store opened read-only (the WAL's and the LevelDB state machine's): that it
// changed nothing in its directory, and that a call that writes is refused. Include after
// <boost/test/unit_test.hpp>.

#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <stdexcept>
#include <string>

namespace raftkv::test {

/// Every file under `dir`, by its path relative to `dir`, with its contents: equal before
/// and after something ran only if it changed nothing there.
inline std::map<std::string, std::string> directory_snapshot(const std::filesystem::path& dir)
{
    std::map<std::string, std::string> out;
    for (const auto& item : std::filesystem::recursive_directory_iterator(dir)) {
        if (!item.is_regular_file())
            continue;
        std::ifstream in(item.path(), std::ios::binary);
        out[std::filesystem::relative(item.path(), dir).string()] =
            std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }
    return out;
}

/// Checks that `f`, a call that writes, throws std::logic_error saying the store was opened
/// read-only; `what` names the call in the failure.
template <class F>
void check_refused_read_only(F&& f, const std::string& what)
{
    try {
        f();
    } catch (const std::logic_error& e) {
        BOOST_TEST(std::string(e.what()).find("opened read-only") != std::string::npos, e.what());
        return;
    }
    BOOST_FAIL(what << " did not throw");
}

} // namespace raftkv::test

#endif
