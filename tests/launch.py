"""Launching test workers under torchrun: 2 gloo processes on this machine's CPU, collectives
timing out after 60 s and a launch after 300 s (a hang is how ranks that decide apart fail)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def env() -> dict[str, str]:
    # no GPU is visible, so that the processes join on gloo, on the CPU, on a GPU machine too
    return {**os.environ, "DISCIPLINED_DIST_TIMEOUT": "60", "OMP_NUM_THREADS": "1",
            "CUDA_VISIBLE_DEVICES": ""}


def torchrun(*args: str, nproc: int = 2) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}",
               "--master_addr=127.0.0.1", f"--master_port={free_port()}", *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env())
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done
