#ifndef RAFTKV_SIM_HISTORY_HPP
#define RAFTKV_SIM_HISTORY_HPP

// A client history of key-value operations, as recorded by the simulator's clients
// and checked by the linearizability checker.

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace raftkv::sim {

/// `create` is a put applied only if the key is absent (kv_precondition::expect_absent).
enum class kv_op_kind : std::uint8_t { get, put, del, create };

/// One client operation with its call and return times (virtual time, any unit).
///
/// Outcomes: a get returns `found` and, when found, `value`; a put has no outcome beyond
/// success; a del returns `found` (whether the key existed); a create returns `found` when
/// the key existed, so that it wrote nothing (its precondition failed). An operation whose outcome is
/// unknown (it timed out, or its node crashed) is `indeterminate`: it may have taken
/// effect at any time after `call`, or never, and its outcome fields are ignored.
struct kv_op {
    std::uint64_t client = 0;
    kv_op_kind kind = kv_op_kind::get;
    std::string key;
    /// The value written by a put.
    std::string value;
    /// Outcome of a get (key present), del or create (key existed).
    bool found = false;
    /// Outcome of a get that found the key.
    std::string result;
    std::uint64_t call = 0;
    std::uint64_t ret = std::numeric_limits<std::uint64_t>::max();
    bool indeterminate = false;
};

using kv_history = std::vector<kv_op>;

} // namespace raftkv::sim

#endif
