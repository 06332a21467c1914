"""Fuzz: mutated or truncated headers give a GGUFHeader or a GGUFError, nothing else, quickly
and in bounded memory."""

from __future__ import annotations

import struct
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qtui.core.gguf.reader import GGUFError, GGUFHeader, read_header
from tests.unit.gguf_builders import moe_tensors, write_model

MAX_PEAK = 8 * 1024 * 1024  # the reader buffers 1 MiB at a time; anything near 8 MiB is a leak


@pytest.fixture(scope="module")
def seed_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, int]:
    p = write_model(tmp_path_factory.mktemp("fz") / "seed.gguf", n_vocab=64,
                    tensors=moe_tensors(n_embd=256, n_ff=256, n_expert=2, n_vocab=64),
                    extra={"general.tags": ["x", "y"], "nested.ok": 1})
    h = read_header(p)
    return p.read_bytes(), h.data_offset


_BIG = st.sampled_from([0, 1, 2, 4, 5, 8, 9, 12, 13, 255, 1 << 31, (1 << 32) - 1, 1 << 40,
                        (1 << 63), (1 << 64) - 1])
_mutation = st.one_of(
    st.tuples(st.just("byte"), st.integers(0, 1 << 30), st.integers(0, 255)),
    st.tuples(st.just("u32"), st.integers(0, 1 << 30), _BIG),
    st.tuples(st.just("u64"), st.integers(0, 1 << 30), _BIG),
)


def _apply(data: bytes, header_len: int, mutations: list[tuple[str, int, int]],
           cut: int | None) -> bytes:
    buf = bytearray(data)
    for kind, pos, value in mutations:
        pos %= header_len  # mutate the header, where the lengths live
        if kind == "byte":
            buf[pos] = value
        elif kind == "u32" and pos + 4 <= len(buf):
            struct.pack_into("<I", buf, pos, value & 0xFFFFFFFF)
        elif kind == "u64" and pos + 8 <= len(buf):
            struct.pack_into("<Q", buf, pos, value)
    if cut is not None:
        del buf[cut % (len(buf) + 1):]
    return bytes(buf)


def _check(path: Path) -> None:
    tracemalloc.start()
    try:
        try:
            h = read_header(path)
            assert isinstance(h, GGUFHeader)
            assert all(t.nbytes >= 0 for t in h.tensors)
        except GGUFError as exc:
            assert str(exc)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < MAX_PEAK


@settings(max_examples=150, deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mutations=st.lists(_mutation, min_size=1, max_size=6),
       cut=st.none() | st.integers(0, 1 << 20))
def test_mutated_headers(seed_file: tuple[bytes, int], tmp_path: Path,
                         mutations: list[tuple[str, int, int]], cut: int | None) -> None:
    data, header_len = seed_file
    p = tmp_path / "fuzz.gguf"
    p.write_bytes(_apply(data, header_len, mutations, cut))
    _check(p)


@settings(max_examples=150, deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(blob=st.binary(min_size=0, max_size=512))
def test_random_bytes_after_magic(tmp_path: Path, blob: bytes) -> None:
    p = tmp_path / "rnd.gguf"
    p.write_bytes(b"GGUF" + struct.pack("<I", 3) + blob)
    _check(p)
