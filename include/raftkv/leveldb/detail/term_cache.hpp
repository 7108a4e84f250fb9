#ifndef RAFTKV_LEVELDB_DETAIL_TERM_CACHE_HPP
#define RAFTKV_LEVELDB_DETAIL_TERM_CACHE_HPP

// The terms of the entries a log retains, in index order, kept in memory by the LevelDB
// log store. An update comes in two steps: reserve() may allocate, and so throw, before
// the store writes to disk; the mutators it then calls cannot throw, so memory never
// disagrees with what was written. Memory is bounded by the retained entries: dropping
// the front of the log frees (or reuses) its room.

#include <raftkv/types.hpp>

#include <algorithm>
#include <cassert>
#include <cstddef>
#include <vector>

namespace raftkv::leveldb::detail {

class term_cache {
public:
    std::size_t size() const noexcept { return terms_.size() - dropped_; }

    /// The k-th retained term. REQUIRES: k < size().
    term_t operator[](std::size_t k) const noexcept
    {
        assert(k < size());
        return terms_[dropped_ + k];
    }

    /// Makes room for `n` terms in all, so that truncate() and push_back() within that
    /// size cannot throw. Keeps the contents. Throws std::bad_alloc.
    void reserve(std::size_t n)
    {
        if (terms_.capacity() - dropped_ >= n)
            return;
        if (terms_.capacity() >= n) {
            forget_dropped();
            return;
        }
        std::vector<term_t> grown;
        grown.reserve(std::max(n, 2 * size()));
        grown.assign(terms_.begin() + static_cast<std::ptrdiff_t>(dropped_), terms_.end());
        terms_.swap(grown);
        dropped_ = 0;
    }

    /// Keeps the first `n` terms. REQUIRES: n <= size().
    void truncate(std::size_t n) noexcept
    {
        assert(n <= size());
        terms_.resize(dropped_ + n);
    }

    /// Appends `t`. REQUIRES: size() is below the last reserve(n).
    void push_back(term_t t) noexcept
    {
        assert(terms_.size() < terms_.capacity());
        terms_.push_back(t);
    }

    /// Drops the first `n` terms, in amortized O(n): their room is reclaimed once the
    /// dropped terms outnumber the retained ones, and the buffer shrinks when it is far
    /// larger than the retained terms need. REQUIRES: n <= size().
    void drop_front(std::size_t n) noexcept
    {
        assert(n <= size());
        dropped_ += n;
        if (dropped_ >= size())
            forget_dropped();
        if (terms_.capacity() > 4 * terms_.size() + min_capacity)
            shrink();
    }

    /// Drops every term and frees their memory.
    void clear() noexcept
    {
        terms_ = std::vector<term_t>{};
        dropped_ = 0;
    }

    /// How many terms the buffer has room for: what the cache's memory is bounded by.
    std::size_t capacity() const noexcept { return terms_.capacity(); }

private:
    /// Below this capacity the buffer is never shrunk: 8 KiB.
    static constexpr std::size_t min_capacity = 1024;

    void forget_dropped() noexcept
    {
        terms_.erase(terms_.begin(), terms_.begin() + static_cast<std::ptrdiff_t>(dropped_));
        dropped_ = 0;
    }

    /// Moves the retained terms to a buffer twice their size; keeps the old one if that
    /// allocation fails (a larger buffer than needed is harmless).
    void shrink() noexcept
    {
        try {
            std::vector<term_t> smaller;
            smaller.reserve(2 * size() + min_capacity);
            smaller.assign(terms_.begin() + static_cast<std::ptrdiff_t>(dropped_), terms_.end());
            terms_.swap(smaller);
            dropped_ = 0;
        } catch (...) {
        }
    }

    /// terms_[dropped_ + k] is the k-th retained term; the first dropped_ are dropped.
    std::vector<term_t> terms_;
    std::size_t dropped_ = 0;
};

} // namespace raftkv::leveldb::detail

#endif
