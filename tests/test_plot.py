import pytest

from disciplined import schedules as S
from disciplined.plot import plot_schedule


def test_png_and_svg_are_written_with_labelled_axes(tmp_path):
    lr, mom = S.one_cycle(200, 1.0), S.one_cycle_momentum(200)
    png = plot_schedule(tmp_path / "s.png", lr=lr, momentum=mom, log_y=True)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    svg = plot_schedule(tmp_path / "sub" / "s.svg", lr=lr, momentum=mom, title="1cycle")
    text = svg.read_text()
    for label in ("learning rate", "momentum", "optimizer step", "1cycle"):
        assert label in text


def test_endless_schedules_need_num_steps(tmp_path):
    with pytest.raises(ValueError, match="pass num_steps"):
        plot_schedule(tmp_path / "c.png", lr=S.triangular(0.1, 1.0, 20))
    assert plot_schedule(tmp_path / "c.png", lr=S.triangular(0.1, 1.0, 20), num_steps=100)


def test_unknown_format_and_empty_plot_are_refused(tmp_path):
    with pytest.raises(ValueError, match=r"\.png or \.svg"):
        plot_schedule(tmp_path / "s.jpg", lr=S.constant(0.1), num_steps=5)
    with pytest.raises(ValueError, match="at least one"):
        plot_schedule(tmp_path / "s.png")
