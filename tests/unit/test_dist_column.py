"""The leaderboard's distance column (issue 8, bug 8): titled "Eff." it read as higher-is-better
and is the opposite. It is "Dist.", the distance to the ideal corner, lower is better, in the
app's column, `qtui results` and the Markdown export; the key stays `score` (CSV, JSON,
`--sort score`). And why Q8_0 and Q2_K both score 1.000 on the demo ladder."""

from __future__ import annotations

import csv
import io
import math
import subprocess
from pathlib import Path

from qtui.core.results.leaderboard import COLUMNS, build_rows
from qtui.core.results.store import load_records
from tests.helpers import run_qtui

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "sample_results" / "gemma-3-270m-qtui.json"


def qtui(*args: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    return run_qtui(*args, tmp=tmp, columns="200")


def test_the_column_says_what_it_is() -> None:
    col = next(c for c in COLUMNS if c.key == "score")
    assert col.title == "Dist."
    assert "distance to the ideal" in col.help and "lower is better" in col.help
    assert not any(c.title.startswith("Eff") for c in COLUMNS)


def test_q8_0_and_q2_k_both_score_one_on_the_demo_ladder() -> None:
    """Min-max scaling puts the largest file at size 1 and the lowest KLD at 0, the smallest file
    at 0 and the highest KLD at 1: Q8_0 is the first pair, Q2_K the second, so each sits at
    distance 1 from the ideal corner (0, 0). Correct for the measure, and said in its help."""
    rows = {r.quant: r for r in build_rows(load_records(DEMO).records)}
    sizes = [r.size_gib for r in rows.values() if r.size_gib is not None]
    klds = [r.kld for r in rows.values() if r.kld is not None]
    q8, q2 = rows["Q8_0"], rows["Q2_K"]
    assert q8.size_gib == max(sizes) and q8.kld == min(klds)
    assert q2.size_gib == min(sizes) and q2.kld == max(klds)
    assert q8.score is not None and q2.score is not None
    assert math.isclose(q8.score, 1.0) and math.isclose(q2.score, 1.0)
    # every other row is nearer the ideal than these two extremes
    assert all(r.score is not None and r.score < 1.0 for q, r in rows.items() if q not in ("Q8_0", "Q2_K", "MXFP4_MOE"))
    help_text = next(c for c in COLUMNS if c.key == "score").help
    assert "both score 1.000" in help_text and "best on one axis and worst on the other" in help_text


def test_results_sorts_by_score_and_titles_it_dist(tmp_path: Path) -> None:
    out = qtui("results", "--from", str(DEMO), "--sort", "score", tmp=tmp_path)
    assert out.returncode == 0, out.stderr
    header = next(line for line in out.stdout.splitlines() if "Model" in line)
    assert "Dist." in header and "Eff" not in out.stdout
    at = header.index("Dist.") + len("Dist.")
    rows = [line for line in out.stdout.splitlines() if line.split() and line.split()[0].isdigit()]
    scores = [float(line[:at].split()[-1]) for line in rows]
    assert scores == sorted(scores) and len(scores) == 8  # lower first: the best at the top


def test_exports_name_it_and_keep_the_key(tmp_path: Path) -> None:
    md = qtui("export", "-f", "md", "--from", str(DEMO), tmp=tmp_path)
    assert md.returncode == 0, md.stderr
    head = next(line for line in md.stdout.splitlines() if line.startswith("| # |"))
    assert "| Dist. (lower is better) |" in head and "Eff" not in md.stdout
    assert "Dist. = distance to the ideal, lower is better" in md.stdout
    # ± written as everywhere else: the error to two significant digits, the value to the same decimals
    assert "0.003202 ± 0.000080" in md.stdout and "0.589575 ± 0.016323" in md.stdout
    out = qtui("export", "-f", "csv", "--from", str(DEMO), tmp=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "score" in next(csv.reader(io.StringIO(out.stdout)))
