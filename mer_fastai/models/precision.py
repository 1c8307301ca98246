"""Inference at lower precision (`--precision auto|fp32|bf16|int8`), each checked against fp32 before `auto` uses it.

Every precision runs the folded network (`folding.fold`); the precision applies to the body (the backbone, where
the time goes), the head stays fp32 so the features `embed` reads keep their meaning:

- `fp32`: the folded network as it is;
- `bf16`: the body under torch's CPU autocast (oneDNN's bf16 convolutions and matmuls; AMX where the CPU has it),
  its output back in fp32;
- `int8`: the body quantised by torch.ao's FX path with the x86 backend (int8 weights per channel, activations
  per tensor), calibrated on the first windows the model is run on — a model file does not say where its
  training data set is, so the windows being predicted are the calibration sample.

`auto` picks the fastest precision the CPU supports that passed its check on this model: outputs (class or mood
probabilities, or values) within `TOLERANCE` of fp32's and the same top class on ≥ `AGREEMENT` of the windows,
computed on first use on the windows being predicted and recorded in `$MER_FASTAI_CACHE/precision.json`, keyed by
the model's weights, the torch version and the CPU's flags. A precision that fails is never picked; one asked for
by name runs unchecked (its measured cost: BENCHMARKS.md, "musicnn precision and folding"). The model file
records nothing about precision.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from .._plumbing.files import atomic_path
from ..bounds import quote
from ..choices import PRECISIONS
from ..errors import MerError
from .folding import fold

__all__ = ["PRECISIONS", "check_precision", "choose", "features_pass", "lower", "passes", "supported"]

FASTEST_FIRST = ("int8", "bf16", "fp32")
TOLERANCE = 0.02  # largest difference from fp32 in an output (probability, or value) that a check accepts
AGREEMENT = 0.99  # share of windows whose top output (and top-5 set of a tagger's tags) must be fp32's
TOP_K = 5
CALIBRATION_WINDOWS = 64
CPU_NEEDS = {"bf16": ("avx512_bf16", "amx_bf16"), "int8": ("avx512_vnni", "avx_vnni", "amx_int8")}


def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (Linux /proc/cpuinfo; empty elsewhere)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    line = next((line for line in text.splitlines() if line.startswith("flags")), "")
    return frozenset(line.partition(":")[2].split())


def supported(precision: str, device: torch.device) -> bool:
    """Whether `precision` runs at speed here: fp32 always; bf16 and int8 on a CPU with the instructions for them."""
    if precision == "fp32":
        return True
    if device.type != "cpu":
        return False
    if precision == "int8" and "x86" not in torch.backends.quantized.supported_engines:
        return False
    return bool(cpu_flags() & set(CPU_NEEDS[precision]))


def check_precision(name: str, device: torch.device) -> str:
    """`name` if it is a precision that runs fast on `device` (or auto), else one clear error."""
    if name not in PRECISIONS:
        raise MerError(f"unknown --precision {quote(name)}; use one of {', '.join(PRECISIONS)}")
    if name != "auto" and not supported(name, device):
        why = (
            f"this CPU has no fast {name} instructions ({' or '.join(CPU_NEEDS.get(name, ()))})"
            if device.type == "cpu"
            else f"the {name} path runs on a CPU only, not on {device.type}"
        )
        raise MerError(f"--precision {name}: {why}; use --precision auto or fp32 (or --device cpu)")
    return name


class Bf16Body(nn.Module):
    """A module run under CPU autocast to bfloat16, its output returned as float32."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return self.module(x).float()


def quantize_int8(module: nn.Module, calibration: torch.Tensor) -> nn.Module:
    """`module` quantised to int8 by torch.ao's FX path (x86 backend), calibrated on the batch `calibration`."""
    import warnings

    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    torch.backends.quantized.engine = "x86"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao's deprecation notices; the path is the maintained x86 one
        try:
            prepared = prepare_fx(module.eval(), _layers_only(), (calibration[:1],))
        except Exception as exc:  # torch.fx cannot trace the body's Python control flow
            raise MerError(f"--precision int8: this network cannot be quantised ({exc}); use bf16 or fp32") from exc
        with torch.no_grad():
            for start in range(0, len(calibration), 16):
                prepared(calibration[start : start + 16])
        return convert_fx(prepared)


def _layers_only():
    """int8 convolutions and dense layers, each between a quantise and a dequantise; every other operation (the
    maxima, concatenations, residual sums) stays fp32, so no tensors of different scales are joined in int8."""
    from torch.ao.quantization import QConfigMapping, get_default_qconfig

    qconfig = get_default_qconfig("x86")
    mapping = QConfigMapping()
    for kind in (nn.Conv1d, nn.Conv2d, nn.Linear, nn.ReLU):  # ReLU: fused into the layer before it
        mapping = mapping.set_object_type(kind, qconfig)
    return mapping


def lower(model: nn.Module, precision: str, calibration: torch.Tensor) -> nn.Module:
    """The folded `model` with its body (`model[0]` of a body + head network, else the whole) at `precision`."""
    folded = fold(model)
    if precision == "fp32":
        return folded
    split = isinstance(folded, nn.Sequential) and len(folded) == 2
    body = folded[0] if split else folded
    body = Bf16Body(body) if precision == "bf16" else quantize_int8(body, calibration[:CALIBRATION_WINDOWS])
    if not split:
        return body
    folded[0] = body
    return folded


def passes(reference: torch.Tensor, candidate: torch.Tensor) -> bool:
    """Whether `candidate` outputs (N, K) are within `TOLERANCE` of `reference` with the same top output, and for
    more than `TOP_K` outputs (a tagger's tags) the same top-`TOP_K` set, on at least `AGREEMENT` of the rows."""
    if reference.shape != candidate.shape or not torch.isfinite(candidate).all():
        return False
    if not len(reference):
        return True
    close = float((reference - candidate).abs().max()) <= TOLERANCE
    return close and all(agreement(reference, candidate, k) >= AGREEMENT for k in {1, min(TOP_K, reference.shape[1])})


def agreement(reference: torch.Tensor, candidate: torch.Tensor, k: int) -> float:
    """The share of rows whose `k` largest outputs are the same set in both."""
    if k >= reference.shape[1]:
        return 1.0
    top = [outputs.topk(k, dim=1).indices.sort(dim=1).values for outputs in (reference, candidate)]
    return float((top[0] == top[1]).all(dim=1).float().mean())


def model_key(model: nn.Module) -> str:
    """The model's weights, the torch version and the CPU: what a recorded check holds for."""
    digest = hashlib.blake2b(digest_size=16)
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    digest.update(torch.__version__.encode())
    digest.update(platform.machine().encode())
    digest.update(" ".join(sorted(cpu_flags())).encode())
    return digest.hexdigest()


def record_path() -> Path:
    """`$MER_FASTAI_CACHE/precision.json`, by default `~/.cache/mer-fastai/precision.json`."""
    root = os.environ.get("MER_FASTAI_CACHE") or Path.home() / ".cache" / "mer-fastai"
    return Path(root) / "precision.json"


def _read_records() -> dict:
    try:
        records = json.loads(record_path().read_text())
    except (OSError, ValueError):
        return {}
    return records if isinstance(records, dict) else {}


def features_pass(reference: torch.Tensor, candidate: torch.Tensor) -> bool:
    """Whether body features `candidate` (N, D) are each within `TOLERANCE` of their fp32 range (the largest
    |value| of that feature over the rows, at least `TOLERANCE` of the largest of all): `passes` for outputs
    without a scale of their own, as the freeze-mode feature cache checks them."""
    if reference.shape != candidate.shape or not torch.isfinite(candidate).all():
        return False
    if not reference.numel():
        return True
    reference, candidate = reference.flatten(1), candidate.flatten(1)
    scale = reference.abs().amax(dim=0).clamp_min(float(reference.abs().max()) * TOLERANCE)
    return bool(((reference - candidate).abs() <= TOLERANCE * scale).all())


def choose(
    model: nn.Module,
    precision: str,
    sample: torch.Tensor,
    outputs: Callable[[torch.Tensor], torch.Tensor],
    device: torch.device,
    check: Callable[[torch.Tensor, torch.Tensor], bool] | None = None,
) -> tuple[str, nn.Module]:
    """The precision to run (`auto` resolved) and the network for it; `sample` is a batch of the model's inputs
    (calibration for int8, the check's windows for auto), `outputs` turns logits into what the task reads and
    `check(fp32's, candidate's)` says whether a candidate passed (default `passes`; `features_pass` for features)."""
    check = check or passes
    if check_precision(precision, device) != "auto":
        return precision, lower(model, precision, sample)
    key = model_key(model) if check is passes else f"{model_key(model)}:{check.__name__}"
    records = _read_records()
    verdicts = records.get(key, {})
    reference = None
    for candidate in FASTEST_FIRST:
        if candidate == "fp32" or not supported(candidate, device):
            continue
        if candidate not in verdicts:
            if reference is None:
                with torch.inference_mode():
                    reference = outputs(model(sample).float())
            try:
                network = lower(model, candidate, sample)
                with torch.inference_mode():
                    verdicts[candidate] = check(reference, outputs(network(sample).float()))
            except MerError:
                verdicts[candidate] = False
            _write_record(key, verdicts)
            if verdicts[candidate]:
                return candidate, network
        elif verdicts[candidate]:
            return candidate, lower(model, candidate, sample)
    return "fp32", lower(model, "fp32", sample)


def _write_record(key: str, verdicts: dict) -> None:
    """Record the verdicts of `key` (best effort: an unwritable cache only means checking again next time)."""
    records = _read_records()
    records[key] = verdicts
    path = record_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            Path(tmp).write_text(json.dumps(records, indent=1, sort_keys=True))
    except OSError:
        pass
