"""The one cattrs converter for the engine's data at the edge: events and snapshots.

Built once: a converter generates and caches its (un)structuring code per
class on first use, so one shared instance makes every later snapshot and
event conversion cheap (a fresh `cattrs.Converter()` per call cost more than
the data it converted).
"""

from __future__ import annotations

import cattrs

converter = cattrs.Converter()
