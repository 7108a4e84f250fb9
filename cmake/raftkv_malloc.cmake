# The allocator raftkv-server (and raftkv-loadgen) link: RAFTKV_MALLOC=auto|tcmalloc|jemalloc|system.
#
# The server allocates per request (HTTP buffers, JSON, log entries, LevelDB's batches) from
# several threads; a thread-caching allocator costs less CPU per request than glibc's
# (docs/benchmarks.md, "Where the time goes"). auto picks tcmalloc_minimal (Debian:
# libgoogle-perftools-dev), else jemalloc (libjemalloc-dev), else the system's malloc.
# tcmalloc or jemalloc named explicitly must be found. Builds with sanitizers (-fsanitize in
# CMAKE_CXX_FLAGS: the asan and tsan presets) always keep the system allocator, which the
# sanitizers replace with their own.
#
# Defines the INTERFACE target raftkv_malloc: link it into an executable (never a library).

set(RAFTKV_MALLOC auto CACHE STRING "Allocator of raftkv-server: auto, tcmalloc, jemalloc or system")
set_property(CACHE RAFTKV_MALLOC PROPERTY STRINGS auto tcmalloc jemalloc system)

add_library(raftkv_malloc INTERFACE)

set(raftkv_malloc_wanted ${RAFTKV_MALLOC})
if(NOT raftkv_malloc_wanted MATCHES "^(auto|tcmalloc|jemalloc|system)$")
  message(FATAL_ERROR "RAFTKV_MALLOC=${RAFTKV_MALLOC}: expected auto, tcmalloc, jemalloc or system")
endif()
if(CMAKE_CXX_FLAGS MATCHES "-fsanitize" AND NOT raftkv_malloc_wanted STREQUAL "system")
  message(STATUS "raftkv: system malloc (RAFTKV_MALLOC=${RAFTKV_MALLOC} ignored under sanitizers)")
  set(raftkv_malloc_wanted system)
endif()

set(raftkv_malloc_chosen system)
if(raftkv_malloc_wanted MATCHES "^(auto|tcmalloc)$")
  find_library(RAFTKV_TCMALLOC_LIBRARY NAMES tcmalloc_minimal)
  if(RAFTKV_TCMALLOC_LIBRARY)
    set(raftkv_malloc_chosen tcmalloc)
    set(raftkv_malloc_library ${RAFTKV_TCMALLOC_LIBRARY})
  elseif(raftkv_malloc_wanted STREQUAL "tcmalloc")
    message(FATAL_ERROR "RAFTKV_MALLOC=tcmalloc: libtcmalloc_minimal not found (Debian: libgoogle-perftools-dev)")
  endif()
endif()
if(raftkv_malloc_chosen STREQUAL "system" AND raftkv_malloc_wanted MATCHES "^(auto|jemalloc)$")
  find_library(RAFTKV_JEMALLOC_LIBRARY NAMES jemalloc)
  if(RAFTKV_JEMALLOC_LIBRARY)
    set(raftkv_malloc_chosen jemalloc)
    set(raftkv_malloc_library ${RAFTKV_JEMALLOC_LIBRARY})
  elseif(raftkv_malloc_wanted STREQUAL "jemalloc")
    message(FATAL_ERROR "RAFTKV_MALLOC=jemalloc: libjemalloc not found (Debian: libjemalloc-dev)")
  endif()
endif()

if(raftkv_malloc_chosen STREQUAL "system")
  if(raftkv_malloc_wanted STREQUAL "auto")
    message(STATUS "raftkv: system malloc for raftkv-server (neither tcmalloc_minimal nor jemalloc "
                   "found; Debian: libgoogle-perftools-dev)")
  endif()
else()
  message(STATUS "raftkv: raftkv-server allocates with ${raftkv_malloc_chosen} (${raftkv_malloc_library})")
  # The executable references malloc itself, so the library stays needed with --as-needed.
  target_link_libraries(raftkv_malloc INTERFACE ${raftkv_malloc_library})
endif()
set(RAFTKV_MALLOC_CHOSEN ${raftkv_malloc_chosen} CACHE INTERNAL "The allocator raftkv-server links")
