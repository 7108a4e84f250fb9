// Fuzz target: how the write-ahead log store (raftkv/wal/log_store.hpp) opens a log
// directory holding damaged, torn or forged segments: what a crash, a bad disk or a bug
// can leave behind. wal_input.hpp says how the input becomes the directory's files.
//
// Properties:
// - opening either succeeds or throws std::runtime_error naming the cause, never crashes,
//   hangs or allocates without bound;
// - a log that opens is well formed: first_index() >= 1, entries first_index() to
//   last_index() with those indexes, and terms that never decrease, from the base's on;
// - recovery is complete: after an entry is appended to what was recovered and the store
//   closed, opening again succeeds and returns exactly that log, hard state and base
//   configuration.

#include "check.hpp"
#include "wal_input.hpp"

#include <raftkv/wal/log_store.hpp>

#include <cstdlib>
#include <filesystem>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <unistd.h>

namespace {

using raftkv::index_t;
using raftkv::log_entry;
using raftkv::term_t;

/// A directory of its own for this process, on tmpfs when there is one (every open syncs),
/// removed at exit.
class scratch_dir {
public:
    scratch_dir()
    {
        std::error_code ec;
        std::filesystem::path base = "/dev/shm";
        if (!std::filesystem::is_directory(base, ec) || ::access(base.c_str(), W_OK) != 0)
            base = std::filesystem::temp_directory_path();
        std::string pattern = (base / "raftkv-fuzz-wal-XXXXXX").string();
        if (::mkdtemp(pattern.data()) == nullptr)
            std::abort();
        path_ = pattern;
    }
    ~scratch_dir()
    {
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
    }
    const std::filesystem::path& path() const { return path_; }

private:
    std::filesystem::path path_;
};

struct recovered {
    index_t first = 0;
    index_t last = 0;
    term_t base_term = 0;
    raftkv::membership base_members;
    raftkv::hard_state hard_state;
    std::vector<log_entry> entries;

    friend bool operator==(const recovered&, const recovered&) = default;
};

recovered read_back(const raftkv::wal::log_store& store)
{
    recovered r;
    r.first = store.first_index();
    r.last = store.last_index();
    FUZZ_CHECK(r.first >= 1);
    FUZZ_CHECK(r.last >= r.first - 1);
    r.base_term = store.term_at(r.first - 1);
    r.base_members = store.base_members();
    r.hard_state = store.saved_hard_state();
    if (r.last >= r.first)
        r.entries = store.entries(r.first, r.last + 1, std::numeric_limits<std::size_t>::max());
    FUZZ_CHECK(r.entries.size() == r.last - r.first + 1);
    term_t term = r.base_term;
    for (std::size_t k = 0; k < r.entries.size(); ++k) {
        const log_entry& e = r.entries[k];
        FUZZ_CHECK(e.index == r.first + k);
        FUZZ_CHECK(e.term >= term);
        FUZZ_CHECK(store.term_at(e.index) == e.term);
        term = e.term;
    }
    return r;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    static const scratch_dir scratch;
    const std::filesystem::path dir = scratch.path() / "wal";
    std::filesystem::remove_all(dir);
    std::filesystem::create_directory(dir);
    raftkv::fuzz::wal_input::materialize(raftkv::fuzz::as_chars(data, size), dir);

    const raftkv::wal::log_store_options options{.segment_bytes = 64 * 1024};
    std::optional<recovered> expected;
    try {
        raftkv::wal::log_store store(dir, options);
        expected = read_back(store);
        // Room for one more entry: append it where the node would.
        if (expected->last < std::numeric_limits<index_t>::max() - 1) {
            const term_t term = std::max<term_t>(store.term_at(expected->last), 1);
            const log_entry e{term, expected->last + 1, raftkv::entry_type::normal, "fuzz"};
            store.append(std::span<const log_entry>(&e, 1));
            store.sync();
            expected->entries.push_back(e);
            expected->last = e.index;
        }
    } catch (const std::runtime_error& e) {
        FUZZ_CHECK(std::string_view(e.what()).starts_with("raftkv wal: "));
        FUZZ_CHECK(!expected); // only opening may fail, on this file system
        return 0;
    }
    // Whatever the first open accepted and cut, the second must accept as it is.
    const raftkv::wal::log_store again(dir, options);
    FUZZ_CHECK(read_back(again) == *expected);
    return 0;
}
