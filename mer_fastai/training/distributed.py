"""One training over several processes (GPUs, or CPU processes with gloo) with fastai and Accelerate.

`accelerate launch --multi_gpu --num_processes N -m mer_fastai train ...` (or `mer-fastai train
--distributed`) starts N copies of the command. Each one builds the same learner; rank 0 alone runs
lr_find and hands the LR to the others; the fit is fastai's `distrib_ctx` (DistributedDataParallel,
each process a share of every batch, `--bs` per process); rank 0 alone writes the run folder.
Without a GPU the processes train on the CPU over gloo, which is how the tests run it.
"""

from __future__ import annotations

import datetime
import io
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext, redirect_stdout
from pathlib import Path
from typing import TypeVar

import torch

from .._plumbing.progress import console
from ..errors import MerError

T = TypeVar("T")
INSTALL_HINT = "Accelerate is not installed; pip install 'mer-fastai[distributed]'"
SINGLE = {"WORLD_SIZE": "1", "RANK": "0"}
LR_FIND_WAIT_HOURS = 12
# The launcher's WORLD_SIZE and RANK once `init_distributed` ran. fastai reads them from the environment
# and then gathers or waits on the other processes in every fit, lr_find and get_preds; the environment
# shows them to fastai only inside `distributed_fit`, so lr_find and get_preds stay local.
_launched: dict[str, str] = {}


def world_size() -> int:
    """How many processes train together (1 unless started by a distributed launcher)."""
    return int(_launched.get("WORLD_SIZE") or os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    """This process's index among them (0: the one that writes)."""
    return int(_launched.get("RANK") or os.environ.get("RANK", "0"))


def is_distributed() -> bool:
    return world_size() > 1


def is_main_process() -> bool:
    return rank() == 0


def cpu_requested() -> bool:
    """Whether Accelerate was told `--cpu` (it then sets ACCELERATE_USE_CPU for the processes it starts)."""
    return os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true")


def cpu_launch_processes() -> int | None:
    """The N of `accelerate launch --cpu --num_processes N` when that launcher started only this process.

    Without MPI, Accelerate's `--cpu` launcher runs one plain process (no WORLD_SIZE) and leaves only
    MASTER_ADDR as a trace of the processes asked for; the count is read from the launcher's command line.
    None when this process was not started that way or the count cannot be told.
    """
    if not cpu_requested() or "MASTER_ADDR" not in os.environ or "WORLD_SIZE" in os.environ:
        return None
    try:
        args = [a.decode() for a in Path(f"/proc/{os.getppid()}/cmdline").read_bytes().split(b"\0") if a]
        from accelerate.commands.launch import launch_command_parser
    except (OSError, UnicodeDecodeError, ImportError):
        return None
    # `accelerate launch ...`, `accelerate-launch ...` or `python -m accelerate.commands.launch ...`
    markers = ("launch", "accelerate.commands.launch")
    where = [i for i, arg in enumerate(args) if arg in markers or Path(arg).name == "accelerate-launch"]
    if not where:
        return None
    try:
        parsed, _ = launch_command_parser().parse_known_args(args[where[0] + 1 :])
    except SystemExit:  # argparse gave up on the launcher's own arguments
        return None
    return parsed.num_processes if (parsed.num_processes or 0) > 1 else None


def init_distributed() -> None:
    """In a launched process: take this rank's GPU, join the process group (gloo without GPUs), hide it.

    Under `accelerate launch --cpu` the training stays on the CPU even where GPUs exist.
    """
    if cpu_requested():
        from fastai.torch_core import default_device

        default_device(False)
    if not is_distributed():
        if cpu_requested() and "MASTER_ADDR" in os.environ:
            console.print(
                "[yellow]warning:[/] `accelerate launch --cpu` started a single process and the number of "
                "processes could not be read; use `mer-fastai train --distributed --processes N`, which "
                "trains on the CPU when no GPU is present"
            )
        return
    try:
        from accelerate import PartialState
    except ImportError as exc:
        raise MerError(INSTALL_HINT) from exc
    cuda = torch.cuda.is_available() and not cpu_requested()
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    # rank 0 runs lr_find alone while the others wait for its LR: on a CPU that outlasts the 30 min default
    PartialState(cpu=not cuda, timeout=datetime.timedelta(hours=LR_FIND_WAIT_HOURS))
    _launched.update(WORLD_SIZE=os.environ["WORLD_SIZE"], RANK=os.environ["RANK"])
    os.environ.update(SINGLE)


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

    train, processes = learn.dls.train, world_size()
    if train.n // processes < train.bs:  # each process makes whole batches of its share (fastai drops the rest)
        raise MerError(
            f"{train.n} training images over {processes} processes is less than one batch (--bs {train.bs}) "
            "per process; lower --bs"
        )
    DistributedDL._broadcast = _broadcast
    hidden = [] if is_main_process() else [cb for cb in learn.cbs if isinstance(cb, RichProgress)]
    learn.remove_cbs(hidden)
    os.environ.update(_launched)
    try:
        quiet = nullcontext() if is_main_process() else redirect_stdout(io.StringIO())  # fastai's prints
        with quiet, learn.distrib_ctx(sync_bn=False):
            yield
    finally:
        os.environ.update(SINGLE)
    learn.remove_cbs([cb for cb in learn.cbs if isinstance(cb, ProgressCallback)])  # re-added off rank 0
    learn.add_cbs(hidden)
    torch.distributed.barrier()  # every process has loaded the best epoch before rank 0 cleans up


def processes_to_launch(distributed: bool, processes: int | None) -> int | None:
    """How many processes to rerun this command in (None: train in this process).

    `--distributed` asks for `processes` (default: one per GPU, else 2); so does `accelerate launch --cpu
    --num_processes N`, which starts just one. A process that is already one of several trains itself.
    """
    if is_distributed():
        return None
    if not distributed:
        if processes:
            raise MerError("--processes is for --distributed; add --distributed or drop --processes")
        return cpu_launch_processes()
    count = processes or torch.cuda.device_count() or 2
    if count < 2:
        raise MerError(f"--distributed needs at least 2 processes (got {count}); pass --processes N")
    return count


def launch_command(argv: list[str], count: int) -> list[str]:
    """The `accelerate launch` command that reruns `mer-fastai ARGV` in `count` processes."""
    # `--multi_gpu` is Accelerate's torchrun launcher; without GPUs the processes train on the CPU
    # (`--cpu` would start a single process unless MPI is set up).
    return [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(count),
        "--num_machines", "1", "--main_process_port", str(free_port()), "--mixed_precision", "no",
        "--dynamo_backend", "no", "-m", "mer_fastai", *argv,
    ]  # fmt: skip


def free_port() -> int:
    """A TCP port free now on this machine (two trainings at once must not share one)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def relaunch(argv: list[str], count: int) -> int:
    """Run `mer-fastai ARGV` under `accelerate launch`; returns its exit status."""
    try:
        import accelerate  # noqa: F401
    except ImportError as exc:
        raise MerError(INSTALL_HINT) from exc
    command = launch_command(argv, count)
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
