"""The screenshot of the browser guide (docs/images/browser-page.png), taken with Playwright.

Exports the x2 bundle, serves it, opens it in headless Chromium, cuts out a synthetic
photo (drawn here, so the docs ship no data-set image) and saves the page as a small
palette PNG. Run from the repository root:

    .venv/bin/python scripts/browser_screenshot.py --weights ../shared/weights/csnet-L-x2
"""

from __future__ import annotations

import argparse
import tempfile
import threading
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from sod100k.cli import main as cli
from sod100k.web.headless import chromium
from sod100k.web.static_server import make_server


def synthetic_photo(path: Path, width: int = 480, height: int = 360) -> None:
    """A red apple with a leaf on a soft, textured table and wall."""
    rng = np.random.default_rng(3)
    y = np.linspace(0, 1, height)[:, None, None]
    wall = (1 - y) * np.array([196, 206, 214]) + y * np.array([150, 160, 170])
    table = np.array([170, 132, 92]) + 12 * rng.standard_normal((height, width, 1))
    img = np.where(y < 0.62, wall, table) + 4 * rng.standard_normal((height, width, 3))
    photo = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(photo)
    draw.ellipse((160, 250, 330, 290), fill=(110, 84, 60))  # shadow
    draw.ellipse((150, 95, 330, 275), fill=(196, 28, 32))
    draw.ellipse((195, 125, 245, 170), fill=(232, 96, 90))  # highlight
    draw.line((240, 100, 250, 62), fill=(92, 60, 30), width=7)  # stalk
    draw.polygon([(252, 80), (300, 52), (322, 70), (270, 92)], fill=(56, 140, 50))
    photo.filter(ImageFilter.GaussianBlur(1.2)).save(path, quality=92)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", type=Path, default=Path("../shared/weights/csnet-L-x2"))
    p.add_argument("--out", type=Path, default=Path("docs/images/browser-page.png"))
    p.add_argument("--chromium", default="/usr/bin/chromium")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="sod100k-shot-") as tmp:
        bundle = Path(tmp) / "web"
        if cli(["export", "--web", str(bundle), "-w", str(args.weights)]) != 0:
            raise SystemExit("export --web failed")
        photo = Path(tmp) / "apple.jpg"
        synthetic_photo(photo)
        server = make_server(bundle, port=0)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            with chromium(args.chromium) as browser:
                page = browser.new_page(viewport={"width": 1100, "height": 640})
                page.goto(f"http://127.0.0.1:{server.server_address[1]}/")
                page.wait_for_function(
                    "document.getElementById('runtime').textContent.startsWith('Model')",
                    timeout=120_000,
                )
                page.set_input_files("#file", str(photo))
                page.wait_for_function(
                    "document.getElementById('status').textContent.includes('done')",
                    timeout=120_000,
                )
                # the timing depends on the machine: keep it out of the picture
                page.evaluate(
                    "const s = document.getElementById('status');"
                    "s.textContent = s.textContent.replace(/, done in .*/, ', done')"
                )
                shot = Path(tmp) / "shot.png"
                page.screenshot(path=str(shot))
        finally:
            server.shutdown()
            server.server_close()
        small = (
            Image.open(shot).convert("RGB").quantize(colors=256, method=Image.Quantize.FASTOCTREE)
        )
        args.out.parent.mkdir(parents=True, exist_ok=True)
        small.save(args.out, optimize=True)
    print(f"wrote {args.out} ({args.out.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
