"""Bash completion and man pages generated from the parsers: bash runs the completion,
groff renders the pages (when installed)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from fractald import __version__
from fractald.cli_docs import write_all


@pytest.fixture(scope="module")
def docs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("docs")
    write_all(out)
    return out


def _complete(script: Path, words: list[str]) -> list[str]:
    line = " ".join(words)
    program = (f"source {script}\nCOMP_WORDS=({line})\nCOMP_CWORD={len(words) - 1}\n"
               f"_{words[0]}\nprintf '%s\\n' \"${{COMPREPLY[@]}}\"\n")
    done = subprocess.run(["bash", "-c", program], capture_output=True, text=True, timeout=30,
                          check=True)
    return done.stdout.split()


def test_fractalctl_completes_commands_and_their_options(docs: Path) -> None:
    script = docs / "bash-completion" / "completions" / "fractalctl"
    assert "status" in _complete(script, ["fractalctl", "st"])
    # A global option's value is not the sub-command.
    assert _complete(script, ["fractalctl", "--socket", "/run/x.sock", "rel"]) == ["reload"]
    assert "--yes" in _complete(script, ["fractalctl", "halt", "--"])


def test_fractald_completes_lazily_loaded_options(docs: Path) -> None:
    script = docs / "bash-completion" / "completions" / "fractald"
    assert {"run", "check-config", "preflight"} <= set(_complete(script, ["fractald", '""']))
    assert "--config" in _complete(script, ["fractald", "run", "--"])
    assert "--data" in _complete(script, ["fractald", "backtest", "--d"])


@pytest.mark.parametrize("prog", ["fractald", "fractalctl"])
def test_man_pages_render(docs: Path, prog: str) -> None:
    page = docs / "man" / "man1" / f"{prog}.1"
    text = page.read_text()
    assert text.startswith(f'.TH {prog.upper()} 1 "" "{prog} {__version__}"')
    groff = shutil.which("groff")
    if groff is None:
        pytest.skip("groff not installed")
    done = subprocess.run([groff, "-man", "-Tutf8", "-ww", str(page)], capture_output=True,
                          text=True, timeout=30, check=False)
    assert done.returncode == 0 and "warning" not in done.stderr, done.stderr
    plain = re.sub(".\b", "", done.stdout)  # bold and underline are overstrikes
    assert "COMMANDS" in plain and f"{prog} status" in plain or prog == "fractald"
    assert "EXIT STATUS" in plain or prog == "fractald"
    assert "check-config" in plain or prog == "fractalctl"
