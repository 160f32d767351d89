"""`fractald` command line: run, check-config, backtest, chart, preflight, version.

Heavy modules are imported inside each sub-command so `fractald version`
and `check-config` stay instant.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

from fractald import __version__
from fractald.errors import ConfigError, ExitStatus


def _cmd_run(args: argparse.Namespace) -> int:
    from fractald.daemon import main as daemon_main

    return daemon_main(args.config)


def _cmd_check_config(args: argparse.Namespace) -> int:
    from fractald.config import load_config, public_dict

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        if args.json:  # a script asked for JSON: it gets JSON on failure too
            print(
                json.dumps({"ok": False, "config": args.config, "problems": exc.problems}, indent=2)
            )
        print(
            f"{args.config or '(embedded default)'}: invalid configuration, "
            f"{len(exc.problems)} problem(s):",
            file=sys.stderr,
        )
        for problem in exc.problems:
            print(f"  - {problem}", file=sys.stderr)
        return int(ExitStatus.CONFIG)
    if args.json:
        print(json.dumps(public_dict(config), indent=2))  # secrets masked
    else:
        print(
            f"{args.config or '(embedded default)'}: configuration OK "
            f"(venue {config.feed.venue}, symbols {', '.join(config.feed.symbols)}, "
            f"broker {config.broker.kind})"
        )
    return 0


def _cmd_version(args: argparse.Namespace) -> int:
    print(f"fractald {__version__}")
    return 0


def _cmd_backtest(args: argparse.Namespace) -> int:
    from fractald.backtest_cli import backtest_command

    return backtest_command(args)


def _cmd_chart(args: argparse.Namespace) -> int:
    from fractald.reporting.chart_cli import run_chart

    return int(run_chart(args))


def _cmd_preflight(args: argparse.Namespace) -> int:
    from fractald.preflight import run_preflight

    return int(run_preflight(args.config, args.json))


def _cmd_demo(args: argparse.Namespace) -> int:
    from fractald.demo import demo_command

    return demo_command(["--day", args.day])


def _cmd_notify_failure(args: argparse.Namespace) -> int:
    from fractald.unit_failure import main as notify_failure_main

    return notify_failure_main([args.unit])


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; sub-commands with heavy imports get their arguments only when they are run."""
    parser = argparse.ArgumentParser(
        prog="fractald", description="fractald: a supervised SMC trading daemon."
    )
    parser.add_argument("--version", action="version", version=f"fractald {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run the daemon in the foreground (what systemd runs)")
    run.add_argument(
        "--config", help="TOML config file (default: the embedded paper/replay config)"
    )
    run.set_defaults(func=_cmd_run)

    check = sub.add_parser("check-config", help="validate a config file without running")
    check.add_argument("config", nargs="?", help="TOML config file (default: embedded)")
    check.add_argument("--json", action="store_true", help="print the effective config as JSON")
    check.set_defaults(func=_cmd_check_config)

    version = sub.add_parser("version", help="print the version")
    version.set_defaults(func=_cmd_version)

    backtest = sub.add_parser("backtest", help="run the trading pipeline over candles")
    if command == "backtest":
        from fractald.backtest import add_backtest_arguments

        add_backtest_arguments(backtest)
    backtest.set_defaults(func=_cmd_backtest)

    chart = sub.add_parser("chart", help="draw multi-timeframe candles with SMC structure")
    if command == "chart":
        from fractald.reporting.chart_cli import add_chart_arguments

        add_chart_arguments(chart)
    chart.set_defaults(func=_cmd_chart)

    preflight = sub.add_parser("preflight", help="the deployment checklist before trading")
    preflight.add_argument("--config", help="TOML config file (default: embedded)")
    preflight.add_argument("--json", action="store_true", help="machine-readable output")
    preflight.set_defaults(func=_cmd_preflight)

    demo = sub.add_parser(
        "demo", help="one trading day through the whole pipeline, narrated (offline)"
    )
    demo.add_argument(
        "--day", default="2022-01-11", help="UTC day of the bundled candles (default 2022-01-11)"
    )
    demo.set_defaults(func=_cmd_demo)

    failure = sub.add_parser(
        "notify-failure",
        help="alert the webhooks that a unit failed (run by fractald-failure@.service)",
    )
    failure.add_argument("unit", help="fractald.service or fractald@NAME.service")
    failure.set_defaults(func=_cmd_notify_failure)

    from fractald.research.cli import add_research_commands

    add_research_commands(sub, command)
    return parser


def fractald_main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    try:
        args = build_parser(command).parse_args(argv)
        return int(args.func(args))
    except KeyboardInterrupt:
        # Ctrl-C before the daemon's own signal handling is up (during the heavy imports):
        # nothing was started, so for `run` it is the documented clean stop.
        print(f"fractald: {command or ''} interrupted".replace("  ", " "), file=sys.stderr)
        return int(ExitStatus.OK) if command == "run" else 130
    except BrokenPipeError:
        # `fractald check-config --json | head`: the reader left; that is not an error.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return int(ExitStatus.OK)


if __name__ == "__main__":
    sys.exit(fractald_main())
