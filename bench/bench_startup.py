"""Startup to the first screen as a person sees it: `qtui` in a real terminal (tmux, 80x24).

Starts `qtui -m DIR` in a detached tmux session and polls the pane every 10 ms until the
footer's Quit key is drawn: that is the first complete screen. Prints each time and the
median; exits 1 with --check when the median is over the target (1.5 s).

    python bench/bench_startup.py [--runs 7] [--models DIR] [--check]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_S = 1.5
MARKER = "Quit"  # the footer is the last thing composed: once it shows, the screen is complete


def one_run(models: Path, data: Path) -> float:
    session = f"qtui-bench-{os.getpid()}"
    qtui = [sys.executable, "-m", "qtui.cli", "-m", str(models)]
    env = f"QTUI_DATA_DIR={data} QTUI_CONFIG_DIR={data}/config"
    t0 = time.perf_counter()
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "80", "-y", "24",
                    f"cd {Path(__file__).resolve().parents[1]} && {env} {' '.join(qtui)}"], check=True)
    try:
        while time.perf_counter() - t0 < 30:
            pane = subprocess.run(["tmux", "capture-pane", "-p", "-t", session], capture_output=True, text=True).stdout
            if MARKER in pane:
                return time.perf_counter() - t0
            time.sleep(0.01)
        raise RuntimeError("qtui did not draw its first screen within 30 s")
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--models", type=Path, default=Path.cwd(), help="folder the app lists (default: here)")
    ap.add_argument("--check", action="store_true", help=f"exit 1 when the median is over {TARGET_S} s")
    args = ap.parse_args()
    if not shutil.which("tmux"):
        print("needs tmux (apt-get install tmux)")
        return 2
    times = []
    # a session that outlives the runs keeps the tmux server up between them
    keep = f"qtui-bench-keep-{os.getpid()}"
    subprocess.run(["tmux", "new-session", "-d", "-s", keep], check=True)
    try:
        with tempfile.TemporaryDirectory(prefix="qtui-startup-") as data:
            one_run(args.models, Path(data))  # warm the page cache: the figure is for a warm start
            for _ in range(args.runs):
                times.append(one_run(args.models, Path(data)))
    finally:
        subprocess.run(["tmux", "kill-session", "-t", keep], capture_output=True)
    med = statistics.median(times)
    print("runs: " + ", ".join(f"{t:.2f}" for t in times))
    print(f"startup to first screen (tmux 80x24, footer drawn): median {med:.2f} s, target {TARGET_S} s")
    return 1 if args.check and med > TARGET_S else 0


if __name__ == "__main__":
    raise SystemExit(main())
