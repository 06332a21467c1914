"""The pure part of the cluster survey: a node's reading (FakeNvml), its JSON round trip through
the survey file, staleness, who holds which GPU of which node, the words `qtui cluster` prints,
the scheduler's watch (a fake surveyor) and `qtui cluster` refusing in one line."""

from __future__ import annotations

import json
import pickle
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from qtui.core.cluster.survey import (
    FRESH_S,
    ClusterSurvey,
    NodeReading,
    cluster_holders,
    fresh_survey,
    node_reading,
    read_survey,
    sample_here,
    snapshot_from_dict,
    survey_from_dict,
    survey_lines,
    survey_path,
    survey_to_dict,
    write_survey,
)
from qtui.core.gpu import GpuSnapshot, Nvml
from tests.helpers import one_line_error, run_qtui, wait_until
from tests.unit.test_gpu import GIB, FakeNvml, LibraryNotFound, h100, proc

T0 = 1_700_000_000.0
NODE_A = "a1" * 28
NODE_B = "b2" * 28


def _h100_snapshot() -> GpuSnapshot:
    return Nvml(nvml_module=FakeNvml([h100(), h100(uuid="GPU-bbbb", compute_v3=[proc(200, 30 * GIB)])]),
                clock=lambda: T0).sample()


def _survey(taken_at: float = T0) -> ClusterSurvey:
    return ClusterSurvey(address="head:6379", taken_at=taken_at, nodes=(
        NodeReading(NODE_A, "10.0.0.7", "gpu-box-3", True, 2, 1, _h100_snapshot()),
        NodeReading(NODE_B, "10.0.0.8", "cpu-box", True, 0, 0,
                    Nvml(nvml_module=FakeNvml([], init_error=LibraryNotFound), clock=lambda: T0).sample()),
        NodeReading("c3" * 28, "10.0.0.9", "", False, 4, 0, None, "Ray lists the node as dead"),
    ))


def test_a_node_samples_itself_into_plain_data() -> None:
    fake = FakeNvml([h100()])
    got = sample_here(Nvml(nvml_module=fake, clock=lambda: T0))
    assert pickle.loads(pickle.dumps(got)) == got and json.loads(json.dumps(got)) == got  # plain data, both ways
    snap = snapshot_from_dict(got["snapshot"])
    assert snap == Nvml(nvml_module=FakeNvml([h100()]), clock=lambda: T0).sample()
    assert snap.gpus[0].mem_used == 9 * GIB and snap.gpus[0].processes[0].pid == 100
    assert isinstance(got["hostname"], str) and got["hostname"]


def test_a_node_without_nvml_answers_with_the_reason() -> None:
    got = sample_here(Nvml(nvml_module=FakeNvml([], init_error=LibraryNotFound), clock=lambda: T0))
    snap = snapshot_from_dict(got["snapshot"])
    assert not snap.available and snap.gpus == ()
    assert snap.reason == "no NVIDIA GPU / NVML unavailable: libnvidia-ml.so.1 not found (no NVIDIA driver installed)"


def test_the_survey_file_round_trips(tmp_path: Path) -> None:
    s = _survey()
    path = survey_path(tmp_path)
    write_survey(path, s)
    assert path == tmp_path / "jobs" / "cluster_survey.json"
    assert read_survey(path) == s
    assert survey_from_dict(json.loads(json.dumps(survey_to_dict(s)))) == s
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # written atomically: no temp file left


def test_unreadable_or_other_version_files_read_as_none(tmp_path: Path) -> None:
    path = survey_path(tmp_path)
    assert read_survey(path) is None  # absent
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    assert read_survey(path) is None
    path.write_text(json.dumps({**survey_to_dict(_survey()), "version": 99}))
    assert read_survey(path) is None


def test_staleness(tmp_path: Path) -> None:
    s = _survey()
    assert s.fresh(T0 + FRESH_S) and not s.fresh(T0 + FRESH_S + 0.5)
    assert not s.fresh(T0 - FRESH_S - 1)  # from the future: not trusted either
    path = survey_path(tmp_path)
    write_survey(path, s)
    assert fresh_survey(path, now=T0 + 5) == s
    assert fresh_survey(path, now=T0 + 31) is None
    assert fresh_survey(tmp_path / "none.json", now=T0) is None


def test_holders_map_each_running_jobs_ray_gpus_on_its_node() -> None:
    running = [
        ("Q4_K_M", {"cluster": "head:6379", "node_id": NODE_A, "ip": "10.0.0.7", "gpus": ["0", "1"], "pid": 5}),
        ("Q8_0", {"cluster": "head:6379", "node_id": NODE_B, "gpus": ["1"]}),
        ("waiting", {"cluster": "head:6379"}),  # Ray has not placed it yet
        ("local", None),
        ("cpu", {"node_id": NODE_B, "gpus": []}),
    ]
    assert cluster_holders(running) == {(NODE_A, 0): "Q4_K_M", (NODE_A, 1): "Q4_K_M", (NODE_B, 1): "Q8_0"}


def test_node_reading_from_rays_facts() -> None:
    ray_node = {"NodeID": NODE_A, "Alive": True, "NodeManagerAddress": "10.0.0.7", "NodeManagerHostname": "box-3",
                "Resources": {"CPU": 16.0, "GPU": 2.0}}
    answered = node_reading(ray_node, {"GPU": 1.0, "CPU": 10.0}, sample_here(Nvml(FakeNvml([h100()]))), None)
    assert (answered.gpus_total, answered.gpus_free, answered.reason) == (2, 1, None)
    assert answered.snapshot is not None and answered.snapshot.available
    silent = node_reading(ray_node, None, None, "the node did not answer within 10 s")
    assert silent.snapshot is None and silent.gpus_free is None and silent.hostname == "box-3"
    assert silent.reason == "the node did not answer within 10 s"
    dead = node_reading({**ray_node, "Alive": False}, {}, None, "Ray lists the node as dead")
    assert not dead.alive and dead.gpus_free == 0 and dead.gpus_total == 2


def test_survey_in_words() -> None:
    lines = survey_lines(_survey(), {(NODE_A, 1): "Q4_K_M"})
    assert lines[0] == "Ray cluster head:6379: 3 nodes, 2 alive; Ray GPUs 1 free of 2"
    assert lines[1] == f"gpu-box-3 (10.0.0.7, id {NODE_A[:12]}): Ray GPUs 1 free of 2"
    assert lines[2] == "  GPU 0 NVIDIA H100 80GB HBM3  util 97%  VRAM 9.0/80.0 GiB  63°C  512 W"
    assert lines[3] == "  GPU 1 NVIDIA H100 80GB HBM3  util 97%  VRAM 9.0/80.0 GiB  63°C  512 W  job Q4_K_M"
    assert lines[4] == f"cpu-box (10.0.0.8, id {NODE_B[:12]}): Ray GPUs 0 free of 0"
    assert lines[5].startswith("  no NVIDIA GPU / NVML unavailable: libnvidia-ml.so.1 not found")
    assert lines[6] == f"10.0.0.9 (10.0.0.9, id {'c3' * 6}): dead (Ray lists the node as dead)"
    assert len(lines) == 7


# -- the watch -------------------------------------------------------------------------------
class Surveyor:
    """Stands in for ray_survey.survey: counts its calls, fails when told to."""

    def __init__(self) -> None:
        self.calls = 0
        self.fail: str | None = None
        self.lock = threading.Lock()

    def __call__(self, address: str, timeout_s: float) -> ClusterSurvey:
        with self.lock:
            self.calls += 1
        if self.fail:
            raise RuntimeError(self.fail)
        return ClusterSurvey(address, T0 + self.calls, _survey().nodes)


def test_the_watch_writes_a_survey_every_interval_and_stops(tmp_path: Path) -> None:
    from qtui.core.cluster.watch import ClusterWatch

    fake, errors = Surveyor(), []
    path = survey_path(tmp_path)
    watch = ClusterWatch("head:6379", path, interval_s=0.01, surveyor=fake, on_error=errors.append).start()
    wait_until(lambda: watch.written >= 3, what="three surveys written")
    got = read_survey(path)
    assert got is not None and got.address == "head:6379" and got.taken_at > T0 + 1 and len(got.nodes) == 3
    fake.fail = "Ray is busy"
    wait_until(lambda: fake.calls >= watch.written + 3, what="failing surveys")
    assert errors == ["could not survey the Ray cluster at head:6379: Ray is busy"]  # said once, not every time
    assert read_survey(path) is not None  # the last good survey stays; it ages out in the app
    watch.stop(wait_s=5)
    assert not watch.running


def test_ray_shut_down_under_a_survey_ends_the_watch_quietly(tmp_path: Path) -> None:
    """Ray raises SystemExit in a thread waiting on it when it is shut down (the process ends):
    the watch ends there, reporting nothing and raising nothing out of its thread."""
    from qtui.core.cluster.watch import ClusterWatch

    def shut_down(address: str, timeout_s: float) -> ClusterSurvey:
        raise SystemExit(0)

    errors: list[str] = []
    watch = ClusterWatch("head:6379", survey_path(tmp_path), interval_s=0.01, surveyor=shut_down, on_error=errors.append)
    watch.once()  # in this thread: a SystemExit escaping would end the test here
    assert errors == [] and watch.written == 0
    watch.start()
    wait_until(lambda: not watch.running, what="the watch to end by itself")


def test_watching_runs_one_watch_while_anyone_uses_it(tmp_path: Path) -> None:
    from qtui.core.cluster.watch import watching

    fake = Surveyor()
    path = survey_path(tmp_path)
    with watching("head:6379", path, interval_s=0.01, surveyor=fake) as first:
        with watching("head:6379", path) as second:
            assert second is first and first.running
        wait_until(lambda: first.written >= 2, what="surveys while the first user is still in")
        assert first.running  # one user left
    first.stop(wait_s=5)
    wait_until(lambda: not first.running, what="the watch to end with its last user")
    with watching("head:6379", path, surveyor=fake) as again:
        assert again is not first  # a new job later: a new watch


def test_survey_once_without_ray_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    from qtui.core.cluster.watch import Unreachable, survey_once

    for name in ("ray", "qtui.core.cluster.ray_survey", "qtui.core.cluster.ray_exec"):
        monkeypatch.setitem(sys.modules, name, None)  # an import of it raises ImportError
    with pytest.raises(Unreachable) as info:
        survey_once("head:6379")
    assert str(info.value).startswith("surveying a Ray cluster needs Ray, which is not installed here (")
    assert str(info.value).endswith("pip install 'qtui[ray]'")


@pytest.mark.parametrize(("address", "where"), [
    ("ray://head.lan:10001", ("head.lan", 10001)), ("10.0.0.1:6379", ("10.0.0.1", 6379)), ("auto", None),
    ("[::1]:6379", ("::1", 6379)),
])
def test_host_port(address: str, where: Any) -> None:
    from qtui.core.cluster.watch import host_port

    assert host_port(address) == where


def test_qtui_cluster_without_an_address_or_with_a_wrong_one(tmp_path: Path) -> None:
    line = one_line_error(run_qtui("cluster", tmp=tmp_path, timeout=60))
    assert line == ("error: no Ray cluster to survey: give --address (ray://HOST:PORT, HOST:PORT or auto) or set "
                    "cluster in the config")
    line = one_line_error(run_qtui("cluster", "--address", "head", tmp=tmp_path, timeout=60))
    assert line.startswith("error: --address 'head' must be \"auto\", \"ray://HOST:PORT\" or \"HOST:PORT\"")
