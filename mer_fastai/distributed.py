"""One training over several processes (GPUs, or CPU processes with gloo) with fastai and Accelerate.

`accelerate launch --multi_gpu --num_processes N -m mer_fastai train ...` (or `mer-fastai train
--distributed`) starts N copies of the command. Each one builds the same learner; rank 0 alone runs
lr_find and hands the LR to the others; the fit is fastai's `distrib_ctx` (DistributedDataParallel,
each process a share of every batch, `--bs` per process); rank 0 alone writes the run folder.
Without a GPU the processes train on the CPU over gloo, which is how the tests run it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import torch

from .errors import MerError
from .progress import console

T = TypeVar("T")
INSTALL_HINT = "Accelerate is not installed; pip install 'mer-fastai[distributed]'"


def world_size() -> int:
    """How many processes train together (1 unless started by a distributed launcher)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    """This process's index among them (0: the one that writes)."""
    return int(os.environ.get("RANK", "0"))


def is_distributed() -> bool:
    return world_size() > 1


def is_main_process() -> bool:
    return rank() == 0


def init_distributed() -> None:
    """In a launched process: take this rank's GPU and join the process group (gloo without GPUs)."""
    if not is_distributed():
        if os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true") and "MASTER_ADDR" in os.environ:
            console.print(
                "[yellow]warning:[/] `accelerate launch --cpu` started a single process (Accelerate needs "
                "MPI for several CPU processes); use `accelerate launch --multi_gpu --num_processes N` or "
                "`mer-fastai train --distributed`, which train on the CPU when no GPU is present"
            )
        return
    try:
        from accelerate import PartialState
    except ImportError as exc:
        raise MerError(INSTALL_HINT) from exc
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    PartialState(cpu=not cuda)


def main_process_value(compute: Callable[[], T]) -> T:
    """`compute()` on rank 0 alone (e.g. lr_find, which writes files); its result goes to every process."""
    if not is_distributed():
        return compute()
    message: list = [None]
    if is_main_process():
        try:
            message = [(compute(), None)]
        except Exception as exc:  # the other ranks must not wait for a value that never comes
            message = [(None, exc)]
    torch.distributed.broadcast_object_list(message, src=0)
    value, error = message[0]
    if error is not None:
        raise error
    return value


def _broadcast(self, values: list[int], src: int) -> list[int]:
    """fastai's `DistributedDL._broadcast` on the process group's device (fastai's own assumes CUDA)."""
    device = "cuda" if torch.distributed.get_backend() == "nccl" else "cpu"
    tensor = torch.tensor(values, dtype=torch.long, device=device)
    torch.distributed.broadcast(tensor, src)
    return tensor.cpu().tolist()


@contextmanager
def distributed_fit(learn) -> Iterator[None]:
    """Fit `learn` data-parallel over all processes (fastai's `distrib_ctx`); a no-op in a single process.

    BatchNorm layers stay per process (statistics broadcast from rank 0 by DDP), so the model keeps its
    plain layers and freeze mode's frozen statistics. Only rank 0 shows progress.
    """
    if not is_distributed():
        yield
        return
    from fastai.callback.progress import ProgressCallback
    from fastai.distributed import DistributedDL

    from .callbacks import RichProgress

    DistributedDL._broadcast = _broadcast
    hidden = [] if is_main_process() else [cb for cb in learn.cbs if isinstance(cb, RichProgress)]
    learn.remove_cbs(hidden)
    with learn.distrib_ctx(sync_bn=False):
        yield
    learn.remove_cbs([cb for cb in learn.cbs if isinstance(cb, ProgressCallback)])  # re-added off rank 0
    learn.add_cbs(hidden)
    torch.distributed.barrier()  # every process has loaded the best epoch before rank 0 cleans up


def launch_command(argv: list[str], processes: int | None) -> list[str]:
    """The `accelerate launch` command that reruns `mer-fastai ARGV` in `processes` processes."""
    count = processes or torch.cuda.device_count() or 2
    if count < 2:
        raise MerError(f"--distributed needs at least 2 processes (got {count}); pass --processes N")
    # `--multi_gpu` is Accelerate's torchrun launcher; without GPUs the processes train on the CPU
    # (`--cpu` would start a single process unless MPI is set up).
    return [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(count),
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "mer_fastai", *argv,
    ]  # fmt: skip


def relaunch(argv: list[str], processes: int | None) -> int:
    """Run `mer-fastai ARGV` under `accelerate launch`; returns its exit status."""
    try:
        import accelerate  # noqa: F401
    except ImportError as exc:
        raise MerError(INSTALL_HINT) from exc
    command = launch_command(argv, processes)
    console.print("launching: accelerate launch " + " ".join(command[3:]), soft_wrap=True, highlight=False)
    return subprocess.run(command, check=False).returncode


def without_options(argv: list[str], flags: tuple[str, ...], valued: tuple[str, ...]) -> list[str]:
    """`argv` without the given flags and options with a value (`--opt V` or `--opt=V`)."""
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in flags or ("=" in arg and arg.split("=", 1)[0] in valued):
            continue
        elif arg in valued:
            skip = True
        else:
            kept.append(arg)
    return kept
