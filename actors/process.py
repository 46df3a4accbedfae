"""What every actor sets up in its process before it loads a model: torch threads and, on request, deterministic
kernels."""

from __future__ import annotations

import math
import os
import socket
import sys
import time
from pathlib import Path

import torch

from mstar_ray.core.determinism import use_deterministic_kernels


def configure_process(threads: int, reserved_cpus: float, deterministic: bool, log_file: str | None = None) -> None:
    """Use `threads` intra-op threads (0: the actor's CPU reservation rounded up); `deterministic` is
    `run.deterministic`; with `log_file`, the process's output goes there rather than to the driver's console."""
    if log_file is not None:
        send_output_to(log_file)
    torch.set_num_threads(threads or max(1, math.ceil(reserved_cpus)))
    if deterministic:
        use_deterministic_kernels()


def send_output_to(log_file: str) -> bool:
    """Point this process's stdout and stderr (file descriptors 1 and 2, so libraries' and C++ output too) at the
    end of `log_file`, after a line that says which process starts writing there (a restarted actor appends).
    Where the file cannot be written (a node without the run directory), the output stays in Ray's own logs and
    this returns False."""
    try:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    except OSError as err:
        print(f"mstar: cannot write {log_file} ({err}); this actor's output stays in Ray's logs", file=sys.stderr)
        return False
    sys.stdout.flush()
    sys.stderr.flush()
    os.write(
        fd, f"--- pid {os.getpid()} on {socket.gethostname()} from {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode()
    )
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    return True
