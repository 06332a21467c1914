"""The GPU panel shows the Ray cluster's nodes and GPUs below this machine's, from the survey the
scheduler writes into the data dir: each GPU names the cluster job holding it; a stale or absent
survey shows nothing extra."""

from __future__ import annotations

import time
from typing import Any

from qtui.core.cluster.survey import ClusterSurvey, NodeReading, survey_path, write_survey
from qtui.core.gpu import GpuSnapshot
from qtui.ui.messages import JobsChanged
from qtui.ui.widgets.gpu_panel import GpuPanel
from tests.ui.conftest import wait_for
from tests.ui.test_snapshots import T0, job, snap_app  # noqa: F401 - snap_app is a fixture
from tests.ui.test_widgets import UNAVAILABLE, PanelApp, gpu, panel_text, snapshot

NODE_A = "a1" * 28
NODE_B = "b2" * 28
NODE_C = "c3" * 28
NO_NVML = GpuSnapshot(False, "no NVIDIA GPU / NVML unavailable: libnvidia-ml.so.1 not found (no NVIDIA driver installed)",
                      None, (), 0.0)


def survey(taken_at: float) -> ClusterSurvey:
    return ClusterSurvey("head:6379", taken_at, (
        NodeReading(NODE_A, "10.0.0.7", "gpu-box-3", True, 2, 1,
                    snapshot(gpu(0, "NVIDIA H200", 40.0, 140.0), gpu(1, "NVIDIA H200", 1.0, 140.0, util=0))),
        NodeReading(NODE_B, "10.0.0.8", "cpu-box", True, 0, 0, NO_NVML),
        NodeReading(NODE_C, "10.0.0.9", "", False, 4, 0, None, "Ray lists the node as dead"),
    ))


async def test_the_cluster_section_below_the_local_gpus() -> None:
    app = PanelApp(compact=False)
    async with app.run_test(size=(110, 30)) as pilot:
        panel = app.query_one(GpuPanel)
        panel.show(snapshot(gpu(0, "NVIDIA RTX 3060", 2.0, 12.0)), set())
        panel.show_cluster(survey(T0), {(NODE_A, 1): "Q4_K_M.gguf", (NODE_B, 0): "elsewhere"})
        await pilot.pause()
        lines = panel_text(panel).splitlines()
        assert lines[0].startswith("GPU 0 NVIDIA RTX 3060  util") and lines[1].lstrip().startswith("VRAM")
        assert lines[2] == "node gpu-box-3 10.0.0.7 · Ray GPUs 1 free of 2"
        assert lines[3].startswith("GPU 0 NVIDIA H200  util 50%") and "·" not in lines[3]  # nobody holds it
        assert "40.0/140.0 GiB" in lines[4]
        assert lines[5].startswith("GPU 1 NVIDIA H200 · Q4_K_M.gguf  util 0%")
        assert lines[7].startswith("node cpu-box 10.0.0.8 · Ray GPUs 0 free of 0 · no NVIDIA GPU / NVML unavailable: ")
        assert lines[8] == "node 10.0.0.9 · dead (Ray lists the node as dead)"
        assert len(lines) == 9
        panel.show_cluster(None)
        await pilot.pause()
        assert "node" not in panel_text(panel) and len(panel_text(panel).splitlines()) == 2


async def test_compact_cluster_lines_name_the_holder() -> None:
    app = PanelApp(compact=True)
    async with app.run_test(size=(100, 24)) as pilot:
        panel = app.query_one(GpuPanel)
        panel.show(UNAVAILABLE, set())  # this machine has no GPU: the cluster's still show
        panel.show_cluster(survey(T0), {(NODE_A, 0): "Q8_0.gguf"})
        await pilot.pause()
        lines = panel_text(panel).splitlines()
        assert lines[0].startswith("no NVIDIA GPU / NVML unavailable")
        assert lines[1] == "node gpu-box-3 10.0.0.7 · Ray GPUs 1 free of 2"
        assert lines[2].startswith("0 Q8_0.gguf ") and lines[3].startswith("1 H200 ")
        assert lines[4].startswith("node cpu-box 10.0.0.8 · Ray GPUs 0 free of 0 · no NVIDIA GPU")


async def test_the_app_reads_the_survey_file_and_drops_a_stale_one(snap_app: Any, qtui_dirs: Any) -> None:  # noqa: F811
    running = job("gemma-3-270m-Q4_K_M.gguf", "kld", "running", started=T0 - 30, seq=1)
    running.spec.cluster = "head:6379"
    running.state.node = {"cluster": "head:6379", "hostname": "gpu-box-3", "ip": "10.0.0.7", "node_id": NODE_A,
                          "gpus": ["1"], "pid": 77}
    app = snap_app([JobsChanged([running])], gpu_interval=0.1)
    path = survey_path(qtui_dirs["data"])
    write_survey(path, survey(time.time()))
    async with app.run_test(size=(120, 40)) as pilot:
        panel = app.screen.query_one(GpuPanel)
        await wait_for(pilot, lambda: panel.cluster is not None, 15, "the cluster section")
        await wait_for(pilot, lambda: "GPU 1 NVIDIA H200 · gemma-3-270m-Q4_K_M.gguf  util" in panel_text(panel), 15, "the holder of GPU 1")
        text = panel_text(panel)
        assert panel.has_class("-cluster") and panel.has_class("-unavailable")
        assert "node gpu-box-3 10.0.0.7 · Ray GPUs 1 free of 2" in text and "node 10.0.0.9 · dead" in text, text
        assert text.splitlines()[0].startswith("no NVIDIA GPU / NVML unavailable")  # this machine's line first
        write_survey(path, survey(time.time() - 31))  # the scheduler stopped writing: stale
        await wait_for(pilot, lambda: panel.cluster is None, 15, "the stale survey to be dropped")
        assert "node" not in panel_text(panel) and not panel.has_class("-cluster")
