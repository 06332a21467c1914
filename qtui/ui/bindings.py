"""The key tables of the app, its main screen and the leaderboard pane, kept apart from the
classes that use them: the help screen and the command palette (commands.py) read them too, and
this way none of the app, the screen and the palette has to import another."""

from __future__ import annotations

from textual.binding import Binding, BindingType

KeyGroups = list[tuple[str, list[BindingType]]]
"""(where the keys work, its bindings): what the help screen and the palette list"""

APP_BINDINGS: list[BindingType] = [
    Binding("question_mark", "help", "Help", tooltip="All keys, grouped by where they work"),
    # t cycles at once (t t t walks three themes); the searchable picker is T: typed into, the
    # picker would take a second t as search text.
    Binding("t", "next_theme", "Theme", show=False, tooltip="Next colour theme (saved in the config)"),
    Binding("T", "theme", "Themes", show=False, tooltip="Pick a colour theme from a searchable list (saved in the config)"),
    Binding("comma,f2", "settings", "Settings", show=False,
            tooltip="Settings: corpus, context, chunks, llama binary and arguments, data dir"),
    Binding("q", "request_quit", "Quit", tooltip="Quit (runs go on in the background)"),
]

MAIN_BINDINGS: list[BindingType] = [
    Binding("s", "start", "Start", tooltip="Start the showdown: base + chosen variants"),
    # Screening: every variant on the first chunks, then only those whose place is still open.
    Binding("S", "start_screened", "Screen", show=False,
            tooltip="Start with screening: each variant runs only until its place in the ranking is settled"),
    Binding("N", "start_with_floor", "Start + floor", show=False,
            tooltip="Start and also measure the noise floor (the base against itself with half the batch): "
                    "differences below it are ties"),
    Binding("P", "start_with_speed", "Start + speed", show=False,
            tooltip="Start and also measure each variant's prompt and generation speed with llama-bench "
                    "(pp512, tg128; as qtui run --speed)"),
    Binding("1", "tab('models')", "Models", show=False, tooltip="Show the Models tab"),
    Binding("2", "tab('runs')", "Runs", show=False, tooltip="Show the Runs tab (queue and live run)"),
    Binding("3", "tab('board')", "Board", show=False, tooltip="Show the Leaderboard tab"),
]

BOARD_BINDINGS: list[BindingType] = [
    Binding("l", "log_scale", "Log", tooltip="Log-scale KLD axis in the scatter plot"),
    Binding("x", "x_axis", "Axis", tooltip="Scatter x axis: size, prompt speed (pp t/s) or generation speed "
            "(tg t/s); speeds come from `qtui run --speed`"),
    # One setup (base, corpus, -c, chunks, llama build) is ranked at a time: KLD across setups is not comparable.
    Binding("u", "next_setup", "Setup", show=False, tooltip="Rank the next setup (base, corpus, -c, chunks, build)"),
    Binding("U", "prev_setup", "Previous setup", show=False, tooltip="Rank the previous setup"),
    Binding("v", "view", "View", tooltip="Show table and plot, the table only, or the plot only", show=False),
    Binding("i", "details", "Info", tooltip="Everything stored about the selected result (also enter)",
            show=False),
    # Two rows compared: per-chunk difference, paired interval, tokens where they differ most.
    Binding("m", "mark", "Mark", show=False, tooltip="Mark the selected result to compare it with another (C)"),
    Binding("C", "compare", "Compare", show=False,
            tooltip="Compare the marked result with the selected one: per chunk and per token"),
    # Why two rows of one quant differ: the tensor-mix diff of their model files (as d on Models).
    Binding("d", "diff", "Diff", show=False,
            tooltip="Tensor-mix diff of the marked result's model file (m) and the selected one's"),
    # A screened variant ran some chunks only: one key queues it on every chunk of its setup.
    Binding("F", "full_run", "Full run", show=False,
            tooltip="Run the selected result's model in full (every chunk) on its setup, again if measured"),
    # The main screen holds the records behind the board: it hands them to the export dialog.
    Binding("e", "screen.export", "Export", tooltip="Export the leaderboard: CSV, JSON, Markdown or SVG"),
]
