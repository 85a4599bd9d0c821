#!/usr/bin/env bash
# The real TensorRT Python bindings on a CPU machine, for the conformance tests (test/test_runtime_trt_api.py).
#
# TensorRT's native libraries are not on PyPI, but the bindings wheels are (tensorrt-cu12-bindings, ~1.3 MB).
# Their tensorrt.so needs only libnvinfer.so.N, libnvonnxparser.so.N and libnvinfer_plugin.so.N, from which it
# imports ~10 C factory symbols. Stub libraries exporting those symbols (each returns NULL / 0) make the real
# module import: every class, enum member and pybind signature is then the real one of that version, and
# creating a Builder raises "factory function returned nullptr".
#
# For each version: pip download --no-deps into .cache/trt_bindings/<ver>/ (git-ignored; skipped when present),
# unzip it there (the versions cannot all be installed at once), list the symbols with `nm -D --undefined-only`,
# build the stubs with gcc under their versioned sonames. Offline / no gcc: prints why and exits 0 (the tests
# then skip, naming what is missing).
# Usage: bash scripts/trt_bindings.sh [PYTHON]     (default python3; the wheel's cp tag must match it)
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${1:-python3}
VERSIONS="10.3.0 10.13.3.9 11.4.0.106"
root=.cache/trt_bindings
mkdir -p "$root"
for cmd in gcc nm; do
  command -v "$cmd" >/dev/null || { echo "trt_bindings: $cmd not found: conformance tests will skip"; exit 0; }
done
for v in $VERSIONS; do
  d=$root/$v
  if [ -f "$d/ok" ]; then echo "trt_bindings: $v ready in $d"; continue; fi
  rm -rf "$d" && mkdir -p "$d/wheel" "$d/pkg" "$d/stubs"
  if ! "$PY" -m pip download --quiet --no-deps --only-binary=:all: -d "$d/wheel" "tensorrt-cu12-bindings==$v" \
       >"$d/pip.log" 2>&1; then
    echo "trt_bindings: cannot download tensorrt-cu12-bindings==$v (offline?): $(tail -1 "$d/pip.log")"
    continue
  fi
  "$PY" -m zipfile -e "$d"/wheel/*.whl "$d/pkg" || continue
  so=$d/pkg/tensorrt_bindings/tensorrt.so
  # the C symbols the bindings import from TensorRT's libraries (not Python's, libc's, libstdc++'s or weak ones)
  syms=$(nm -D --undefined-only "$so" | awk '$1 == "U" && $2 !~ /@/ {print $2}' \
         | grep -Ev '^(_?Py|__|_ITM|_ZGTt|dl[a-z]+$|pthread_)' | sort -u)
  {
    echo "/* stubs of TensorRT $v's C entry points: every factory returns NULL, every query 0 */"
    for s in $syms; do echo "void *$s(void) { return 0; }"; done
  } >"$d/stubs/stubs.c"
  for lib in $(readelf -d "$so" | sed -n 's/.*Shared library: \[\(libnv[a-z_]*\.so\.[0-9]*\)\]/\1/p'); do
    gcc -shared -fPIC -Wl,-soname,"$lib" -o "$d/stubs/$lib" "$d/stubs/stubs.c" || continue 2
  done
  echo "$syms" >"$d/symbols.txt"
  touch "$d/ok"
  echo "trt_bindings: $v ready in $d ($(echo "$syms" | wc -l) stubbed symbols: $(echo $syms))"
done
exit 0
