# Checks whether a build's compile commands turn warnings into errors (-Werror), for the
# build tests of CMakeLists.txt here.
#
#   cmake -DCOMPILE_COMMANDS=<compile_commands.json> -DEXPECT=absent|present
#         [-DSOURCE_DIR=<raftkv> -DBINARY_DIR=<scratch> -DGENERATOR=<gen> -DMAKE_PROGRAM=<prog>
#          -DCXX_COMPILER=<c++>] -P check_warnings_as_errors.cmake
#
# With SOURCE_DIR, first configures that source tree into BINARY_DIR (emptied first) as a
# user would: a Release build type and nothing else, without CFLAGS or CXXFLAGS from the
# environment. EXPECT=absent fails when any compile command carries -Werror or the cache
# turns CMAKE_COMPILE_WARNING_AS_ERROR on; EXPECT=present fails when no command does.

if(NOT EXPECT MATCHES "^(absent|present)$")
  message(FATAL_ERROR "EXPECT must be absent or present")
endif()

if(SOURCE_DIR)
  file(REMOVE_RECURSE "${BINARY_DIR}")
  set(options -S "${SOURCE_DIR}" -B "${BINARY_DIR}" -G "${GENERATOR}" -DCMAKE_BUILD_TYPE=Release
              -DCMAKE_EXPORT_COMPILE_COMMANDS=ON)
  if(MAKE_PROGRAM)
    list(APPEND options "-DCMAKE_MAKE_PROGRAM=${MAKE_PROGRAM}")
  endif()
  if(CXX_COMPILER)
    list(APPEND options "-DCMAKE_CXX_COMPILER=${CXX_COMPILER}")
  endif()
  execute_process(COMMAND "${CMAKE_COMMAND}" -E env --unset=CXXFLAGS --unset=CFLAGS
                          "${CMAKE_COMMAND}" ${options}
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "a plain Release configure of ${SOURCE_DIR} failed:\n${out}")
  endif()
  set(COMPILE_COMMANDS "${BINARY_DIR}/compile_commands.json")
  file(STRINGS "${BINARY_DIR}/CMakeCache.txt" as_error REGEX "^CMAKE_COMPILE_WARNING_AS_ERROR:")
  if(as_error MATCHES "=(ON|TRUE|YES|1)$")
    message(FATAL_ERROR "a plain Release configure sets ${as_error}")
  endif()
endif()

if(NOT EXISTS "${COMPILE_COMMANDS}")
  message(FATAL_ERROR "${COMPILE_COMMANDS} does not exist")
endif()
file(STRINGS "${COMPILE_COMMANDS}" commands REGEX "\"command\":")
list(LENGTH commands count)
if(count LESS 10)
  message(FATAL_ERROR "${COMPILE_COMMANDS} holds only ${count} compile commands")
endif()
set(with_werror ${commands})
list(FILTER with_werror INCLUDE REGEX "-Werror")
list(LENGTH with_werror werror_count)

if(EXPECT STREQUAL "absent" AND werror_count GREATER 0)
  list(GET with_werror 0 first)
  message(FATAL_ERROR "${werror_count} of ${count} compile commands turn warnings into errors, e.g.:\n${first}")
endif()
if(EXPECT STREQUAL "present" AND werror_count EQUAL 0)
  message(FATAL_ERROR "none of the ${count} compile commands turns warnings into errors")
endif()
message(STATUS "${werror_count} of ${count} compile commands carry -Werror, as expected (${EXPECT})")
