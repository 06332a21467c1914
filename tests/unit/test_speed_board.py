"""Speed records on the board: joined to the KLD rows of the same file (path, size, mtime),
the latest finished one winning; their columns in exports; and the service's choice of which
speed jobs to queue and in which order."""

from __future__ import annotations

from qtui.core.jobs.queue import JobSpec
from qtui.core.results.export import export, json_rows
from qtui.core.results.leaderboard import board_columns, build_rows, format_cell, sort_rows
from qtui.core.results.setups import group_setups
from qtui.core.results.store import ResultRecord
from qtui.core.showdown.service import in_order, select_speed


def model(name: str, mtime: float = 100.0) -> dict[str, object]:
    return {"path": f"/m/{name}.gguf", "label": name, "quant": name, "size_bytes": 2**30, "mtime": mtime}


def kld(i: str, name: str, value: float) -> ResultRecord:
    return ResultRecord(id=i, kind="kld", status="done", model=model(name), ctx=512, chunks=10,
                        stats={"kld_mean": value, "kld_mean_err": 0.001}, base={"file": "/b.kld"})


def speed(i: str, name: str, pp: float, tg: float, *, ended: float = 1.0, status: str = "done",
          mtime: float = 100.0) -> ResultRecord:
    return ResultRecord(id=i, kind="speed", status=status, model=model(name, mtime),  # type: ignore[arg-type]
                        stats={"pp_ts": pp, "tg_ts": tg} if status == "done" else {}, ended_at=ended,
                        llama={"bench_args": ["-o", "jsonl", "-p", "512", "-n", "128"]})


def test_rows_take_the_latest_finished_speed_of_their_own_file() -> None:
    records = [kld("k1", "Q4_K_M", 0.01), kld("k2", "Q8_0", 0.001),
               speed("s-old", "Q4_K_M", 100.0, 10.0, ended=1.0), speed("s-new", "Q4_K_M", 2345.6, 20.25, ended=2.0),
               speed("s-failed", "Q4_K_M", 0, 0, ended=3.0, status="failed"),
               speed("s-other-file", "Q8_0", 9.0, 9.0, mtime=5.0)]  # same path, another file (rewritten since)
    rows = {r.id: r for r in build_rows(records)}
    assert (rows["k1"].pp_ts, rows["k1"].tg_ts, rows["k1"].speed_id) == (2345.6, 20.25, "s-new")
    assert (rows["k2"].pp_ts, rows["k2"].tg_ts) == (None, None)
    assert [format_cell("pp_ts", rows[k]) for k in ("k1", "k2")] == ["2346", ""]  # empty, not "?"
    assert format_cell("tg_ts", rows["k1"]) == "20.2"
    assert [r.id for r in sort_rows(rows.values(), "tg_ts", reverse=True)] == ["k1", "k2"]
    titles = [c.title for c in board_columns(list(rows.values()))]
    assert titles[titles.index("BPW") + 1:titles.index("BPW") + 3] == ["pp t/s", "tg t/s"]
    assert "pp t/s" not in [c.title for c in board_columns(build_rows(records[:2]))]


def test_setup_groups_carry_their_files_speeds_and_exports_show_them() -> None:
    records = [kld("k1", "Q4_K_M", 0.01), kld("k2", "Q8_0", 0.001), speed("s1", "Q4_K_M", 500.0, 50.0),
               speed("s-elsewhere", "IQ2_XS", 1.0, 1.0)]
    (group,) = group_setups(records)
    assert [r.id for r in group.speed] == ["s1"] and group.ranked == 2 and group.unranked == 0
    rows = build_rows(group.board)
    assert {r["id"]: (r["pp_ts"], r["tg_ts"]) for r in json_rows(rows)} == {"k1": (500.0, 50.0), "k2": (None, None)}
    csv_lines = export("csv", rows, group.board).splitlines()
    assert csv_lines[0].endswith(",pp_ts,tg_ts")
    assert sorted(line.rsplit(",", 2)[1:] for line in csv_lines[1:]) == [["", ""], ["500.0", "50.0"]]
    md = export("md", rows, group.board)
    assert "| BPW | pp t/s | tg t/s |" in md and "tokens per second" in md
    assert '"id": "s1"' in export("json", rows, group.board)  # the speed record travels with its row


def spec(kind: str, name: str, **kw: object) -> JobSpec:
    llama = {"bench_args": ["-o", "jsonl", "-p", "512", "-n", "128"]} if kind == "speed" else {}
    return JobSpec(kind=kind, argv=["x"], model=model(name), llama=llama, label=f"{kind} {name}", **kw)  # type: ignore[arg-type]


def test_speed_jobs_follow_their_kld_job_and_are_not_measured_twice() -> None:
    base = spec("base", "BF16")
    klds = [spec("kld", "Q8_0"), spec("kld", "Q4_K_M")]
    speeds = [spec("speed", "Q4_K_M"), spec("speed", "Q8_0"), spec("speed", "IQ2_XS")]
    ordered = in_order([base, *klds], speeds)
    assert [s.label for s in ordered] == ["base BF16", "kld Q8_0", "speed Q8_0", "kld Q4_K_M", "speed Q4_K_M",
                                          "speed IQ2_XS"]
    assert [s.seq for s in ordered] == sorted(s.seq for s in ordered)  # the queue runs in this order
    keep, skipped = select_speed([*speeds, spec("speed", "Q8_0")], [], [speed("s", "Q4_K_M", 1.0, 1.0)], again=False)
    assert [s.label for s in keep] == ["speed Q8_0", "speed IQ2_XS"]
    assert [s.text for s in skipped] == [
        "skipped the speed of Q4_K_M.gguf: already measured with these llama-bench arguments",
        "skipped the speed of Q8_0.gguf: named more than once"]
    other_args = spec("speed", "Q4_K_M")
    other_args.llama["bench_args"] = ["-o", "jsonl", "-p", "1024"]
    assert select_speed([other_args], [], [speed("s", "Q4_K_M", 1.0, 1.0)], again=False)[0] == [other_args]
    assert len(select_speed(speeds, [], [speed("s", "Q4_K_M", 1.0, 1.0)], again=True)[0]) == 3


def test_results_frame_carries_speeds_on_speed_and_kld_rows() -> None:
    from qtui.core.results.table import results_frame

    records = [kld("k1", "Q4_K_M", 0.01), kld("k2", "Q8_0", 0.001),
               speed("s-old", "Q4_K_M", 100.0, 10.0, ended=1.0), speed("s-new", "Q4_K_M", 2345.6, 20.25, ended=2.0)]
    frame = results_frame(records).set_index("id")
    assert (frame.loc["k1", "pp_ts"], frame.loc["k1", "tg_ts"]) == (2345.6, 20.25)
    assert (frame.loc["s-old", "pp_ts"], frame.loc["s-old", "kind"]) == (100.0, "speed")
    assert frame["pp_ts"].isna().loc["k2"] and str(frame["tg_ts"].dtype) == "float64"
    assert frame.loc["k1", "score"] == frame.loc["k1", "score"]  # speed records take no part in the ranking
