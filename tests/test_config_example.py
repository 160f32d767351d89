"""deploy/systemd/fractald.toml.example is the generator's output: it cannot drift."""

from __future__ import annotations

import tomllib
from pathlib import Path

from fractald.config import Config, config_from_dict
from fractald.config_example import render_example

EXAMPLE = Path(__file__).resolve().parent.parent / "deploy" / "systemd" / "fractald.toml.example"


def test_the_checked_in_example_is_the_generated_one() -> None:
    assert EXAMPLE.read_text() == render_example(), (
        "defaults changed: python -m fractald.config_example > deploy/systemd/fractald.toml.example")


def test_the_example_loads_to_exactly_the_defaults() -> None:
    assert config_from_dict(tomllib.loads(render_example())) == Config()
