"""GPU groups: which GPUs qtui may use, how jobs are packed onto them, and what each child sees.

The GPUs come from a FAKE NVML (tests/unit/test_gpu.FakeNvml) handed to the scheduler, never
from a patched global; the scheduler and its children are the real ones."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from qtui.core.gpu import Nvml
from qtui.core.jobs.gpus import (
    MAX_PASSES,
    Device,
    Inventory,
    Refused,
    Want,
    choose,
    group_env,
    inventory,
    names_own_devices,
    pack,
    parse_gpus_per_run,
)
from qtui.core.jobs.queue import JobQueue, JobSpec
from qtui.core.jobs.scheduler import Scheduler
from qtui.core.llama import assets
from qtui.core.llama.memory import RunMemory, run_memory
from tests.unit.test_gpu import FakeNvml, LibraryNotFound, h100
from tests.unit.test_scheduler import spec

GIB = 1 << 30
MIB = 1 << 20


def gpus(n: int, free: list[int] | None = None, total: int = 80 * GIB) -> FakeNvml:
    """n fake GPUs in PCI order, uuids GPU-0000.., each with `free[i]` bytes free."""
    devs = []
    for i in range(n):
        f = free[i] if free else total
        mem = SimpleNamespace(total=total, used=total - f, free=f)
        devs.append(h100(uuid=f"GPU-{i:04d}", mem_v1=mem, mem_v2=mem, compute_v3=[], compute_v2=[]))
    return FakeNvml(devs)


def inv(n: int, free: int | None = None) -> Inventory:
    return Inventory(tuple(Device(i, str(i), 80 * GIB, free if free is not None else 80 * GIB) for i in range(n)),
                     real=True, given=False)


def keys(group: object) -> list[int]:
    assert isinstance(group, list)
    return [d.key for d in group]


# -- which GPUs ----------------------------------------------------------------------------
def test_inventory_from_nvml_from_what_qtui_was_given_and_without_gpu() -> None:
    snap = Nvml(gpus(4, free=[10 * GIB, 20 * GIB, 30 * GIB, 40 * GIB])).sample()
    every = inventory({}, snap, slots=1)
    assert every.real and not every.given and every.keys == [0, 1, 2, 3]
    assert [d.free for d in every.devices] == [10 * GIB, 20 * GIB, 30 * GIB, 40 * GIB]
    given = inventory({"CUDA_VISIBLE_DEVICES": "3, 1"}, snap, slots=1)
    assert given.keys == [3, 1] and given.given and given.devices[0].free == 40 * GIB
    by_uuid = inventory({"CUDA_VISIBLE_DEVICES": "GPU-0002"}, snap, slots=1)
    assert by_uuid.keys == [2] and by_uuid.devices[0].visible == "GPU-0002"
    unknown = inventory({"CUDA_VISIBLE_DEVICES": "MIG-abc,1"}, snap, slots=1)  # NVML cannot place a MIG id
    assert unknown.keys == [0, 1] and unknown.devices[0].free is None
    hidden = inventory({"CUDA_VISIBLE_DEVICES": ""}, snap, slots=3)
    assert not hidden.real and len(hidden.devices) == 3 and group_env(hidden, hidden.devices[:1]) == {}
    no_gpu = Nvml(FakeNvml([], init_error=LibraryNotFound)).sample()
    cpu = inventory({}, no_gpu, slots=2)
    assert not cpu.real and cpu.keys == [0, 1]


def test_child_env_names_its_group() -> None:
    every = inv(4)
    assert group_env(every, list(every.devices[2:4])) == {"CUDA_DEVICE_ORDER": "PCI_BUS_ID", "CUDA_VISIBLE_DEVICES": "2,3"}
    given = inventory({"CUDA_VISIBLE_DEVICES": "GPU-aa,GPU-bb"}, None, slots=1)
    # a subset of what qtui was given, in its own words and device order
    assert group_env(given, list(given.devices[1:])) == {"CUDA_VISIBLE_DEVICES": "GPU-bb"}
    one_cpu = inventory({}, None, slots=1)
    assert group_env(one_cpu, list(one_cpu.devices)) == {}  # one CPU place: nothing to restrict


def test_jobs_that_name_their_devices_and_gpus_per_run_values() -> None:
    assert names_own_devices(["x", "-ts", "3,1"], {}) and names_own_devices(["x", "--device=CUDA1"], {})
    assert names_own_devices(["x", "-mg", "1"], {}) and names_own_devices(["x"], {"CUDA_VISIBLE_DEVICES": "1"})
    assert not names_own_devices(["x", "-ngl", "99", "-sm", "layer"], {})
    assert not names_own_devices(["x", "-ot", "exps=CPU", "--override-tensor=ffn_up=CPU,ffn_down=cpu"], {})
    assert names_own_devices(["x", "-ot", "exps=CPU,attn=CUDA1"], {}) and names_own_devices(["x", "-ot=blk.1=CUDA0"], {})
    assert parse_gpus_per_run("auto") == "auto" and parse_gpus_per_run(" 2 ") == 2 and parse_gpus_per_run(8) == 8
    for bad in (0, -1, True, "two", 1.5, 65):
        with pytest.raises(ValueError, match="number of GPUs"):
            parse_gpus_per_run(bad)


# -- packing -------------------------------------------------------------------------------
def test_two_plus_one_plus_one_fill_four_gpus() -> None:
    plan = pack([("a", Want(2)), ("b", Want(1)), ("c", Want(1))], inv(4), busy=(), passed={})
    assert [(j, keys(g)) for j, g in plan.starts] == [("a", [0, 1]), ("b", [2]), ("c", [3])]


def test_two_gpu_jobs_on_four_gpus_run_two_at_once_on_disjoint_pairs() -> None:
    plan = pack([("a", Want(2)), ("b", Want(2)), ("c", Want(2))], inv(4), busy=(), passed={})
    assert [(j, keys(g)) for j, g in plan.starts] == [("a", [0, 1]), ("b", [2, 3])]
    # once a's pair is free again, c takes it
    again = pack([("c", Want(2))], inv(4), busy=[2, 3], passed={})
    assert [(j, keys(g)) for j, g in again.starts] == [("c", [0, 1])]


def test_backfill_then_no_starvation() -> None:
    passed: dict[str, int] = {}
    # GPUs 0-2 busy: the 2-GPU job waits, the 1-GPU job behind it takes GPU 3 (no idle GPU)
    plan = pack([("big", Want(2)), ("s1", Want(1))], inv(4), busy=[0, 1, 2], passed=passed)
    assert [(j, keys(g)) for j, g in plan.starts] == [("s1", [3])] and passed == {"big": 1}
    # GPU 0 frees: another small job overtakes it: its second turn
    plan = pack([("big", Want(2)), ("s2", Want(1))], inv(4), busy=[1, 2, 3], passed=passed)
    assert [j for j, _ in plan.starts] == ["s2"] and passed == {"big": MAX_PASSES}
    # from now on GPUs are kept for it: a free GPU waits rather than starting s3
    plan = pack([("big", Want(2)), ("s3", Want(1))], inv(4), busy=[0, 1, 2], passed=passed)
    assert plan.starts == []
    plan = pack([("big", Want(2)), ("s3", Want(1))], inv(4), busy=[1, 2], passed=passed)
    assert [(j, keys(g)) for j, g in plan.starts] == [("big", [0, 3])]
    assert "big" not in passed


def test_a_timed_run_starts_only_alone_and_nothing_starts_beside_it() -> None:
    passed: dict[str, int] = {}
    solo = Want(1, solo=True)
    # GPU 0 busy: the speed run waits (its GPU is free, but another job runs); a KLD job backfills
    plan = pack([("speed", solo), ("k1", Want(1))], inv(2), busy=[0], passed=passed)
    assert [j for j, _ in plan.starts] == ["k1"] and passed == {"speed": 1}
    # all idle: it starts on its own group, and the job behind it waits although a GPU is free
    plan = pack([("speed", solo), ("k2", Want(1))], inv(2), busy=(), passed=passed)
    assert [(j, keys(g)) for j, g in plan.starts] == [("speed", [0])]
    # while it runs, nothing starts
    assert pack([("k2", Want(1))], inv(2), busy=[0], passed={}, solo_running=True).starts == []
    # passed over MAX_PASSES times, it is reserved for: nothing behind it starts until it does
    passed = {"speed": MAX_PASSES}
    assert pack([("speed", solo), ("k3", Want(1))], inv(2), busy=[1], passed=passed).starts == []


def test_a_job_too_big_is_refused_in_words_and_others_still_start() -> None:
    plan = pack([("huge", Want(8, label="Q8_0.gguf")), ("s", Want(1))], inv(4), busy=(), passed={})
    assert plan.refused == [("huge", 'Q8_0.gguf asks for 8 GPUs per run but qtui may use only 4 here '
                                     '(GPU 0, GPU 1, GPU 2, GPU 3); lower gpus_per_run or use "auto".')]
    assert [j for j, _ in plan.starts] == ["s"]


def mem(weights: int, kv: int = 0, compute: int = 0) -> RunMemory:
    return RunMemory(weights=weights, kv_cache=kv, compute=compute, layers_on_gpu=1, n_layer=1)


def test_auto_takes_the_fewest_gpus_whose_free_memory_holds_the_run() -> None:
    four = Inventory(tuple(Device(i, str(i), 80 * GIB, f * GIB) for i, f in enumerate([70, 30, 75, 60])), True, False)
    m = mem(100 * GIB)  # more than any one GPU has free: the two roomiest, 75 + 70 GiB
    assert keys(choose(Want(memory=m), four, four.keys, all_idle=True)) == [0, 2]
    assert keys(choose(Want(memory=mem(50 * GIB)), four, four.keys, all_idle=True)) == [2]
    # held GPUs do not count; while others hold GPUs, a run that fits in all wait
    assert choose(Want(memory=m), four, [1, 3], all_idle=False) is None
    # idle, and it fits no group: refused with what it needs and what there is
    huge = mem(230 * GIB, kv=10 * GIB)
    got = choose(Want(memory=huge, label="base BF16.gguf"), four, four.keys, all_idle=True)
    assert isinstance(got, Refused)
    assert got.reason.startswith("base BF16.gguf needs about 254.") and "GiB of GPU memory on 4 GPU(s)" in got.reason
    assert "have 235.0 GiB free" in got.reason and "\n" not in got.reason
    # more than all four cards hold: refused at once, even while others run
    more = choose(Want(memory=mem(400 * GIB)), four, [0], all_idle=False)
    assert isinstance(more, Refused) and "320.0 GiB in all" in more.reason


# -- the real scheduler, fake NVML, real children -------------------------------------------
def starts_by_pid(log: Path) -> dict[int, tuple[str, float]]:
    out = {}
    for line in log.read_text().splitlines():
        pid, cvd, t = line.split()
        out[int(pid)] = (cvd, float(t))
    return out


def test_each_child_sees_its_group_and_they_run_at_once(tmp_path: Path) -> None:
    log = tmp_path / "starts.log"
    q = JobQueue(tmp_path)
    jobs = []
    for n in (2, 1, 1):
        s = spec("kld", "ik-tiny-kld-q8_0", tmp_path, delay=0.1, gpus_per_run=n)
        s.env["FAKE_LLAMA_ENV_LOG"] = str(log)
        jobs.append(q.add(s))
    sched = Scheduler(tmp_path, slots=1, nvml=Nvml(gpus(4)), parent_env={})
    seen_env: dict[str, dict[str, str]] = {}
    run_job = sched.run_job

    def spy(job, slot):  # type: ignore[no-untyped-def]
        seen_env[job.id] = sched._env(job, slot)
        run_job(job, slot)

    sched.run_job = spy  # type: ignore[method-assign]
    sched.run()
    got = [q.get(j.id) for j in jobs]
    assert [g.state.status for g in got] == ["done"] * 3  # type: ignore[union-attr]
    assert [g.state.gpus for g in got] == [[0, 1], [2], [3]]  # type: ignore[union-attr]
    assert [seen_env[j.id]["CUDA_VISIBLE_DEVICES"] for j in jobs] == ["0,1", "2", "3"]
    assert {seen_env[j.id]["CUDA_DEVICE_ORDER"] for j in jobs} == {"PCI_BUS_ID"}
    children = starts_by_pid(log)  # what each child process itself saw
    assert sorted(cvd for cvd, _ in children.values()) == ["0,1", "2", "3"]
    times = sorted(t for _, t in children.values())
    assert times[-1] - times[0] < 1.0  # all three at once, not one after the other


def test_a_job_naming_its_devices_keeps_them_and_runs_alone(tmp_path: Path) -> None:
    log = tmp_path / "starts.log"
    q = JobQueue(tmp_path)
    own = spec("kld", "ik-tiny-kld-q8_0", tmp_path, delay=0.05)
    own.env.update(FAKE_LLAMA_ENV_LOG=str(log), CUDA_VISIBLE_DEVICES="3")
    other = spec("kld", "ik-tiny-kld-q4_0", tmp_path, delay=0.05)
    other.env["FAKE_LLAMA_ENV_LOG"] = str(log)
    a, b = q.add(own), q.add(other)
    Scheduler(tmp_path, nvml=Nvml(gpus(2)), parent_env={}).run()
    ga, gb = q.get(a.id), q.get(b.id)
    assert ga is not None and gb is not None and ga.state.gpus == [0, 1] and gb.state.gpus == [0]
    assert ga.state.ended_at <= gb.state.started_at  # type: ignore[operator]
    assert sorted(cvd for cvd, _ in starts_by_pid(log).values()) == ["0", "3"]


def test_auto_job_too_big_for_every_gpu_fails_in_one_sentence(tmp_path: Path) -> None:
    tiny = assets.tiny_model()
    q = JobQueue(tmp_path)
    s = spec("kld", "ik-tiny-kld-q8_0", tmp_path, gpus_per_run="auto")
    s.model["path"] = str(tiny)
    j = q.add(s)
    done = threading.Event()
    sched = Scheduler(tmp_path, nvml=Nvml(gpus(2, free=[100 * MIB, 100 * MIB])), parent_env={})
    t = threading.Thread(target=lambda: (sched.run(), done.set()))
    t.start()
    assert done.wait(30), "the scheduler must not wait for ever for memory that will never be free"
    got = q.get(j.id)
    assert got is not None and got.state.status == "failed" and got.state.pid is None
    assert "of GPU memory on 2 GPU(s)" in (got.state.reason or "") and "200.0 MiB free" in (got.state.reason or "")


def test_auto_job_gets_two_gpus_when_one_is_too_small(tmp_path: Path) -> None:
    tiny = assets.tiny_model()
    s = spec("kld", "ik-tiny-kld-q8_0", tmp_path, gpus_per_run="auto")
    m = run_memory(tiny, s.argv)
    free = m.total(2) // 2 + MIB  # two of them hold it, one does not
    assert free < m.total(1)
    s.model["path"] = str(tiny)
    q = JobQueue(tmp_path)
    j = q.add(s)
    Scheduler(tmp_path, nvml=Nvml(gpus(3, free=[free, free, 10 * MIB])), parent_env={}).run()
    got = q.get(j.id)
    assert got is not None and got.state.status == "done" and got.state.gpus == [0, 1]


def test_cpu_box_runs_slots_places_and_a_group_takes_several(tmp_path: Path) -> None:
    """No GPU: `slots` places for CPU jobs; a job asking for 2 takes 2 of the 3, so two such
    jobs never run at once, while a 1-place job runs beside one of them."""
    q = JobQueue(tmp_path)
    pairs = [q.add(spec("kld", "ik-tiny-kld-q8_0", tmp_path, delay=0.05, gpus_per_run=2)) for _ in range(2)]
    single = q.add(spec("kld", "ik-tiny-kld-q8_0", tmp_path, delay=0.05))
    Scheduler(tmp_path, slots=3, nvml=Nvml(FakeNvml([], init_error=LibraryNotFound)),
              parent_env={k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}).run()
    a, b, c = (q.get(j.id) for j in (*pairs, single))
    assert a is not None and b is not None and c is not None
    assert [x.state.status for x in (a, b, c)] == ["done"] * 3
    assert (a.state.gpus, b.state.gpus, c.state.gpus) == (None, None, None)  # no GPU to record
    assert (a.state.slot, c.state.slot, b.state.slot) == (0, 2, 0)  # the first place each held
    assert a.state.ended_at <= b.state.started_at  # type: ignore[operator]
    assert c.state.started_at < a.state.ended_at  # type: ignore[operator]


def test_a_run_left_by_a_dead_scheduler_keeps_its_gpus(tmp_path: Path) -> None:
    """The next scheduler adopts it holding the GPUs its state records: a queued job does not
    start on them while it still runs."""
    import subprocess

    import psutil

    q = JobQueue(tmp_path)
    orphan = q.add(spec("kld", "ik-tiny-kld-q8_0", tmp_path, delay=0.05))
    with open(orphan.stdout_path, "wb") as out, open(orphan.stderr_path, "wb") as err:
        child = subprocess.Popen(orphan.spec.argv, stdout=out, stderr=err, env={**os.environ, **orphan.spec.env},
                                 start_new_session=True)
    q.update(orphan.id, status="running", pid=child.pid, pid_started=psutil.Process(child.pid).create_time(),
             started_at=time.time(), gpus=[0, 1], slot=0)
    later = q.add(spec("kld", "ik-tiny-kld-q4_0", tmp_path))
    Scheduler(tmp_path, nvml=Nvml(gpus(2)), parent_env={}).run()
    child.wait()
    a, b = q.get(orphan.id), q.get(later.id)
    assert a is not None and b is not None and (a.state.status, b.state.status) == ("done", "done")
    assert b.state.started_at >= a.state.ended_at  # type: ignore[operator]
    assert b.state.gpus == [0]


def test_a_speed_run_never_overlaps_another_job(tmp_path: Path) -> None:
    """Two places for CPU jobs: the KLD jobs run two at once, the speed run (llama-bench's
    recorded jsonl, printed by a stand-in) runs with nothing beside it."""
    q = JobQueue(tmp_path)
    out = Path(__file__).resolve().parents[1] / "fixtures" / "bench" / "b0336" / "pp-tg-t1.out"
    first = [q.add(spec("kld", "ik-tiny-kld-q8_0", tmp_path, delay=0.05)) for _ in range(2)]
    speed = q.add(JobSpec(kind="speed", argv=["sh", "-c", f"sleep 0.5; cat '{out}'"],
                          model={"label": "m", "path": "/m/m.gguf", "size_bytes": 1000}, label="speed m"))
    last = [q.add(spec("kld", "ik-tiny-kld-q4_0", tmp_path, delay=0.05)) for _ in range(2)]
    Scheduler(tmp_path, slots=2, nvml=Nvml(FakeNvml([], init_error=LibraryNotFound)),
              parent_env={k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}).run()
    s = q.get(speed.id)
    others = [q.get(j.id) for j in (*first, *last)]
    assert s is not None and s.state.status == "done", s.state if s else None
    assert all(o is not None and o.state.status == "done" for o in others)
    for o in others:
        assert o.state.ended_at <= s.state.started_at or o.state.started_at >= s.state.ended_at  # type: ignore
    # the KLD jobs still share the two places
    a, b = (q.get(j.id) for j in first)
    assert a.state.started_at < b.state.ended_at and b.state.started_at < a.state.ended_at  # type: ignore[union-attr,operator]
