#ifndef RAFTKV_SIM_DETAIL_LINEARIZATION_CACHE_HPP
#define RAFTKV_SIM_DETAIL_LINEARIZATION_CACHE_HPP

// The memo of the linearizability search (Lowe's optimization of Wing & Gong): the
// search states already explored.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

namespace raftkv::sim::detail {

/// Fixed-size records of `stride` words, allocated in chunks so that growing never
/// copies or moves them, addressed by index.
template <class Word>
class record_arena {
public:
    explicit record_arena(std::size_t stride)
        : stride_(std::max<std::size_t>(1, stride)),
          per_chunk_(std::max<std::size_t>(1, chunk_bytes / (stride_ * sizeof(Word))))
    {
    }

    std::size_t size() const noexcept { return size_; }
    std::size_t bytes() const noexcept { return chunks_.size() * chunk_size() * sizeof(Word); }

    /// The bytes the next append() allocates: a chunk, or nothing.
    std::size_t bytes_to_append() const noexcept
    {
        return size_ == capacity() ? chunk_size() * sizeof(Word) : 0;
    }

    /// Adds a record with unspecified contents; returns its index.
    std::size_t append()
    {
        if (size_ == capacity()) {
            chunks_.push_back(std::make_unique_for_overwrite<Word[]>(chunk_size()));
        }
        return size_++;
    }

    /// REQUIRES: i < size().
    Word* at(std::size_t i) noexcept { return chunks_[i / per_chunk_].get() + (i % per_chunk_) * stride_; }
    const Word* at(std::size_t i) const noexcept
    {
        return chunks_[i / per_chunk_].get() + (i % per_chunk_) * stride_;
    }

private:
    static constexpr std::size_t chunk_bytes = std::size_t{1} << 16;

    std::size_t chunk_size() const noexcept { return per_chunk_ * stride_; }
    std::size_t capacity() const noexcept { return chunks_.size() * per_chunk_; }

    std::size_t stride_;
    std::size_t per_chunk_;
    std::size_t size_ = 0;
    std::vector<std::unique_ptr<Word[]>> chunks_;
};

/// The explored search states, with a memory limit.
///
/// A state is a key of `key_words` words (with its hash) and a vector of `group_count`
/// counts. It is covered when an explored state has the same key and counts no greater,
/// one by one: the search calls a state explored when such a one was, since that one had
/// every option the new one has. Keys are found through an open-addressing table that
/// keeps each key's hash; each key has a list of count vectors, none covering another.
class linearization_cache {
public:
    enum class insert_result {
        /// The state was not covered, and is now in the set.
        inserted,
        /// The state is covered by one in the set.
        covered,
        /// The state is not covered, but storing it would pass the memory limit; not inserted.
        full,
    };

    /// A cache that allocates at most about `max_bytes`.
    linearization_cache(std::size_t key_words, std::size_t group_count, std::size_t max_bytes)
        : key_words_(key_words), keys_(key_words + 1), counts_(group_count + 1), max_bytes_(max_bytes),
          slots_(initial_slots)
    {
    }

    /// REQUIRES: `key` and `counts` have the sizes given to the constructor; equal keys
    /// have equal hashes.
    insert_result insert(std::span<const std::uint64_t> key, std::uint64_t hash,
                         std::span<const std::uint32_t> counts)
    {
        const std::size_t i = find(key, hash);
        const bool known = slots_[i].key != empty;
        if (known && covered(slots_[i].key, counts)) {
            return insert_result::covered;
        }
        std::size_t extra = free_counts_ == empty ? counts_.bytes_to_append() : 0;
        if (!known) {
            extra += keys_.bytes_to_append() + (must_grow() ? slots_.size() * sizeof(slot) : 0);
        }
        if (bytes() + extra > max_bytes_ || keys_.size() + 1 >= empty || counts_.size() + 1 >= empty) {
            return insert_result::full;
        }
        add_counts(known ? slots_[i].key : add_key(key, hash), counts);
        return insert_result::inserted;
    }

    /// The bytes currently allocated.
    std::size_t bytes() const noexcept
    {
        return keys_.bytes() + counts_.bytes() + slots_.size() * sizeof(slot);
    }

private:
    struct slot {
        std::uint64_t hash = 0;
        std::uint32_t key = empty;
    };

    static constexpr std::uint32_t empty = ~std::uint32_t{0};
    static constexpr std::size_t initial_slots = 256;

    // A key record holds the key's words, then its first count record. A count record
    // holds the next count record of the same key (or free), then the counts.
    std::uint64_t& first_counts(std::size_t key) noexcept { return keys_.at(key)[key_words_]; }
    std::uint32_t& next_counts(std::uint32_t record) noexcept { return counts_.at(record)[0]; }
    const std::uint32_t* counts_of(std::uint32_t record) const noexcept { return counts_.at(record) + 1; }

    bool must_grow() const noexcept { return 2 * (keys_.size() + 1) > slots_.size(); }

    // The slot holding the key, or the empty slot where it belongs.
    std::size_t find(std::span<const std::uint64_t> key, std::uint64_t hash) const
    {
        const std::size_t mask = slots_.size() - 1;
        std::size_t i = hash & mask;
        while (slots_[i].key != empty &&
               (slots_[i].hash != hash || !std::equal(key.begin(), key.end(), keys_.at(slots_[i].key)))) {
            i = (i + 1) & mask;
        }
        return i;
    }

    bool covered(std::size_t key, std::span<const std::uint32_t> counts) const
    {
        const auto at_most = [](std::uint32_t mine, std::uint32_t stored) { return stored <= mine; };
        for (auto r = static_cast<std::uint32_t>(keys_.at(key)[key_words_]); r != empty;
             r = counts_.at(r)[0]) {
            if (std::equal(counts.begin(), counts.end(), counts_of(r), at_most)) {
                return true;
            }
        }
        return false;
    }

    std::size_t add_key(std::span<const std::uint64_t> key, std::uint64_t hash)
    {
        if (must_grow()) {
            rehash(2 * slots_.size());
        }
        const std::size_t added = keys_.append();
        std::copy(key.begin(), key.end(), keys_.at(added));
        first_counts(added) = empty;
        slots_[find(key, hash)] = slot{hash, static_cast<std::uint32_t>(added)};
        return added;
    }

    // Puts `counts` first in the key's list, and frees the vectors it covers.
    void add_counts(std::size_t key, std::span<const std::uint32_t> counts)
    {
        const auto at_least = [](std::uint32_t mine, std::uint32_t stored) { return stored >= mine; };
        std::uint32_t added = free_counts_;
        if (added == empty) {
            added = static_cast<std::uint32_t>(counts_.append());
        } else {
            free_counts_ = next_counts(added);
        }
        std::copy(counts.begin(), counts.end(), counts_.at(added) + 1);
        std::uint32_t last = added;
        for (auto r = static_cast<std::uint32_t>(first_counts(key)); r != empty;) {
            const std::uint32_t next = next_counts(r);
            if (std::equal(counts.begin(), counts.end(), counts_of(r), at_least)) {
                next_counts(r) = free_counts_;
                free_counts_ = r;
            } else {
                next_counts(last) = r;
                last = r;
            }
            r = next;
        }
        next_counts(last) = empty;
        first_counts(key) = added;
    }

    void rehash(std::size_t new_size)
    {
        std::vector<slot> old(new_size);
        old.swap(slots_);
        const std::size_t mask = slots_.size() - 1;
        for (const slot& s : old) {
            if (s.key != empty) {
                std::size_t i = s.hash & mask;
                while (slots_[i].key != empty) {
                    i = (i + 1) & mask;
                }
                slots_[i] = s;
            }
        }
    }

    std::size_t key_words_;
    record_arena<std::uint64_t> keys_;
    record_arena<std::uint32_t> counts_;
    // The count records no longer in use, linked like those of a key.
    std::uint32_t free_counts_ = empty;
    std::size_t max_bytes_;
    std::vector<slot> slots_;
};

} // namespace raftkv::sim::detail

#endif
