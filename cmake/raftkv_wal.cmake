# raftkv::wal: the segmented write-ahead log store with group commit (include/raftkv/wal/).
# POSIX only; its one dependency is the thread library (its background sync thread).

if(NOT TARGET Threads::Threads)
  find_package(Threads REQUIRED)
  set_target_properties(Threads::Threads PROPERTIES IMPORTED_GLOBAL TRUE)
endif()

add_library(raftkv_wal INTERFACE)
add_library(raftkv::wal ALIAS raftkv_wal)
set_target_properties(raftkv_wal PROPERTIES EXPORT_NAME wal)
target_link_libraries(raftkv_wal INTERFACE raftkv::raftkv Threads::Threads)
file(GLOB_RECURSE RAFTKV_WAL_HEADERS CONFIGURE_DEPENDS
     ${PROJECT_SOURCE_DIR}/include/raftkv/wal/*.hpp)
target_sources(raftkv_wal INTERFACE
  FILE_SET HEADERS BASE_DIRS ${PROJECT_SOURCE_DIR}/include FILES ${RAFTKV_WAL_HEADERS})
