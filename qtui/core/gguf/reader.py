"""Header-only GGUF reader, bounded against hostile input.

Why not gguf.GGUFReader: it memory-maps the whole file, turns every tokenizer string into numpy
views (slow on 262k-token vocabularies) and raises on tensor types it does not know. A scanner
over dozens of large files wants to read a few hundred KB per file, skip array contents by their
length and keep only what it shows.

Every length read from the file (string, array count, n_dims, tensor count, kv count) is checked
against what the rest of the file could possibly hold before it is used, so a corrupt or hostile
header ends in GGUFError, never in a huge allocation or an endless loop.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

from qtui.core.gguf.ggml_types import tensor_nbytes, type_name

MAGIC = b"GGUF"
DEFAULT_ALIGNMENT = 32
MAX_DIMS = 4
MAX_KEY_LEN = 65536  # keys are short ASCII names; anything longer is garbage
MAX_NAME_LEN = 65536
MAX_KEPT_STRING = 1 << 20  # chat templates are ~10-50 KB; longer strings are skipped, not kept
MAX_KEPT_ARRAY = 64  # arrays up to this many scalar elements keep their values
MAX_NESTING = 8
_CHUNK = 1 << 20

_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_SCALARS: dict[int, struct.Struct] = {
    0: struct.Struct("<B"), 1: struct.Struct("<b"), 2: struct.Struct("<H"),
    3: struct.Struct("<h"), 4: struct.Struct("<I"), 5: struct.Struct("<i"),
    6: struct.Struct("<f"), 7: struct.Struct("<?"), 10: struct.Struct("<Q"),
    11: struct.Struct("<q"), 12: struct.Struct("<d"),
}
T_STRING, T_ARRAY, T_BOOL = 8, 9, 7


class GGUFError(Exception):
    """The file is not a GGUF model this reader can describe; the message says why."""


@dataclass(frozen=True)
class ArrayInfo:
    elem_type: int
    count: int
    values: tuple[object, ...] | None = None  # only for short arrays; see MAX_KEPT_ARRAY


@dataclass(frozen=True)
class SkippedString:
    """Stands in for a string value too long to keep (MAX_KEPT_STRING)."""

    length: int


@dataclass
class TensorInfo:
    name: str
    dims: tuple[int, ...]
    type_id: int
    offset: int
    nbytes: int = 0

    @property
    def n_elements(self) -> int:
        n = 1
        for d in self.dims:
            n *= d
        return n

    @property
    def type_name(self) -> str:
        return type_name(self.type_id)


@dataclass
class GGUFHeader:
    path: Path
    version: int
    metadata: dict[str, object]
    tensors: list[TensorInfo] = field(default_factory=list)
    data_offset: int = 0
    file_size: int = 0


class _Reader:
    """Sequential little-endian reader over our own buffer: knows the absolute position, so
    every length can be checked against the bytes left, and big skips become seeks."""

    def __init__(self, f, file_size: int) -> None:  # type: ignore[no-untyped-def]
        self.f = f
        self.size = file_size
        self.buf = b""
        self.base = 0  # absolute offset of buf[0]
        self.pos = 0  # index into buf

    @property
    def tell(self) -> int:
        return self.base + self.pos

    @property
    def left(self) -> int:
        return self.size - self.tell

    def _truncated(self, what: str) -> GGUFError:
        return GGUFError(f"file is truncated or corrupt: {what} runs past the end of the file "
                         f"(at byte {self.tell} of {self.size})")

    def _ensure(self, n: int, what: str) -> None:
        if self.pos + n <= len(self.buf):
            return
        if n > self.left:
            raise self._truncated(what)
        self._seek(self.tell, max(n, _CHUNK))
        if len(self.buf) < n:  # file shrank under us
            raise self._truncated(what)

    def _seek(self, absolute: int, fill: int) -> None:
        self.f.seek(absolute)
        self.buf = self.f.read(fill)
        self.base, self.pos = absolute, 0

    def skip(self, n: int, what: str) -> None:
        if n > self.left:
            raise self._truncated(what)
        self.pos += n
        if self.pos > len(self.buf):
            self._seek(self.tell, 0)

    def u32(self, what: str) -> int:
        self._ensure(4, what)
        v: int = _U32.unpack_from(self.buf, self.pos)[0]
        self.pos += 4
        return v

    def u64(self, what: str) -> int:
        self._ensure(8, what)
        v: int = _U64.unpack_from(self.buf, self.pos)[0]
        self.pos += 8
        return v

    def scalar(self, vtype: int, what: str) -> object:
        s = _SCALARS[vtype]
        self._ensure(s.size, what)
        v = s.unpack_from(self.buf, self.pos)[0]
        self.pos += s.size
        return v

    def string(self, what: str, limit: int) -> str | SkippedString:
        n = self.u64(what)
        if n > self.left:
            raise self._truncated(what)
        if n > limit:
            self.skip(n, what)
            return SkippedString(n)
        self._ensure(n, what)
        raw = self.buf[self.pos:self.pos + n]
        self.pos += n
        return raw.decode("utf-8", errors="replace")

    def skip_strings(self, count: int, what: str) -> None:
        """Walk `count` length-prefixed strings without building them. This loop is the hot
        path of the whole scanner (262k tokenizer strings), hence the local variables."""
        unpack = _U64.unpack_from
        while count:
            buf, pos = self.buf, self.pos
            end = len(buf) - 8
            done = 0
            for done in range(count):  # noqa: B007 - loop counter used after the loop
                if pos > end:
                    break
                pos += 8 + unpack(buf, pos)[0]
            else:
                done = count
            count -= done
            absolute = self.base + pos
            if absolute > self.size:
                raise self._truncated(what)
            if pos <= len(buf):
                self.pos = pos
            else:
                self._seek(absolute, 0)
            if count:
                self._ensure(8, what)


def _array(r: _Reader, key: str, depth: int) -> ArrayInfo:
    if depth > MAX_NESTING:
        raise GGUFError(f"metadata {key!r}: arrays nested more than {MAX_NESTING} deep")
    etype = r.u32(f"metadata {key!r} array type")
    count = r.u64(f"metadata {key!r} array length")
    if etype in _SCALARS:
        width = _SCALARS[etype].size
        if count * width > r.left:
            raise r._truncated(f"metadata {key!r} ({count} elements)")
        if count <= MAX_KEPT_ARRAY:
            values = tuple(r.scalar(etype, key) for _ in range(count))
            return ArrayInfo(etype, count, values)
        r.skip(count * width, key)
        return ArrayInfo(etype, count)
    if etype == T_STRING:
        if count * 8 > r.left:  # each string needs at least its 8-byte length
            raise r._truncated(f"metadata {key!r} ({count} strings)")
        if count <= MAX_KEPT_ARRAY:
            values = tuple(r.string(key, MAX_KEPT_STRING) for _ in range(count))
            return ArrayInfo(etype, count, values)
        r.skip_strings(count, f"metadata {key!r}")
        return ArrayInfo(etype, count)
    if etype == T_ARRAY:
        if count * 12 > r.left:  # each inner array needs its type and length
            raise r._truncated(f"metadata {key!r} ({count} arrays)")
        for _ in range(count):
            _array(r, key, depth + 1)
        return ArrayInfo(etype, count)
    raise GGUFError(f"metadata {key!r}: unknown array element type {etype} (corrupt file, or a "
                    f"GGUF extension this reader does not know)")


def _value(r: _Reader, key: str, vtype: int) -> object:
    if vtype in _SCALARS:
        return r.scalar(vtype, f"metadata {key!r}")
    if vtype == T_STRING:
        return r.string(f"metadata {key!r}", MAX_KEPT_STRING)
    if vtype == T_ARRAY:
        return _array(r, key, 0)
    raise GGUFError(f"metadata {key!r}: unknown value type {vtype} (corrupt file, or a GGUF "
                    f"extension this reader does not know)")


def _open_error(path: Path, exc: OSError) -> GGUFError:
    reason = exc.strerror or str(exc)
    return GGUFError(f"cannot read {path}: {reason}")


def read_header(path: Path | str) -> GGUFHeader:
    """Read the metadata and tensor table of a GGUF file (never the tensor data)."""
    path = Path(path)
    try:
        with open(path, "rb", buffering=0) as f:
            size = os.fstat(f.fileno()).st_size
            return _read(f, path, size)
    except IsADirectoryError as exc:
        raise GGUFError(f"{path} is a folder, not a file") from exc
    except OSError as exc:
        raise _open_error(path, exc) from exc


def _read(f, path: Path, size: int) -> GGUFHeader:  # type: ignore[no-untyped-def]
    if size == 0:
        raise GGUFError("file is empty")
    r = _Reader(f, size)
    r._seek(0, 64 * 1024)
    if size < 24 or r.buf[:4] != MAGIC:
        head = r.buf[:4]
        if head == MAGIC:
            raise GGUFError(f"file is truncated: {size} bytes is too short for a GGUF header")
        raise GGUFError(f"not a GGUF file (starts with {head!r}, expected b'GGUF')")
    r.pos = 4
    version = r.u32("version")
    if version == 1:
        raise GGUFError("GGUF version 1 is too old to read; convert the model again with a "
                        "current llama.cpp")
    if version not in (2, 3):
        if version & 0xFFFF == 0 and version >> 24 in (2, 3):
            raise GGUFError("big-endian GGUF files are not supported")
        raise GGUFError(f"unsupported GGUF version {version} (this reader knows 2 and 3)")
    n_tensors = r.u64("tensor count")
    n_kv = r.u64("metadata count")
    # Smallest possible entries: tensor = 8 (name len) + 4 + 4 + 8; kv = 8 (key len) + 4 + 1.
    if n_tensors * 24 > r.left:
        raise GGUFError(f"file is truncated or corrupt: the header lists {n_tensors} tensors, "
                        f"which cannot fit in a {size}-byte file")
    if n_kv * 13 > r.left:
        raise GGUFError(f"file is truncated or corrupt: the header lists {n_kv} metadata "
                        f"entries, which cannot fit in a {size}-byte file")

    metadata: dict[str, object] = {}
    for i in range(n_kv):
        key = r.string(f"metadata key #{i}", MAX_KEY_LEN)
        if isinstance(key, SkippedString):
            raise GGUFError(f"corrupt header: metadata key #{i} is {key.length} bytes long")
        vtype = r.u32(f"metadata {key!r} type")
        metadata[key] = _value(r, key, vtype)

    tensors: list[TensorInfo] = []
    for i in range(n_tensors):
        name = r.string(f"tensor #{i} name", MAX_NAME_LEN)
        if isinstance(name, SkippedString):
            raise GGUFError(f"corrupt header: tensor #{i} name is {name.length} bytes long")
        n_dims = r.u32(f"tensor {name!r} dimension count")
        if n_dims > MAX_DIMS:
            raise GGUFError(f"corrupt header: tensor {name!r} has {n_dims} dimensions "
                            f"(at most {MAX_DIMS})")
        dims = tuple(r.u64(f"tensor {name!r} shape") for _ in range(n_dims))
        type_id = r.u32(f"tensor {name!r} type")
        offset = r.u64(f"tensor {name!r} offset")
        tensors.append(TensorInfo(name, dims, type_id, offset))

    alignment = metadata.get("general.alignment", DEFAULT_ALIGNMENT)
    if not isinstance(alignment, int) or isinstance(alignment, bool) or alignment <= 0 \
            or alignment & (alignment - 1):
        raise GGUFError(f"corrupt header: general.alignment is {alignment!r}, "
                        f"expected a power of two")
    data_offset = -(-r.tell // alignment) * alignment
    if tensors and data_offset > size:
        raise GGUFError(f"file is truncated: tensor data would start at byte {data_offset}, "
                        f"file has {size}")
    _set_sizes(tensors, size - data_offset)
    return GGUFHeader(path, version, metadata, tensors, data_offset, size)


def _set_sizes(tensors: list[TensorInfo], data_size: int) -> None:
    """Byte size of each tensor: block formula for known types; offset differences for types
    we do not know (forks), which is exact as long as tensors are laid out back to back."""
    order = sorted(range(len(tensors)), key=lambda i: tensors[i].offset)
    for rank, i in enumerate(order):
        t = tensors[i]
        if t.offset > data_size:
            raise GGUFError(f"file is truncated or corrupt: tensor {t.name!r} starts at data "
                            f"offset {t.offset}, but the file has {data_size} bytes of data")
        nxt = tensors[order[rank + 1]].offset if rank + 1 < len(order) else data_size
        formula = tensor_nbytes(t.type_id, t.dims)
        if formula is None:
            t.nbytes = nxt - t.offset
            continue
        if t.offset + formula > data_size:
            raise GGUFError(f"file is truncated: tensor {t.name!r} ({type_name(t.type_id)}, "
                            f"{formula} bytes) ends past the end of the file")
        # A formula that overlaps the next tensor means a fork reuses this type id with
        # another block layout; the gap is then the better measure.
        t.nbytes = formula if formula <= nxt - t.offset else nxt - t.offset


VOCAB_KEY = "tokenizer.ggml.tokens"


def read_token_strings(path: Path | str) -> list[str]:
    """The vocabulary's token strings (`tokenizer.ggml.tokens`), by token id.

    read_header skips long arrays by their length (a scanner must not build 262k strings per
    file); a view that shows tokens as text needs them all, so this walks the metadata again
    and keeps that one array. Same bounds as read_header. Raises GGUFError when the file has
    no such array.
    """
    path = Path(path)
    try:
        with open(path, "rb", buffering=0) as f:
            size = os.fstat(f.fileno()).st_size
            if size < 24:
                raise GGUFError("file is too short for a GGUF header")
            r = _Reader(f, size)
            r._seek(0, 64 * 1024)
            if r.buf[:4] != MAGIC:
                raise GGUFError("not a GGUF file")
            r.pos = 4
            r.u32("version")
            r.u64("tensor count")
            n_kv = r.u64("metadata count")
            if n_kv * 13 > r.left:
                raise GGUFError(f"file is truncated or corrupt: {n_kv} metadata entries cannot fit")
            for i in range(n_kv):
                key = r.string(f"metadata key #{i}", MAX_KEY_LEN)
                if isinstance(key, SkippedString):
                    raise GGUFError(f"corrupt header: metadata key #{i} is {key.length} bytes long")
                vtype = r.u32(f"metadata {key!r} type")
                if key != VOCAB_KEY or vtype != T_ARRAY:
                    _value(r, key, vtype)
                    continue
                etype = r.u32(f"metadata {key!r} array type")
                count = r.u64(f"metadata {key!r} array length")
                if etype != T_STRING or count * 8 > r.left:
                    raise GGUFError(f"metadata {key!r} is not an array of {count} strings")
                out: list[str] = []
                for _ in range(count):
                    s = r.string(key, MAX_KEPT_STRING)
                    out.append(s if isinstance(s, str) else "")
                return out
    except IsADirectoryError as exc:
        raise GGUFError(f"{path} is a folder, not a file") from exc
    except OSError as exc:
        raise _open_error(path, exc) from exc
    raise GGUFError(f"{path.name} has no token list ({VOCAB_KEY})")
