"""Back-adjusted continuous futures: no jump at the roll, the latest prices real."""

from __future__ import annotations

import pytest

from fractald.core.continuous import ContractBars, back_adjusted, roll_time
from fractald.core.models import Bar

DAY = 86_400_000


def bars(expiry_offset: float, start: int, days: int) -> list[Bar]:
    # one daily bar; the later contract trades `expiry_offset` above the earlier (contango)
    t0 = roll_time("20250321", 0) - 20 * DAY
    return [Bar("MES", "1d", t0 + d * DAY, 5000 + d + expiry_offset, 5002 + d + expiry_offset,
                4998 + d + expiry_offset, 5001 + d + expiry_offset, 1.0) for d in range(start, start + days)]


def test_rolls_ahead_of_expiry_and_removes_the_gap() -> None:
    march, june = ContractBars("20250321", bars(0.0, 0, 20)), ContractBars("20250620", bars(12.0, 0, 40))
    series, [roll] = back_adjusted([june, march], roll_days=5, symbol="MES-CONT")
    assert roll.ts == roll_time("20250321", 5) and (roll.from_expiry, roll.to_expiry) == ("20250321", "20250620")
    assert roll.gap == pytest.approx(12.0)
    assert [b.ts_open for b in series] == sorted({b.ts_open for b in series})  # one bar per time, in order
    after = [b for b in series if b.ts_open >= roll.ts]
    assert after[0].close == june.bars[[b.ts_open for b in june.bars].index(roll.ts)].close  # real prices now
    before = [b for b in series if b.ts_open < roll.ts]
    assert before[-1].close + 1 == pytest.approx(after[0].close)  # the +1 a day trend, no +12 jump
    assert {b.symbol for b in series} == {"MES-CONT"}


def test_a_contract_without_bars_after_its_roll_cannot_be_stitched() -> None:
    with pytest.raises(ValueError, match="no bars from its roll"):
        back_adjusted([ContractBars("20250321", bars(0, 0, 20)), ContractBars("20250620", bars(12, 0, 10))],
                      5, "X")
