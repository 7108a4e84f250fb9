#ifndef RAFTKV_TEST_SUPPORT_LOG_ENTRIES_HPP
#define RAFTKV_TEST_SUPPORT_LOG_ENTRIES_HPP

// Log entries for tests of log stores: runs of entries whose data names them, and a
// store's whole retained log.

#include <raftkv/types.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace raftkv::test {

/// Entries from, from+1, ... with the given terms and data "<index>/<term>", followed by
/// `pad` bytes 'x'.
inline std::vector<log_entry> run(index_t from, const std::vector<term_t>& terms, std::size_t pad = 0)
{
    std::vector<log_entry> es;
    for (term_t t : terms) {
        const index_t i = from + es.size();
        es.push_back(log_entry{t, i, entry_type::normal,
                               std::to_string(i) + "/" + std::to_string(t) + std::string(pad, 'x')});
    }
    return es;
}

/// Every entry `s` retains, in order.
template <class LogStore>
std::vector<log_entry> all_entries(const LogStore& s)
{
    if (s.last_index() < s.first_index())
        return {};
    return s.entries(s.first_index(), s.last_index() + 1, SIZE_MAX);
}

/// A configuration with every part set, for store tests: voters from `first`, joint if
/// asked, a learner and info.
inline membership members_from(node_id first, bool joint = false)
{
    membership m;
    m.voters = {first, first + 1, first + 2};
    if (joint)
        m.outgoing = {first + 1, first + 2, first + 3};
    m.learners = {first + 5};
    m.info = {{first, "10.0.0." + std::to_string(first) + ":7000"}, {first + 5, std::string(300, 'i')}};
    return m;
}

} // namespace raftkv::test

#endif
