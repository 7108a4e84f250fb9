// The README's "Using the library" example, as the page shows it (snippets_test checks that
// it does): built and run by the tests, so the front page's code compiles and works.

// clang-format off
// snippet: readme
#include <raftkv/memory_log_store.hpp>
#include <raftkv/node.hpp>

#include <cstdio>
#include <deque>
#include <memory>

// Your transport: send() queues the message; your I/O delivers it to node m.to, which step()s it.
struct outbox {
    void send(raftkv::message m) { queue.push_back(std::move(m)); }
    std::deque<raftkv::message> queue;
};

// Your state machine: applies committed entries in log order, deterministically, and
// snapshots its state so the log can be compacted (docs/concepts/state_machine.md).
struct counter {
    using result_type = std::uint64_t;
    struct snapshot_reader {                 // a point-in-time view, read as one chunk
        raftkv::index_t at;
        std::uint64_t value;
        raftkv::index_t index() const { return at; }
        bool read(std::string& out, std::size_t) { out = std::to_string(value); return true; }
    };

    void apply(std::span<const raftkv::log_entry> batch, std::span<result_type> results) {
        for (std::size_t k = 0; k < batch.size(); ++k) {
            if (batch[k].type == raftkv::entry_type::normal)
                ++value;
            results[k] = value;
            applied = batch[k].index;
        }
    }
    raftkv::index_t applied_index() const { return applied; }
    raftkv::index_t snapshot_index() const { return saved_at; }
    void take_snapshot() { saved_at = applied; saved = value; } // a real one writes it durably
    snapshot_reader snapshot() const { return {applied, value}; }
    void begin_restore(const raftkv::snapshot_meta& meta) { restoring_at = meta.index; }
    void restore_chunk(std::string_view data) { restoring = std::stoull(std::string(data)); }
    void finish_restore() { value = restoring; applied = restoring_at; take_snapshot(); }
    void abort_restore() {}

    std::uint64_t value = 0, saved = 0, restoring = 0;
    raftkv::index_t applied = 0, saved_at = 0, restoring_at = 0;
};

using node = raftkv::basic_node<outbox, raftkv::memory_log_store, counter>;

int main() {
    // Three nodes in one process; each has its own transport, log store and state machine.
    outbox transport[3];
    raftkv::memory_log_store store[3];
    counter machine[3];
    std::unique_ptr<node> nodes[3];
    for (raftkv::node_id id = 1; id <= 3; ++id) {
        nodes[id - 1] = std::make_unique<node>(raftkv::options{.id = id, .members = {{1, 2, 3}}},
                                               transport[id - 1], store[id - 1], machine[id - 1]);
        nodes[id - 1]->on_apply([id](raftkv::index_t index, raftkv::term_t, std::uint64_t& value) {
            std::printf("node %llu applied entry %llu: counter %llu\n", (unsigned long long)id,
                        (unsigned long long)index, (unsigned long long)value); // reply to the client here
        });
    }
    const auto deliver = [&] {                       // the network: every message, in order
        for (bool any = true; any;) {
            any = false;
            for (auto& t : transport)
                for (; !t.queue.empty(); any = true) {
                    raftkv::message m = std::move(t.queue.front());
                    t.queue.pop_front();
                    nodes[m.to - 1]->step(std::move(m));
                }
        }
    };
    node* leader = nullptr;
    while (!leader) {                                // at a fixed interval: elections and heartbeats
        for (auto& n : nodes)
            n->tick();
        deliver();
        for (auto& n : nodes)
            if (n->role() == raftkv::role::leader)
                leader = n.get();
    }
    raftkv::propose_result r = leader->propose("increment"); // on_apply reports its result
    leader->on_log_durable();                        // the store made it durable (at once, in memory)
    deliver();
    for (int t = 0; t < 20; ++t) {                   // heartbeats carry the commit to the followers
        for (auto& n : nodes)
            n->tick();
        deliver();
    }
    return r.ec || machine[0].value != 1 || machine[1].value != 1 || machine[2].value != 1;
}
// end snippet
// clang-format on
