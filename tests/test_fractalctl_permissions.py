"""fractalctl as a user who may not enter the daemon's runtime directory: exit 77, no traceback."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SYSTEM_PYTHON = shutil.which("python3", path="/usr/bin:/bin")


@pytest.mark.skipif(os.geteuid() != 0 or SYSTEM_PYTHON is None,
                    reason="needs root (to run as another user) and /usr/bin/python3")
def test_a_runtime_directory_we_cannot_enter_is_permission_denied() -> None:
    runtime = Path(tempfile.mkdtemp(prefix="fctl-rt"))
    try:
        runtime.chmod(0o700)  # like /run/fractald (0750 fractald) to someone outside the group
        (runtime / "control.sock").touch()
        done = subprocess.run(
            [SYSTEM_PYTHON, "-m", "fractald.control.client", "status"], user=65534, group=65534,
            extra_groups=[], capture_output=True, text=True, cwd="/", timeout=30, check=False,
            env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin",
                 "RUNTIME_DIRECTORY": str(runtime)})
    finally:
        shutil.rmtree(runtime)
    assert done.returncode == 77, done.stderr
    assert "permission denied on" in done.stderr and "Traceback" not in done.stderr
