// Fuzz target: the decoders of what a log entry's data holds, read back from disk and from
// peers: configurations (raftkv/membership.hpp, the data of config entries and of snapshot
// and compaction records), key-value commands (raftkv/kv_command.hpp), and the member info
// raftkv-server keeps in a configuration (reference-server/member_info.hpp).
//
// Every decoder runs on the whole input. Properties:
// - none crashes, throws or allocates without bound;
// - decode_membership() accepts only what encode_membership() writes: a configuration that
//   decodes re-encodes to the same bytes (one encoding per configuration, so two nodes
//   that agree on a config entry's bytes agree on its meaning);
// - a command that decodes re-encodes to the same bytes, and its views lie in the input;
// - member info decodes to addresses that print back to what parse_host_port() accepts.

#include "check.hpp"

#include "config.hpp"
#include "member_info.hpp"

#include <raftkv/kv_command.hpp>
#include <raftkv/membership.hpp>

#include <string>
#include <string_view>

namespace {

void check_address(const std::optional<raftkv::server::host_port>& address)
{
    if (!address)
        return;
    FUZZ_CHECK(address->port != 0);
    FUZZ_CHECK(raftkv::server::parse_host_port(address->to_string()) == address);
}

void check_info(std::string_view info)
{
    const raftkv::server::member_info m = raftkv::server::decode_member_info(info);
    check_address(m.raft);
    check_address(m.http);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    const std::string_view input = raftkv::fuzz::as_chars(data, size);

    if (const auto m = raftkv::decode_membership(input)) {
        FUZZ_CHECK(raftkv::encode_membership(*m) == input);
        for (const auto& [id, info] : m->info) {
            FUZZ_CHECK(id != raftkv::no_node);
            check_info(info);
        }
    }

    if (const auto c = raftkv::decode_kv_command(input)) {
        FUZZ_CHECK(c->key.data() >= input.data() &&
                   c->key.data() + c->key.size() <= input.data() + input.size());
        std::string again;
        // Every command that decodes has one encoding: its precondition and session included.
        switch (c->op) {
        case raftkv::kv_command_op::put:
            again = c->session ? raftkv::encode_put(c->key, c->value, c->precondition, *c->session)
                               : raftkv::encode_put(c->key, c->value, c->precondition);
            break;
        case raftkv::kv_command_op::del:
            FUZZ_CHECK(c->value.empty());
            again = c->session ? raftkv::encode_del(c->key, c->precondition, *c->session)
                               : raftkv::encode_del(c->key, c->precondition);
            break;
        case raftkv::kv_command_op::meta: again = raftkv::encode_meta(c->key, c->value); break;
        }
        FUZZ_CHECK(again == input);
    }

    check_info(input);
    return 0;
}
