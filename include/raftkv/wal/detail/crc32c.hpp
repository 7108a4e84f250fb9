#ifndef RAFTKV_WAL_DETAIL_CRC32C_HPP
#define RAFTKV_WAL_DETAIL_CRC32C_HPP

// CRC-32C (Castagnoli), the checksum of the write-ahead log: the SSE4.2 instruction where
// the CPU has it (chosen at run time, so the header needs no compiler flag), a
// slicing-by-8 table otherwise. Both give the same values.

#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <nmmintrin.h>
#define RAFTKV_WAL_CRC32C_X86 1
#endif

namespace raftkv::wal::detail {

inline constexpr std::uint32_t crc32c_polynomial = 0x82f63b78; // reflected

using crc32c_tables = std::array<std::array<std::uint32_t, 256>, 8>;

constexpr crc32c_tables make_crc32c_tables()
{
    crc32c_tables t{};
    for (std::uint32_t i = 0; i < 256; ++i) {
        std::uint32_t c = i;
        for (int k = 0; k < 8; ++k)
            c = (c & 1) ? (c >> 1) ^ crc32c_polynomial : c >> 1;
        t[0][i] = c;
    }
    for (std::size_t s = 1; s < 8; ++s)
        for (std::size_t i = 0; i < 256; ++i)
            t[s][i] = (t[s - 1][i] >> 8) ^ t[0][t[s - 1][i] & 0xff];
    return t;
}

inline constexpr crc32c_tables crc32c_table = make_crc32c_tables();

inline std::uint32_t crc32c_portable(std::uint32_t crc, const unsigned char* p, std::size_t n) noexcept
{
    const auto& t = crc32c_table;
    while (n >= 8) {
        std::uint64_t w;
        std::memcpy(&w, p, 8); // little-endian hosts only; see the static_assert below
        w ^= crc;
        crc = t[7][w & 0xff] ^ t[6][(w >> 8) & 0xff] ^ t[5][(w >> 16) & 0xff] ^ t[4][(w >> 24) & 0xff] ^
              t[3][(w >> 32) & 0xff] ^ t[2][(w >> 40) & 0xff] ^ t[1][(w >> 48) & 0xff] ^ t[0][w >> 56];
        p += 8;
        n -= 8;
    }
    while (n-- > 0)
        crc = t[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return crc;
}

#ifdef RAFTKV_WAL_CRC32C_X86
__attribute__((target("sse4.2"))) inline std::uint32_t crc32c_sse42(std::uint32_t crc, const unsigned char* p,
                                                                    std::size_t n) noexcept
{
    std::uint64_t c = crc;
    while (n >= 8) {
        std::uint64_t w;
        std::memcpy(&w, p, 8);
        c = _mm_crc32_u64(c, w);
        p += 8;
        n -= 8;
    }
    auto c32 = static_cast<std::uint32_t>(c);
    while (n-- > 0)
        c32 = _mm_crc32_u8(c32, *p++);
    return c32;
}
#endif

/// The CRC-32C of `n` bytes at `data`, continuing from `crc` (0 to start).
inline std::uint32_t crc32c(const void* data, std::size_t n, std::uint32_t crc = 0) noexcept
{
    static_assert(std::endian::native == std::endian::little, "the slicing table assumes little-endian");
    const auto* p = static_cast<const unsigned char*>(data);
    crc = ~crc;
#ifdef RAFTKV_WAL_CRC32C_X86
    static const bool hardware = __builtin_cpu_supports("sse4.2");
    crc = hardware ? crc32c_sse42(crc, p, n) : crc32c_portable(crc, p, n);
#else
    crc = crc32c_portable(crc, p, n);
#endif
    return ~crc;
}

} // namespace raftkv::wal::detail

#endif
