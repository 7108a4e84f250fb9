#ifndef RAFTKV_LEVELDB_DETAIL_CODING_HPP
#define RAFTKV_LEVELDB_DETAIL_CODING_HPP

// Fixed-width integer encodings shared by the LevelDB log store and state machine.
// Big-endian, so encoded integers sort in numeric order under LevelDB's bytewise
// comparator.

#include <cassert>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace raftkv::leveldb::detail {

inline constexpr std::size_t u64_size = 8;

/// Appends `v` to `out` as 8 bytes, most significant first.
inline void put_u64_be(std::string& out, std::uint64_t v)
{
    for (int shift = 56; shift >= 0; shift -= 8)
        out.push_back(static_cast<char>((v >> shift) & 0xff));
}

/// Reads the 8-byte big-endian integer at the start of `in`.
/// REQUIRES: in.size() >= u64_size.
inline std::uint64_t get_u64_be(std::string_view in)
{
    assert(in.size() >= u64_size);
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < u64_size; ++i)
        v = (v << 8) | static_cast<unsigned char>(in[i]);
    return v;
}

} // namespace raftkv::leveldb::detail

#endif
