"""The one cattrs converter for the engine's data at the edge: events and snapshots.

Built once: a converter generates and caches its (un)structuring code per
class on first use, so one shared instance makes every later snapshot and
event conversion cheap (a fresh `cattrs.Converter()` per call cost more than
the data it converted).
"""

from __future__ import annotations

from typing import Any

import cattrs

converter = cattrs.Converter()


def omit_when_default(cls: type, *names: str) -> None:
    """Leave `names` out of `cls`'s JSON while they hold their default.

    A field added later (OrderIntent.post_only) then changes neither the ledger's
    older records nor the golden digests of runs that never set it.
    """
    from cattrs.gen import make_dict_unstructure_fn, override

    overrides = {n: override(omit_if_default=True) for n in names}
    hook: Any = make_dict_unstructure_fn(cls, converter, **overrides)  # type: ignore[arg-type]
    converter.register_unstructure_hook(cls, hook)
