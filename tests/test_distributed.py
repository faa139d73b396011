"""Data parallelism under torchrun on gloo: 2 processes on this machine's CPU.

A hang would be the typical failure (ranks deciding apart wait for each other in the next
all-reduce), so collectives time out after 60 s and every launch after 300 s.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import typer
from launch import env, torchrun
from typer.testing import CliRunner

from disciplined import cli, distributed
from disciplined.errors import DisciplinedError
from disciplined.recipe import tune

WORKER = Path(__file__).with_name("ddp_worker.py")
# 2 processes with batch B against 1 process with batch 2B: the same samples in every step,
# the gradient averaged in another order. Measured: 7e-7 relative on the training losses
# over 60 steps; allowed 1e-4.
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def records(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """Rank 0 and rank 1 of a 2-process run with batch 32, and one process with batch 64."""
    out = tmp_path_factory.mktemp("ddp")
    torchrun(str(WORKER), str(out / "two"), "32")
    single = subprocess.run([sys.executable, str(WORKER), str(out / "one"), "64"],
                            capture_output=True, text=True, timeout=300, env=env())
    assert single.returncode == 0, single.stderr[-3000:]
    return {name: json.loads(path.read_text()) for name, path in (
        ("rank0", out / "two" / "rank0.json"), ("rank1", out / "two" / "rank1.json"),
        ("single", out / "one" / "rank0.json"))}


def test_both_ranks_agree_on_every_decision(records: dict[str, dict]) -> None:
    a, b = dict(records["rank0"]), dict(records["rank1"])
    assert (a.pop("rank"), b.pop("rank")) == (0, 1)
    assert a["world_size"] == 2
    assert a == b  # range test stop step and LR, every loss, the search's ranking
    # the range test stopped early on divergence, on the same step on both ranks
    assert a["range_test"]["stop"].startswith("diverged")
    assert a["range_test"]["steps"] < 80
    assert a["range_test"]["restored"]
    # rank 1's loss alone exploded at its 21st step; both ranks stopped right there (without
    # the all-reduced loss rank 0 would go on and the launch would time out)
    assert a["range_test"]["spiky_steps"] == 21


def test_two_processes_match_one_with_twice_the_batch(records: dict[str, dict]) -> None:
    two, one = records["rank0"], records["single"]
    assert two["range_test"]["total_batch_size"] == one["range_test"]["total_batch_size"] == 64
    assert two["range_test"]["steps"] == one["range_test"]["steps"]
    assert two["range_test"]["max_lr"] == pytest.approx(one["range_test"]["max_lr"],
                                                        rel=TOLERANCE)
    for key in ("train_loss", "val_loss", "val_metric"):
        np.testing.assert_allclose(two["train"][key], one["train"][key], rtol=TOLERANCE)
    assert two["train"]["weight_norm"] == pytest.approx(one["train"]["weight_norm"],
                                                        rel=TOLERANCE)
    assert two["search"]["decision"] == one["search"]["decision"]
    assert [r[0] for r in two["search"]["ranking"]] == [r[0] for r in one["search"]["ranking"]]


def test_tune_under_torchrun_writes_once_from_rank_0(tmp_path: Path) -> None:
    out = tmp_path / "study"
    done = torchrun("-m", "disciplined.cli", "tune", "digits", "--out", str(out),
                    "--budget-epochs", "2", "--stages", "range_test,lr,final", "--quiet")
    assert done.stdout.count("chosen hyper-parameters") == 1  # rank 1 prints nothing
    assert done.stdout.count("stage 1/") == 1  # nor its progress
    assert "total batch 128 (64 per process x 2 processes)" in done.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["data_parallel"] == {"world_size": 2, "batch_size_per_process": 64,
                                        "total_batch_size": 128}
    assert summary["final"]["val_metric"] > 0.5
    assert {p.name for p in out.iterdir()} >= {"study.db", "report.html", "model.pt",
                                                "train.py"}
    # steps count batches of the total batch: 1437 samples / 128 = 12 per epoch, and a short
    # run is never longer than the 24-step final training (here: exactly as long)
    import sqlite3

    with sqlite3.connect(out / "study.db") as db:
        steps = [json.loads(r[0])["steps"] for r in db.execute(
            "SELECT result FROM trials WHERE stage = 'lr'")]
    assert len(steps) >= 2 and set(steps) == {24}
    # the study was tuned for a total batch of 128: one process may not resume it
    with pytest.raises(DisciplinedError, match="other settings"):
        tune("digits", out=out, budget_epochs=2, resume=True)


def test_find_lr_under_torchrun_records_the_total_batch(tmp_path: Path) -> None:
    done = torchrun("-m", "disciplined.cli", "find-lr", "digits", "--out", str(tmp_path),
                    "--batch-size", "16", "--quiet")
    result = json.loads((tmp_path / "lr_range.json").read_text())
    assert (result["batch_size"], result["world_size"], result["total_batch_size"]) == \
        (16, 2, 32)
    assert result["max_lr"] is not None
    assert "total batch 32" in done.stdout
    assert done.stdout.count("suggested: max_lr") == 1


def test_outside_torchrun_the_world_is_one_process() -> None:
    team = distributed.init_from_env()
    assert (team.rank, team.size, team.is_main) == (0, 1, True)
    assert distributed.mean([1.5, 2.0]) == [1.5, 2.0]
    assert distributed.any_rank(False) is False
    assert distributed.from_main({"a": 1}) == {"a": 1}


def test_train_under_torchrun_reports_the_total_batch(tmp_path: Path) -> None:
    done = torchrun("-m", "disciplined.cli", "train", "digits", "--max-lr", "0.2",
                    "--epochs", "2", "--batch-size", "32", "--out", str(tmp_path), "--quiet")
    assert done.stdout.count("final val accuracy") == 1
    assert "total batch 64 (32 per process x 2 processes)" in done.stdout
    history = json.loads((tmp_path / "history.json").read_text())
    # 1438 training samples in global batches of 64: 23 steps an epoch (22 full, and 30 left)
    assert len(history["step"]) == 46
    assert history["val_metric"][-1] > 0.8


def test_search_refuses_to_run_under_torchrun(monkeypatch: pytest.MonkeyPatch,
                                              tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from disciplined.cli import app

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    result = CliRunner().invoke(app, ["search", "momentum", "digits", "--max-lr", "0.1",
                                      "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "not under torchrun" in result.output
    assert not (tmp_path / "search.json").exists()


def test_ray_and_torchrun_do_not_mix(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from disciplined.cli import app

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    result = CliRunner().invoke(app, ["tune", "digits", "--executor", "ray",
                                      "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "cannot run under torchrun" in result.output


def test_more_local_ranks_than_gpus_is_one_clear_error(monkeypatch: pytest.MonkeyPatch,
                                                       tmp_path: Path):
    # torchrun --nproc_per_node=2 on a machine with one GPU: CUDA's "invalid device ordinal"
    # otherwise, from deep inside the set-up
    for name, value in {"WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(DisciplinedError, match=r"local rank 1, but this machine has 1 GPU"):
        distributed.init_from_env()
    # the command line says it in one line, exit code 2
    result = CliRunner().invoke(cli.app, ["find-lr", "digits", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "--nproc_per_node at most that many" in result.output


def test_a_timeout_that_is_not_a_number_is_named(monkeypatch: pytest.MonkeyPatch):
    for name, value in {"WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "0",
                        "DISCIPLINED_DIST_TIMEOUT": "soon"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(DisciplinedError, match="DISCIPLINED_DIST_TIMEOUT must be a number of "
                                               "seconds, got 'soon'"):
        distributed.init_from_env()


@pytest.mark.parametrize("failed", [False, True])
def test_a_rank_leaving_on_its_own_error_does_not_wait_for_the_others(
        monkeypatch: pytest.MonkeyPatch, failed: bool):
    # the others may be in a gradient all-reduce that this rank will never join: a barrier
    # at exit would hang the run for DISCIPLINED_DIST_TIMEOUT
    calls: list[str] = []
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.distributed, "barrier", lambda: calls.append("barrier"))
    monkeypatch.setattr(torch.distributed, "destroy_process_group",
                        lambda: calls.append("destroy"))
    monkeypatch.setattr(distributed, "_failing", False)
    if failed:  # as the command line's one-line error does
        with pytest.raises(typer.Exit):
            cli._fail(DisciplinedError("a bad label"))
    distributed._leave()
    assert calls == (["destroy"] if failed else ["barrier", "destroy"])
