"""CSNet in headless Chromium (onnxruntime-web, WASM) beside native ONNX Runtime.

For x1 and x2 at 224 x 224 it measures, each in a fresh process (benchmarks/harness.py):

* ``native``: ONNX Runtime (Python) on the same ``model.onnx``, ms per network call;
* ``wasm``: the bundle of ``sod100k export --web`` in headless Chromium, served
  cross-origin isolated from 127.0.0.1: ms per ``seg.logits()`` on a 224 x 224 image
  (the network plus a copy), and ms per image for ``saliency()`` + soft ``cutout()`` on
  ECSSD-sized photos (400 x 300: the whole page path);
* ``live``: frames per second of the page's camera mode on Chromium's fake camera
  (640 x 480, cut-out with edge refinement, composited), at each ``--live-sizes``, and
  at the first of them with edge refinement off (the map itself as the alpha).

at 1 and 2 threads (``--threads``). Run from the repository root (needs
``scripts/install.sh --dev`` and npm's onnxruntime-web):

    .venv/bin/python benchmarks/browser_speed.py

Writes ``browser-speed-<cpu class>.json`` / ``.md`` to ``--out``.
"""

from __future__ import annotations

import logging
import re
import sys
import tempfile
import threading
import time
from pathlib import Path

import harness

log = logging.getLogger("browser_speed")

SCRIPT = Path(__file__).resolve()
MODELS = {"x1": "csnet-L-x1", "x2": "csnet-L-x2"}
READY = "document.getElementById('runtime').textContent.startsWith('Model')"

_TIME_JS = """async ([warmup, runs, names]) => {
  const m = await import("./sod100k.js");
  const manifest = await (await fetch("model.json")).json();
  const seg = await m.load(manifest.onnx, manifest);
  const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[s.length >> 1]; };
  const time = async (fn) => {
    for (let i = 0; i < warmup; i++) await fn(i);
    const t = [];
    for (let i = 0; i < runs; i++) {
      const t0 = performance.now();
      await fn(i);
      t.push(performance.now() - t0);
    }
    return median(t);
  };
  const square = new ImageData(seg.size, seg.size);
  for (let i = 0; i < square.data.length; i++) square.data[i] = (i * 37) & 255;
  const network = await time(() => seg.logits(square));
  const photos = [];
  for (const n of names) {
    photos.push(await m.decodeImage(await (await fetch("photos/" + n)).blob(), n));
  }
  const page = await time(async (i) => {
    const im = photos[i % photos.length];
    const map = await seg.saliency(im);
    await seg.cutout(im, { saliency: map });
  });
  return { threads: seg.threads, network, page };
}"""


def export_bundle(cell: dict) -> dict:
    from sod100k.cli import main as cli

    out = Path(cell["out"])
    weights = Path(cell["weights"]) / MODELS[cell["model"]]
    code = cli(["export", "--web", str(out), "-w", str(weights), "--force"])
    if code != 0:
        raise SystemExit(f"export --web failed ({code})")
    return {"bundle": str(out)}


def native(cell: dict) -> dict:
    import numpy as np

    from sod100k.infer.backends import OnnxBackend

    backend = OnnxBackend(Path(cell["bundle"]) / "model.onnx", cell["threads"])
    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224), dtype=np.float32)
    return {"network_ms": harness.median_ms(lambda: backend(x), cell["warmup"], cell["runs"])}


def _serve(folder: str):
    from sod100k.web.static_server import make_server

    server = make_server(folder, port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


def _live_fps(page, cell: dict, size: int) -> float | None:
    """The page's camera-mode frame rate at network input side ``size``."""
    page.select_option("#live-size", str(size))
    time.sleep(cell["live_warmup_s"])
    page.evaluate("document.getElementById('fps').textContent = '-'")
    time.sleep(cell["live_seconds"])  # the page's fps is over the last 2 s
    found = re.search(r"([0-9.]+) fps", page.text_content("#fps"))
    return float(found.group(1)) if found else None


def wasm(cell: dict) -> dict:
    from sod100k.web.headless import FAKE_CAMERA, chromium

    server, url = _serve(cell["bundle"])
    try:
        with chromium(cell["chromium"], FAKE_CAMERA) as browser:
            page = browser.new_page()
            page.goto(f"{url}?threads={cell['threads']}")
            page.wait_for_function(READY, timeout=180_000)
            args = [cell["warmup"], cell["runs"], cell["photos"]]
            timing = page.evaluate(_TIME_JS, args)
            page.click("#camera-start")
            live = {str(size): _live_fps(page, cell, size) for size in cell["live_sizes"]}
            page.uncheck("#live-refine")
            plain = _live_fps(page, cell, cell["live_sizes"][0])
    finally:
        server.shutdown()
        server.server_close()
    return {
        "threads_used": timing["threads"],
        "network_ms": round(timing["network"], 2),
        "page_ms": round(timing["page"], 2),
        "live_fps": live,
        "live_fps_plain": plain,
    }


def main() -> None:
    cell = harness.worker_cell(sys.argv)
    if cell is not None:
        harness.emit({"export": export_bundle, "native": native, "wasm": wasm}[cell["kind"]](cell))
        return
    p = harness.parser(__doc__, weights="../shared/weights", threads=[1, 2], timing=(5, 30))
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    p.add_argument("--photos", type=Path, default=Path("../shared/data/ECSSD/images"))
    p.add_argument("--live-sizes", type=int, nargs="+", default=[224, 192, 160, 128])
    p.add_argument("--live-seconds", type=float, default=4.0, help="fps window per size")
    p.add_argument("--chromium", default="/usr/bin/chromium")
    args = p.parse_args()
    meta = harness.start("browser_speed", args.note)
    photos = sorted(args.photos.glob("*.jpg"))[:5]
    rows = []
    with tempfile.TemporaryDirectory(prefix="sod100k-browser-bench-") as tmp:
        for model in args.models:
            bundle = Path(tmp) / model
            common = {"weights": str(args.weights.resolve()), "model": model}
            harness.run_cell(SCRIPT, {"kind": "export", "out": str(bundle), **common})
            (bundle / "photos").mkdir()
            for path in photos:
                (bundle / "photos" / path.name).write_bytes(path.read_bytes())
            for threads in args.threads:
                timing = {"warmup": args.warmup, "runs": args.runs, "threads": threads}
                nat = harness.run_cell(SCRIPT, {"kind": "native", "bundle": str(bundle), **timing})
                web = harness.run_cell(
                    SCRIPT,
                    {
                        "kind": "wasm",
                        "bundle": str(bundle),
                        "chromium": args.chromium,
                        "photos": [p.name for p in photos],
                        "live_sizes": args.live_sizes,
                        "live_warmup_s": 2.0,
                        "live_seconds": args.live_seconds,
                        **timing,
                    },
                )
                row = {
                    "model": model,
                    "threads": threads,
                    "wasm_threads": web["threads_used"],
                    "native_ms": nat["network_ms"],
                    "wasm_ms": web["network_ms"],
                    "wasm_page_ms": web["page_ms"],
                    **{f"live_fps_{s}": web["live_fps"].get(str(s)) for s in args.live_sizes},
                    "live_fps_plain": web["live_fps_plain"],
                }
                log.info("%s", row)
                rows.append(row)
    columns = {
        "model": "model",
        "threads": "threads",
        "native_ms": "native ORT, ms",
        "wasm_ms": "WASM network, ms",
        "wasm_page_ms": "WASM map + cut-out (400x300), ms",
        **{f"live_fps_{s}": f"live fps @{s}" for s in args.live_sizes},
        "live_fps_plain": f"live fps @{args.live_sizes[0]}, no refinement",
    }
    harness.write_results(
        args.out,
        f"browser-speed-{meta['machine']['cpu_class']}",
        meta,
        rows,
        harness.markdown_table(columns, rows),
        intro="CSNet at 224 x 224 in headless Chromium (onnxruntime-web WASM, SIMD) and in "
        "native ONNX Runtime on the same ONNX graph; live: the page's camera mode on "
        "Chromium's fake 640 x 480 camera, edge refinement on (and off, last column), by "
        "network input side.",
    )


if __name__ == "__main__":
    main()
