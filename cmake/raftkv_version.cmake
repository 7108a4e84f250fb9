# Writes raftkv-server's build information (reference-server/version.hpp) into a small
# .cpp, run by the build on every build (cmake -P). The file is rewritten only when its
# text changes, so an unchanged commit recompiles nothing and a new one recompiles one
# file.
#
#   cmake -DSOURCE_DIR=<source tree> -DGIT_EXECUTABLE=<git or empty> -DVERSION=<x.y.z>
#         -DBUILD_TYPE=<config or empty> -DINPUT=<template> -DOUTPUT=<file> -P raftkv_version.cmake
#
# The commit is `git rev-parse --short HEAD` of SOURCE_DIR, with "-dirty" when tracked
# files differ from it; "unknown" without git or without SOURCE_DIR/.git (a source
# tarball, even one unpacked inside another repository).

foreach(var IN ITEMS SOURCE_DIR VERSION INPUT OUTPUT)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "raftkv_version.cmake: ${var} is not set")
  endif()
endforeach()

set(RAFTKV_COMMIT unknown)
if(GIT_EXECUTABLE AND EXISTS "${SOURCE_DIR}/.git")
  execute_process(COMMAND "${GIT_EXECUTABLE}" -C "${SOURCE_DIR}" rev-parse --short HEAD
                  RESULT_VARIABLE rc OUTPUT_VARIABLE hash ERROR_QUIET OUTPUT_STRIP_TRAILING_WHITESPACE)
  if(rc EQUAL 0 AND hash MATCHES "^[0-9a-f]+$")
    set(RAFTKV_COMMIT ${hash})
    execute_process(COMMAND "${GIT_EXECUTABLE}" -C "${SOURCE_DIR}" status --porcelain --untracked-files=no
                    RESULT_VARIABLE rc OUTPUT_VARIABLE changes ERROR_QUIET)
    if(rc EQUAL 0 AND NOT changes STREQUAL "")
      string(APPEND RAFTKV_COMMIT -dirty)
    endif()
  endif()
endif()

set(RAFTKV_VERSION ${VERSION})
set(RAFTKV_BUILD_TYPE "${BUILD_TYPE}")
if(RAFTKV_BUILD_TYPE STREQUAL "")
  set(RAFTKV_BUILD_TYPE None)
endif()
# configure_file() leaves OUTPUT alone when its text would not change.
configure_file("${INPUT}" "${OUTPUT}" @ONLY)
