#ifndef RAFTKV_SERVER_VERSION_HPP
#define RAFTKV_SERVER_VERSION_HPP

// What raftkv-server and raftkv were built from, for their --version and GET /version.
// build() is defined in a file the build generates (reference-server/version_info.cpp.in,
// cmake/raftkv_version.cmake): it is refreshed on every build, and recompiled only when
// what it says changes.

#include <string>
#include <string_view>

namespace raftkv::server {

struct build_info {
    /// The project's version, CMake's project(VERSION): "0.1.0".
    std::string_view version;
    /// The source tree's abbreviated git commit when it was built, with "-dirty" appended
    /// when tracked files differed from it; "unknown" when built without git or from a
    /// tree that is not a git checkout (a source tarball).
    std::string_view commit;
    /// CMAKE_BUILD_TYPE (the configuration, with a multi-config generator); "None" when
    /// none was set.
    std::string_view build_type;
};

/// This build's information. Thread-safe: constant.
const build_info& build();

/// "raftkv-server 0.1.0 (1a2b3c4)" or "raftkv-server 0.1.0 (1a2b3c4-dirty)": what
/// `program` --version prints, without a newline.
inline std::string version_line(std::string_view program = "raftkv-server")
{
    const build_info& b = build();
    std::string line(program);
    line.append(" ").append(b.version).append(" (").append(b.commit).append(")");
    return line;
}

} // namespace raftkv::server

#endif
