#!/bin/sh
# Build a release on the controller: the fractald wheel and a wheelhouse with every
# dependency, in dist/<version>/wheels/, for an offline install on the host.
#   usage: build-release.sh [SOURCE_DIR] [DIST_DIR]
# Reproducible: the dependencies are exactly deploy/requirements.lock (pinned, every file's
# sha256 checked by pip --require-hashes while downloading). dist/<version>/requirements.txt
# then pins every wheel of the release by its own sha256; the host installs with
# --require-hashes from it and nothing else.
# The host's platform: by default this controller's (same Python minor and OS: 3.11 on
# Debian 12). From another controller set TARGET_PLATFORM (manylinux_2_28_x86_64 for
# Debian 12 on x86_64, manylinux_2_28_aarch64 on arm64): binary wheels are then fetched
# for the host's Python 3.11 and platform; sdist-only dependencies are built here and
# must come out pure Python (checked).
# Prints the version built on its last line.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
src=${1:-$(cd "$here/../.." && pwd)}
dist=${2:-$here/dist}
python=${PYTHON:-python3}
target=${TARGET_PLATFORM:-}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Build from a clean copy: an in-tree build would reuse (and ship) stale files in build/.
mkdir "$tmp/src"
tar -C "$src" --exclude=./.git --exclude=./.venv --exclude=./build --exclude=./dist \
    --exclude='*.egg-info' --exclude=__pycache__ --exclude=./deploy/ansible/dist \
    --exclude=./.mypy_cache --exclude=./.ruff_cache --exclude=./.pytest_cache --exclude=./.hypothesis \
    -cf - . | tar -C "$tmp/src" -xf -
lock="$tmp/src/deploy/requirements.lock"
"$python" -m pip wheel --quiet --no-deps --wheel-dir "$tmp/wheel" "$tmp/src"
wheel=$(ls "$tmp"/wheel/fractald-*.whl)
version=$(basename "$wheel" | cut -d- -f2)
out="$dist/$version"
rm -rf "$out.new"
mkdir -p "$out.new/wheels"
cp "$wheel" "$out.new/wheels/"
if [ -z "$target" ]; then
    # Fetches the locked wheels (or builds the locked sdists) for this interpreter.
    "$python" -m pip wheel --quiet --require-hashes --no-deps --wheel-dir "$out.new/wheels" \
        -r "$lock"
else
    mkdir "$tmp/dl"
    # pip takes --platform tags literally: a manylinux_2_28 host also runs the older
    # manylinux_2_17 / manylinux2014 wheels most packages publish, so name those too.
    arch=${target#manylinux_*_*_}
    platforms="--platform $target"
    case "$target" in
        manylinux_2_2[8-9]_*|manylinux_2_3[0-9]_*)
            platforms="$platforms --platform manylinux_2_17_$arch --platform manylinux2014_$arch" ;;
    esac
    # shellcheck disable=SC2086  # $platforms is a list of options
    "$python" -m pip download --quiet --require-hashes --no-deps --dest "$tmp/dl" \
        $platforms --python-version 3.11 --implementation cp --abi cp311 --abi abi3 --abi none \
        -r "$lock"
    for f in "$tmp"/dl/*; do
        case "$f" in
            *.whl) cp "$f" "$out.new/wheels/" ;;
            *) "$python" -m pip wheel --quiet --no-deps --wheel-dir "$out.new/wheels" "$f" ;;
        esac
    done
fi
# The release's own manifest: every wheel by name, version and sha256; with a target, each
# wheel must fit it (a C extension built here for another platform would not run there).
"$python" - "$out.new" "$target" <<'EOF'
import hashlib, sys
from pathlib import Path
from packaging.utils import parse_wheel_filename

release, target = Path(sys.argv[1]), sys.argv[2]
lines = []
for whl in sorted((release / "wheels").glob("*.whl")):
    name, version, _, tags = parse_wheel_filename(whl.name)
    arch = target.split("_", 3)[-1]  # manylinux_2_28_x86_64 -> x86_64
    fits = any(t.platform == "any" or (t.platform.startswith("manylinux")
                                        and t.platform.endswith(arch)) for t in tags)
    if target and not fits:
        sys.exit(f"{whl.name} does not fit {target}: build it on a host of that platform")
    digest = hashlib.sha256(whl.read_bytes()).hexdigest()
    lines.append(f"{name}=={version} --hash=sha256:{digest}")
(release / "requirements.txt").write_text("\n".join(lines) + "\n")
EOF
# Bash completion and man pages, generated from this very source's parsers.
PYTHONPATH="$tmp/src" "$python" -m fractald.cli_docs "$out.new/share" >/dev/null
rm -rf "$out"
mv "$out.new" "$out"
echo "$version"
