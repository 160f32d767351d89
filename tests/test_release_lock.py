"""deploy/requirements.lock covers every runtime dependency, pinned, with hashes."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parent.parent
LOCK = REPO / "deploy" / "requirements.lock"


def _locked() -> dict[str, list[str]]:
    """name -> the pinned versions (one per marker branch)."""
    pins: dict[str, list[str]] = {}
    for match in re.finditer(r"^([A-Za-z0-9_.-]+)==(\S+)", LOCK.read_text(), re.M):
        pins.setdefault(canonicalize_name(match[1]), []).append(match[2])
    return pins


def test_every_runtime_dependency_is_locked_at_a_version_it_allows() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pins = _locked()
    for text in project["dependencies"]:
        req = Requirement(text)
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} is not in {LOCK.name}: run deploy/lock.sh"
        assert any(req.specifier.contains(v, prereleases=True) for v in pins[name]), (
            f"{req.name}: locked {pins[name]} outside {req.specifier}; run deploy/lock.sh")


def test_every_pin_carries_hashes() -> None:
    entries = re.split(r"\n(?=[A-Za-z0-9_.-]+==)", LOCK.read_text().strip())
    assert len(entries) >= 20
    for entry in entries:
        if entry.startswith("#"):
            continue
        assert "--hash=sha256:" in entry, entry.splitlines()[0]
