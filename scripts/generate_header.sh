#!/usr/bin/env bash
# Regenerates include/sdrt.h with the pinned cbindgen, as `cbindgen --crate sdrt` does (the
# whole crate; cbindgen.toml's [export] exclude keeps the Rust API's public items outside
# src/ffi out of the header).
#   scripts/generate_header.sh          write include/sdrt.h
#   scripts/generate_header.sh --check  fail if the committed header is out of date
set -euo pipefail
cd "$(dirname "$0")/.."
CBINDGEN_VERSION=0.29.4

if ! cbindgen --version 2>/dev/null | grep -q " $CBINDGEN_VERSION\$"; then
  echo "generate_header.sh: installing cbindgen $CBINDGEN_VERSION" >&2
  cargo install --quiet --locked cbindgen --version "$CBINDGEN_VERSION" >&2
fi

# The header's version macros come from cbindgen.toml; keep them equal to Cargo.toml.
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
IFS=. read -r major minor patch <<<"$version"
sed -i.bak -e "s/^#define SDRT_VERSION_MAJOR .*/#define SDRT_VERSION_MAJOR $major/" \
  -e "s/^#define SDRT_VERSION_MINOR .*/#define SDRT_VERSION_MINOR $minor/" \
  -e "s/^#define SDRT_VERSION_PATCH .*/#define SDRT_VERSION_PATCH $patch/" \
  -e "s/^#define SDRT_VERSION_STRING .*/#define SDRT_VERSION_STRING \"$version\"/" cbindgen.toml
rm -f cbindgen.toml.bak

out=include/sdrt.h
if [[ ${1:-} == --check ]]; then
  tmp=$(mktemp)
  trap 'rm -f "$tmp"' EXIT
  cbindgen --quiet --config cbindgen.toml --crate sdrt --output "$tmp"
  if ! cmp -s "$tmp" "$out"; then
    echo "include/sdrt.h is out of date; run scripts/generate_header.sh and commit it" >&2
    diff -u "$out" "$tmp" >&2 || true
    exit 1
  fi
  echo "include/sdrt.h is up to date"
else
  cbindgen --quiet --config cbindgen.toml --crate sdrt --output "$out"
  echo "wrote $out"
fi
