"""ggml tensor types and llama.cpp file-type labels.

The tensor type table is what lets us compute a tensor's byte size from its shape without
reading it. Fork-only types (ik_llama.cpp) are named but have no size entry on purpose: several
carry per-row metadata, so the block formula would be wrong; the reader falls back to offset
differences for them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GGMLType:
    id: int
    name: str
    block_size: int
    type_size: int

    @property
    def bpw(self) -> float:
        """Bits per weight (per element)."""
        return 8.0 * self.type_size / self.block_size


def _t(id_: int, name: str, block: int, size: int) -> tuple[int, GGMLType]:
    return id_, GGMLType(id_, name, block, size)


# Mainline ggml's enum ggml_type: id -> name, elements per block, bytes per block (its type_traits).
GGML_TYPES: dict[int, GGMLType] = dict(
    [
        _t(0, "f32", 1, 4),
        _t(1, "f16", 1, 2),
        _t(2, "q4_0", 32, 18),
        _t(3, "q4_1", 32, 20),
        _t(6, "q5_0", 32, 22),
        _t(7, "q5_1", 32, 24),
        _t(8, "q8_0", 32, 34),
        _t(9, "q8_1", 32, 36),
        _t(10, "q2_K", 256, 84),
        _t(11, "q3_K", 256, 110),
        _t(12, "q4_K", 256, 144),
        _t(13, "q5_K", 256, 176),
        _t(14, "q6_K", 256, 210),
        _t(15, "q8_K", 256, 292),
        _t(16, "iq2_xxs", 256, 66),
        _t(17, "iq2_xs", 256, 74),
        _t(18, "iq3_xxs", 256, 98),
        _t(19, "iq1_s", 256, 50),
        _t(20, "iq4_nl", 32, 18),
        _t(21, "iq3_s", 256, 110),
        _t(22, "iq2_s", 256, 82),
        _t(23, "iq4_xs", 256, 136),
        _t(24, "i8", 1, 1),
        _t(25, "i16", 1, 2),
        _t(26, "i32", 1, 4),
        _t(27, "i64", 1, 8),
        _t(28, "f64", 1, 8),
        _t(29, "iq1_m", 256, 56),
        _t(30, "bf16", 1, 2),
        _t(34, "tq1_0", 256, 54),
        _t(35, "tq2_0", 256, 66),
        _t(39, "mxfp4", 32, 17),
        _t(40, "nvfp4", 64, 36),
        _t(41, "q1_0", 128, 18),
        _t(42, "q2_0", 64, 18),
    ]
)

# ik_llama.cpp tensor types (ggml/include/ggml.h of that fork). Names only: see module doc.
IK_TYPE_NAMES: dict[int, str] = {
    31: "q4_0_4_4", 32: "q4_0_4_8", 33: "q4_0_8_8", 36: "i2_s",
    97: "q8_0_x4", 98: "q8_1_x4", 99: "q8_2_x4",
    133: "q6_0", 134: "iq1_bn", 135: "iq2_bn", 136: "q8_k64", 137: "iq2_k", 138: "iq3_k",
    139: "iq4_k", 140: "iq5_k", 141: "iq6_k", 144: "iq4_ks", 145: "iq2_ks", 146: "iq4_kss",
    147: "q8_k16", 148: "q8_k32", 149: "q8_kr8", 150: "q8_k128", 151: "q8_kv", 152: "iq5_ks",
    153: "iq2_kt", 154: "iq3_kt", 155: "iq4_kt", 156: "iq3_ks", 157: "iq2_kl", 158: "iq1_kt",
    202: "q4_0_r8", 206: "q5_0_r4", 208: "q8_0_r8", 210: "q2_k_r4", 211: "q3_k_r4",
    212: "q4_k_r4", 213: "q5_k_r4", 214: "q6_k_r4", 216: "iq2_xxs_r4", 217: "iq2_xs_r4",
    218: "iq3_xxs_r4", 219: "iq1_s_r4", 220: "iq4_nl_r4", 221: "iq3_s_r4", 222: "iq2_s_r4",
    223: "iq4_xs_r8", 229: "iq1_m_r4", 230: "bf16_r16", 233: "q6_0_r4", 335: "iq2_bn_r4",
    337: "iq2_k_r4", 338: "iq3_k_r4", 339: "iq4_k_r4", 340: "iq5_k_r4", 344: "iq4_ks_r4",
    352: "iq5_ks_r4", 397: "q8_k_r16", 398: "q8_kv_r8", 399: "q8_k_r8",
}

FLOAT_TYPE_IDS = frozenset({0, 1, 30})  # f32, f16, bf16: what a base model is made of

# general.file_type (llama_ftype). Mainline numbering; 33-35 are the removed ARM repacks that
# both mainline and ik_llama.cpp once used.
_FILE_TYPES: dict[int, str] = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 4: "Q4_1_SOME_F16", 7: "Q8_0", 8: "Q5_0",
    9: "Q5_1", 10: "Q2_K", 11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S",
    15: "Q4_K_M", 16: "Q5_K_S", 17: "Q5_K_M", 18: "Q6_K", 19: "IQ2_XXS", 20: "IQ2_XS",
    21: "Q2_K_S", 22: "IQ3_XS", 23: "IQ3_XXS", 24: "IQ1_S", 25: "IQ4_NL", 26: "IQ3_S",
    27: "IQ3_M", 28: "IQ2_S", 29: "IQ2_M", 30: "IQ4_XS", 31: "IQ1_M", 32: "BF16",
    33: "Q4_0_4_4", 34: "Q4_0_4_8", 35: "Q4_0_8_8", 36: "TQ1_0", 37: "TQ2_0",
    38: "MXFP4_MOE", 39: "NVFP4", 40: "Q1_0", 41: "Q2_0",
}

# ik_llama.cpp's llama_ftype additions (include/llama.h of that fork).
_IK_FILE_TYPES: dict[int, str] = {
    135: "Q6_0", 136: "IQ1_BN", 137: "IQ2_BN", 138: "IQ2_K", 139: "IQ3_K", 140: "IQ4_K",
    141: "IQ5_K", 142: "IQ6_K", 145: "IQ4_KS", 146: "IQ3_KL", 147: "IQ2_KS", 148: "IQ4_KSS",
    149: "Q8_KV", 150: "IQ5_KS", 151: "IQ2_KT", 152: "IQ3_KT", 153: "IQ4_KT", 154: "IQ3_KS",
    155: "IQ2_KL", 156: "IQ1_KT",
    202: "Q4_0_R8", 207: "Q8_0_R8", 208: "Q5_0_R4", 210: "Q2_K_R4", 211: "Q3_K_R4",
    214: "Q4_K_R4", 216: "Q5_K_R4", 218: "Q6_K_R4", 219: "IQ2_XXS_R4", 220: "IQ2_XS_R4",
    223: "IQ3_XXS_R4", 224: "IQ1_S_R4", 225: "IQ4_NL_R4", 226: "IQ3_S_R4", 229: "IQ2_M_R4",
    230: "IQ4_XS_R8", 231: "IQ1_M_R4", 232: "BF16_R16", 335: "Q6_0_R4", 337: "IQ2_BN_R4",
    338: "IQ2_K_R4", 339: "IQ3_K_R4", 340: "IQ4_K_R4", 341: "IQ5_K_R4", 345: "IQ4_KS_R4",
    350: "IQ5_KS_R4", 398: "Q8_KV_R8", 399: "Q8_K_R8",
}

FILE_TYPE_GUESSED = 1024


def file_type_name(ft: int | None) -> str:
    """Label for general.file_type, e.g. 15 -> "Q4_K_M"; None -> "?"."""
    if ft is None:
        return "?"
    if ft >= FILE_TYPE_GUESSED and ft & FILE_TYPE_GUESSED:
        return f"{file_type_name(ft & ~FILE_TYPE_GUESSED)} (guessed)"
    name = _FILE_TYPES.get(ft) or _IK_FILE_TYPES.get(ft)
    return name if name else f"ftype {ft}"


def type_name(type_id: int) -> str:
    """Name of a ggml tensor type id; "type N" when neither mainline nor ik_llama.cpp has it."""
    known = GGML_TYPES.get(type_id)
    if known is not None:
        return known.name
    return IK_TYPE_NAMES.get(type_id, f"type {type_id}")


def tensor_nbytes(type_id: int, dims: tuple[int, ...]) -> int | None:
    """Bytes a tensor occupies by the block formula, or None when the type has no known size
    or the first dimension is not a whole number of blocks (then the formula does not apply)."""
    t = GGML_TYPES.get(type_id)
    if t is None or not dims:
        return None if t is None else t.type_size
    ne0 = dims[0]
    if ne0 % t.block_size:
        return None
    n = ne0 // t.block_size * t.type_size
    for d in dims[1:]:
        n *= d
    return n
