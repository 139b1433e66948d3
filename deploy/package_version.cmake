# The packages' versions come from files maintainers edit, checked against project(VERSION):
# the Debian revision from deploy/debian/changelog, the Python driver's from pyproject.toml.
# include()d by packaging.cmake; `cmake -DPROJECT_VERSION=V -DCHANGELOG=F -DPYPROJECT=F -P
# package_version.cmake` runs the checks alone (tests/deploy/package_version_test.sh).

# Sets ${out} to the revision of the changelog's first entry, whose upstream part must be `version`.
function(binds_deb_revision changelog version out)
  if(NOT EXISTS "${changelog}" OR IS_DIRECTORY "${changelog}")
    message(FATAL_ERROR "${changelog}: cannot be read")
  endif()
  file(STRINGS "${changelog}" top LIMIT_COUNT 1)
  if(NOT top MATCHES "^binds \\(([0-9][^-) ]*)-([0-9A-Za-z.+~]+)\\) ")
    string(SUBSTRING "${top}" 0 80 top)
    message(FATAL_ERROR "${changelog}: the first line must be 'binds (VERSION-REVISION) DIST; urgency=...', "
      "a non-native Debian version (got \"${top}\")")
  endif()
  if(NOT CMAKE_MATCH_1 STREQUAL version)
    message(FATAL_ERROR "${changelog}: its first entry is ${CMAKE_MATCH_1}, the project ${version}: add an entry")
  endif()
  set(${out} ${CMAKE_MATCH_2} PARENT_SCOPE)
endfunction()

# The Python package must carry the project's version.
function(binds_check_python_version pyproject version)
  if(NOT EXISTS "${pyproject}" OR IS_DIRECTORY "${pyproject}")
    message(FATAL_ERROR "${pyproject}: cannot be read")
  endif()
  file(STRINGS "${pyproject}" line REGEX "^version = \"[^\"]*\"")
  list(LENGTH line n)
  if(NOT n EQUAL 1)
    message(FATAL_ERROR "${pyproject}: expected one line 'version = \"X.Y.Z\"', found ${n}")
  endif()
  string(REGEX REPLACE "^version = \"([^\"]*)\".*" "\\1" py "${line}")
  if(NOT py STREQUAL version)
    message(FATAL_ERROR "${pyproject}: version ${py}, the project ${version}: they must agree")
  endif()
endfunction()

if(CMAKE_SCRIPT_MODE_FILE STREQUAL CMAKE_CURRENT_LIST_FILE)
  binds_deb_revision("${CHANGELOG}" "${PROJECT_VERSION}" revision)
  binds_check_python_version("${PYPROJECT}" "${PROJECT_VERSION}")
  message("revision ${revision}")
endif()
