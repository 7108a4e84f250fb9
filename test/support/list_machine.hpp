#ifndef RAFTKV_TEST_SUPPORT_LIST_MACHINE_HPP
#define RAFTKV_TEST_SUPPORT_LIST_MACHINE_HPP

// A small state machine for tests of the core and the drivers: it keeps the commands it
// applied, and the result of each is the list's length after it.
//
// Its snapshot is the list of commands, one per chunk read; taking one copies them (tests
// keep them few). What survives a crash is `saved`: hand it to the next incarnation with
// list_machine::from(saved) to model a machine whose snapshots are durable.

#include <raftkv/concepts.hpp>
#include <raftkv/types.hpp>

#include <cstddef>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace raftkv::test {

struct list_machine {
    using result_type = std::size_t;

    struct saved_state {
        index_t applied = 0;
        std::vector<std::string> commands;
    };

    class snapshot_reader {
    public:
        explicit snapshot_reader(saved_state s) : s_(std::move(s)) {}
        index_t index() const { return s_.applied; }
        bool read(std::string& out, std::size_t)
        {
            out = next_ < s_.commands.size() ? s_.commands[next_++] + "\n" : "";
            return next_ == s_.commands.size();
        }

    private:
        saved_state s_;
        std::size_t next_ = 0;
    };

    /// A machine that starts from the snapshot `saved`.
    static list_machine from(const saved_state& saved)
    {
        list_machine m;
        m.applied = saved.applied;
        m.commands = saved.commands;
        m.saved = saved;
        return m;
    }

    index_t applied = 0;
    std::vector<std::string> commands;
    saved_state saved;
    std::optional<saved_state> restoring;
    std::size_t restores = 0;
    std::size_t chunks = 0;

    void apply(std::span<const log_entry> batch, std::span<std::size_t> results)
    {
        for (std::size_t k = 0; k < batch.size(); ++k) {
            if (batch[k].index != applied + 1)
                throw std::logic_error("list_machine: entry " + std::to_string(batch[k].index) +
                                       " applied after " + std::to_string(applied));
            applied = batch[k].index;
            if (batch[k].type == entry_type::normal)
                commands.push_back(batch[k].data);
            results[k] = commands.size();
        }
    }
    index_t applied_index() const { return applied; }
    index_t snapshot_index() const { return saved.applied; }
    void take_snapshot() { saved = {applied, commands}; }
    snapshot_reader snapshot() const { return snapshot_reader({applied, commands}); }
    void begin_restore(const snapshot_meta& meta) { restoring = saved_state{meta.index, {}}; }
    void restore_chunk(std::string_view data)
    {
        if (!restoring)
            throw std::logic_error("list_machine: restore_chunk without begin_restore");
        ++chunks;
        if (!data.empty())
            restoring->commands.emplace_back(data.substr(0, data.size() - 1));
    }
    void finish_restore()
    {
        if (!restoring)
            throw std::logic_error("list_machine: finish_restore without begin_restore");
        saved = *std::exchange(restoring, std::nullopt);
        applied = saved.applied;
        commands = saved.commands;
        ++restores;
    }
    void abort_restore() { restoring.reset(); }
};

static_assert(state_machine<list_machine>);

} // namespace raftkv::test

#endif
