#!/bin/sh
# Refresh deploy/requirements.lock: every runtime dependency of fractald, pinned, with the
# sha256 of every published file (wheels for each platform, sdists), for any platform that
# runs Python 3.11 (--universal), so a controller on another OS builds a host's wheelhouse.
# build-release.sh installs nothing that is not in it (pip --require-hashes).
#   usage: deploy/lock.sh [--upgrade]        (needs uv: pip install 'fractald[deploy]')
set -eu
cd "$(dirname "$0")/.."
uv=${UV:-uv}
"$uv" pip compile pyproject.toml --universal --python-version 3.11 --generate-hashes \
    --index-url https://pypi.org/simple --no-header --quiet "$@" -o deploy/requirements.lock
