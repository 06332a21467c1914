"""--base-args on the real llama-perplexity: the base run takes its own arguments (here another
thread count, as an offload flag would be), the KLD runs keep theirs, the results are the real
ones, and a later run without base args reuses the same cached base file."""

from __future__ import annotations

from qtui.core.jobs.queue import JobQueue
from qtui.core.results.store import ResultStore
from tests.helpers import flag
from tests.integration.conftest import qtui


def test_base_args_run_the_base_with_its_own_arguments(env, tiny_model, tiny_ladder, corpus, tmp_path) -> None:
    common = ("run", "--base", str(tiny_model), "--corpus", str(corpus), "-c", "128", "--chunks", "4")
    res = qtui(env, *common, "--base-args", "-t 1", str(tiny_ladder["Q8_0"]), "--", "-t", "2")
    assert res.returncode == 0, res.stdout + res.stderr
    data = tmp_path / "data"
    jobs = JobQueue(data).jobs()
    (base,) = [j for j in jobs if j.spec.kind == "base"]
    (kld,) = [j for j in jobs if j.spec.kind == "kld"]
    assert flag(list(base.spec.argv), "-t") == "1" and flag(list(kld.spec.argv), "-t") == "2"
    assert base.state.status == "done" and kld.state.status == "done"
    records = [r for r in ResultStore(data).load().records if r.kind == "kld"]
    assert len(records) == 1 and records[0].status == "done" and records[0].stats["kld_mean"] >= 0
    # the base file is keyed by what it holds, not by how it ran: reused without base args
    res = qtui(env, *common, str(tiny_ladder["Q4_0"]), "--", "-t", "2")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "reusing the base" in res.stdout and [j.spec.kind for j in JobQueue(data).jobs()].count("base") == 1
