#!/bin/sh
# Build a release on the controller: the fractald wheel and a wheelhouse with
# every dependency, in dist/<version>/wheels/, for an offline install on the host.
#   usage: build-release.sh [SOURCE_DIR] [DIST_DIR]
# Use a Python of the same minor version and platform as the hosts (3.11 on
# Debian 12): the wheelhouse holds binary wheels built for this interpreter.
# Prints the version built on its last line.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
src=${1:-$(cd "$here/../.." && pwd)}
dist=${2:-$here/dist}
python=${PYTHON:-python3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Build from a clean copy: an in-tree build would reuse (and ship) stale files in build/.
mkdir "$tmp/src"
tar -C "$src" --exclude=./.git --exclude=./.venv --exclude=./build --exclude=./dist \
    --exclude='*.egg-info' --exclude=__pycache__ --exclude=./deploy/ansible/dist \
    --exclude=./.mypy_cache --exclude=./.ruff_cache --exclude=./.pytest_cache --exclude=./.hypothesis \
    -cf - . | tar -C "$tmp/src" -xf -
"$python" -m pip wheel --quiet --no-deps --wheel-dir "$tmp/wheel" "$tmp/src"
wheel=$(ls "$tmp"/wheel/fractald-*.whl)
version=$(basename "$wheel" | cut -d- -f2)
out="$dist/$version"
rm -rf "$out.new"
mkdir -p "$out.new/wheels"
# Resolves and fetches (or builds, for sdist-only packages) every dependency.
"$python" -m pip wheel --quiet --wheel-dir "$out.new/wheels" "$wheel"
rm -rf "$out"
mv "$out.new" "$out"
echo "$version"
