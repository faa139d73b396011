"""Pictures of schedules, drawn with matplotlib's Agg canvas (no display, no pyplot state)."""

from __future__ import annotations

from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .schedules import Schedule

_FORMATS = (".png", ".svg")


def plot_schedule(
    path: str | Path,
    *,
    lr: Schedule | None = None,
    momentum: Schedule | None = None,
    weight_decay: Schedule | None = None,
    num_steps: int | None = None,
    log_y: bool = False,
    title: str | None = None,
) -> Path:
    """Draw each given schedule against the optimizer step, one panel each, to PNG or SVG.

    `num_steps` defaults to the longest `total_steps` among the schedules; schedules without
    one (cyclic, step decays) need it. `log_y` puts the LR and weight-decay axes on a log scale.
    Returns the path written.
    """
    out = Path(path)
    if out.suffix.lower() not in _FORMATS:
        raise ValueError(f"path must end in .png or .svg, got {out.name!r}")
    panels = [(name, s) for name, s in
              (("learning rate", lr), ("momentum", momentum), ("weight decay", weight_decay))
              if s is not None]
    if not panels:
        raise ValueError("give at least one of lr, momentum, weight_decay to plot")
    if num_steps is None:
        lengths = [s.total_steps for _, s in panels if s.total_steps is not None]
        if not lengths:
            raise ValueError("these schedules have no total_steps: pass num_steps")
        num_steps = max(lengths)
    steps = range(num_steps)

    fig = Figure(figsize=(7, 2.4 * len(panels) + 0.6), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    for ax, (name, sched) in zip(axes, panels, strict=True):
        ax.plot(steps, sched.values(num_steps), color="tab:blue" if name != "momentum"
                else "tab:orange")
        ax.set_ylabel(name)
        ax.grid(True, alpha=0.3)
        if log_y and name != "momentum":
            ax.set_yscale("log")
    axes[-1].set_xlabel("optimizer step")
    if title:
        fig.suptitle(title)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    return out
