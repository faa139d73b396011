import itertools
import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from disciplined.cli import app

runner = CliRunner()


def test_schedule_prints_json_and_writes_a_plot(tmp_path):
    out = tmp_path / "lr.png"
    result = runner.invoke(app, ["schedule", "one_cycle", "total_steps=100", "max_lr=0.5",
                                 "anneal=cos", "--out", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output[: result.output.rindex("}") + 1])
    assert data["kind"] == "one_cycle" and data["anneal"] == "cos"
    assert out.exists()


def test_bad_arguments_are_one_line_errors_not_tracebacks():
    result = runner.invoke(app, ["schedule", "one_cycle", "total_steps=1", "max_lr=0.5"])
    assert result.exit_code == 2
    assert "total_steps must be an int >= 2" in result.output
    assert "Traceback" not in result.output
    result = runner.invoke(app, ["schedule", "nope"])
    assert result.exit_code == 2 and "unknown schedule 'nope'" in result.output


def test_demo_trains_and_writes_the_schedule_plot(tmp_path):
    result = runner.invoke(app, ["demo", "--out", str(tmp_path), "--epochs", "3", "--quiet"])
    assert result.exit_code == 0, result.output
    assert "epoch  3/3" in result.output
    assert "final validation accuracy" in result.output
    assert (tmp_path / "schedule.png").exists()




def test_a_user_task_file_runs_through_find_lr_and_train(tmp_path, digits_task_file):
    task = digits_task_file
    out = tmp_path / "lr"
    result = runner.invoke(app, ["find-lr", str(task), "--out", str(out), "--val",
                                 "--start-lr", "1e-4", "--steps", "60", "--quiet"])
    assert result.exit_code == 0, result.output
    assert "Smith (default)" in result.output and "fastai valley" in result.output
    data = json.loads((out / "lr_range.json").read_text())
    assert data["max_lr"] > 0 and data["min_lr"] == data["max_lr"] / 10
    assert data["weight_decay"] == 1e-3 and "weight decay 0.001" in result.output
    assert (out / "lr_range.png").exists()

    out = tmp_path / "train"
    result = runner.invoke(app, ["train", str(task), "--max-lr", str(data["max_lr"]),
                                 "--policy", "one-cycle", "--epochs", "3", "--out", str(out),
                                 "--quiet"])
    assert result.exit_code == 0, result.output
    history = json.loads((out / "history.json").read_text())
    assert history["val_metric"][-1] > 0.8
    assert (out / "curves.png").exists() and (out / "model.pt").exists()


def _rises(values):
    return any(b > a for a, b in itertools.pairwise(values))


LR_SHAPES = {  # what each policy's learning rate does over one epoch of 23 steps at max 0.1
    "one-cycle-cos": lambda lr: lr[0] == pytest.approx(0.01) and 0.095 < max(lr) <= 0.1,
    "clr": lambda lr: lr[0] == pytest.approx(0.025) and max(lr) == pytest.approx(0.1),
    "sgdr": lambda lr: lr[0] == pytest.approx(0.1) and _rises(lr),
    "step": lambda lr: sorted({round(v, 6) for v in lr}) == [0.001, 0.01, 0.1],
    "inv": lambda lr: lr[0] == pytest.approx(0.1) and not _rises(lr) and lr[-1] < lr[0],
    "constant": lambda lr: set(lr) == {0.1},
}


@pytest.mark.parametrize("policy", sorted(LR_SHAPES))
def test_every_policy_trains_with_its_own_lr_shape(tmp_path, policy):
    result = runner.invoke(app, ["train", "digits", "--max-lr", "0.1", "--policy", policy,
                                 "--epochs", "1", "--out", str(tmp_path), "--quiet"])
    assert result.exit_code == 0, result.output
    assert f"{policy}: 1 epoch in" in result.output
    history = json.loads((tmp_path / "history.json").read_text())
    assert len(history["lr"]) == 23  # ceil(1438 / 64)
    assert LR_SHAPES[policy](history["lr"]), history["lr"]
    assert history["val_metric"][-1] > 0.1  # it trained: better than chance on ten digits


def test_a_broken_task_file_is_one_clear_line(tmp_path):
    task = tmp_path / "broken.py"
    task.write_text("import torch\n")
    result = runner.invoke(app, ["find-lr", str(task), "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert str(task) in result.output and "build_model()" in result.output
    assert "Traceback" not in result.output
    result = runner.invoke(app, ["train", "digits", "--max-lr", "0.1", "--policy", "magic"])
    assert result.exit_code == 2 and "'magic' is not one of" in result.output


def test_search_commands_write_json_and_png_and_print_the_ranking(tmp_path):
    result = runner.invoke(app, ["search", "momentum", "digits", "--max-lr", "0.3",
                                 "--epochs", "2", "--out", str(tmp_path / "m")])
    assert result.exit_code == 0, result.output
    assert "momentum 0.99" in result.output and "decision:" in result.output
    assert (tmp_path / "m" / "search.json").exists() and (tmp_path / "m" / "search.png").exists()
    result = runner.invoke(app, ["search", "batch-size", "digits", "--sizes", "64,99999",
                                 "--seconds", "1", "--out", str(tmp_path / "b")])
    assert result.exit_code == 0, result.output
    assert "skipped" in result.output


def test_interpolate_command(tmp_path):
    for seed in (0, 1):
        result = runner.invoke(app, ["train", "digits", "--max-lr", "0.3", "--epochs", "2",
                                     "--seed", str(seed), "--out", str(tmp_path / str(seed)),
                                     "--quiet"])
        assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["interpolate", str(tmp_path / "0" / "model.pt"),
                                 str(tmp_path / "1" / "model.pt"), "digits", "--points", "5",
                                 "--out", str(tmp_path / "i")])
    assert result.exit_code == 0, result.output
    assert "alpha +0.50" in result.output
    assert (tmp_path / "i" / "interpolation.json").exists()


def test_find_lr_says_when_it_cannot_tell_instead_of_suggesting(tmp_path, nothing_task_file):
    task = nothing_task_file
    result = runner.invoke(app, ["find-lr", str(task), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "cannot tell" in result.output and "suggested:" not in result.output
    # and what tune does instead: a longer sweep, then short runs
    assert "sweeps 400 steps where 100 cannot tell, then tries max LRs around" in \
        " ".join(result.output.split())
    saved = json.loads((tmp_path / "out" / "lr_range.json").read_text())
    assert saved["reading"]["conclusive"] is False


@pytest.mark.parametrize("command", [
    ["tune", "digits"], ["train", "digits", "--max-lr", "0.1"], ["find-lr", "digits"],
    ["search", "momentum", "digits"], ["search", "wd", "digits"],
    ["interpolate", "a.pt", "b.pt", "digits"], ["demo"],
])
def test_an_out_that_is_a_file_is_refused_before_any_work_and_left_alone(tmp_path, command):
    taken = tmp_path / "results.txt"
    taken.write_text("keep me")
    result = runner.invoke(app, [*command, "--out", str(taken)])
    assert result.exit_code == 2, result.output
    assert "is a file, not a folder" in result.output
    assert "Traceback" not in result.output
    assert taken.read_text() == "keep me"
    # a folder under that file is refused the same way
    result = runner.invoke(app, [*command, "--out", str(taken / "sub")])
    assert result.exit_code == 2 and "is a file, not a folder" in result.output


NAN_LOSS = """
import torch

def build_model():
    return torch.nn.Linear(4, 3)

def build_datasets():
    x = torch.randn(2200, 4)
    y = torch.randint(0, 3, (2200,))
    ds = torch.utils.data.TensorDataset
    return ds(x[:2000], y[:2000]), ds(x[2000:], y[2000:])

def loss_fn(out, y):
    return torch.nn.functional.cross_entropy(out, y) * float("nan")
"""


def test_a_loss_that_is_nan_is_said_plainly_by_train_find_lr_and_tune(tmp_path):
    task = tmp_path / "nan_task.py"
    task.write_text(NAN_LOSS)
    trained = runner.invoke(app, ["train", str(task), "--max-lr", "0.1", "--epochs", "1",
                                  "--out", str(tmp_path / "train")])
    assert trained.exit_code == 1 and "diverged:" in trained.output
    assert (tmp_path / "train" / "history.json").exists()  # what ran is kept
    found = runner.invoke(app, ["find-lr", str(task), "--out", str(tmp_path / "lr")])
    assert found.exit_code == 0, found.output
    assert "cannot tell" in found.output and "check the data and the loss" in found.output
    tuned = runner.invoke(app, ["tune", str(task), "--out", str(tmp_path / "tune")])
    assert tuned.exit_code == 2 and "could not train at all" in tuned.output
    assert "Traceback" not in tuned.output


@pytest.mark.parametrize(("args", "message"), [
    (["find-lr", "digits", "--momentum", "2,3"], "must lie in [0, 1)"),
    (["train", "digits", "--max-lr", "0.1", "--momentum", "0.9,-0.1"], "must lie in [0, 1)"),
    (["find-lr", "digits", "--batch-size", "0"], "--batch-size"),
    (["search", "batch-size", "digits", "--seconds", "-1"], "seconds must be > 0"),
])
def test_numbers_out_of_range_are_refused_not_replaced(tmp_path, args, message):
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not (tmp_path / "out").exists()  # nothing was computed or written


EXIT_PROBE = """
import atexit, gc, pathlib, sys
marker = pathlib.Path(sys.argv[1])
class Cycle:
    def __del__(self):
        marker.write_text("finalized")
# registered before the command's own handler, so it runs after it
atexit.register(lambda: print("frozen", gc.get_freeze_count() > 0))
gc.disable()  # the cycle stays garbage until exit
cycle = Cycle()
cycle.me = cycle
del cycle
from disciplined.cli import main
sys.argv = ["disciplined", "--help"]
main()
"""


def test_the_command_exits_without_walking_its_objects_yet_finalizes_its_garbage(tmp_path):
    marker = tmp_path / "marker"
    done = subprocess.run([sys.executable, "-c", EXIT_PROBE, str(marker)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.rstrip().endswith("frozen True")  # the exit's collections skip them
    assert marker.read_text() == "finalized"  # garbage at exit still had its finalizer run


def test_train_trains_the_task_files_own_epochs_unless_told(digits_task_file, tmp_path):
    digits_task_file.write_text(digits_task_file.read_text() + "epochs = 2\n")
    own = runner.invoke(app, ["train", str(digits_task_file), "--max-lr", "0.1", "--quiet",
                              "--out", str(tmp_path / "own")])
    assert own.exit_code == 0, own.output
    assert json.loads((tmp_path / "own" / "history.json").read_text())["epochs"] == 2
    told = runner.invoke(app, ["train", str(digits_task_file), "--max-lr", "0.1", "--quiet",
                               "--epochs", "1", "--out", str(tmp_path / "told")])
    assert told.exit_code == 0, told.output
    assert json.loads((tmp_path / "told" / "history.json").read_text())["epochs"] == 1
