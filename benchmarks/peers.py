"""CSNet beside its best-known CPU peer: U^2-Net-p run exactly as rembg runs it.

U^2-Net-p is rebuilt from its published architecture (benchmarks/u2netp.py, random
weights: speed does not depend on them), exported to ONNX and run with ONNX Runtime on
the CPU at 320 x 320 with rembg's pre- and post-processing (LANCZOS resize to 320, divide
by the image maximum, ImageNet normalisation in float64; min-max normalised output, LANCZOS
resize back). CSNet runs through ``sod100k``'s own predictor with each backend. Every
runtime is timed in its own process (benchmarks/harness.py), batch 1, on the same
decoded images:

* network: one inference on a prepared input tensor (CSNet at ``--size``, U^2-Net-p 320);
* end to end: decoded PIL image in, mask at the image's size out.

Writes ``peers-<cpu class>.json`` / ``.md`` to ``--out``. Run from the repository root:

    .venv/bin/python benchmarks/peers.py --weights ../shared/weights

Accuracy is not measured here (the released U^2-Net-p weights are not downloaded); the
table quotes the figures measured elsewhere with the same scorer (issue 15).
"""

from __future__ import annotations

import io
import sys
import warnings
from pathlib import Path

import numpy as np

import harness
from harness import median_ms

SCRIPT = Path(__file__).resolve()
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
CSNET = {"x1": "csnet-L-x1", "x2": "csnet-L-x2"}
#: ECSSD max F / MAE and DUTS-TE (300-image subset) max F / MAE, measured with the released
#: weights and PySODMetrics outside this repository (issue 15).
QUOTED_ACCURACY = {
    "u2netp": (0.929, 0.040, 0.819, 0.052),
    "csnet-L-x2": (0.897, 0.0645, 0.777, 0.072),
}


def rembg_input(img, size: int = 320) -> np.ndarray:
    """rembg's ``BaseSession.normalize`` for U^2-Net-p, step for step."""
    from PIL import Image

    im = np.array(img.convert("RGB").resize((size, size), Image.Resampling.LANCZOS))
    im = im / max(np.max(im), 1e-6)
    out = np.zeros((im.shape[0], im.shape[1], 3))
    for c in range(3):
        out[:, :, c] = (im[:, :, c] - MEAN[c]) / STD[c]
    return np.expand_dims(out.transpose((2, 0, 1)), 0).astype(np.float32)


def rembg_mask(pred: np.ndarray, size: tuple[int, int]):
    """rembg's U^2-Net-p post-processing: min-max normalise, uint8, LANCZOS to ``size``."""
    from PIL import Image

    pred = pred[:, 0]
    pred = (pred - pred.min()) / (pred.max() - pred.min())
    mask = Image.fromarray((np.squeeze(pred) * 255).astype("uint8"), mode="L")
    return mask.resize(size, Image.Resampling.LANCZOS)


def load_images(folder: Path, count: int) -> list:
    from PIL import Image

    from sod100k.data.images import list_images

    images = []
    for path in list_images(folder)[:count]:
        with Image.open(path) as im:
            images.append(im.convert("RGB"))
    return images


def cycle(images: list):
    state = {"i": 0}

    def next_image():
        state["i"] = (state["i"] + 1) % len(images)
        return images[state["i"]]

    return next_image


def u2netp_cell(cell: dict) -> dict:
    import onnxruntime as ort
    import torch

    from u2netp import U2NetP

    torch.manual_seed(0)
    net = U2NetP().eval()
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (torch.zeros(1, 3, 320, 320),), buf, opset_version=17, dynamo=False)
    # rembg: default SessionOptions; OMP_NUM_THREADS sets both thread pools when given.
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = cell["threads"]
    opts.inter_op_num_threads = cell["threads"]
    session = ort.InferenceSession(buf.getvalue(), opts, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    images = load_images(Path(cell["images"]), cell["count"])
    x = rembg_input(images[0])
    net_ms = median_ms(lambda: session.run(None, {name: x}), cell["warmup"], cell["runs"])
    nxt = cycle(images)

    def end_to_end():
        img = nxt()
        return rembg_mask(session.run(None, {name: rembg_input(img)})[0], img.size)

    e2e_ms = median_ms(end_to_end, cell["warmup"], cell["runs"])
    return {"network_ms": net_ms, "e2e_ms": e2e_ms, "input": 320}


def csnet_cell(cell: dict) -> dict:
    from sod100k.infer.predictor import Predictor
    from sod100k.infer.runtime import make_backend

    backend = make_backend(
        cell["backend"],
        None,
        str(Path(cell["weights"]) / CSNET[cell["model"]]),
        threads=cell["threads"],
    )
    size = cell["size"]
    x = np.random.default_rng(0).standard_normal((1, 3, size, size), np.float32)
    net_ms = median_ms(lambda: backend(x), cell["warmup"], cell["runs"])
    predictor = Predictor(backend, size)
    images = load_images(Path(cell["images"]), cell["count"])
    nxt = cycle(images)
    e2e_ms = median_ms(lambda: predictor(nxt()), cell["warmup"], cell["runs"])
    return {"network_ms": net_ms, "e2e_ms": e2e_ms, "input": size}


def markdown(rows: list[dict]) -> tuple[str, str]:
    """The table (with the quoted accuracy beside the timings) and its footnote."""
    shown = []
    for r in rows:
        acc = QUOTED_ACCURACY.get(r["model"])
        if acc:
            r = {
                **r,
                "ecssd": f"{acc[0]:.3f} / {acc[1]:.3f}",
                "duts": f"{acc[2]:.3f} / {acc[3]:.3f}",
            }
        shown.append(r)
    columns = {
        "model": "model",
        "runtime": "runtime",
        "input": "input",
        "gflops": "GFLOPs",
        "network_ms": "network ms",
        "e2e_ms": "end-to-end ms",
        "ecssd": "ECSSD max F / MAE*",
        "duts": "DUTS-TE max F / MAE*",
    }
    note = (
        "\\* accuracy quoted from measurements made elsewhere with the released weights "
        "(PySODMetrics, DUTS-TE on a 300-image subset; issue 15), not by this script."
    )
    return harness.markdown_table(columns, shown), note


def gflops(model: str, size: int, weights: Path) -> float:
    from sod100k.models.flops import count_flops

    if model == "u2netp":
        from u2netp import U2NetP

        return count_flops(U2NetP(), size, size) / 1e9
    from sod100k.checkpoints.loading import load_model

    return count_flops(load_model(weights=weights / model), size, size) / 1e9


def main() -> None:
    cell = harness.worker_cell(sys.argv)
    if cell is not None:
        harness.emit(u2netp_cell(cell) if cell["kind"] == "u2netp" else csnet_cell(cell))
        return
    p = harness.parser(__doc__, weights="../shared/weights", threads=2, timing=(5, 30))
    p.add_argument("--images", type=Path, default=Path("../shared/data/ECSSD/images"))
    p.add_argument("--count", type=int, default=20, help="images cycled in end-to-end runs")
    p.add_argument("--models", nargs="+", default=["x1", "x2"], choices=list(CSNET))
    p.add_argument("--backends", nargs="+", default=["openvino", "onnx", "torch"])
    p.add_argument("--size", type=int, default=224, help="CSNet input size")
    args = p.parse_args()
    meta = harness.start("peers", args.note)
    common = {
        "threads": args.threads,
        "warmup": args.warmup,
        "runs": args.runs,
        "images": str(args.images),
        "count": args.count,
    }
    rows = []
    res = harness.run_cell(SCRIPT, {**common, "kind": "u2netp"})
    rows.append({"model": "u2netp", "runtime": "onnxruntime (as rembg)", **res})
    for model in args.models:
        for backend in args.backends:
            cell = {
                **common,
                "kind": "csnet",
                "model": model,
                "backend": backend,
                "weights": str(args.weights.resolve()),
                "size": args.size,
            }
            res = harness.run_cell(SCRIPT, cell)
            rows.append({"model": CSNET[model], "runtime": backend, **res})
            harness.log.info("%s", rows[-1])
    for r in rows:
        r["gflops"] = round(gflops(r["model"], r["input"], args.weights), 2)
    table, note = markdown(rows)
    harness.write_results(
        args.out,
        f"peers-{meta['machine']['cpu_class']}",
        meta,
        rows,
        table,
        intro=f"Median ms per image, batch 1, {args.threads} threads, one process per row.",
        notes=note,
    )


if __name__ == "__main__":
    main()
