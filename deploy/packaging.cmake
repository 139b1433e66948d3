# Install rules and CPack: three Debian packages from one `cpack` run, one per install component.
#   server  -> bindsd         daemon, `binds` CLI, config, unit, man pages
#   python  -> python3-binds  the pure-Python driver, Debian's dist-packages layout
#   dev     -> libbinds-dev   static C++ client library, headers, CMake config, binds.pc
# Configure with -DCMAKE_INSTALL_PREFIX=/usr for `cmake --install` (deploy/bindsd.service names
# /usr/bin/bindsd); cpack packages under /usr whatever the prefix. The config and the unit live
# outside the prefix, as on Debian; stage with DESTDIR.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

# One maintainer for the control files, debian/changelog and debian/copyright (deb_test.sh
# checks they agree). A placeholder address until the project has a real list.
set(BINDS_MAINTAINER "binds maintainers <binds-maintainers@example.org>")
include(${CMAKE_CURRENT_LIST_DIR}/package_version.cmake)
set(BINDS_CHANGELOG ${PROJECT_SOURCE_DIR}/deploy/debian/changelog)
set(BINDS_PYPROJECT ${PROJECT_SOURCE_DIR}/client/python/pyproject.toml)
# Editing either file re-runs the checks.
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${BINDS_CHANGELOG} ${BINDS_PYPROJECT})
binds_deb_revision(${BINDS_CHANGELOG} ${PROJECT_VERSION} BINDS_DEB_RELEASE)
binds_check_python_version(${BINDS_PYPROJECT} ${PROJECT_VERSION})
# Debian's multiarch library folder, as dh uses, whatever CMAKE_INSTALL_PREFIX the tree has.
if(CMAKE_LIBRARY_ARCHITECTURE)
  set(BINDS_INSTALL_LIBDIR "lib/${CMAKE_LIBRARY_ARCHITECTURE}")
else()
  set(BINDS_INSTALL_LIBDIR "${CMAKE_INSTALL_LIBDIR}")
endif()
set(BINDS_CONFIG_DIR "/etc/binds" CACHE PATH "Directory for the default binds.yaml")
set(BINDS_SYSTEMD_UNIT_DIR "/lib/systemd/system" CACHE PATH "Directory for bindsd.service")
# Policy: directories 0755 whatever the builder's umask (lintian: non-standard-dir-perm).
set(CMAKE_INSTALL_DEFAULT_DIRECTORY_PERMISSIONS
  OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE WORLD_READ WORLD_EXECUTE)
set(BINDS_FILE_PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)

# Files generated for the packages; built by `all`, since cpack in deb_test.sh must not build.
set(BINDS_DEB_OUT ${PROJECT_BINARY_DIR}/deb)
set(BINDS_DEB_GENERATED)
# gzip -9n: maximal compression and no name or timestamp, so the packages are reproducible.
function(binds_gzip src out)
  add_custom_command(OUTPUT ${out}
    COMMAND gzip -9n -c ${src} > ${out}
    DEPENDS ${src} VERBATIM)
  set(BINDS_DEB_GENERATED ${BINDS_DEB_GENERATED} ${out} PARENT_SCOPE)
endfunction()

file(MAKE_DIRECTORY ${BINDS_DEB_OUT}/man ${BINDS_DEB_OUT}/python)
binds_gzip(${PROJECT_SOURCE_DIR}/deploy/debian/changelog ${BINDS_DEB_OUT}/changelog.Debian.gz)
set(BINDS_MAN_PAGES bindsd.8 binds.1 binds.yaml.5)
foreach(page IN LISTS BINDS_MAN_PAGES)
  binds_gzip(${PROJECT_SOURCE_DIR}/deploy/man/${page} ${BINDS_DEB_OUT}/man/${page}.gz)
endforeach()

# setuptools writes the metadata (entry points register the SQLAlchemy dialects) from pyproject.toml,
# the way Debian's own Python packages ship a .egg-info next to the module.
set(BINDS_EGG_INFO ${BINDS_DEB_OUT}/python/binds.egg-info)
add_custom_command(OUTPUT ${BINDS_EGG_INFO}/PKG-INFO
  COMMAND /usr/bin/python3 -W ignore setup.py -q egg_info --egg-base ${BINDS_DEB_OUT}/python
  WORKING_DIRECTORY ${PROJECT_SOURCE_DIR}/client/python
  DEPENDS ${PROJECT_SOURCE_DIR}/client/python/pyproject.toml ${PROJECT_SOURCE_DIR}/client/python/setup.py
  VERBATIM)
list(APPEND BINDS_DEB_GENERATED ${BINDS_EGG_INFO}/PKG-INFO)
add_custom_target(binds_deb_files ALL DEPENDS ${BINDS_DEB_GENERATED})

# Every package carries the copyright and the changelog of the source.
function(binds_package_docs component package)
  install(FILES ${PROJECT_SOURCE_DIR}/deploy/debian/copyright ${BINDS_DEB_OUT}/changelog.Debian.gz
    DESTINATION ${CMAKE_INSTALL_DATAROOTDIR}/doc/${package} PERMISSIONS ${BINDS_FILE_PERMISSIONS}
    COMPONENT ${component})
endfunction()

# --- bindsd
install(TARGETS bindsd binds_cli RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT server)
install(FILES deploy/binds.yaml DESTINATION ${BINDS_CONFIG_DIR}
  PERMISSIONS ${BINDS_FILE_PERMISSIONS} COMPONENT server)
install(FILES deploy/bindsd.service DESTINATION ${BINDS_SYSTEMD_UNIT_DIR}
  PERMISSIONS ${BINDS_FILE_PERMISSIONS} COMPONENT server)
install(FILES README.md protocol/PROTOCOL.md DESTINATION ${CMAKE_INSTALL_DATAROOTDIR}/doc/bindsd
  PERMISSIONS ${BINDS_FILE_PERMISSIONS} COMPONENT server)
install(FILES deploy/README.md DESTINATION ${CMAKE_INSTALL_DATAROOTDIR}/doc/bindsd RENAME README.Debian
  PERMISSIONS ${BINDS_FILE_PERMISSIONS} COMPONENT server)
foreach(page IN LISTS BINDS_MAN_PAGES)
  string(REGEX MATCH "[0-9]$" section ${page})
  install(FILES ${BINDS_DEB_OUT}/man/${page}.gz DESTINATION ${CMAKE_INSTALL_MANDIR}/man${section}
    PERMISSIONS ${BINDS_FILE_PERMISSIONS} COMPONENT server)
endforeach()
binds_package_docs(server bindsd)

# --- python3-binds
install(DIRECTORY client/python/binds DESTINATION lib/python3/dist-packages
  FILE_PERMISSIONS ${BINDS_FILE_PERMISSIONS} COMPONENT python
  FILES_MATCHING PATTERN "*.py" PATTERN __pycache__ EXCLUDE)
# SOURCES.txt lists the build's source paths: meaningless on the target.
install(DIRECTORY ${BINDS_EGG_INFO}/ DESTINATION lib/python3/dist-packages/binds-${PROJECT_VERSION}.egg-info
  FILE_PERMISSIONS ${BINDS_FILE_PERMISSIONS} COMPONENT python
  PATTERN SOURCES.txt EXCLUDE)
binds_package_docs(python python3-binds)

# --- libbinds-dev
set_target_properties(binds_client PROPERTIES EXPORT_NAME client)
set_target_properties(binds_protocol PROPERTIES EXPORT_NAME protocol)
install(TARGETS binds_client binds_protocol EXPORT binds-targets
  ARCHIVE DESTINATION ${BINDS_INSTALL_LIBDIR} COMPONENT dev
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/binds)
# What dh_strip does to static libraries: debug info out (13 MB of it in RelWithDebInfo), symbols
# kept; only when stripping was asked for (cpack: CPACK_STRIP_FILES; cmake --install --strip).
install(CODE "
  if(CMAKE_INSTALL_DO_STRIP)
    foreach(lib $<TARGET_FILE_NAME:binds_client> $<TARGET_FILE_NAME:binds_protocol>)
      execute_process(COMMAND \"${CMAKE_STRIP}\" --strip-debug --remove-section=.comment --enable-deterministic-archives
        \"\$ENV{DESTDIR}\${CMAKE_INSTALL_PREFIX}/${BINDS_INSTALL_LIBDIR}/\${lib}\" COMMAND_ERROR_IS_FATAL ANY)
    endforeach()
  endif()
" COMPONENT dev)
# client.hpp and the protocol headers it includes, in the folders its #include lines name.
install(FILES client/client.hpp DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/binds/client
  PERMISSIONS ${BINDS_FILE_PERMISSIONS} COMPONENT dev)
install(FILES protocol/frame.hpp protocol/messages.hpp protocol/errors.hpp protocol/value.hpp
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/binds/protocol PERMISSIONS ${BINDS_FILE_PERMISSIONS} COMPONENT dev)
install(EXPORT binds-targets NAMESPACE binds:: DESTINATION ${BINDS_INSTALL_LIBDIR}/cmake/binds COMPONENT dev)
set(BINDS_BOOST_MIN 1.74)
configure_package_config_file(deploy/dev/binds-config.cmake.in ${BINDS_DEB_OUT}/binds-config.cmake
  INSTALL_DESTINATION ${BINDS_INSTALL_LIBDIR}/cmake/binds)
# 0.x: a minor release may break the API.
write_basic_package_version_file(${BINDS_DEB_OUT}/binds-config-version.cmake COMPATIBILITY SameMinorVersion)
install(FILES ${BINDS_DEB_OUT}/binds-config.cmake ${BINDS_DEB_OUT}/binds-config-version.cmake
  DESTINATION ${BINDS_INSTALL_LIBDIR}/cmake/binds PERMISSIONS ${BINDS_FILE_PERMISSIONS} COMPONENT dev)
# binds.pc names the prefix installed under, known only at install time: cpack installs under /usr,
# `cmake --install --prefix P` under P, whatever CMAKE_INSTALL_PREFIX was at configure time.
set(BINDS_PC_PREFIX "@BINDS_PC_PREFIX@")
configure_file(deploy/dev/binds.pc.in ${BINDS_DEB_OUT}/binds.pc.in @ONLY)
install(CODE "
  set(BINDS_PC_PREFIX \"\${CMAKE_INSTALL_PREFIX}\")
  set(pc \"\$ENV{DESTDIR}\${CMAKE_INSTALL_PREFIX}/${BINDS_INSTALL_LIBDIR}/pkgconfig/binds.pc\")
  message(STATUS \"Installing: \${pc}\")
  configure_file(\"${BINDS_DEB_OUT}/binds.pc.in\" \"\${pc}\" @ONLY)
  file(CHMOD \"\${pc}\" PERMISSIONS ${BINDS_FILE_PERMISSIONS})
" COMPONENT dev)
binds_package_docs(dev libbinds-dev)

# --- CPack
set(CPACK_GENERATOR DEB)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_ALL server python dev)
set(CPACK_PACKAGE_NAME binds)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_VENDOR binds)
set(CPACK_PACKAGE_CONTACT ${BINDS_MAINTAINER})
set(CPACK_DEBIAN_PACKAGE_MAINTAINER ${BINDS_MAINTAINER})
# A Debian revision (0.1.0-1): the packages are not native, so the changelog is changelog.Debian.
set(CPACK_DEBIAN_PACKAGE_RELEASE ${BINDS_DEB_RELEASE})
set(CPACK_DEBIAN_PACKAGE_SOURCE binds)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
# Absolute destinations (/etc, /lib/systemd) must land in the staging tree, never on this host:
# with DESTDIR staging, CPACK_INSTALL_PREFIX is the prefix the package installs under.
set(CPACK_SET_DESTDIR ON)
set(CPACK_INSTALL_PREFIX /usr)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)

set(CPACK_DEBIAN_SERVER_PACKAGE_NAME bindsd)
set(CPACK_DEBIAN_SERVER_PACKAGE_SECTION database)
set(CPACK_DEBIAN_SERVER_DESCRIPTION "query broker between applications and SQL databases
bindsd keeps one connection pool per bind key (a name mapped to a PostgreSQL,
MariaDB/MySQL or SQLite database) and routes each client's queries to the
right backend, so backends see a bounded number of connections however many
application processes there are. Includes the binds command-line client and
a systemd unit.")
# dpkg-shlibdeps derives libmariadb3, libssl3, libsqlite3-0, libyaml-cpp0.7,
# libspdlog1.10-fmt9 (provided by libspdlog1.10), libfmt9, … from the binaries; adduser is for postinst.
set(CPACK_DEBIAN_SERVER_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_SERVER_PACKAGE_DEPENDS "adduser")
set(CPACK_DEBIAN_SERVER_PACKAGE_CONTROL_EXTRA
  ${PROJECT_SOURCE_DIR}/deploy/debian/postinst
  ${PROJECT_SOURCE_DIR}/deploy/debian/prerm
  ${PROJECT_SOURCE_DIR}/deploy/debian/postrm
  ${PROJECT_SOURCE_DIR}/deploy/debian/conffiles)

set(CPACK_DEBIAN_PYTHON_PACKAGE_NAME python3-binds)
set(CPACK_DEBIAN_PYTHON_PACKAGE_SECTION python)
set(CPACK_DEBIAN_PYTHON_PACKAGE_ARCHITECTURE all)
set(CPACK_DEBIAN_PYTHON_PACKAGE_DEPENDS "python3:any (>= 3.9~), python3-msgpack (>= 1.0)")
set(CPACK_DEBIAN_PYTHON_PACKAGE_SUGGESTS "python3-sqlalchemy, bindsd")
set(CPACK_DEBIAN_PYTHON_PACKAGE_CONTROL_EXTRA
  ${PROJECT_SOURCE_DIR}/deploy/debian/python3-binds/postinst
  ${PROJECT_SOURCE_DIR}/deploy/debian/python3-binds/prerm)
set(CPACK_DEBIAN_PYTHON_DESCRIPTION "Python DB-API driver and SQLAlchemy dialects for bindsd
A pure-Python DB-API 2.0 driver for the bindsd query broker, with
psycopg2-style error classes and a pipelined executemany, and SQLAlchemy
dialects postgresql+binds://, mysql+binds:// and sqlite+binds:// (these need
python3-sqlalchemy).")

set(CPACK_DEBIAN_DEV_PACKAGE_NAME libbinds-dev)
set(CPACK_DEBIAN_DEV_PACKAGE_SECTION libdevel)
# Headers only from these: client.hpp includes Boost.Asio; the libraries are static.
set(CPACK_DEBIAN_DEV_PACKAGE_DEPENDS "libboost-dev (>= ${BINDS_BOOST_MIN}) | libboost${BINDS_BOOST_MIN}-dev")
set(CPACK_DEBIAN_DEV_PACKAGE_SUGGESTS "bindsd")
set(CPACK_DEBIAN_DEV_DESCRIPTION "C++ client library for the bindsd query broker
A blocking C++20 client for bindsd over its Unix socket or TCP (static
library and headers), with a CMake package configuration (find_package(binds)
gives the target binds::client) and a pkg-config file (binds.pc).")
include(CPack)
