"""Data parallelism under `torchrun`: who this process is, and the few collectives that keep
every rank making the same decision.

Each rank trains on its own slice of every global batch (per-process batch x world size =
the total batch the paper speaks of). Anything that decides what happens next (a range test
stopping, a time budget running out, a measured speed sizing a run) is agreed on across ranks
first: ranks that decide apart wait for each other forever in the next gradient all-reduce.
Outside torchrun every function here is the identity and costs nothing.
"""

from __future__ import annotations

import atexit
import dataclasses
import datetime
import os
import sys
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from .errors import DisciplinedError

T = TypeVar("T")
# Seconds a collective may wait for the other ranks before the run fails (torch's default
# is 30 minutes for gloo); DISCIPLINED_DIST_TIMEOUT overrides it, tests set a short one.
DEFAULT_TIMEOUT = 1800.0


@dataclasses.dataclass(frozen=True)
class World:
    """This process's rank among `size` data-parallel processes."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes files and prints."""
        return self.rank == 0


def world() -> World:
    """The process group this process belongs to (a world of one outside torchrun)."""
    if dist.is_available() and dist.is_initialized():
        return World(dist.get_rank(), dist.get_world_size(),
                     int(os.environ.get("LOCAL_RANK", dist.get_rank())))
    return World()


def launched() -> bool:
    """Whether torchrun (or a like launcher) started this process as one of several."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ


def init_from_env(device: str | None = None) -> World:
    """Join the process group torchrun describes: nccl when this rank has a GPU (and
    `device` does not say cpu), gloo otherwise. A no-op outside torchrun or when done."""
    if not launched() or (dist.is_available() and dist.is_initialized()):
        return world()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available() and (device is None or device.startswith("cuda"))
    if cuda:
        if local_rank >= torch.cuda.device_count():
            raise DisciplinedError(
                f"torchrun started local rank {local_rank}, but this machine has "
                f"{torch.cuda.device_count()} GPU(s) for its processes: give "
                "--nproc_per_node at most that many, or hide the GPUs to run on the CPU "
                "(CUDA_VISIBLE_DEVICES=\"\")")
        torch.cuda.set_device(local_rank)
    given = os.environ.get("DISCIPLINED_DIST_TIMEOUT", str(DEFAULT_TIMEOUT))
    try:
        seconds = float(given)
    except ValueError:
        raise DisciplinedError(f"DISCIPLINED_DIST_TIMEOUT must be a number of seconds, got "
                               f"{given!r}") from None
    dist.init_process_group("nccl" if cuda else "gloo",
                            timeout=datetime.timedelta(seconds=seconds))
    leave_at_exit()
    return world()


def leave_at_exit() -> None:
    """Tear this process's group down at exit, whoever made it, while the interpreter is still
    whole: a gloo group left alive can abort the process (SIGABRT, "terminate called without
    an active exception") as Python finalizes (pytorch#179291). Lightning registers its own
    teardown for nccl only, and the Hugging Face Trainer none. Registering again is a no-op."""
    if dist.is_available() and dist.is_initialized():
        atexit.unregister(_leave)
        atexit.register(_leave)


# Set when this process ends on an error it has reported itself (the command line's one-line
# errors and Ctrl-C, which exit through SystemExit and leave no trace in sys.last_value).
_failing = False


def failing() -> None:
    """Say that this process is ending on an error: at exit it tears its group down without
    waiting for the other ranks, which may be waiting in a collective of their own and
    would never arrive (the run would hang for DISCIPLINED_DIST_TIMEOUT instead of
    failing, and torchrun could not stop the other ranks)."""
    global _failing
    _failing = True


def _leave() -> None:
    """At exit: wait for the other ranks (rank 0 may still be writing), then tear the group
    down. After an uncaught exception, or one `failing` was told of, the other ranks may
    never arrive: no wait then."""
    if not dist.is_initialized():
        return
    try:  # sys.last_value: set when an uncaught exception was printed
        if not (_failing or hasattr(sys, "last_value")):
            dist.barrier()
    finally:
        dist.destroy_process_group()


def _device() -> torch.device:
    """Where collectives' tensors live: the current GPU under nccl, else the CPU."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def mean(values: list[float]) -> list[float]:
    """The mean of each value over ranks (float64, one all-reduce)."""
    if world().size == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=_device())
    dist.all_reduce(t)
    return (t / world().size).tolist()


def total(values: list[float]) -> list[float]:
    """The sum of each value over ranks (float64, one all-reduce)."""
    if world().size == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=_device())
    dist.all_reduce(t)
    return list(t.tolist())


def any_rank(flag: bool) -> bool:
    """True on every rank when it is true on one (a stop any rank calls stops them all)."""
    if world().size == 1:
        return flag
    return total([1.0 if flag else 0.0])[0] > 0


def from_main(value: T) -> T:
    """Rank 0's `value` on every rank (any picklable object)."""
    if world().size == 1:
        return value
    box: list[Any] = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def wrap(model: torch.nn.Module) -> torch.nn.Module:
    """`model` in DistributedDataParallel when there are several ranks, else `model`."""
    if world().size == 1:
        return model
    from torch.nn.parallel import DistributedDataParallel

    first = next(iter(model.parameters()), None)
    if first is not None and first.device.type == "cuda":
        return DistributedDataParallel(model, device_ids=[first.device.index])
    return DistributedDataParallel(model)
