"""The Runs tab says where a cluster job runs: the node's name after its state, in the table and
in the run panel's title; a cluster job Ray has not placed yet says so; local jobs are unchanged."""

from __future__ import annotations

from typing import Any

from qtui.ui.messages import JobsChanged
from qtui.ui.widgets.queue import QueueView
from tests.ui.conftest import wait_for
from tests.ui.test_runs_tab import lines, live, queue_lines
from tests.ui.test_snapshots import T0, job, scan_done, snap_app, tab_shown  # noqa: F401 - snap_app is a fixture


def test_where_words() -> None:
    from qtui.ui.widgets.queue import where

    j = job("q4.gguf", "kld", "running", started=T0 - 5)
    assert where(j) == ""  # local
    j.state.node = {"cluster": "head:6379"}
    assert where(j) == " (Ray picks a node)"
    j.state.node.update(ip="10.0.0.7", node_id="ab" * 28)
    assert where(j) == " on 10.0.0.7"
    j.state.node["hostname"] = "gpu-box-3"
    assert where(j) == " on gpu-box-3"


async def test_runs_tab_shows_the_node(snap_app: Any) -> None:  # noqa: F811
    far = job("gemma-3-270m-Q4_K_M.gguf", "kld", "running", started=T0 - 30, seq=2)
    far.state.node = {"cluster": "head:6379", "hostname": "gpu-box-3", "ip": "10.0.0.7", "node_id": "ab" * 28, "gpus": ["0"]}
    done = job("gemma-3-270m-Q8_0.gguf", "kld", "done", started=T0 - 80, ended=T0 - 70, seq=1)
    done.state.node = {"cluster": "head:6379", "hostname": "gpu-box-2", "ip": "10.0.0.6"}
    here = job("gemma-3-270m-Q6_K.gguf", "kld", "queued", seq=3)
    app = snap_app([JobsChanged([done, far, here]), live(far, 0.00492, 0.000158)])
    async with app.run_test(size=(160, 48)) as pilot:
        await scan_done("2", until=tab_shown("runs"))(pilot)
        await wait_for(pilot, lambda: "running on gpu-box-3" in "\n".join(queue_lines(app)), 10, "the node in the table")
        text = "\n".join(queue_lines(app))
        assert "done on gpu-box-2" in text and "waiting" in text and "waiting on" not in text, text
        assert app.screen.query_one(QueueView).selected_job().id == far.id
        await wait_for(pilot, lambda: any("running on gpu-box-3  (KLD)" in line for line in lines(app)), 10,
                       "the node in the run panel's title")


def test_the_app_runs_on_the_configured_cluster(app_factory: Any, corpus: Any, tmp_path: Any) -> None:
    from pathlib import Path

    from qtui.core.config import Config
    from qtui.ui.widgets.model_list import Choice

    shared = tmp_path / "shared"
    app = app_factory(cfg=Config(corpus=str(corpus), ctx=128, cluster="ray://head.lan:10001", cluster_base_dir=str(shared)))
    request = app.showdown_request(Choice(Path("base.gguf"), [Path("q4.gguf")]))
    assert request.cluster == "ray://head.lan:10001" and request.cluster_base_dir == shared
    local = app_factory(cfg=Config(corpus=str(corpus), ctx=128)).showdown_request(Choice(Path("b.gguf"), [Path("q.gguf")]))
    assert local.cluster is None and local.cluster_base_dir is None
