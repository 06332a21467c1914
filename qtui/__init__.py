"""qtui: rank quantized GGUF models by KL divergence from their base, live in the terminal.

For notebooks: `qtui.load_results()` gives every stored result as a pandas DataFrame.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

__version__ = "0.1.0"
__all__ = ["__version__", "load_results"]


def load_results(path: str | os.PathLike[str] | None = None) -> pd.DataFrame:
    """Results as a pandas DataFrame, one row per result (a finished, failed or cancelled run).

    `path` is None for your own store (the data dir `qtui paths` shows), or a data dir, a
    results folder, a JSON file written by `qtui export --format json`, or a
    `sample_results/*.json` file. The columns are listed in the README ("Python API"); the
    efficiency `score` and the `pareto` flag are computed within each measurement `setup`.
    Unreadable files are skipped with a warning; a path that does not exist raises
    FileNotFoundError, a file that holds no results raises ValueError.

        >>> df = qtui.load_results("sample_results/qwen3.5-27b-q4-published.json")
        >>> df.sort_values("kld_mean")[["model", "quantizer", "size_gib", "kld_mean", "score"]]
    """
    # pandas loads here, on the first call: `import qtui` and the app never pay for it
    from qtui.core.results.table import load_results as load

    return load(path)
