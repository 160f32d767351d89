"""Controller side of the e2e test: build the release, write an inventory, run the playbook."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
ANSIBLE_DIR = REPO / "deploy" / "ansible"
BUILD_SCRIPT = ANSIBLE_DIR / "build-release.sh"
RECAP = re.compile(r"^(?P<host>\S+)\s*:\s*ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+"
                   r"unreachable=(?P<unreachable>\d+)\s+failed=(?P<failed>\d+)", re.MULTILINE)


def venv_tool(name: str) -> str | None:
    """A console script installed beside this interpreter (the project venv), or on PATH."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else shutil.which(name)


def source_dir() -> Path:
    return Path(os.environ.get("FRACTALD_E2E_SOURCE") or REPO)


def derive_source(dest: Path, version: str) -> Path:
    """A copy of the source with another version number: a second release to upgrade to."""
    shutil.copytree(source_dir(), dest, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", ".hypothesis"))
    for rel, pattern, line in (("pyproject.toml", r'(?m)^version = ".*"$', f'version = "{version}"'),
                               ("fractald/__init__.py", r'(?m)^__version__ = ".*"$',
                                f'__version__ = "{version}"')):
        path = dest / rel
        text, count = re.subn(pattern, line, path.read_text(), count=1)
        if count != 1:
            raise RuntimeError(f"no version line in {path}")
        path.write_text(text)
    return dest


def build_release(dist: Path, source: Path | None = None) -> str:
    """Build the wheel and wheelhouse into dist/<version>/; return the version.

    The source is this working tree, or $FRACTALD_E2E_SOURCE (e.g. a `git archive` of a
    commit, to test what was committed while the tree is being edited).
    """
    env = {**os.environ, "PYTHON": sys.executable}
    src = str(source or source_dir())
    proc = subprocess.run(["sh", str(BUILD_SCRIPT), src, str(dist)], check=False,
                          capture_output=True,
                          text=True, env=env, timeout=1200, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise RuntimeError(f"build-release.sh failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return proc.stdout.strip().splitlines()[-1]


def make_ssh_key(directory: Path) -> tuple[Path, str]:
    key = directory / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "fractald-e2e",
                    "-f", str(key)], check=True, capture_output=True, timeout=30)
    return key, key.with_suffix(".pub").read_text()


def write_inventory(path: Path, address: str, key: Path) -> None:
    host = {
        "ansible_host": address,
        "ansible_user": "root",
        "ansible_become": False,  # already root; the image has no sudo
        "ansible_python_interpreter": "/usr/bin/python3",
        "ansible_ssh_private_key_file": str(key),
        "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null "
                                   "-o IdentitiesOnly=yes -o ConnectTimeout=10",
    }
    path.write_text(json.dumps({"fractald": {"hosts": {"e2e": host}}}, indent=2))


def run_playbook(inventory: Path, extra_vars: dict[str, Any], workdir: Path,
                 ) -> tuple[int, str, dict[str, int]]:
    """ansible-playbook site.yml; (exit status, output, recap counts for the host)."""
    playbook = venv_tool("ansible-playbook")
    if playbook is None:
        raise RuntimeError("ansible-playbook not found (pip install ansible-core)")
    vars_file = workdir / "extra-vars.json"
    vars_file.write_text(json.dumps(extra_vars))
    env = {**os.environ, "ANSIBLE_CONFIG": str(ANSIBLE_DIR / "ansible.cfg"),
           "ANSIBLE_NOCOLOR": "1", "ANSIBLE_HOME": str(workdir / "ansible-home"),
           "ANSIBLE_LOCAL_TEMP": str(workdir / "ansible-tmp"), "ANSIBLE_RETRY_FILES_ENABLED": "0",
           "ANSIBLE_SSH_CONTROL_PATH_DIR": str(workdir / "ansible-cp")}
    proc = subprocess.run(
        [playbook, "-i", str(inventory), "-e", f"@{vars_file}", str(ANSIBLE_DIR / "site.yml")],
        check=False, capture_output=True, text=True, env=env, cwd=ANSIBLE_DIR, timeout=1200,
        stdin=subprocess.DEVNULL)
    output = proc.stdout + proc.stderr
    match = RECAP.search(proc.stdout)
    recap = {k: int(v) for k, v in match.groupdict().items() if k != "host"} if match else {}
    return proc.returncode, output, recap


def close_ssh_masters(workdir: Path) -> None:
    """End the ssh ControlPersist masters Ansible left (they would hold a session open)."""
    cp_dir = workdir / "ansible-cp"
    for sock in cp_dir.glob("*") if cp_dir.is_dir() else []:
        subprocess.run(["ssh", "-O", "exit", "-o", f"ControlPath={sock}", "e2e"], check=False,
                       capture_output=True, timeout=30, stdin=subprocess.DEVNULL)


def changed_tasks(output: str) -> list[str]:
    """Names of the tasks that reported `changed` in a playbook's output."""
    tasks, current = [], ""
    for line in output.splitlines():
        if line.startswith("TASK ["):
            current = line[len("TASK ["):].split("]")[0]
        elif line.startswith("changed:"):
            tasks.append(current)
    return tasks
