"""Offline SMC detectors: fractald.smc against smartmoneyconcepts 0.0.27, same candles.

Run: .venv/bin/python bench/bench_smc.py [--candles 50000] [--repeat 20] [--swing-length 50]
                                          [--only NAME] [--numba-cold]

Data: the bundled BTC 1-minute candles (45,031), extended deterministically to the requested
count by appending copies of themselves shifted later in time (each copy starts one minute
after the previous one ends; prices unchanged). Both libraries get the same frame and the
same swing_highs_lows frame. Time is the best of --repeat runs after one warm-up call
(the peer: as many of those as fit in ~3 s, at least 2; it is slow). Best-of is what
resists other load on the machine; the load average is printed for context. Each pair of
results is also checked for equality, so a fast but wrong answer cannot hide in the table.

liquidity() runs a numba kernel when numba is installed (compiled on first use, cached on
disk in __pycache__): its first call in this process is timed and printed on its own,
before the table. It is a cache load normally, a full compile with --numba-cold (which
points numba at a fresh, empty cache directory).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable

import pandas as pd

os.environ.setdefault("SMC_CREDIT", "0")  # the peer prints a banner on import otherwise

from smartmoneyconcepts import smc as peer

from fractald import smc as ours
from fractald.datasets import bundled_btc_1m

GOALS = {  # minimum speed-up asked for (issue 8); 1.0 = "no slower"
    "swing_highs_lows": 1.0, "fvg": 20.0, "bos_choch": 50.0, "ob": 50.0, "liquidity": 20.0,
    "retracements": 20.0, "previous_high_low": 20.0,
}


def candles(count: int) -> pd.DataFrame:
    """The bundled candles repeated end to end, shifted in time, cut to `count` rows."""
    base = bundled_btc_1m()
    span = base.index[-1] - base.index[0] + pd.Timedelta(minutes=1)
    copies = [base]
    while sum(len(c) for c in copies) < count:
        shifted = base.copy()
        shifted.index = base.index + span * len(copies)
        copies.append(shifted)
    return pd.concat(copies).iloc[:count]


def best_time(fn: Callable[[], object], repeat: int, budget_s: float = float("inf")) -> float:
    """Best of `repeat` timed calls after a warm-up, stopping early (after 2) past the budget."""
    fn()
    best, spent = float("inf"), 0.0
    for done in range(repeat):
        start = time.perf_counter()
        fn()
        took = time.perf_counter() - start
        best, spent = min(best, took), spent + took
        if done >= 1 and spent > budget_s:
            break
    return best


def cases(df: pd.DataFrame, swing_length: int) -> list[tuple[str, Callable, Callable]]:
    peer_swings = peer.swing_highs_lows(df, swing_length)
    our_swings = ours.swing_highs_lows(df, swing_length)
    return [
        ("swing_highs_lows", lambda: peer.swing_highs_lows(df, swing_length),
         lambda: ours.swing_highs_lows(df, swing_length)),
        ("fvg", lambda: peer.fvg(df), lambda: ours.fvg(df)),
        ("fvg join", lambda: peer.fvg(df, True), lambda: ours.fvg(df, True)),
        ("bos_choch", lambda: peer.bos_choch(df, peer_swings), lambda: ours.bos_choch(df, our_swings)),
        ("ob", lambda: peer.ob(df, peer_swings), lambda: ours.ob(df, our_swings)),
        ("liquidity", lambda: peer.liquidity(df, peer_swings), lambda: ours.liquidity(df, our_swings)),
        ("retracements", lambda: peer.retracements(df, peer_swings),
         lambda: ours.retracements(df, our_swings)),
        ("previous_high_low", lambda: peer.previous_high_low(df, "1D"),
         lambda: ours.previous_high_low(df, "1D")),
        ("previous_high_low 1h", lambda: peer.previous_high_low(df, "1h"),
         lambda: ours.previous_high_low(df, "1h")),
        ("sessions London", lambda: peer.sessions(df, "London"), lambda: ours.sessions(df, "London")),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candles", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--swing-length", type=int, default=50)
    parser.add_argument("--only", help="run only the functions whose name starts with this")
    parser.add_argument("--numba-cold", action="store_true",
                        help="first call compiles the numba kernel (fresh, empty cache)")
    args = parser.parse_args()
    if args.numba_cold:
        os.environ["NUMBA_CACHE_DIR"] = tempfile.mkdtemp(prefix="bench-smc-numba-")
    df = candles(args.candles)
    first_call(df, args.swing_length)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"{len(df)} candles, swing_length={args.swing_length}, best of {args.repeat} "
          f"(peer: within ~3 s, at least 2); load average {load} on {os.cpu_count()} CPUs")
    print(f"{'function':<22}{'peer ms':>10}{'ours ms':>10}{'ratio':>9}{'goal':>7}  equal")
    for name, peer_fn, our_fn in cases(df, args.swing_length):
        if args.only and not name.startswith(args.only):
            continue
        equal = _same(peer_fn(), our_fn())
        peer_s = best_time(peer_fn, args.repeat, budget_s=3.0)
        our_s = best_time(our_fn, args.repeat)
        goal = GOALS.get(name)
        verdict = "" if goal is None else (f"{goal:>5.0f}x" + (" " if peer_s / our_s >= goal else "!"))
        print(f"{name:<22}{peer_s * 1e3:>10.2f}{our_s * 1e3:>10.3f}{peer_s / our_s:>8.1f}x"
              f"{verdict:>7}  {'yes' if equal else 'NO'}")


def first_call(df: pd.DataFrame, swing_length: int) -> None:
    """Time this process's first liquidity() call: numba import plus compile or cache load."""
    swings = ours.swing_highs_lows(df, swing_length)
    start = time.perf_counter()
    ours.liquidity(df, swings)
    took = time.perf_counter() - start
    from fractald.core.smc.offline import _compiled_pools

    how = "numba not installed: NumPy path" if _compiled_pools() is None else (
        "numba compile" if os.environ.get("NUMBA_CACHE_DIR", "").find("bench-smc-numba-") >= 0
        else "numba import + cache load (a compile if the cache is empty)")
    print(f"liquidity first call: {took * 1e3:.0f} ms ({how})")


def _same(left: pd.DataFrame, right: pd.DataFrame) -> bool:
    try:
        pd.testing.assert_frame_equal(left, right, check_exact=True)
    except AssertionError:
        return False
    return True


if __name__ == "__main__":
    main()
