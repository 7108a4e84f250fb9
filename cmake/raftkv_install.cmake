# Install rules and the package config, so that consumers can write
#
#   find_package(raftkv 0.1 REQUIRED)                          # raftkv::raftkv
#   find_package(raftkv 0.1 REQUIRED COMPONENTS asio leveldb)  # and raftkv::asio, raftkv::leveldb
#
# The core goes to raftkv-targets.cmake; each adapter that was built goes to its own
# raftkv-<component>-targets.cmake, loaded only when its component is requested, so a
# consumer of the core never needs Boost or LevelDB.

include(CMakePackageConfigHelpers)

# A header-only package does not depend on the architecture and lives under share/; one
# with a compiled adapter (a library, not an INTERFACE target) lives under lib/.
set(raftkv_arch_independent ARCH_INDEPENDENT)
set(raftkv_cmakedir ${CMAKE_INSTALL_DATADIR}/cmake/raftkv)
foreach(target IN ITEMS raftkv_leveldb raftkv_asio raftkv_wal)
  if(TARGET ${target})
    get_target_property(type ${target} TYPE)
    if(NOT type STREQUAL "INTERFACE_LIBRARY")
      set(raftkv_arch_independent "")
      set(raftkv_cmakedir ${CMAKE_INSTALL_LIBDIR}/cmake/raftkv)
    endif()
  endif()
endforeach()
set(RAFTKV_INSTALL_CMAKEDIR ${raftkv_cmakedir}
    CACHE STRING "Where raftkv's package config is installed, relative to the prefix")

install(TARGETS raftkv EXPORT raftkv-targets
        FILE_SET HEADERS DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT raftkv-targets NAMESPACE raftkv:: DESTINATION ${RAFTKV_INSTALL_CMAKEDIR})

# Appends to the list <packages_var> the packages whose imported targets (Package::name)
# <target> links, and to <boost_var> the Boost libraries among them. A package's own
# imported dependencies come before it, since some package configs do not find their own
# (Debian's leveldbConfig.cmake links Threads::Threads without finding Threads).
function(raftkv_collect_packages target packages_var boost_var)
  set(packages ${${packages_var}})
  set(boost ${${boost_var}})
  get_target_property(libs ${target} INTERFACE_LINK_LIBRARIES)
  if(NOT libs)
    set(libs "")
  endif()
  string(REGEX MATCH "^[^:]+" own_package ${target})
  string(REGEX MATCHALL "[A-Za-z0-9_.+-]+::[A-Za-z0-9_.+-]+" imported "${libs}")
  foreach(lib IN LISTS imported)
    string(REGEX MATCH "^[^:]+" package ${lib})
    string(REGEX REPLACE "^[^:]+::" "" name ${lib})
    if(package STREQUAL "raftkv" OR package STREQUAL own_package)
      continue()
    endif()
    if(package STREQUAL "Boost"
       AND NOT name MATCHES "^(headers|boost|disable_autolinking|diagnostic_definitions|dynamic_linking)$")
      list(APPEND boost ${name})
    endif()
    if(package IN_LIST packages)
      continue()
    endif()
    if(TARGET ${lib})
      raftkv_collect_packages(${lib} packages boost)
    endif()
    list(APPEND packages ${package})
  endforeach()
  set(${packages_var} ${packages} PARENT_SCOPE)
  set(${boost_var} ${boost} PARENT_SCOPE)
endfunction()

# Sets <out> to the find_dependency() calls a consumer needs before loading the exported
# <target>, in the order they must run.
function(raftkv_dependencies_of target out)
  set(packages "")
  set(boost "")
  raftkv_collect_packages(${target} packages boost)
  list(REMOVE_DUPLICATES packages)
  list(REMOVE_DUPLICATES boost)
  set(calls "")
  foreach(package IN LISTS packages)
    if(package STREQUAL "Boost")
      string(JOIN " " components ${boost})
      string(APPEND calls "find_dependency(Boost 1.81 COMPONENTS ${components})\n")
    else()
      string(APPEND calls "find_dependency(${package})\n")
    endif()
  endforeach()
  set(${out} "${calls}" PARENT_SCOPE)
endfunction()

# The adapters, each as component <name> from target raftkv_<name>.
set(RAFTKV_INSTALLED_COMPONENTS "")
set(RAFTKV_COMPONENT_DEPENDENCIES "")
foreach(component IN ITEMS leveldb asio wal)
  set(target raftkv_${component})
  if(NOT TARGET ${target})
    continue()
  endif()
  set_target_properties(${target} PROPERTIES EXPORT_NAME ${component})
  get_target_property(header_sets ${target} INTERFACE_HEADER_SETS)
  if(header_sets)
    install(TARGETS ${target} EXPORT raftkv-${component}-targets
            FILE_SET HEADERS DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
  else()
    # An adapter without a header file set: install its directory as it is.
    install(TARGETS ${target} EXPORT raftkv-${component}-targets)
    install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/raftkv/${component}
            DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/raftkv)
  endif()
  install(EXPORT raftkv-${component}-targets NAMESPACE raftkv::
          DESTINATION ${RAFTKV_INSTALL_CMAKEDIR})
  list(APPEND RAFTKV_INSTALLED_COMPONENTS ${component})
  raftkv_dependencies_of(${target} dependencies)
  if(dependencies)
    string(REPLACE "\n" "\n    " dependencies "${dependencies}")
    string(STRIP "${dependencies}" dependencies)
    string(APPEND RAFTKV_COMPONENT_DEPENDENCIES
           "  if(_raftkv_component STREQUAL \"${component}\")\n    ${dependencies}\n  endif()\n")
  endif()
endforeach()

configure_package_config_file(
  ${CMAKE_CURRENT_LIST_DIR}/raftkv-config.cmake.in
  ${PROJECT_BINARY_DIR}/raftkv-config.cmake
  INSTALL_DESTINATION ${RAFTKV_INSTALL_CMAKEDIR})
write_basic_package_version_file(
  ${PROJECT_BINARY_DIR}/raftkv-config-version.cmake
  COMPATIBILITY SameMinorVersion
  ${raftkv_arch_independent})
install(FILES ${PROJECT_BINARY_DIR}/raftkv-config.cmake ${PROJECT_BINARY_DIR}/raftkv-config-version.cmake
        DESTINATION ${RAFTKV_INSTALL_CMAKEDIR})
# The MIT license asks that its notice go with every copy, installed headers included.
install(FILES ${PROJECT_SOURCE_DIR}/LICENSE DESTINATION ${CMAKE_INSTALL_DOCDIR})
