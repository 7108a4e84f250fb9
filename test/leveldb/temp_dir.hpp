#ifndef RAFTKV_TEST_LEVELDB_TEMP_DIR_HPP
#define RAFTKV_TEST_LEVELDB_TEMP_DIR_HPP

// A fresh directory under the system temp directory, removed with everything in it when
// the object is destroyed.

#include <filesystem>
#include <random>
#include <string>

namespace raftkv::test {

class temp_dir {
public:
    temp_dir()
    {
        std::random_device rd;
        const auto base = std::filesystem::temp_directory_path();
        do
            path_ = base / ("raftkv-leveldb-test-" + std::to_string(rd()) + std::to_string(rd()));
        while (!std::filesystem::create_directory(path_));
    }
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;
    ~temp_dir()
    {
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
    }

    const std::filesystem::path& path() const noexcept { return path_; }

    /// A subdirectory name inside this one (not created).
    std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

private:
    std::filesystem::path path_;
};

} // namespace raftkv::test

#endif
