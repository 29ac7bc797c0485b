#!/usr/bin/env bash
# Provision Mesa's software Vulkan driver (lavapipe) in a private folder, for running the
# WebGPU execution provider on a machine without a GPU. Nothing is installed system-wide.
#
# Debian 12's own Mesa (22.3) is refused by Dawn ("shaderUniform*ArrayDynamicIndexing
# required"); Mesa 25 from bookworm-backports works. Its packages, and whichever of their
# dependencies this machine lacks, are downloaded once with a private apt state and unpacked
# into the cache. Prints the shell lines that point the Vulkan loader at it:
#
#   eval "$(scripts/fetch_lavapipe.sh)"
#
# Env: SDRT_CACHE (default ~/.cache/sdrt)
set -euo pipefail

MESA_VERSION=25.0.7-2~bpo12+1
cache=${SDRT_CACHE:-"$HOME/.cache/sdrt"}/lavapipe-${MESA_VERSION//[~+]/_}
prefix=$cache/root
libdir=$prefix/usr/lib/x86_64-linux-gnu
icd=$cache/lvp_icd.json

fail() { echo "fetch_lavapipe.sh: $*" >&2; exit 1; }

if [[ ! -f $icd ]]; then
  [[ $(uname -m) == x86_64 ]] || fail "only x86_64 is provided for; install a Vulkan driver yourself"
  # shellcheck disable=SC1091
  codename=$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")
  [[ $codename == bookworm ]] && command -v apt-get >/dev/null ||
    fail "needs Debian 12 (bookworm) with apt-get; elsewhere install Mesa >= 25 (mesa-vulkan-drivers) yourself"

  work=$cache/apt
  mkdir -p "$work/lists/partial" "$work/archives/partial"
  cat >"$work/sources.list" <<'EOF'
deb http://deb.debian.org/debian bookworm main
deb http://deb.debian.org/debian bookworm-updates main
deb http://deb.debian.org/debian-security bookworm-security main
deb http://deb.debian.org/debian bookworm-backports main
EOF
  apt=(apt-get -qq -o "Dir::Etc::SourceList=$work/sources.list" -o Dir::Etc::SourceParts=/nonexistent
    -o "Dir::State::Lists=$work/lists" -o "Dir::Cache::Archives=$work/archives"
    -o Dir::Cache::pkgcache= -o Dir::Cache::srcpkgcache= -o Debug::NoLocking=1)
  echo "fetch_lavapipe.sh: downloading Mesa $MESA_VERSION (lavapipe) from bookworm-backports" >&2
  "${apt[@]}" update >&2
  "${apt[@]}" install --download-only -y -t bookworm-backports \
    "mesa-vulkan-drivers=$MESA_VERSION" libvulkan1 >&2
  shopt -s nullglob
  debs=("$work"/archives/*.deb)
  ((${#debs[@]})) || fail "apt downloaded nothing"
  rm -rf "$prefix"
  for deb in "${debs[@]}"; do dpkg-deb -x "$deb" "$prefix"; done
  [[ -f $libdir/libvulkan_lvp.so && -f $libdir/libvulkan.so.1 ]] || fail "no lavapipe in the packages"
  rm -rf "$work"
  # The package's manifest names the library without a folder; the loader needs its path.
  printf '{"file_format_version": "1.0.0", "ICD": {"library_path": "%s", "api_version": "1.4.305"}}\n' \
    "$libdir/libvulkan_lvp.so" >"$icd.tmp"
  mv "$icd.tmp" "$icd"
fi
printf 'export VK_DRIVER_FILES=%q\n' "$icd"
printf 'export LD_LIBRARY_PATH=%q\n' "$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
