#ifndef RAFTKV_SIM_DETAIL_FORMAT_HPP
#define RAFTKV_SIM_DETAIL_FORMAT_HPP

// Text for the simulator's trace notes and invariant messages.

#include <raftkv/types.hpp>

#include <cstddef>
#include <string>
#include <vector>

namespace raftkv::sim::detail {

/// "{1,2,3}".
inline std::string id_list(const std::vector<node_id>& ids)
{
    std::string s = "{";
    for (std::size_t i = 0; i < ids.size(); ++i) {
        // Not (i ? "," : "") + std::to_string(...): GCC 12 at -O3 reports a false
        // -Wrestrict on it, in the users' builds that include this header too.
        if (i)
            s += ',';
        s += std::to_string(ids[i]);
    }
    s += '}';
    return s;
}

} // namespace raftkv::sim::detail

#endif
