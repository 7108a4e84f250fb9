#ifndef RAFTKV_SIM_DETAIL_BITSET_HPP
#define RAFTKV_SIM_DETAIL_BITSET_HPP

// A fixed-size bitset whose hash is kept up to date as bits change, so that the
// linearizability search can memoize sets of linearized operations cheaply.

#include <raftkv/sim/detail/hash.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace raftkv::sim::detail {

/// A set of indexes in [0, size()), stored as 64-bit words.
///
/// hash() is the XOR of a well-mixed word per member (Zobrist hashing): set() and
/// reset() keep it current in O(1), and sets that differ in one member hash far apart.
/// full_words() lets a set that always holds a growing prefix of indexes be stored by
/// its tail only.
class bitset {
public:
    explicit bitset(std::size_t size) : size_(size), words_((size + 63) / 64, 0) {}

    std::size_t size() const noexcept { return size_; }

    /// REQUIRES: i < size().
    bool test(std::size_t i) const noexcept { return (words_[i / 64] >> (i % 64)) & 1U; }

    /// Adds `i`; does nothing when it is already a member. REQUIRES: i < size().
    void set(std::size_t i) noexcept
    {
        if (!test(i)) {
            words_[i / 64] |= std::uint64_t{1} << (i % 64);
            hash_ ^= member_hash(i);
            while (full_words_ < words_.size() && words_[full_words_] == ~std::uint64_t{0}) {
                ++full_words_;
            }
        }
    }

    /// Removes `i`; does nothing when it is not a member. REQUIRES: i < size().
    void reset(std::size_t i) noexcept
    {
        if (test(i)) {
            words_[i / 64] &= ~(std::uint64_t{1} << (i % 64));
            hash_ ^= member_hash(i);
            full_words_ = std::min(full_words_, i / 64);
        }
    }

    std::uint64_t hash() const noexcept { return hash_; }

    /// How many words, from the first, have all their bits set.
    std::size_t full_words() const noexcept { return full_words_; }

    /// The members as words: bit `i % 64` of word `i / 64` is set when `i` is a member.
    std::span<const std::uint64_t> words() const noexcept { return words_; }

    friend bool operator==(const bitset& a, const bitset& b) noexcept
    {
        return a.words_ == b.words_ && a.size_ == b.size_;
    }

private:
    static std::uint64_t member_hash(std::size_t i) noexcept
    {
        return hash_finalize(static_cast<std::uint64_t>(i) + 0x9e3779b97f4a7c15ULL);
    }

    std::size_t size_;
    std::vector<std::uint64_t> words_;
    std::uint64_t hash_ = 0;
    std::size_t full_words_ = 0;
};

} // namespace raftkv::sim::detail

#endif
