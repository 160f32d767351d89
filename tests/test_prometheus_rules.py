"""The Prometheus side: alert rules under `promtool test rules`, the metrics file under
`promtool check metrics`, and two bots' files read by a real node_exporter."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import attrs
import pytest
import yaml
from test_metrics import snapshot

from fractald.metrics import render_metrics, write_textfile

PROMETHEUS_DIR = Path(__file__).resolve().parent.parent / "deploy" / "prometheus"
RULES = PROMETHEUS_DIR / "fractald-rules.yml"
PROMTOOL = shutil.which("promtool")
NODE_EXPORTER = shutil.which("prometheus-node-exporter") or shutil.which("node_exporter")
needs_promtool = pytest.mark.skipif(PROMTOOL is None,
                                    reason="promtool missing (apt-get install prometheus)")


def _promtool(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run([PROMTOOL, *args], input=stdin, capture_output=True, text=True,
                          cwd=PROMETHEUS_DIR, timeout=120, check=False)


@needs_promtool
def test_rules_are_valid_and_their_unit_tests_pass() -> None:
    checked = _promtool("check", "rules", RULES.name)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = _promtool("test", "rules", "fractald-rules.test.yml")
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


def test_every_rule_is_tested_and_queries_exported_metrics() -> None:
    rules = [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]
    tests = (PROMETHEUS_DIR / "fractald-rules.test.yml").read_text()
    exported = {line.split("{")[0].split(" ")[0]
                for line in render_metrics(snapshot()).splitlines() if not line.startswith("#")}
    for rule in rules:
        assert f"alertname: {rule['alert']}" in tests, f"{rule['alert']} has no promtool test"
        for name in re.findall(r"\bfractald_[a-z_]+\b", rule["expr"]):
            assert name in exported, f"{rule['alert']} queries {name}, which is not exported"
        assert rule["labels"]["severity"] in ("critical", "warning")


def test_alertmanager_example_routes_to_receivers_it_defines() -> None:
    config = yaml.safe_load((PROMETHEUS_DIR / "alertmanager.example.yml").read_text())
    receivers = {r["name"] for r in config["receivers"]}
    routes = [config["route"], *config["route"]["routes"]]
    assert all(r["receiver"] in receivers for r in routes)
    amtool = shutil.which("amtool")
    if amtool:
        done = subprocess.run([amtool, "check-config", "alertmanager.example.yml"],
                              cwd=PROMETHEUS_DIR, capture_output=True, text=True, timeout=60,
                              check=False)
        assert done.returncode == 0, done.stdout + done.stderr


@needs_promtool
def test_the_metrics_file_passes_promtool_lint() -> None:
    text = render_metrics(snapshot())
    checked = _promtool("check", "metrics", stdin=text)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.skipif(NODE_EXPORTER is None,
                    reason="node_exporter missing (apt-get install prometheus-node-exporter)")
def test_node_exporter_reads_two_bots_without_a_collision(tmp_path: Path) -> None:
    """Two bots' files (one linked in, as the role does) through the real textfile collector."""
    textfiles, bots = tmp_path / "textfile", tmp_path / "fractald-metrics"
    textfiles.mkdir()
    bots.mkdir()
    for bot in ("main", "b"):
        write_textfile(bots / f"{bot}.prom", render_metrics(attrs.evolve(snapshot(), bot=bot)))
        (textfiles / f"fractald-{bot}.prom").symlink_to(bots / f"{bot}.prom")
    port = _free_port()
    assert NODE_EXPORTER is not None
    proc = subprocess.Popen([NODE_EXPORTER, f"--web.listen-address=127.0.0.1:{port}",
                             "--collector.disable-defaults", "--collector.textfile",
                             f"--collector.textfile.directory={textfiles}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        body = ""
        deadline = time.monotonic() + 20
        while not body:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                    body = r.read().decode()
            except OSError:
                assert time.monotonic() < deadline, "node_exporter did not answer"
                time.sleep(0.2)
    finally:
        proc.terminate()
        proc.wait(10)
    assert "node_textfile_scrape_error 0" in body, body[-2000:]
    assert 'fractald_up{bot="main"} 1' in body and 'fractald_up{bot="b"} 1' in body
    assert 'fractald_build_info{bot="b",version=""} 1' in body
