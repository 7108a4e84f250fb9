#ifndef RAFTKV_LEVELDB_DETAIL_CODING_HPP
#define RAFTKV_LEVELDB_DETAIL_CODING_HPP

// Integer encodings shared by the LevelDB log store and state machine. Fixed-width
// integers are big-endian, so they sort in numeric order under LevelDB's bytewise
// comparator; varints (LevelDB's encoding: 7 bits a byte, least significant first) prefix
// lengths in snapshot streams.

#include <algorithm>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

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

/// The most bytes a varint of a 64-bit integer takes.
inline constexpr std::size_t max_varint64_size = 10;

/// Appends `v` to `out` as a varint: 7 bits a byte, least significant first, the high bit
/// of each byte set when more follow.
inline void put_varint64(std::string& out, std::uint64_t v)
{
    while (v >= 0x80) {
        out.push_back(static_cast<char>((v & 0x7f) | 0x80));
        v >>= 7;
    }
    out.push_back(static_cast<char>(v));
}

/// How many bytes put_varint64(v) appends.
inline std::size_t varint64_size(std::uint64_t v) noexcept
{
    std::size_t n = 1;
    for (; v >= 0x80; v >>= 7)
        ++n;
    return n;
}

/// The outcome of get_varint64.
enum class varint_status { ok, incomplete, malformed };

/// Reads the varint at `in[pos]`; on ok stores it in `v` and advances `pos` past it. A
/// varint that runs past the end of `in` is incomplete (`pos` unchanged); one longer than
/// max_varint64_size bytes, or above 2^64 - 1, is malformed.
inline varint_status get_varint64(std::string_view in, std::size_t& pos, std::uint64_t& v) noexcept
{
    std::uint64_t result = 0;
    for (std::size_t k = 0; k < max_varint64_size; ++k) {
        if (pos + k >= in.size())
            return varint_status::incomplete;
        const auto byte = static_cast<unsigned char>(in[pos + k]);
        if (k == max_varint64_size - 1 && byte > 1)
            return varint_status::malformed;
        result |= static_cast<std::uint64_t>(byte & 0x7f) << (7 * k);
        if ((byte & 0x80) == 0) {
            pos += k + 1;
            v = result;
            return varint_status::ok;
        }
    }
    return varint_status::malformed;
}

/// FNV-1a, 64 bits: a checksum of a byte stream fed in pieces (not cryptographic).
class fnv1a64 {
public:
    void update(std::string_view bytes) noexcept
    {
        for (const char c : bytes) {
            hash_ ^= static_cast<unsigned char>(c);
            hash_ *= 0x100000001b3ull;
        }
    }
    std::uint64_t value() const noexcept { return hash_; }

private:
    std::uint64_t hash_ = 0xcbf29ce484222325ull;
};

/// A key about halfway between `lo` and `hi` in LevelDB's bytewise order, strictly after
/// `lo` and before `hi`: both read as base-256 fractions one byte longer than the longer of
/// them, averaged. None if `lo` is not before `hi`, or nothing lies between at that length.
inline std::optional<std::string> key_between(std::string_view lo, std::string_view hi)
{
    const std::size_t n = std::max(lo.size(), hi.size()) + 1;
    const auto byte = [](std::string_view s, std::size_t i) -> unsigned {
        return i < s.size() ? static_cast<unsigned char>(s[i]) : 0u;
    };
    std::vector<unsigned> sum(n);
    unsigned carry = 0;
    for (std::size_t i = n; i-- > 0;) {
        const unsigned v = byte(lo, i) + byte(hi, i) + carry;
        sum[i] = v & 0xff;
        carry = v >> 8;
    }
    std::string mid(n, '\0');
    unsigned rest = carry;
    for (std::size_t i = 0; i < n; ++i) {
        const unsigned v = rest * 256 + sum[i];
        mid[i] = static_cast<char>(v / 2);
        rest = v % 2;
    }
    while (mid.size() > lo.size() && mid.back() == '\0')
        mid.pop_back(); // shorter, and the same place in the order but for lo's own padding
    if (!(lo < std::string_view(mid) && std::string_view(mid) < hi))
        return std::nullopt;
    return mid;
}

} // namespace raftkv::leveldb::detail

#endif
