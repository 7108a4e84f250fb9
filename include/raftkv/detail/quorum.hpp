#ifndef RAFTKV_DETAIL_QUORUM_HPP
#define RAFTKV_DETAIL_QUORUM_HPP

#include <algorithm>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

namespace raftkv::detail {

/// The largest value that at least `quorum` of `values` reach: the `quorum`-th largest.
/// Reorders `values`. REQUIRES: 1 <= quorum <= values.size().
inline std::uint64_t quorum_value(std::vector<std::uint64_t>& values, std::size_t quorum)
{
    assert(quorum >= 1 && quorum <= values.size());
    auto nth = values.begin() + static_cast<std::ptrdiff_t>(quorum - 1);
    std::nth_element(values.begin(), nth, values.end(), std::greater<>{});
    return *nth;
}

} // namespace raftkv::detail

#endif
