#ifndef RAFTKV_TEST_FUZZ_CHECK_HPP
#define RAFTKV_TEST_FUZZ_CHECK_HPP

// What every fuzz target shares: the libFuzzer entry point's declaration and FUZZ_CHECK, a
// property check that aborts with a message whatever the build (sanitizers or not), so the
// replay tests of a plain build fail on a broken property as the fuzzer does.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

#define FUZZ_CHECK(condition)                                                                                \
    do {                                                                                                     \
        if (!(condition)) {                                                                                  \
            std::fprintf(stderr, "%s:%d: fuzz property failed: %s\n", __FILE__, __LINE__, #condition);       \
            std::abort();                                                                                    \
        }                                                                                                    \
    } while (false)

namespace raftkv::fuzz {

inline std::string_view as_chars(const std::uint8_t* data, std::size_t size)
{
    return {reinterpret_cast<const char*>(data), size};
}

} // namespace raftkv::fuzz

#endif
