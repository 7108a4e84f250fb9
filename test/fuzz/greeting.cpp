// Fuzz target: the peer greeting check (raftkv/asio/detail/greeting.hpp), the first bytes a
// listener reads from a connection, before it trusts anything else from it.
//
// The input is the 48 greeting bytes, then (zero-filled when short) the listener's cluster
// id, its node id, its incarnation and the incarnation it recorded for the sender, 8
// bytes each, big-endian. Properties:
// - check_greeting() never crashes or throws; a refusal is a one-line reason;
// - an accepted greeting is what encode_greeting() writes for the greeting it returns,
//   and it satisfies what the listener relies on: the sender names a node that is not
//   the listener, and the listener as the receiver, in the listener's cluster.

#include "check.hpp"

#include <raftkv/asio/detail/greeting.hpp>

#include <algorithm>
#include <cstring>
#include <string>

namespace {

std::uint64_t be64(const std::uint8_t* p)
{
    std::uint64_t v = 0;
    for (int i = 0; i < 8; ++i)
        v = (v << 8) | p[i];
    return v;
}

void check_one_line(const std::string& reason)
{
    FUZZ_CHECK(!reason.empty());
    FUZZ_CHECK(reason.find('\n') == std::string::npos);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    using namespace raftkv::asio::detail;
    if (size < greeting_size)
        return 0;
    greeting_bytes bytes{};
    std::memcpy(bytes.data(), data, greeting_size);
    std::uint8_t tail[32] = {};
    std::memcpy(tail, data + greeting_size, std::min<std::size_t>(size - greeting_size, sizeof tail));
    const std::uint64_t cluster_id = be64(tail);
    const raftkv::node_id self = be64(tail + 8);
    const std::uint64_t self_incarnation = be64(tail + 16);
    const std::uint64_t recorded = be64(tail + 24);

    greeting g;
    const std::string reason = check_greeting(bytes, cluster_id, self, g);
    if (!reason.empty()) {
        check_one_line(reason);
        return 0;
    }
    FUZZ_CHECK(encode_greeting(g) == bytes);
    FUZZ_CHECK(has_greeting_magic(bytes));
    FUZZ_CHECK(g.from != raftkv::no_node && g.from != self && g.to == self);
    FUZZ_CHECK(cluster_id == 0 || g.cluster_id == cluster_id);

    check_one_line(retired_directory_reason(g));
    switch (check_incarnations(g, self_incarnation, recorded)) {
    case incarnation_verdict::accept:
    case incarnation_verdict::learn: break;
    case incarnation_verdict::new_sender_directory: check_one_line(new_directory_reason(g, recorded)); break;
    case incarnation_verdict::retired_sender_directory: break; // only incarnation_book says so
    case incarnation_verdict::replaced_receiver_directory:
        check_one_line(replaced_directory_reason(g, self_incarnation));
        break;
    }
    return 0;
}
