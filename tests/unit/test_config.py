from __future__ import annotations

import os
from pathlib import Path

import pytest

from qtui.core import config as config_mod
from qtui.core.config import (
    Config,
    ConfigError,
    effective_data_dir,
    effective_llama_bin,
    load_config,
    save_config,
)


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QTUI_CONFIG_DIR", str(tmp_path / "cfg"))
    monkeypatch.delenv("QTUI_DATA_DIR", raising=False)
    monkeypatch.delenv("QTUI_LLAMA_BIN", raising=False)


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "config.toml"
    p.write_text(text, encoding="utf-8")
    return p


def test_missing_file_is_a_first_run() -> None:
    cfg, problems = load_config()
    assert cfg == Config() and problems == []
    assert (cfg.ctx, cfg.chunks, cfg.theme, cfg.gpu_interval_s, cfg.slots) == (512, None, "textual-dark", 1.0, 1)


def test_round_trip_through_the_default_path() -> None:
    cfg = Config(
        model_dirs=["~/models", "/data/gguf"],
        corpus="/data/wiki.test.raw",
        ctx=1024,
        chunks=100,
        llama_bin="/opt/llama.cpp/build/bin",
        llama_args=["-ngl", "99", "-fa", "on"],
        data_dir="/data/qtui",
        theme="nord",
        gpu_interval_s=0.5,
        slots=4,
    )
    written = save_config(cfg)
    assert written == Path(os.environ["QTUI_CONFIG_DIR"]) / "config.toml"
    loaded, problems = load_config()
    assert problems == [] and loaded == cfg


def test_unset_values_are_left_out_of_the_file(tmp_path: Path) -> None:
    p = tmp_path / "c.toml"
    save_config(Config(), p)
    text = p.read_text()
    assert "corpus" not in text and "chunks" not in text and "ctx = 512" in text
    assert load_config(p) == (Config(), [])


def test_bad_values_fall_back_one_by_one_with_line_numbers(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        '# my settings\n'
        'corpus = "wiki.txt"\n'
        'ctx = -5\n'
        'chunks = "all"\n'
        'slots = true\n'
        'gpu_interval_s = 0.01\n'
        'theme = ""\n'
        'model_dirs = [1, 2]\n'
        'llama_args = {a = 1}\n'
        'llama_bin = 7\n',
    )
    cfg, problems = load_config(p)
    assert cfg == Config(corpus="wiki.txt")  # the good value survives its bad neighbours
    assert problems == [
        "config.toml line 3: ctx must be a positive integer, using 512",
        "config.toml line 4: chunks must be a positive integer, using none",
        "config.toml line 5: slots must be a positive integer up to 64, using 1",
        "config.toml line 6: gpu_interval_s must be a number of seconds between 0.1 and 60, using 1.0",
        'config.toml line 7: theme must be a non-empty string, using "textual-dark"',
        "config.toml line 8: model_dirs must be a list of strings, using []",
        "config.toml line 9: llama_args must be a list of strings or one string of arguments, using []",
        "config.toml line 10: llama_bin must be a string, using none",
    ]


def test_forgiving_spellings(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        'model_dirs = "~/models"\nllama_args = "-ngl 99 -fa on --override-kv \'a=b c\'"\n'
        'llama_bin = ""\ngpu_interval_s = 2\n',
    )
    cfg, problems = load_config(p)
    assert problems == []
    assert cfg.model_dirs == ["~/models"]
    assert cfg.llama_args == ["-ngl", "99", "-fa", "on", "--override-kv", "a=b c"]
    assert cfg.llama_bin is None
    assert cfg.gpu_interval_s == 2.0 and isinstance(cfg.gpu_interval_s, float)
    p = write(tmp_path, 'llama_args = ["-ngl", 99, "-t", 8]\n')
    assert load_config(p)[0].llama_args == ["-ngl", "99", "-t", "8"]
    p = write(tmp_path, "llama_args = \"-ngl 'unclosed\"\n")
    cfg, problems = load_config(p)
    assert cfg.llama_args == [] and "cannot be split into arguments" in problems[0]


def test_unknown_keys_and_tables_are_reported(tmp_path: Path) -> None:
    # 'palette' is near no key ('colour' now reads like 'cluster' to difflib)
    p = write(tmp_path, 'ctx = 256\n"slot" = 2\npalette = "red"\n\n[gpu]\ninterval = 3\n')
    cfg, problems = load_config(p)
    assert cfg.ctx == 256 and cfg.slots == 1
    assert problems == [
        "config.toml line 2: unknown setting 'slot' ignored (did you mean 'slots'?)",
        "config.toml line 3: unknown setting 'palette' ignored",
        "config.toml line 5: unknown setting 'gpu' ignored",
    ]


def test_invalid_toml_gives_defaults_and_names_the_file(tmp_path: Path) -> None:
    p = write(tmp_path, "ctx = 1024\nmodel_dirs = [\"a\" \"b\"]\n")
    cfg, problems = load_config(p)
    assert cfg == Config()
    assert len(problems) == 1
    assert problems[0].startswith(f"{p}: not valid TOML (") and "line 2" in problems[0]


def test_duplicate_key_is_invalid_toml(tmp_path: Path) -> None:
    cfg, problems = load_config(write(tmp_path, "ctx = 1\nctx = 2\n"))
    assert cfg == Config() and "not valid TOML" in problems[0]


def test_unreadable_files(tmp_path: Path) -> None:
    p = tmp_path / "config.toml"
    p.write_bytes(b"theme = \"\xff\xfe\"\n")
    cfg, problems = load_config(p)
    assert cfg == Config() and problems[0].startswith(f"{p}: not UTF-8 text")
    d = tmp_path / "adir.toml"
    d.mkdir()
    cfg, problems = load_config(d)
    assert cfg == Config() and problems[0].startswith(f"{d}: cannot be read")


def test_save_refuses_invalid_values(tmp_path: Path) -> None:
    p = tmp_path / "c.toml"
    with pytest.raises(ConfigError, match=r"ctx must be a positive integer \(got 0\).*slots"):
        save_config(Config(ctx=0, slots=100), p)
    assert not p.exists()


def test_save_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = tmp_path / "c.toml"
    save_config(Config(ctx=256), p)
    before = p.read_bytes()
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd))[1])

    def crash(src: str, dst: str) -> None:
        raise OSError("disk vanished")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk vanished"):
        save_config(Config(ctx=2048), p)
    assert synced  # the temp file was flushed to disk before the rename
    assert p.read_bytes() == before  # the old file is intact...
    assert [f.name for f in tmp_path.iterdir()] == ["c.toml"]  # ...and no temp file is left
    monkeypatch.undo()
    save_config(Config(ctx=2048), p)
    assert load_config(p)[0].ctx == 2048


def test_env_overrides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = Config(llama_bin="/from/config", data_dir="~/qtui-data")
    assert effective_llama_bin(cfg) == "/from/config"
    assert effective_data_dir(cfg) == Path("~/qtui-data").expanduser()
    assert effective_data_dir(Config()) == config_mod.paths.data_dir()
    monkeypatch.setenv("QTUI_LLAMA_BIN", "/from/env")
    monkeypatch.setenv("QTUI_DATA_DIR", str(tmp_path / "envdata"))
    assert effective_llama_bin(cfg) == "/from/env"
    assert effective_data_dir(cfg) == tmp_path / "envdata"
    save_config(cfg, tmp_path / "c.toml")  # the env never leaks into the file
    assert load_config(tmp_path / "c.toml")[0] == cfg


def test_gpus_per_run_is_a_count_or_auto(tmp_path: Path) -> None:
    p = tmp_path / "config.toml"
    p.write_text('gpus_per_run = "auto"\n')
    assert load_config(p) == (Config(gpus_per_run="auto"), [])
    p.write_text("gpus_per_run = 2\n")
    assert load_config(p)[0].gpus_per_run == 2
    p.write_text("ctx = 256\ngpus_per_run = 0\n")
    cfg, msgs = load_config(p)
    assert cfg.gpus_per_run == "auto"  # the default: the fewest GPUs that hold the run
    assert msgs == ['config.toml line 2: gpus_per_run must be a number of GPUs from 1 to 64 or "auto", using "auto"']
    save_config(Config(gpus_per_run="auto"), p)
    assert load_config(p)[0].gpus_per_run == "auto"
