// Replays saved inputs through a fuzz target's LLVMFuzzerTestOneInput, without libFuzzer:
// the regression tests of a normal build (g++, ASan in CI). Each argument is a file or a
// directory of files (not recursive). A missing argument is an error, so a renamed corpus
// fails the test instead of replaying nothing.
//
//     fuzz_replay_frame test/fuzz/corpus/frame test/fuzz/regressions/frame

#include "check.hpp"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace {

bool replay(const std::filesystem::path& file)
{
    std::ifstream in(file, std::ios::binary);
    if (!in) {
        std::fprintf(stderr, "cannot read %s\n", file.c_str());
        return false;
    }
    const std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    // Named in the output before it runs: a crash's report then says which input it was.
    std::fprintf(stderr, "replaying %s (%zu bytes)\n", file.c_str(), data.size());
    LLVMFuzzerTestOneInput(reinterpret_cast<const std::uint8_t*>(data.data()), data.size());
    return true;
}

} // namespace

int main(int argc, char** argv)
{
    std::size_t count = 0;
    for (int i = 1; i < argc; ++i) {
        const std::filesystem::path arg = argv[i];
        std::error_code ec;
        if (std::filesystem::is_regular_file(arg, ec)) {
            if (!replay(arg))
                return 1;
            ++count;
            continue;
        }
        if (!std::filesystem::is_directory(arg, ec)) {
            std::fprintf(stderr, "%s: no such file or directory\n", arg.c_str());
            return 1;
        }
        std::vector<std::filesystem::path> files;
        for (const auto& item : std::filesystem::directory_iterator(arg))
            if (item.is_regular_file())
                files.push_back(item.path());
        std::sort(files.begin(), files.end());
        for (const auto& file : files) {
            if (!replay(file))
                return 1;
            ++count;
        }
    }
    std::printf("replayed %zu inputs\n", count);
    return count == 0 ? 1 : 0;
}
