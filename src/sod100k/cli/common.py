"""Options and helpers shared by the CLI commands."""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path

from sod100k.infer.backends import Backend
from sod100k.infer.predictor import DEFAULT_SIZE
from sod100k.infer.runtime import BACKENDS, CLI_PRECISIONS, make_backend, resolve_backend

#: Images per network call by default.
DEFAULT_BATCH = 8
#: ... and when OpenVINO runs several streams (its throughput setting): one image per
#: call on each single-threaded stream gave the most images per second
#: (``benchmarks/throughput.py``).
THROUGHPUT_BATCH = 1


class CLIError(Exception):
    """A user error: printed as one line, exit status 2."""


def add_model_args(p: argparse.ArgumentParser, weights_required: bool = False) -> None:
    g = p.add_argument_group("model")
    g.add_argument(
        "--model",
        "-m",
        default=None,
        help="preset name (csnet-l-x1, csnet-l-x2, ...); optional with --weights",
    )
    g.add_argument(
        "--weights",
        "-w",
        required=weights_required,
        default=None,
        help="released checkpoint folder (.pth.tar + .bin), a sod100k checkpoint "
        "file, or a training run folder",
    )


def add_runtime_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("runtime")
    g.add_argument(
        "--size",
        type=int,
        default=DEFAULT_SIZE,
        help="network input side in pixels (default %(default)s, as the reference)",
    )
    g.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help=f"images per network call (default: {THROUGHPUT_BATCH} when OpenVINO runs "
        f"several streams, else {DEFAULT_BATCH})",
    )
    g.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default %(default)s)")
    g.add_argument(
        "--backend",
        default="auto",
        choices=BACKENDS,
        help="inference backend: torch (eager), torch-fused (folded BN, merged "
        "convs), onnx (ONNX Runtime, CPU), openvino (OpenVINO, CPU: the fastest there) "
        "or auto (openvino on CPU, torch on CUDA); with onnx/openvino --weights may be "
        "a .onnx file; default %(default)s",
    )
    g.add_argument(
        "--threads",
        type=int,
        default=None,
        help="CPU threads for inference in all (default: all cores); OpenVINO shares them "
        "between its streams, so --threads 1 allows one stream",
    )
    add_precision_args(g)


def add_precision_args(g: argparse._ActionsContainer) -> None:
    """``--precision`` (OpenVINO backend only)."""
    g.add_argument(
        "--precision",
        default="fp32",
        choices=CLI_PRECISIONS,
        help="OpenVINO precision: fp32 (default: the same maps as torch, on every machine), "
        "bf16 (faster on CPUs with AVX512-BF16/AMX, slightly different maps; others run "
        "fp32) or auto (bf16 where the CPU has AMX or AVX512-BF16, else fp32: maps then "
        "depend on the machine); see the backends guide",
    )


def batch_size(args: argparse.Namespace, streams: int | None) -> int:
    """``--batch-size``, or its default for the backend and ``streams`` (see
    :func:`backend_from_args`; ``None``: the backend's throughput setting)."""
    if args.batch_size is not None:
        return positive("batch-size", args.batch_size)
    if streams != 1 and resolve_backend(args.backend, args.device) == "openvino":
        return THROUGHPUT_BATCH
    return DEFAULT_BATCH


def positive(name: str, value: int) -> int:
    if value <= 0:
        raise CLIError(f"--{name} must be positive, got {value}")
    return value


def check_device(device: str) -> str:
    if not (device == "cpu" or device.startswith("cuda")):
        raise CLIError(f"--device must be cpu, cuda or cuda:N, got {device!r}")
    if device.startswith("cuda"):
        import torch  # only CUDA needs it: the CPU backends may run without torch

        if not torch.cuda.is_available():
            raise CLIError(f"--device {device}: CUDA is not available on this machine")
    return device


@dataclass
class Failures:
    """Collects per-item errors of a batch job and reports them at the end."""

    items: list[tuple[str, str]] = field(default_factory=list)

    def add(self, what: str | Path, message: str) -> None:
        self.items.append((str(what), message))

    def __len__(self) -> int:
        return len(self.items)

    def report(self, stream=None) -> None:
        stream = stream or sys.stderr
        if not self.items:
            return
        print(f"{len(self.items)} item(s) failed:", file=stream)
        for what, message in self.items:
            text = message if message.startswith(what) else f"{what}: {message}"
            print(f"  {text}", file=stream)


def model_and_weights(args: argparse.Namespace) -> tuple[str | None, str]:
    """The model name and weights path the model options (``add_model_args``) ask for.

    Without ``--weights`` the default preset's weights come from ``$SOD100K_WEIGHTS`` or
    the weights folder; without ``--model`` the checkpoint says what it is (``None``).

    Raises:
        CLIError: no weights were given and none are at the default place; the message
            gives the command-line ways to name them.
    """
    from sod100k.api import DEFAULT_MODEL, WeightsNotFoundError, default_weights

    model = args.model or (None if args.weights else DEFAULT_MODEL)
    if args.weights:
        return model, args.weights
    try:
        return model, str(default_weights(model))
    except WeightsNotFoundError as e:
        raise CLIError(
            f"no weights given for {e.model} and none found at {e.place}; give --weights "
            "PATH (a released checkpoint folder, a .pt file or a training run folder), set "
            f"SOD100K_WEIGHTS=PATH, or copy the released checkpoint folder ({e.place.name}) "
            "there"
        ) from e


def model_label(model: str | None, weights: str | Path) -> str:
    """How a service or bundle names its model to its users: the model option, else the
    weights' file or folder name (never the whole path, which is the server's business)."""
    return model or Path(weights).name


def backend_from_args(
    args: argparse.Namespace, threads: int | None, streams: int | None = 1
) -> tuple[Backend, str | None, str]:
    """The inference backend the model options ask for (``add_model_args``).

    Args:
        args: parsed options with ``model``, ``weights``, ``backend``, ``device`` and
            ``precision``.
        threads: CPU threads per inference call (``None``: the runtime's default).
        streams: concurrent inference requests the backend should serve (``None``:
            OpenVINO's throughput setting, for folders and videos).

    Returns:
        ``(backend, model, weights)``: the model name (``None`` when only weights were
        given) and the weights path, as resolved from the options and the defaults.

    Raises:
        CLIError: the backend cannot serve these options (one line, exit status 2).
    """
    model, weights = model_and_weights(args)
    try:
        backend = make_backend(
            args.backend, model, weights, args.device, threads, streams, args.precision
        )
    except ValueError as e:
        raise CLIError(str(e)) from e
    return backend, model, weights


def setup_logging(verbose: int) -> None:
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
