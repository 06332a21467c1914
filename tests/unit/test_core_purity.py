"""qtui.core must never import textual (or rich): the headless CLI and the TUI share it."""

import pkgutil
import subprocess
import sys

import qtui.core

CORE_MODULES = sorted(m.name for m in pkgutil.walk_packages(qtui.core.__path__, "qtui.core."))


def test_core_has_modules() -> None:
    assert "qtui.core.llama.parser" in CORE_MODULES and "qtui.core.gguf.reader" in CORE_MODULES


def test_no_ui_imports_in_a_fresh_interpreter() -> None:
    code = (
        "import importlib, sys\n"
        f"for name in {CORE_MODULES!r}:\n"
        "    importlib.import_module(name)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'rich', 'textual_plotext', 'qtui.ui'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"core pulled in UI modules: {out.stdout}"
