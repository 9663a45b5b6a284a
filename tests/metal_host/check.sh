#!/bin/sh
# Syntax-checks the Objective-C++ Metal backend on a machine without macOS:
# every csrc/metal/*.mm is compiled by clang (-fsyntax-only, ARC, blocks)
# against tests/metal_host/metal_api.h, our transcription of the Foundation
# and Metal declarations it uses. Any error (a wrong selector, type or ARC
# misuse) exits non-zero; so does the C++ that is compiled only with the
# Metal backend. CLANG overrides the compiler (default clang++-19).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
clang=${CLANG:-clang++-19}
status=0
# check LANGUAGE FILE FLAGS...: syntax-check one file, report it.
check() {
  language=$1 source=$2
  shift 2
  if "$clang" -x "$language" -std=c++17 -fsyntax-only -Wall -Wextra -Werror -Wno-unused-parameter "$@" \
      -I "$here/include" -I "$root/csrc" -I "$root/csrc/include" -I "$root/csrc/sim/include" -I "$root/shaders" \
      "$source"; then
    echo "ok: ${source#$root/}"
  else
    echo "FAILED: ${source#$root/}"
    status=1
  fi
}
# -Wnullable-to-nonnull-conversion: a nullable result (stringWithUTF8String:,
# the new* methods) passed on where Apple's headers want nonnull is an error.
# QMETAL_LIBRARY_ID comes from CMake on a Mac (a hash of the shaders).
for source in "$root"/csrc/metal/*.mm; do
  check objective-c++ "$source" -fobjc-arc -fobjc-runtime=gnustep-2.0 -fblocks -Wnullable-to-nonnull-conversion \
    '-DQMETAL_LIBRARY_ID="qmetal_library_0000000000000000"'
done
# The C++ that only macOS builds compile differently (QMETAL_HAVE_METAL).
for source in "$root"/csrc/ops/*.cpp; do
  check c++ "$source" -Wno-deprecated-declarations -DQMETAL_HAVE_METAL
done
exit $status
