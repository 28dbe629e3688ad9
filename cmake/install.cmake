# What `cmake --install` puts under the prefix, and the CPack .deb of it (deploy/package.sh):
#   bin/zerorun, bin/zerorund; lib/libzerorun.a with the static libraries it links, and
#   include/zerorun/ (its public headers, which include nothing else of the tree's);
#   lib/cmake/zerorun/ (find_package(zerorun): target zerorun::zerorun); the systemd unit with
#   this prefix's zerorund; the Python package in lib/python3/dist-packages.
install(TARGETS zerorun_cli zerorund RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})

set(zr_exported zr_runtime zr_comm zr_status zr_base zr_dsconfig zr_ckpt_format zr_proto zr_warnings)
if(ZR_WITH_CUDA)
  list(APPEND zr_exported zr_cuda)
endif()
install(TARGETS ${zr_exported} EXPORT zerorunTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/runtime/include/zerorun
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT zerorunTargets NAMESPACE zerorun::
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/zerorun)
include(CMakePackageConfigHelpers)
configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/zerorunConfig.cmake.in
  ${PROJECT_BINARY_DIR}/zerorunConfig.cmake
  INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/zerorun)
write_basic_package_version_file(${PROJECT_BINARY_DIR}/zerorunConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/zerorunConfig.cmake
  ${PROJECT_BINARY_DIR}/zerorunConfigVersion.cmake
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/zerorun)

# The systemd unit, naming the zerorund of the prefix installed to (known at install time).
install(CODE "
  file(READ \"${PROJECT_SOURCE_DIR}/deploy/systemd/zerorund.service\" zr_unit)
  string(REPLACE \"/usr/local/bin/zerorund\"
    \"\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_BINDIR}/zerorund\" zr_unit \"\${zr_unit}\")
  set(zr_unit_path
    \"\$ENV{DESTDIR}\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_LIBDIR}/systemd/system\")
  file(MAKE_DIRECTORY \"\${zr_unit_path}\")
  file(WRITE \"\${zr_unit_path}/zerorund.service\" \"\${zr_unit}\")
  message(STATUS \"Installing: \${zr_unit_path}/zerorund.service\")
")

# The Python package (build/python): Debian's python3 reads /usr/lib/python3/dist-packages.
install(DIRECTORY ${PROJECT_BINARY_DIR}/python/zerorun
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/python3/dist-packages PATTERN "__pycache__" EXCLUDE)
install(FILES ${PROJECT_SOURCE_DIR}/python/zerorun_auto.pth
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/python3/dist-packages)

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME zerorun)
set(CPACK_PACKAGE_VENDOR zerorun)
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
  "Launcher (zerorun), node daemon (zerorund) and ZeRO runtime (libzerorun) for training")
set(CPACK_PACKAGE_CONTACT "zerorun developers <zerorun@localhost>")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)  # Depends: from the binaries' shared libraries.
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "python3-grpcio, python3-protobuf")
set(CPACK_DEBIAN_PACKAGE_SECTION devel)
include(CPack)
