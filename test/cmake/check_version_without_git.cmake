# build.version_without_git: cmake/raftkv_version.cmake (SCRIPT) run on a source tree
# without .git (TARBALL, made here inside the build tree, which may itself be inside a git
# checkout) writes the commit "unknown", and the version and build type it was given.
#
#   cmake -DTARBALL=<scratch dir> -DSCRIPT=<raftkv_version.cmake> -DINPUT=<template> -P this

find_program(git git)
file(REMOVE_RECURSE "${TARBALL}")
file(MAKE_DIRECTORY "${TARBALL}")
execute_process(COMMAND "${CMAKE_COMMAND}" -DSOURCE_DIR=${TARBALL} "-DGIT_EXECUTABLE=${git}" -DVERSION=9.8.7
                        -DBUILD_TYPE= -DINPUT=${INPUT} -DOUTPUT=${TARBALL}/version_info.cpp -P ${SCRIPT}
                RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${SCRIPT} failed")
endif()
file(READ "${TARBALL}/version_info.cpp" text)
if(NOT text MATCHES "\"9\\.8\\.7\", \"unknown\", \"None\"")
  message(FATAL_ERROR "expected version 9.8.7, commit unknown, build type None in:\n${text}")
endif()
message(STATUS "without .git: commit unknown")
