"""`qtui import`: existing llama-perplexity logs into result records.

People have months of logs from shell loops; the figures in them are as good as ours once
parsed by the same parser. What the log does not say (which file, how big) stays unknown
unless the model file named in the log is still on this machine.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qtui.core.gguf.model_info import model_info, model_summary
from qtui.core.gguf.reader import GGUFError
from qtui.core.llama.failures import match_error
from qtui.core.llama.parser import parse_transcript
from qtui.core.results.store import ResultRecord, new_id

# Where a log names its model: loaded (any build), or failed to open / to load (the first
# lines of a run whose model is missing or not a GGUF file).
_MODEL_PATH = (
    re.compile(rb"loaded meta data with \d+ key-value pairs and \d+ tensors from (.+?) \(version"),
    re.compile(rb"failed to open GGUF file '(.+?)'"),
    re.compile(rb"failed to load model from (.+)"),
)
_FTYPE = re.compile(rb"model ftype\s*=\s*(.+)")
_SIZE = re.compile(rb"model size\s*=\s*([\d.]+) (MiB|GiB) \(([\d.]+) BPW\)")
_GIB = 1024**3
_LOG_PREFIX = re.compile(r"^[\d.]+ [IWEDT] ")  # llama.cpp's optional timestamp and level


class LogImportError(ValueError):
    """A file that cannot be imported; the message is one sentence that names it."""


@dataclass
class ImportedLog:
    record: ResultRecord
    notes: list[str] = field(default_factory=list)
    """what the user should know but that does not stop the import"""


def _model_from_log(data: bytes, log: Path, notes: list[str]) -> dict[str, Any]:
    model: dict[str, Any] = {"label": log.stem, "path": None}
    m = next((m for rx in _MODEL_PATH if (m := rx.search(data))), None)
    if m is not None:
        path = Path(m.group(1).decode("utf-8", "replace").strip())
        model["path"] = str(path)
        model["label"] = path.name.removesuffix(".gguf")
        if path.is_file():
            try:
                return model_summary(model_info(path))
            except GGUFError as exc:
                # The words `qtui run` uses when it refuses such a model.
                notes.append(f"{path}: {exc}; the model facts come from the log")
            except OSError as exc:
                notes.append(f"{path}: cannot read ({exc.strerror or exc}); the model facts come from the log")
    if m := _FTYPE.search(data):
        model["quant"] = m.group(1).decode("utf-8", "replace").strip()
    if m := _SIZE.search(data):
        size = float(m.group(1)) * (_GIB if m.group(2) == b"GiB" else 1024**2)
        model["size_bytes"] = int(size)
        model["bpw"] = float(m.group(3))
    return model


def _read(path: Path) -> bytes:
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
            if head == b"GGUF":  # a model given by mistake: say so without reading gigabytes
                raise LogImportError(f"{path} is a GGUF model, not a llama-perplexity log")
            return head + fh.read()
    except FileNotFoundError:
        raise LogImportError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise LogImportError(f"{path} is a folder, not a log file") from None
    except OSError as exc:
        raise LogImportError(f"{path}: cannot read it ({exc.strerror or exc})") from None


def _names_a_failure(data: bytes) -> bool:
    """Whether a line says why llama-perplexity failed, as the run's own failure texts know them
    (a run that stopped before any output is still a llama-perplexity log; random text is not)."""
    return any(match_error(_LOG_PREFIX.sub("", line)) for line in data.decode("utf-8", "replace").splitlines())


def import_log(log: Path, err_log: Path | None = None) -> ResultRecord:
    """Parse one log (stdout, or stdout and stderr interleaved) into a record. Raises LogImportError (a ValueError)."""
    return read_log(log, err_log).record


def read_log(log: Path, err_log: Path | None = None) -> ImportedLog:
    """A log as a record, with notes. Raises LogImportError if it cannot be read or holds no llama-perplexity output.

    A run that failed is a record too, with the reason worded as for a run qtui started (the
    same parser reads both), so a log of a model that is no GGUF file or of a missing base file
    says so instead of being refused.
    """
    data = _read(log)
    err = _read(err_log) if err_log else None
    parsed = parse_transcript(data, err, None)
    if (parsed.mode is None and parsed.stats is None and not parsed.progress and parsed.base_estimate is None
            and not _names_a_failure(data + b"\n" + (err or b""))):
        raise LogImportError(f"{log}: no llama-perplexity output found in this file")
    # The content is the log's identity: the same run imported twice (under any name) is one record.
    digest = hashlib.sha256(data)
    if err is not None:
        digest.update(err)
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
    notes: list[str] = []
    record = ResultRecord(
        id=new_id(),
        kind=kind,
        status="done" if ok else "failed",
        model=_model_from_log(data + (err or b""), log, notes),
        stats=stats,
        ctx=st.n_ctx if st else None,
        chunks=parsed.progress[-1].chunk if parsed.progress else (st.n_chunks if st else None),
        failure=None if ok else {"reason": reason, "exit_code": None,
                                 "stderr_tail": parsed.failed.stderr_tail if parsed.failed else ""},
        source={"type": "import", "file": str(log.resolve()), "sha256": digest.hexdigest()},
    )
    return ImportedLog(record, notes)
