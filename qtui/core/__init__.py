"""The pure core of qtui: everything except drawing.

Nothing under qtui.core may import textual (enforced by tests/unit/test_core_purity.py):
the TUI and the headless CLI both sit on top of it.
"""
