"""`qtui import`: existing llama-perplexity logs into result records.

People have months of logs from shell loops; the figures in them are as good as ours once
parsed by the same parser. What the log does not say (which file, how big) stays unknown
unless the model file named in the log is still on this machine.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from qtui.core.gguf.model_info import model_info, model_summary
from qtui.core.gguf.reader import GGUFError
from qtui.core.llama.parser import parse_transcript
from qtui.core.results.store import ResultRecord, new_id

_LOADED_FROM = re.compile(rb"loaded meta data with \d+ key-value pairs and \d+ tensors from (.+?) \(version")
_FTYPE = re.compile(rb"model ftype\s*=\s*(.+)")
_SIZE = re.compile(rb"model size\s*=\s*([\d.]+) (MiB|GiB) \(([\d.]+) BPW\)")
_GIB = 1024**3


def _model_from_log(data: bytes, log: Path) -> dict[str, Any]:
    model: dict[str, Any] = {"label": log.stem, "path": None}
    if m := _LOADED_FROM.search(data):
        path = Path(m.group(1).decode("utf-8", "replace").strip())
        model["path"] = str(path)
        model["label"] = path.name.removesuffix(".gguf")
        if path.is_file():
            try:
                return model_summary(model_info(path))
            except (GGUFError, OSError):
                pass
    if m := _FTYPE.search(data):
        model["quant"] = m.group(1).decode("utf-8", "replace").strip()
    if m := _SIZE.search(data):
        size = float(m.group(1)) * (_GIB if m.group(2) == b"GiB" else 1024**2)
        model["size_bytes"] = int(size)
        model["bpw"] = float(m.group(3))
    return model


def import_log(log: Path, err_log: Path | None = None) -> ResultRecord:
    """Parse one log (stdout, or stdout and stderr interleaved) into a record. Raises ValueError if it is no llama-perplexity log."""
    data = log.read_bytes()
    err = err_log.read_bytes() if err_log else None
    parsed = parse_transcript(data, err, None)
    if parsed.mode is None and parsed.stats is None and not parsed.progress and parsed.base_estimate is None:
        raise ValueError("no llama-perplexity output found in this file")
    kind = parsed.mode or "kld"
    if kind == "kld":
        ok = parsed.stats is not None and parsed.stats.is_complete
    else:
        ok = parsed.base_estimate is not None
    reason = None
    if not ok:
        reason = parsed.failed.reason if parsed.failed else "the log ends before the final statistics"
    stats = parsed.stats.to_dict() if parsed.stats is not None else {}
    if kind != "kld" and parsed.base_estimate is not None:
        stats = {"ppl_base": parsed.base_estimate.ppl, "ppl_base_err": parsed.base_estimate.ppl_err}
    st = parsed.started
    return ResultRecord(
        id=new_id(),
        kind=kind,  # type: ignore[arg-type]
        status="done" if ok else "failed",
        model=_model_from_log(data + (err or b""), log),
        stats=stats,
        ctx=st.n_ctx if st else None,
        chunks=parsed.progress[-1].chunk if parsed.progress else (st.n_chunks if st else None),
        failure=None if ok else {"reason": reason, "exit_code": None,
                                 "stderr_tail": parsed.failed.stderr_tail if parsed.failed else ""},
        source={"type": "import", "file": str(log.resolve())},
    )
