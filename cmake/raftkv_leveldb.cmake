# raftkv::leveldb: the LevelDB log store and KV state machine (include/raftkv/leveldb/).
# Included from the top-level CMakeLists.txt when RAFTKV_WITH_LEVELDB is ON.

# LevelDB's own CMake build installs leveldbConfig.cmake (Debian's libleveldb-dev ships it);
# other packagings install only the header and the library, so fall back to searching for
# those. Either way the result is the imported target leveldb::leveldb.
if(NOT TARGET leveldb::leveldb)
  # Debian's leveldbConfig.cmake links Threads::Threads without finding Threads itself.
  if(NOT TARGET Threads::Threads)
    find_package(Threads REQUIRED)
    set_target_properties(Threads::Threads PROPERTIES IMPORTED_GLOBAL TRUE)
  endif()
  find_package(leveldb CONFIG QUIET)
  if(NOT TARGET leveldb::leveldb)
    find_path(RAFTKV_LEVELDB_INCLUDE_DIR leveldb/db.h
              DOC "Directory holding leveldb/db.h")
    find_library(RAFTKV_LEVELDB_LIBRARY NAMES leveldb
                 DOC "The LevelDB library")
    if(NOT RAFTKV_LEVELDB_INCLUDE_DIR OR NOT RAFTKV_LEVELDB_LIBRARY)
      message(FATAL_ERROR
        "raftkv: RAFTKV_WITH_LEVELDB is ON but LevelDB was not found "
        "(header leveldb/db.h: ${RAFTKV_LEVELDB_INCLUDE_DIR}; "
        "library: ${RAFTKV_LEVELDB_LIBRARY}).\n"
        "Install it (Debian/Ubuntu: apt install libleveldb-dev; macOS: brew install leveldb), "
        "point CMAKE_PREFIX_PATH at its prefix, set RAFTKV_LEVELDB_INCLUDE_DIR and "
        "RAFTKV_LEVELDB_LIBRARY, or configure with -DRAFTKV_WITH_LEVELDB=OFF.")
    endif()
    add_library(leveldb::leveldb UNKNOWN IMPORTED)
    set_target_properties(leveldb::leveldb PROPERTIES
      IMPORTED_LOCATION "${RAFTKV_LEVELDB_LIBRARY}"
      INTERFACE_INCLUDE_DIRECTORIES "${RAFTKV_LEVELDB_INCLUDE_DIR}"
      INTERFACE_LINK_LIBRARIES Threads::Threads)
  endif()
  # Imported targets are scoped to the directory that made them; a project that adds raftkv
  # with add_subdirectory links raftkv::leveldb from its own directory, so make it global.
  set_target_properties(leveldb::leveldb PROPERTIES IMPORTED_GLOBAL TRUE)
endif()

add_library(raftkv_leveldb INTERFACE)
add_library(raftkv::leveldb ALIAS raftkv_leveldb)
set_target_properties(raftkv_leveldb PROPERTIES EXPORT_NAME leveldb)
target_link_libraries(raftkv_leveldb INTERFACE raftkv::raftkv leveldb::leveldb)
file(GLOB_RECURSE RAFTKV_LEVELDB_HEADERS CONFIGURE_DEPENDS
     ${PROJECT_SOURCE_DIR}/include/raftkv/leveldb/*.hpp)
target_sources(raftkv_leveldb INTERFACE
  FILE_SET HEADERS BASE_DIRS ${PROJECT_SOURCE_DIR}/include FILES ${RAFTKV_LEVELDB_HEADERS})
