// A consumer's whole program: raftkv's headers are found through its target, with
// C++20 enabled by the target's usage requirements.
#include <raftkv/memory_log_store.hpp>
#include <raftkv/node.hpp>

static_assert(raftkv::log_store<raftkv::memory_log_store>);

int main()
{
    return 0;
}
