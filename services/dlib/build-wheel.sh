#!/usr/bin/env bash
# Builds the dlib that services/dlib/requirements.txt pins from its source distribution, against
# OpenBLAS, into the project's wheelhouse (.whl/). `make setup` and `make images` run it once; the
# local .venvs/dlib and the faces/dlib image both install that one wheel (pip never compiles dlib
# on its own: --only-binary dlib).
# Why not PyPI's dlib-bin: it has no BLAS, so the ResNet descriptor runs dlib's own matrix code;
# this build embeds 5x more images per CPU-second with descriptors within 4.8e-7 (README, speed).
# No GUI and no codecs beyond PNG and JPEG (the Python module's own loaders need those two), so at
# run time the wheel needs OpenBLAS, libpng and libjpeg (services/dlib/image.conf installs them).
# Needs cmake, g++ and libopenblas-dev (Debian) and PYTHON (default python3.11) with its headers.
# Compiling takes about 15 CPU-minutes.
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-python3.11}
pin=$(grep -o '^dlib==[^ ]*' services/dlib/requirements.txt) \
  || { echo "build-wheel.sh: services/dlib/requirements.txt pins no dlib==VERSION" >&2; exit 2; }
for tool in cmake g++ objdump; do
  command -v "$tool" >/dev/null || { echo "build-wheel.sh: $tool is missing (apt-get install cmake g++ libopenblas-dev)" >&2; exit 2; }
done
[ -e /usr/include/x86_64-linux-gnu/openblas-pthread/cblas.h ] || [ -e /usr/include/openblas/cblas.h ] \
  || { echo "build-wheel.sh: OpenBLAS headers are missing (apt-get install libopenblas-dev)" >&2; exit 2; }
# dlib's CMake picks its BLAS by a search whose outcome depends on the machine (pkg-config's cblas,
# alternatives links, a generic libblas), so name OpenBLAS's own library file (Debian's pthread
# build first) and keep pkg-config out of that search.
openblas=""
for candidate in /usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblas.so \
                 /usr/lib/x86_64-linux-gnu/libopenblas.so /usr/lib64/libopenblas.so /usr/lib/libopenblas.so; do
  [ -e "$candidate" ] && { openblas=$(readlink -f "$candidate"); break; }
done
[ -n "$openblas" ] || { echo "build-wheel.sh: no libopenblas.so found (apt-get install libopenblas-dev)" >&2; exit 2; }

settings=()
for option in cblas_lib="$openblas" DLIB_USE_BLAS=ON DLIB_USE_LAPACK=ON DLIB_USE_CUDA=OFF DLIB_NO_GUI_SUPPORT=ON \
              DLIB_GIF_SUPPORT=OFF DLIB_WEBP_SUPPORT=OFF DLIB_JXL_SUPPORT=OFF DLIB_LINK_WITH_SQLITE3=OFF; do
  settings+=(--config-settings=--build-option=--set --config-settings=--build-option="$option")
done

mkdir -p .whl
build=$(mktemp -d .whl/.dlib-build.XXXXXX)  # the wheelhouse only ever holds a finished wheel
trap 'rm -rf "$build"' EXIT
echo "build-wheel.sh: compiling $pin with $openblas (about 15 CPU-minutes)"
mkdir "$build/no-pkgconfig"
PKG_CONFIG_LIBDIR="$build/no-pkgconfig" PKG_CONFIG_PATH="" \
  "$PYTHON" -m pip wheel --verbose --disable-pip-version-check --no-deps --no-binary dlib \
  --no-cache-dir -w "$build" "$pin" "${settings[@]}" >"$build/log" 2>&1 \
  || { tail -40 "$build/log" >&2; echo "build-wheel.sh: compiling $pin failed (log above)" >&2; exit 1; }
# What dlib's CMake decided about BLAS and LAPACK, for the record (and for the refusal below).
grep -E -- '-- .*(BLAS|LAPACK|cblas)' "$build/log" | awk '!seen[$0]++' || true
wheel=$(ls "$build"/dlib-*.whl)
# dlib's CMake silently builds without BLAS when it finds none: refuse such a wheel.
python3 - "$wheel" "$build/module.so" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    name = next(n for n in z.namelist() if n.startswith("_dlib_pybind11") and n.endswith(".so"))
    open(sys.argv[2], "wb").write(z.read(name))
PY
# Read objdump's whole answer first: `objdump | grep -q` fails under pipefail whenever grep stops
# reading early and objdump dies of SIGPIPE, which refused a good wheel on CI.
needed=$(objdump -p "$build/module.so" | grep NEEDED)
grep -q 'libopenblas' <<<"$needed" \
  || { echo "build-wheel.sh: $wheel does not link OpenBLAS; it needs:" >&2; echo "$needed" >&2; exit 1; }
rm -f .whl/dlib-*.whl
mv "$wheel" .whl/
echo "build-wheel.sh: $(basename "$wheel") in .whl/"
