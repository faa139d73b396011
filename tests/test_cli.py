import json

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
