// A three-node Raft cluster in one process, replicating a small bank: accounts,
// deposits and transfers that must never overdraw. It shows what a user of raftkv
// writes: a state machine, a transport, and a loop that drives the nodes.
//
// Run it and watch: an election, transfers replicated to every node, the leader
// crashing, a new leader taking over, and all balances agreeing at the end.

#include <raftkv/memory_log_store.hpp>
#include <raftkv/node.hpp>

#include <cstdint>
#include <cstdio>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace {

// ---- The state machine: a bank --------------------------------------------------

// Commands are text: "deposit <account> <amount>" or "transfer <from> <to> <amount>".
// The balances live in memory; what survives a crash is the last snapshot, kept in a
// vault the bank is given (a file would do the same). Snapshots are text, one
// "<account> <balance>" line per account.
class bank {
    struct state {
        raftkv::index_t applied = 0;
        std::map<std::string, std::int64_t> balances;
    };

public:
    using result_type = std::string; // "ok" or why the command was refused
    using vault = std::shared_ptr<const state>;

    // Reads a snapshot line by line from a state that later applies do not change.
    class snapshot_reader {
    public:
        explicit snapshot_reader(std::shared_ptr<const state> s)
            : state_(std::move(s)), at_(state_->balances.begin())
        {
        }
        raftkv::index_t index() const { return state_->applied; }
        bool read(std::string& out, std::size_t max_bytes)
        {
            out.clear();
            for (; at_ != state_->balances.end() && out.size() < max_bytes; ++at_)
                out += at_->first + " " + std::to_string(at_->second) + "\n";
            return at_ == state_->balances.end();
        }

    private:
        std::shared_ptr<const state> state_;
        std::map<std::string, std::int64_t>::const_iterator at_;
    };

    explicit bank(vault& v) : vault_(&v), state_(std::make_shared<state>(v ? *v : state{})) {}

    void apply(std::span<const raftkv::log_entry> batch, std::span<std::string> results)
    {
        if (state_.use_count() > 1) // shared with the vault or a reader: copy on write
            state_ = std::make_shared<state>(*state_);
        for (std::size_t k = 0; k < batch.size(); ++k) {
            state_->applied = batch[k].index;
            if (batch[k].type == raftkv::entry_type::normal)
                results[k] = execute(batch[k].data);
        }
    }
    raftkv::index_t applied_index() const { return state_->applied; }

    raftkv::index_t snapshot_index() const { return *vault_ ? (*vault_)->applied : 0; }
    void take_snapshot() { *vault_ = state_; }
    snapshot_reader snapshot() const { return snapshot_reader(state_); }

    void begin_restore(const raftkv::snapshot_meta& meta)
    {
        restoring_ = std::make_shared<state>();
        restoring_->applied = meta.index;
        partial_.clear();
    }
    void restore_chunk(std::string_view data)
    {
        partial_ += data;
        std::size_t end;
        while ((end = partial_.find('\n')) != std::string::npos) {
            std::istringstream line(partial_.substr(0, end));
            std::string account;
            std::int64_t balance = 0;
            if (!(line >> account >> balance))
                throw std::invalid_argument("bank: malformed snapshot line");
            restoring_->balances[account] = balance;
            partial_.erase(0, end + 1);
        }
    }
    void finish_restore()
    {
        state_ = std::move(restoring_);
        *vault_ = state_;
    }
    void abort_restore() { restoring_.reset(); }

    std::int64_t balance(const std::string& account) const
    {
        auto it = state_->balances.find(account);
        return it == state_->balances.end() ? 0 : it->second;
    }

private:
    std::string execute(const std::string& command)
    {
        std::istringstream in(command);
        std::string verb, from, to;
        std::int64_t amount = 0;
        in >> verb;
        auto& balances = state_->balances;
        if (verb == "deposit" && in >> to >> amount && amount > 0) {
            balances[to] += amount;
            return "ok";
        }
        if (verb == "transfer" && in >> from >> to >> amount && amount > 0) {
            if (balance(from) < amount)
                return "insufficient funds";
            balances[from] -= amount;
            balances[to] += amount;
            return "ok";
        }
        return "malformed command";
    }

    vault* vault_;
    std::shared_ptr<state> state_;
    std::shared_ptr<state> restoring_;
    std::string partial_;
};

// ---- The transport: a shared in-memory mailbox ------------------------------------

struct mailbox {
    std::deque<raftkv::message> messages;
    std::vector<bool> down; // crashed nodes neither send nor receive
};

class mailbox_transport {
public:
    explicit mailbox_transport(mailbox& box) : box_(&box) {}
    void send(raftkv::message m) { box_->messages.push_back(std::move(m)); }

private:
    mailbox* box_;
};

using bank_node = raftkv::basic_node<mailbox_transport, raftkv::memory_log_store, bank>;

// ---- The cluster: nodes and the loop that drives them ------------------------------

struct server {
    raftkv::memory_log_store store; // survives a crash, like a disk
    bank::vault vault;              // so does the bank's last snapshot
    std::unique_ptr<bank> machine;
    std::unique_ptr<mailbox_transport> transport;
    std::unique_ptr<bank_node> node;
};

class cluster {
public:
    explicit cluster(int size) : servers_(size) { box_.down.assign(size + 1, false); }

    void start(raftkv::node_id id)
    {
        server& s = servers_[id - 1];
        raftkv::options o;
        o.id = id;
        for (raftkv::node_id m = 1; m <= servers_.size(); ++m)
            o.members.voters.push_back(m);
        o.random_seed = id * 1000 + restarts_++;
        o.snapshot_entries = 4;                      // snapshot often, to show it: the log keeps
        o.snapshot_catchup_entries = 1;              // one entry behind the snapshot
        s.machine = std::make_unique<bank>(s.vault); // from its last snapshot, then the log
        s.transport = std::make_unique<mailbox_transport>(box_);
        s.node = std::make_unique<bank_node>(o, *s.transport, s.store, *s.machine);
        // Each proposal ends in exactly one of these two handlers.
        s.node->on_apply([this, id](raftkv::index_t index, raftkv::term_t term, std::string& result) {
            if (waiting_ && waiting_->node == id && waiting_->index == index && waiting_->term == term)
                waiting_->result = result;
        });
        s.node->on_drop([this, id](raftkv::index_t index, raftkv::term_t term, std::error_code ec) {
            if (waiting_ && waiting_->node == id && waiting_->index == index && waiting_->term == term)
                waiting_->result = "not applied: " + ec.message();
        });
        box_.down[id] = false;
    }

    void crash(raftkv::node_id id)
    {
        servers_[id - 1].node.reset();
        box_.down[id] = true;
    }

    // One tick of every live node, then every message delivered.
    void tick()
    {
        for (auto& s : servers_)
            if (s.node)
                s.node->tick();
        while (!box_.messages.empty()) {
            raftkv::message m = std::move(box_.messages.front());
            box_.messages.pop_front();
            if (!box_.down[m.from] && !box_.down[m.to])
                servers_[m.to - 1].node->step(std::move(m));
        }
    }

    std::optional<raftkv::node_id> leader() const
    {
        for (const auto& s : servers_)
            if (s.node && s.node->role() == raftkv::role::leader)
                return s.node->id();
        return std::nullopt;
    }

    // Proposes at the leader and drives the cluster until the command is applied there.
    std::string submit(const std::string& command)
    {
        for (int attempt = 0; attempt < 200; ++attempt) {
            if (auto id = leader()) {
                bank_node& n = *servers_[*id - 1].node;
                auto r = n.propose(command);
                if (!r.ec) {
                    waiting_ = pending{*id, r.index, r.term, {}};
                    n.on_log_durable(); // memory_log_store is durable on append
                    for (int t = 0; t < 50 && waiting_->result.empty(); ++t)
                        tick();
                    std::string result = waiting_->result;
                    waiting_.reset();
                    if (!result.empty())
                        return result;
                }
            }
            tick();
        }
        return "no leader";
    }

    const bank& machine(raftkv::node_id id) const { return *servers_[id - 1].machine; }
    const bank_node& node(raftkv::node_id id) const { return *servers_[id - 1].node; }

private:
    struct pending {
        raftkv::node_id node;
        raftkv::index_t index;
        raftkv::term_t term;
        std::string result;
    };

    std::vector<server> servers_;
    mailbox box_;
    std::optional<pending> waiting_;
    std::uint64_t restarts_ = 0;
};

} // namespace

int main()
{
    cluster c(3);
    for (raftkv::node_id id = 1; id <= 3; ++id)
        c.start(id);
    while (!c.leader())
        c.tick();
    std::printf("node %llu was elected leader\n", static_cast<unsigned long long>(*c.leader()));

    std::printf("deposit alice 100     -> %s\n", c.submit("deposit alice 100").c_str());
    std::printf("transfer alice bob 30 -> %s\n", c.submit("transfer alice bob 30").c_str());
    std::printf("transfer bob carol 50 -> %s\n", c.submit("transfer bob carol 50").c_str());

    const raftkv::node_id old_leader = *c.leader();
    c.crash(old_leader);
    std::printf("node %llu (the leader) crashed\n", static_cast<unsigned long long>(old_leader));
    std::printf("transfer alice carol 20 -> %s\n", c.submit("transfer alice carol 20").c_str());
    std::printf("node %llu is the new leader\n", static_cast<unsigned long long>(*c.leader()));

    std::printf("deposit dave 5         -> %s\n", c.submit("deposit dave 5").c_str());
    c.start(old_leader);
    std::printf("node %llu restarted from its snapshot at index %llu and catches up\n",
                static_cast<unsigned long long>(old_leader),
                static_cast<unsigned long long>(c.machine(old_leader).applied_index()));
    for (int t = 0; t < 30; ++t)
        c.tick();
    std::printf("node %llu's log now starts at index %llu\n", static_cast<unsigned long long>(*c.leader()),
                static_cast<unsigned long long>(c.node(*c.leader()).first_index()));

    bool agree = true;
    for (const char* account : {"alice", "bob", "carol", "dave"}) {
        std::printf("%-6s", account);
        for (raftkv::node_id id = 1; id <= 3; ++id) {
            std::printf("  node %llu: %4lld", static_cast<unsigned long long>(id),
                        static_cast<long long>(c.machine(id).balance(account)));
            agree = agree && c.machine(id).balance(account) == c.machine(1).balance(account);
        }
        std::printf("\n");
    }
    const bool expected = c.machine(1).balance("alice") == 50 && c.machine(1).balance("bob") == 30 &&
                          c.machine(1).balance("carol") == 20 && c.machine(1).balance("dave") == 5;
    std::printf("%s\n", agree && expected ? "all nodes agree" : "NODES DISAGREE");
    return agree && expected ? 0 : 1;
}
