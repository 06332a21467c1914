#!/usr/bin/env python3
"""Per-token data from a GPU build: does it reproduce what llama-perplexity printed?

For every finished KLD result in a data dir, the statistics qtui computes from the stored
per-token data (the dump of qtui's patched build) against the final block the run printed:
mean KLD (relative difference), KLD 99 % and same-top. Prints one line per result and a verdict;
exit 1 when a result has no per-token data or a figure differs.

    python bench/gpu_tokens_check.py DATA_DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from qtui.core.results.store import ResultStore
from qtui.core.results.tokens import load_tokens, stats_over


def main() -> int:
    store = ResultStore(Path(sys.argv[1]))
    bad = 0
    checked = 0
    for rec in store.load().records:
        if rec.kind != "kld" or rec.status != "done":
            continue
        checked += 1
        dump = load_tokens(store.root, rec.id)
        mine = stats_over(dump) if dump is not None else None
        if mine is None:
            print(f"{rec.model.get('label')}: no per-token data")
            bad += 1
            continue
        printed = rec.stats
        rel = abs(mine.kld_mean - printed["kld_mean"]) / max(abs(printed["kld_mean"]), 1e-12)
        p99 = abs((mine.kld_p99 or 0) - printed.get("kld_p99", 0))
        top = abs((mine.same_top or 0) - printed.get("same_top", 0))
        ok = rel <= 1e-5 or abs(mine.kld_mean - printed["kld_mean"]) <= 5e-7
        ok = ok and p99 <= 1e-6 and top <= 1e-3
        bad += not ok
        print(f"{rec.model.get('label')}: {len(dump.chunks)} chunks, {dump.n_tokens} tokens; mean KLD printed "
              f"{printed['kld_mean']:.6f} per-token {mine.kld_mean:.6f} (rel {rel:.1e}); KLD99 diff {p99:.1e}; "
              f"same-top diff {top:.1e} {'ok' if ok else 'DIFFERS'}")
    print(f"per-token data: {checked - bad} of {checked} results reproduce the printed figures")
    return 0 if checked and not bad else 1


if __name__ == "__main__":
    raise SystemExit(main())
