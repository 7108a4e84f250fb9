#ifndef RAFTKV_TEST_DOCS_COUNTER_HPP
#define RAFTKV_TEST_DOCS_COUNTER_HPP

// The counter of docs/concepts/state_machine.md, which docs/simulator.md runs in the
// simulator; snippets_test checks that the page shows this code as it is.

#include <raftkv/types.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

// clang-format off
// snippet: counter
struct counter {
    using result_type = std::int64_t;

    // What survives a crash: the last snapshot, written whole (a file written, synced and
    // renamed into place). The simulator gives each node one that outlives its crashes.
    struct disk {
        raftkv::index_t index = 0;
        std::int64_t value = 0;
    };
    // The whole state is one number: a copy is the point-in-time view, one chunk the stream.
    struct snapshot_reader {
        raftkv::index_t at = 0;
        std::int64_t value = 0;
        raftkv::index_t index() const { return at; }
        bool read(std::string& out, std::size_t) { out = std::to_string(value); return true; }
    };

    explicit counter(std::shared_ptr<disk> d = std::make_shared<disk>())
        : saved(std::move(d)), value(saved->value), applied(saved->index) {} // restart from it

    std::shared_ptr<disk> saved;
    std::int64_t value = 0;
    raftkv::index_t applied = 0;
    std::optional<disk> restoring; // a restore in progress, invisible until finished

    void apply(std::span<const raftkv::log_entry> batch, std::span<std::int64_t> results) {
        for (std::size_t k = 0; k < batch.size(); ++k) {
            applied = batch[k].index;
            if (batch[k].type == raftkv::entry_type::normal)
                ++value;
            results[k] = value;
        }
    }
    raftkv::index_t applied_index() const { return applied; }
    raftkv::index_t snapshot_index() const { return saved->index; }
    void take_snapshot() { *saved = {applied, value}; }
    snapshot_reader snapshot() const { return {applied, value}; }

    void begin_restore(const raftkv::snapshot_meta& meta) { restoring = disk{meta.index, 0}; }
    void restore_chunk(std::string_view data) { restoring->value = std::stoll(std::string(data)); } // throws on garbage
    void finish_restore() {
        *saved = *restoring; // durable first, then visible
        value = saved->value;
        applied = saved->index;
        restoring.reset();
    }
    void abort_restore() { restoring.reset(); }
};
// end snippet
// clang-format on

#endif
