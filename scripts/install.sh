#!/usr/bin/env bash
# Installs sdrt for C and C++ programs under a prefix:
#
#   PREFIX/bin/sdrt                           the command-line program
#   PREFIX/include/sdrt.h                     the C ABI
#   PREFIX/include/sdrt.hpp                   the C++17 wrapper (header-only)
#   PREFIX/lib/libsdrt.so.X.Y.Z               the shared library, with its SONAME link
#   PREFIX/lib/libsdrt.so.X.Y -> ...          (what linked programs record) and the
#   PREFIX/lib/libsdrt.so -> ...              development link (what -lsdrt finds)
#   PREFIX/lib/libsdrt.a                      the static library
#   PREFIX/lib/libonnxruntime.so.1            ONNX Runtime, found beside libsdrt
#   PREFIX/lib/pkgconfig/sdrt.pc              pkg-config: shared
#   PREFIX/lib/pkgconfig/sdrt-static.pc       pkg-config: static
#   PREFIX/lib/cmake/sdrt/                    find_package(sdrt CONFIG): sdrt::sdrt, sdrt::sdrt_static
#
# The prefix is relocatable: the pkg-config and CMake files find it from their own place.
# Programs linked through either get a RUNPATH to PREFIX/lib, so they run with no
# environment variable.
#
# Usage: scripts/install.sh --prefix DIR   (builds the release library first if needed)
set -euo pipefail
cd "$(dirname "$0")/.."

prefix=
while (($#)); do
  case $1 in
    --prefix) prefix=${2:?--prefix needs a directory}; shift 2 ;;
    --prefix=*) prefix=${1#--prefix=}; shift ;;
    -h | --help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "install.sh: unknown argument '$1' (usage: install.sh --prefix DIR)" >&2; exit 2 ;;
  esac
done
[[ -n $prefix ]] || { echo "install.sh: --prefix DIR is required" >&2; exit 2; }

cargo build --release --locked --quiet
built=target/release
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
soname=$(objdump -p "$built/libsdrt.so" | awk '/SONAME/ {print $2}')
[[ -n $soname ]] || { echo "install.sh: $built/libsdrt.so has no SONAME" >&2; exit 1; }
real=libsdrt.so.$version
ort=$(scripts/fetch_onnxruntime.sh)

mkdir -p "$prefix/bin" "$prefix/include" "$prefix/lib/pkgconfig" "$prefix/lib/cmake/sdrt"
prefix=$(cd "$prefix" && pwd)
lib=$prefix/lib

install -m 755 "$built/sdrt" "$prefix/bin/"
install -m 644 include/sdrt.h bindings/cpp/sdrt.hpp "$prefix/include/"
install -m 755 "$built/libsdrt.so" "$lib/$real"
[[ $soname == "$real" ]] || ln -sfn "$real" "$lib/$soname"
ln -sfn "$soname" "$lib/libsdrt.so"
install -m 644 "$built/libsdrt.a" "$lib/"
install -m 755 "$ort" "$lib/"

# What a static libsdrt needs from the system (rustc --print native-static-libs).
static_libs="-ldl -lpthread -lm -lrt -lutil -lgcc_s -lc"
cmake_static_libs=$(sed 's/-l//g; s/ /;/g' <<<"$static_libs")

cat >"$lib/pkgconfig/sdrt.pc" <<EOF
prefix=\${pcfiledir}/../..
libdir=\${prefix}/lib
includedir=\${prefix}/include

Name: sdrt
Description: Embeddable Stable Diffusion runtime (C ABI over ONNX Runtime)
Version: $version
Cflags: -I\${includedir}
Libs: -L\${libdir} -lsdrt -Wl,-rpath,\${libdir}
EOF

cat >"$lib/pkgconfig/sdrt-static.pc" <<EOF
prefix=\${pcfiledir}/../..
libdir=\${prefix}/lib
includedir=\${prefix}/include

Name: sdrt-static
Description: Embeddable Stable Diffusion runtime, linked statically (ONNX Runtime is still loaded at run time)
Version: $version
Cflags: -I\${includedir}
Libs: \${libdir}/libsdrt.a $static_libs -Wl,-rpath,\${libdir}
EOF

cat >"$lib/cmake/sdrt/sdrtConfig.cmake" <<EOF
# sdrt's CMake package. find_package(sdrt CONFIG REQUIRED) gives
#   sdrt::sdrt         the shared library (libsdrt.so, ONNX Runtime beside it)
#   sdrt::sdrt_static  the static library (ONNX Runtime is loaded at run time from the
#                      installed lib folder, the program's folder or the system's path)
# CMake gives programs in the build tree a RUNPATH to the library; to keep it when installing
# them, set CMAKE_INSTALL_RPATH_USE_LINK_PATH or ship libsdrt and ONNX Runtime beside them.
if(NOT CMAKE_SIZEOF_VOID_P EQUAL 8)
  set(sdrt_FOUND FALSE)
  set(sdrt_NOT_FOUND_MESSAGE "sdrt is built for 64-bit targets only")
  return()
endif()
get_filename_component(_sdrt_prefix "\${CMAKE_CURRENT_LIST_DIR}/../../.." ABSOLUTE)
if(NOT TARGET sdrt::sdrt)
  add_library(sdrt::sdrt SHARED IMPORTED)
  set_target_properties(sdrt::sdrt PROPERTIES
    IMPORTED_LOCATION "\${_sdrt_prefix}/lib/$real"
    IMPORTED_SONAME "$soname"
    INTERFACE_INCLUDE_DIRECTORIES "\${_sdrt_prefix}/include")
  add_library(sdrt::sdrt_static STATIC IMPORTED)
  set_target_properties(sdrt::sdrt_static PROPERTIES
    IMPORTED_LOCATION "\${_sdrt_prefix}/lib/libsdrt.a"
    IMPORTED_LINK_INTERFACE_LANGUAGES "C"
    INTERFACE_INCLUDE_DIRECTORIES "\${_sdrt_prefix}/include"
    INTERFACE_LINK_LIBRARIES "$cmake_static_libs"
    INTERFACE_LINK_OPTIONS "LINKER:-rpath,\${_sdrt_prefix}/lib")
endif()
unset(_sdrt_prefix)
EOF

cat >"$lib/cmake/sdrt/sdrtConfigVersion.cmake" <<EOF
# Every release from 0.1 on implements C ABI 1 and only adds to it: a request for any of them
# up to this one is met (a new ABI would start a new range here, and a new SONAME).
set(PACKAGE_VERSION "$version")
set(PACKAGE_VERSION_COMPATIBLE FALSE)
if(NOT PACKAGE_FIND_VERSION)
  set(PACKAGE_VERSION_COMPATIBLE TRUE)
elseif(PACKAGE_FIND_VERSION VERSION_LESS_EQUAL PACKAGE_VERSION AND PACKAGE_FIND_VERSION VERSION_GREATER_EQUAL 0.1)
  set(PACKAGE_VERSION_COMPATIBLE TRUE)
endif()
if(PACKAGE_FIND_VERSION STREQUAL PACKAGE_VERSION)
  set(PACKAGE_VERSION_EXACT TRUE)
endif()
if(NOT CMAKE_SIZEOF_VOID_P EQUAL 8)
  set(PACKAGE_VERSION "\${PACKAGE_VERSION} (64-bit)")
  set(PACKAGE_VERSION_UNSUITABLE TRUE)
endif()
EOF

echo "installed sdrt $version under $prefix"
