"""The real llama-quantize: a float file made from a quantized one says which type it came from."""

from __future__ import annotations

from qtui.core.gguf.model_info import model_info
from qtui.core.gguf.sameness import info_mix_key
from qtui.core.llama import assets


def test_upcast_base_names_its_origin_and_its_quants_do_not(llama_tools, tiny_model, tiny_ladder, tmp_path):
    up = assets.quantize(llama_tools, tiny_ladder["Q8_0"], tmp_path / "up-F16.gguf", "F16")
    info = model_info(up)
    assert info.is_base_candidate and info.upcast_from == "Q8_0"
    # The F32 original is a real base: its F16 carries no mark.
    assert model_info(assets.quantize(llama_tools, tiny_model, tmp_path / "real-F16.gguf", "F16")).upcast_from is None
    # A quant made from the marked base copies the key; it is the base's, never the quant's.
    again = assets.ladder(llama_tools, up, ["Q8_0"], tmp_path / "again")[0]
    assert model_info(again).upcast_from is None
    # Re-quantizing to the origin type gives the origin's tensors back: same types, same sizes.
    assert info_mix_key(model_info(again)) == info_mix_key(model_info(tiny_ladder["Q8_0"]))
