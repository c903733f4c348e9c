"""Garbage-collector settings for a long-running daemon that allocates per event.

Every event allocates a handful of short-lived container objects (the decoded notification,
its record, its store item), so with CPython's default thresholds (700, 10, 10) the young
generation is collected every few hundred events and a full collection, which walks every
object the daemon holds (modules, records, the recent ring), runs every few seconds: a 10-15
ms pause at 1k events/s in the latency bench. :func:`tune_gc` moves everything that exists after
start-up into the permanent generation (``gc.freeze``: never walked again) and raises the
thresholds so that young collections are rarer and full ones much rarer. Reference counting
still frees almost everything at once; the collector only has to find cycles, and codexd's
per-event objects form none.
"""

from __future__ import annotations

import gc
from typing import Final

#: Young-generation threshold (allocations minus deallocations between collections).
GEN0_THRESHOLD: Final = 50_000
#: Young collections between two middle ones, and middle between two full ones.
GEN1_THRESHOLD: Final = 20
GEN2_THRESHOLD: Final = 100


def tune_gc(
    gen0: int = GEN0_THRESHOLD, gen1: int = GEN1_THRESHOLD, gen2: int = GEN2_THRESHOLD
) -> None:
    """Collect once, freeze what start-up built, and set the thresholds.

    Call it once the daemon has started (modules imported, store loaded): what exists then
    lives as long as the process. Calling it again freezes what was built since. Synchronous
    and quick (one full collection); it does not yield to Trio.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(gen0, gen1, gen2)
