"""What the GPUs are doing while a run streams: VRAM, load, heat, power, and the job's own VRAM.

It only renders. The app samples NVML (qtui.core.gpu.Nvml) in a worker about once a second
and calls show(); the panel never touches NVML itself, so a slow or broken driver cannot
stall the UI. Every reading a card does not give arrives as None and is shown as "n/a".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import ClassVar

from rich.style import Style
from rich.text import Text
from textual.app import RenderResult
from textual.reactive import reactive
from textual.widget import Widget

from qtui.core.cluster.survey import ClusterSurvey, NodeReading, ray_gpus_words
from qtui.core.gpu import UNAVAILABLE_PREFIX, GpuSample, GpuSnapshot, PeakTracker

GIB = 1024**3
NA = "n/a"
_EIGHTHS = " ▏▎▍▌▋▊▉"


def gib(n: int | None, digits: int = 1) -> str:
    return NA if n is None else f"{n / GIB:.{digits}f}"


def bar(fraction: float | None, width: int) -> str:
    """A bar in eighths of a cell; shape alone shows the level (no colour needed)."""
    if width <= 0:
        return ""
    if fraction is None:
        return "·" * width
    eighths = round(max(0.0, min(1.0, fraction)) * width * 8)
    full, part = divmod(eighths, 8)
    text = "█" * full + (_EIGHTHS[part] if part and full < width else "")
    return text + "░" * (width - len(text))


def short_name(name: str) -> str:
    """'NVIDIA GeForce RTX 3060' -> 'RTX 3060': the vendor words carry no information here."""
    for prefix in ("NVIDIA ", "GeForce "):
        if name.startswith(prefix):
            name = name[len(prefix):]
    return name


class GpuPanel(Widget):
    """Per-GPU readings from the latest snapshot; one line per GPU when compact."""

    DEFAULT_CSS = """
    GpuPanel {
        height: auto;
        padding: 0 1;
    }
    GpuPanel .gpu-panel--name { text-style: bold; }
    GpuPanel .gpu-panel--label { color: $text-muted; }
    GpuPanel .gpu-panel--na { color: $text-muted; text-style: italic; }
    GpuPanel .gpu-panel--bar { color: $success; }
    GpuPanel .gpu-panel--bar-warm { color: $warning; }
    GpuPanel .gpu-panel--bar-hot { color: $error; }
    GpuPanel .gpu-panel--bar-free { color: $text-disabled; }
    GpuPanel .gpu-panel--job { color: $accent; text-style: bold; }
    GpuPanel .gpu-panel--hot { color: $error; text-style: bold; }
    GpuPanel .gpu-panel--unavailable { color: $warning; }
    """
    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "gpu-panel--name", "gpu-panel--label", "gpu-panel--na", "gpu-panel--bar",
        "gpu-panel--bar-warm", "gpu-panel--bar-hot", "gpu-panel--bar-free", "gpu-panel--job",
        "gpu-panel--hot", "gpu-panel--unavailable",
    }

    compact: reactive[bool | None] = reactive(None, layout=True)
    """True: one line per GPU; False: two; None: decide from the terminal size (80x24 -> compact)."""

    def __init__(
        self,
        *,
        compact: bool | None = None,
        name: str | None = None,
        id: str | None = None,  # noqa: A002 - Textual's name
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.set_reactive(GpuPanel.compact, compact)
        self.tracker = PeakTracker()
        self._snapshot: GpuSnapshot | None = None
        self._pids: frozenset[int] = frozenset()
        self._job_running = False
        self._holders: dict[int, str] = {}
        self._cluster: ClusterSurvey | None = None
        self._cluster_holders: dict[tuple[str, int], str] = {}
        self.border_title = "GPU"

    # -- public API ------------------------------------------------------------------------
    @property
    def snapshot(self) -> GpuSnapshot | None:
        return self._snapshot

    def show(self, snapshot: GpuSnapshot, job_pids: Iterable[int], holders: Mapping[int, str] | None = None) -> None:
        """Display a snapshot; job_pids are the running llama-perplexity's pids (empty: none);
        holders: GPU index -> the label of the job that holds it (JobState.gpus), so that with
        several jobs at once, or one job over a group of GPUs, each card says whose it is."""
        self._holders = dict(holders or {})
        pids = frozenset(job_pids)
        if pids and not (pids & self._pids):
            # A different job started: its peak starts from zero.
            self.tracker.reset()
        if pids:
            self._pids = pids
            self.tracker.update(snapshot, pids)
        self._job_running = bool(pids)
        self._snapshot = snapshot
        self.border_subtitle = f"driver {snapshot.driver}" if snapshot.driver else ""
        self.refresh(layout=True)

    @property
    def cluster(self) -> ClusterSurvey | None:
        return self._cluster

    def show_cluster(self, survey: ClusterSurvey | None, holders: Mapping[tuple[str, int], str] | None = None) -> None:
        """The Ray cluster's nodes and GPUs below this machine's (None: no section). `survey`
        is the scheduler's latest, already checked to be fresh; holders: (node id, GPU index)
        -> the label of the job holding it (remote.cluster_gpu_holders)."""
        self._cluster = survey
        self._cluster_holders = dict(holders or {})
        self.set_class(survey is not None, "-cluster")
        self.refresh(layout=True)

    def reset_peak(self) -> None:
        self.tracker.reset()
        self.refresh()

    def as_text(self, compact: bool | None = None) -> str:
        """The panel as plain text (for logs and the closing note of a GPU run)."""
        return self._build(self._is_compact() if compact is None else compact, width=10_000).plain

    # -- rendering -------------------------------------------------------------------------
    def _is_compact(self) -> bool:
        if self.compact is not None:
            return self.compact
        try:
            height = self.app.size.height
        except Exception:  # noqa: BLE001 - no app yet
            return False
        return height <= 30

    def render(self) -> RenderResult:
        return self._build(self._is_compact(), self.content_region.width or 80)

    def _style(self, name: str) -> Style:
        try:
            return self.get_component_rich_style(f"gpu-panel--{name}", partial=True)
        except Exception:  # noqa: BLE001 - as_text() before mount: no styles, same words
            return Style()

    def _build(self, compact: bool, width: int) -> Text:
        local = self._build_local(compact, width)
        if self._cluster is None:
            return local
        return Text("\n").join([local, *self._cluster_lines(self._cluster, compact, width)])

    def _cluster_lines(self, survey: ClusterSurvey, compact: bool, width: int) -> list[Text]:
        """Each node: a line with its name and Ray's GPU counts, then its GPUs as the local ones
        are drawn (the job holding each named), or why there is no reading."""
        out: list[Text] = []
        for n in survey.nodes:
            head = Text.assemble(("node ", self._style("label")), (n.name, self._style("name")))
            if n.ip and n.ip != n.name:
                head.append(f" {n.ip}", style=self._style("label"))
            gpus = n.snapshot.gpus if n.snapshot is not None and n.snapshot.available else ()
            head.append(f" · {self._node_state(n, bool(gpus))}",
                        style=self._style("label" if n.alive and (gpus or n.snapshot is not None) else "unavailable"))
            head.truncate(width, overflow="ellipsis")
            out.append(head)
            held = {g: label for (node_id, g), label in self._cluster_holders.items() if node_id == n.node_id}
            for g in gpus:
                out.append(self._compact_line(g, width, True, held) if compact else self._full_lines(g, width, True, held))
        return out

    @staticmethod
    def _node_state(n: NodeReading, has_gpus: bool) -> str:
        if not n.alive:
            return f"dead ({n.reason})" if n.reason else "dead"
        if n.snapshot is None:
            return f"{ray_gpus_words(n)} · {n.reason or 'no reading'}"
        if not has_gpus:
            return f"{ray_gpus_words(n)} · {n.snapshot.reason or 'NVML lists no GPU'}"
        return ray_gpus_words(n)

    def _build_local(self, compact: bool, width: int) -> Text:
        snap = self._snapshot
        if snap is None:
            return Text("GPU: waiting for the first NVML sample…", style=self._style("na"))
        if not snap.available:
            reason = snap.reason or UNAVAILABLE_PREFIX
            if not reason.startswith(UNAVAILABLE_PREFIX):
                reason = f"{UNAVAILABLE_PREFIX}: {reason}"
            return Text(reason, style=self._style("unavailable"))
        if not snap.gpus:
            return Text(f"{UNAVAILABLE_PREFIX}: NVML lists no GPU", style=self._style("unavailable"))
        job_seen = any(g.process_memory(self._pids) is not None for g in snap.gpus) if self._job_running else False
        lines = [
            (self._compact_line if compact else self._full_lines)(g, width, job_seen) for g in snap.gpus
        ]
        return Text("\n").join(lines)

    def _na_or(self, text: str | None, style: Style | None = None) -> Text:
        return Text(NA, style=self._style("na")) if text is None else Text(text, style=style or Style())

    def _bar(self, g: GpuSample, width: int) -> Text:
        frac = g.mem_fraction
        used_style = self._style("bar-hot" if (frac or 0) >= 0.95 else "bar-warm" if (frac or 0) >= 0.8 else "bar")
        shape = bar(frac, width)
        cut = len(shape.rstrip("░·"))
        return Text.assemble((shape[:cut], used_style), (shape[cut:], self._style("bar-free")))

    def _temp(self, g: GpuSample) -> Text:
        if g.temperature_c is None:
            return Text("temp ", style=self._style("label")) + self._na_or(None)
        return Text(f"{g.temperature_c}°C", style=self._style("hot") if g.temperature_c >= 85 else Style())

    def _power(self, g: GpuSample, unit: str) -> Text:
        if g.power_w is None:
            return Text("power ", style=self._style("label")) + self._na_or(None)
        limit = NA if g.power_limit_w is None else f"{g.power_limit_w:.0f}"
        return Text(f"{g.power_w:.0f}/{limit}{unit}")

    def _job(self, g: GpuSample, job_seen: bool, compact: bool) -> Text | None:
        """The job's VRAM on this GPU and its peak; None when there is nothing to say."""
        peak = self.tracker.peak.get(g.index)
        peak_txt = f"peak {gib(peak)} GiB" if not compact else f"↑{gib(peak)}G"
        if not self._job_running:
            if peak is None:
                return None
            return Text(f"last job {peak_txt}", style=self._style("label"))
        current = self.tracker.current.get(g.index)
        label = Text("job ", style=self._style("label"))
        if current is not None:
            text = f"{gib(current)} GiB" if not compact else f"{gib(current)}G"
            return label + Text(text, style=self._style("job")) + Text(" " + peak_txt if peak is not None else "")
        if job_seen:
            return None  # the job runs on another GPU
        # NVML cannot see the job's pid (container without the host pid namespace, MIG)
        return label + self._na_or(None)

    def _full_lines(self, g: GpuSample, width: int, job_seen: bool, remote: Mapping[int, str] | None = None) -> Text:
        """`remote`: a cluster node's GPU, with the holders of that node's GPUs (the job's own
        VRAM is only known for this machine's jobs)."""
        holder = (self._holders if remote is None else remote).get(g.index)
        head = Text.assemble(
            (f"GPU {g.index} ", self._style("label")),
            (g.name, self._style("name")),
            *((" · ", (holder, self._style("job"))) if holder else ()),
            "  ",
            ("util ", self._style("label")), self._na_or(None if g.util_gpu is None else f"{g.util_gpu}%"),
            "  ", self._temp(g),
            "  ", self._power(g, " W"),
        )
        mem = self._na_or(f"{gib(g.mem_used)}/{gib(g.mem_total)} GiB" if g.mem_total else None)
        pct = "" if g.mem_fraction is None else f" {g.mem_fraction:.0%}"
        job = self._job(g, job_seen, compact=False) if remote is None else None
        tail = Text.assemble(" ", mem, pct, *(("   ", job) if job is not None else ()))
        # the bar takes what the words leave, within reason
        bar_width = max(8, min(30, width - len("  VRAM ") - tail.cell_len))
        body = Text.assemble("  ", ("VRAM ", self._style("label")), self._bar(g, bar_width), tail)
        head.truncate(width, overflow="ellipsis")
        body.truncate(width, overflow="ellipsis")
        return Text("\n").join([head, body])

    def _compact_line(self, g: GpuSample, width: int, job_seen: bool, remote: Mapping[int, str] | None = None) -> Text:
        mem = Text(f"{gib(g.mem_used)}/{gib(g.mem_total, 0)}G") if g.mem_total else self._na_or(None)
        util = Text(f"{g.util_gpu}%") if g.util_gpu is not None else Text("util ", style=self._style("label")) + self._na_or(None)
        tail = Text(" ").join([mem, util, self._temp(g), self._power(g, "W")])
        job = self._job(g, job_seen, compact=True) if remote is None else None
        if job is not None:
            tail += Text(" ") + job
        bar_width = 8 if width >= 60 else 5
        room = width - len(str(g.index)) - 1 - bar_width - 2 - tail.cell_len
        # the job that holds the card says more than its model name, the same on every card of a box
        holder = (self._holders if remote is None else remote).get(g.index)
        name = holder or short_name(g.name)
        if room < len(name):
            name = name[: max(room - 1, 0)] + "…" if room > 4 else ""
        name_style = self._style("job" if holder else "name")
        line = Text.assemble((f"{g.index} ", self._style("label")), (name, name_style), " " if name else "", self._bar(g, bar_width), " ", tail)
        line.truncate(width, overflow="ellipsis")
        return line
