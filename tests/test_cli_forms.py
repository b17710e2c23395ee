"""Every form of ``sod100k predict`` / ``cutout``: one file, files, folder, glob, pipe.

The model runs with the eager torch backend on one thread: it loads fastest, and one
thread makes repeated runs give identical bytes.
"""

from __future__ import annotations

import hashlib
import io
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sod100k import __version__
from sod100k.cli import main
from sod100k.infer import batch

FAST = ["--backend", "torch", "--threads", "1", "-q"]


@pytest.fixture
def photos(ecssd, tmp_path, monkeypatch) -> Path:
    """photos/{a.jpg, b.png, sub/c.gif, notes.txt}: small copies of ECSSD images."""
    monkeypatch.chdir(tmp_path)
    root = Path("photos")
    (root / "sub").mkdir(parents=True)
    names = ["a.jpg", "b.png", "sub/c.gif"]
    for name, src in zip(names, sorted((ecssd / "images").glob("*.jpg")), strict=False):
        img = Image.open(src)
        img.thumbnail((96, 96))
        img.save(root / name)
    (root / "notes.txt").write_text("not an image")
    return root


@pytest.fixture
def sod(weights_x1):
    """Run ``sod100k COMMAND ARGS -w x1`` in-process; return the exit status."""

    def run(command: str, *args: str) -> int:
        return main([command, *args, "-w", str(weights_x1), *FAST])

    return run


def snapshot(root: Path) -> dict[str, str]:
    return {
        str(p): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def mode_size(path: Path) -> tuple[str, tuple[int, int]]:
    with Image.open(path) as img:
        return img.mode, img.size


def test_one_file_beside_it_and_to_a_file(photos, sod) -> None:
    size = Image.open("photos/a.jpg").size
    assert sod("predict", "photos/a.jpg") == 0
    assert mode_size(Path("photos/a.mask.png")) == ("L", size)
    assert sod("cutout", "photos/a.jpg") == 0
    assert mode_size(Path("photos/a.rgba.png")) == ("RGBA", size)
    assert sod("predict", "photos/a.jpg", "-o", "one.png") == 0
    assert Path("one.png").is_file()  # a file, not a folder holding a.png
    assert Path("one.png").read_bytes() == Path("photos/a.mask.png").read_bytes()
    assert sod("predict", "photos/a.jpg", "-f", "overlay", "-o", "over.jpg") == 0
    assert mode_size(Path("over.jpg")) == ("RGB", size)
    assert sod("predict", "photos/a.jpg", "-o", "maps") == 0
    assert Path("maps/a.png").is_file()


def test_cutout_as_webp_keeps_the_alpha_losslessly(photos, sod) -> None:
    assert sod("cutout", "photos/a.jpg", "-o", "cut.webp") == 0
    assert sod("cutout", "photos/a.jpg", "-o", "cut.png") == 0
    with Image.open("cut.webp") as webp, Image.open("cut.png") as png:
        assert webp.format == "WEBP" and webp.mode == "RGBA"
        assert np.array_equal(np.asarray(webp), np.asarray(png))


def test_several_files_a_folder_and_a_glob(photos, sod, capsys) -> None:
    assert sod("predict", "photos/a.jpg", "photos/sub/c.gif", "-o", "maps") == 0
    assert sorted(p.name for p in Path("maps").iterdir()) == ["a.png", "c.png"]
    assert sod("predict", "photos") == 0
    assert sorted(str(p) for p in Path("photos_mask").rglob("*.png")) == [
        "photos_mask/a.png",
        "photos_mask/b.png",
        "photos_mask/sub/c.png",
    ]
    err = capsys.readouterr().err
    assert "skipped 1 file(s) that are not images" in err and "photos/notes.txt" in err
    assert sod("cutout", "photos/**/*.gif", "-o", "cuts") == 0
    assert mode_size(Path("cuts/sub/c.png"))[0] == "RGBA"


def test_gif_is_processed_from_its_first_frame(photos, sod) -> None:
    frame = Image.open("photos/sub/c.gif").convert("RGB")
    frame.save("first.png")
    Image.new("RGB", frame.size, (0, 0, 255)).save("blue.png")
    frames = [frame, Image.open("blue.png")]
    frames[0].save("anim.gif", save_all=True, append_images=frames[1:], duration=50)
    assert sod("predict", "anim.gif", "first.png", "-o", "maps") == 0
    # a GIF stores a palette: compare with the same palette image as PNG
    assert np.array_equal(
        np.asarray(Image.open("maps/anim.png")), np.asarray(Image.open("maps/first.png"))
    )


def test_stdin_to_stdout_is_byte_exact_with_the_file_form(photos, sod, monkeypatch, capsysbinary):
    assert sod("predict", "photos/b.png", "-o", "file.png") == 0
    expected = Path("file.png").read_bytes()
    monkeypatch.setattr(
        sys, "stdin", io.TextIOWrapper(io.BytesIO(Path("photos/b.png").read_bytes()))
    )
    capsysbinary.readouterr()
    assert sod("predict", "-") == 0
    assert capsysbinary.readouterr().out == expected
    assert sod("predict", "photos/b.png", "-o", "-") == 0
    assert capsysbinary.readouterr().out == expected


def test_a_real_pipe_carries_only_the_png(photos, weights_x1) -> None:
    """Through a real process: nothing but the PNG may reach standard output."""
    assert main(["predict", "photos/a.jpg", "-o", "file.png", "-w", str(weights_x1), *FAST]) == 0
    with open("photos/a.jpg", "rb") as stdin:
        proc = subprocess.run(
            [sys.executable, "-m", "sod100k", "predict", "-", "-w", str(weights_x1), *FAST[:-1]],
            stdin=stdin,
            capture_output=True,
            timeout=300,
        )
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout == Path("file.png").read_bytes()
    assert b"wrote 1 mask image(s) to standard output" in proc.stderr


def test_exit_codes(photos, sod, capsys) -> None:
    Path("bad.jpg").write_bytes(b"not a jpeg")
    assert sod("predict", "photos/a.jpg", "bad.jpg", "-o", "maps") == 1
    err = capsys.readouterr().err
    assert "bad.jpg: not an image file" in err and Path("maps/a.png").is_file()
    assert sod("predict", "-", "photos/a.jpg") == 2
    assert "must be the only input" in capsys.readouterr().err
    assert sod("predict", "photos/a.jpg", "-o", "a.webp") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "a.webp: --format mask writes a mask as .png, not .webp" in err[0]
    assert not Path("a.webp").exists()
    with pytest.raises(SystemExit) as e:
        main(["predict"])
    assert e.value.code == 2
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"sod100k {__version__}"


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["predict", "photos/b.png", "-o", "photos/b.png"], 2),  # one file onto itself
        (["predict", "photos", "-o", "photos"], 2),  # folder into itself
        (["predict", "photos/b.png", "-o", "photos"], 1),  # file into its own folder
        (["predict", "photos/a.jpg", "photos/a.mask.png"], 1),  # beside: a's output is an input
        (["predict", "photos/*", "-o", "photos"], 1),  # glob into its folder
        (["cutout", "photos/b.png", "-o", "photos/b.png"], 2),
        (["cutout", "photos", "-o", "photos/sub"], 0),  # sub/ is output only: c.gif left out
    ],
)
def test_no_form_overwrites_an_input(photos, sod, args, code) -> None:
    Image.new("L", (20, 20), 7).save("photos/a.mask.png")
    before = snapshot(photos)
    assert sod(*args) == code
    after = snapshot(photos)
    assert {k: v for k, v in after.items() if k in before} == before


def test_output_folder_inside_the_input_folder_twice(photos, sod, capsys) -> None:
    assert sod("predict", "photos", "-o", "photos/maps") == 0
    first = snapshot(Path("photos/maps"))
    capsys.readouterr()
    assert sod("predict", "photos", "-o", "photos/maps") == 0
    assert snapshot(Path("photos/maps")).keys() == first.keys()  # no photos/maps/maps/...
    assert "left out 3 file(s)" in capsys.readouterr().err


def test_unwritable_output_is_found_before_the_model_loads(photos, tmp_path, capsys) -> None:
    Path("file.txt").write_text("a file where a folder should be")
    Path("w.pt").write_text("not a checkpoint")
    code = main(["predict", "photos", "-o", "file.txt/maps", "-w", "w.pt", *FAST])
    err = capsys.readouterr().err
    assert code == 1
    assert "cannot write here (file.txt is not a folder)" in err
    assert "checkpoint" not in err  # the weights were never opened


def test_interrupted_run_resumes_with_skip_existing(photos, sod, monkeypatch, capsys) -> None:
    for i in range(3):
        Image.open("photos/a.jpg").save(f"photos/more{i}.jpg")  # 6 images in all
    write = batch.atomic_write_bytes
    calls = []

    def interrupted_write(path, data):
        calls.append(path)
        if len(calls) == 3:
            raise KeyboardInterrupt  # Ctrl-C while the third result is written
        write(path, data)

    monkeypatch.setattr(batch, "atomic_write_bytes", interrupted_write)
    assert sod("predict", "photos", "-o", "maps", "--batch-size", "1", "--workers", "1") == 130
    done = snapshot(Path("maps"))
    assert 2 <= len(done) < 6 and not list(Path("maps").rglob(".*"))  # complete files only
    mtimes = {p: Path(p).stat().st_mtime_ns for p in done}

    monkeypatch.setattr(batch, "atomic_write_bytes", write)
    loaded = []
    load = batch._load
    monkeypatch.setattr(batch, "_load", lambda job, size: loaded.append(job.src) or load(job, size))
    capsys.readouterr()
    assert sod("predict", "photos", "-o", "maps", "--skip-existing") == 0
    missing = 6 - len(done)
    assert len(loaded) == missing  # only the missing ones went through the network
    assert all(Path(p).stat().st_mtime_ns == t for p, t in mtimes.items())
    assert len(snapshot(Path("maps"))) == 6
    summary = f"wrote {missing} mask image(s) to maps; kept {len(done)} existing output(s)"
    assert summary in capsys.readouterr().err


def test_ctrl_c_leaves_complete_files_and_the_run_resumes(photos, weights_x1) -> None:
    """A real process, interrupted with SIGINT while it writes, then resumed."""
    small = Image.open("photos/a.jpg")
    small.thumbnail((48, 48))
    for i in range(80):
        small.save(f"photos/many{i:03d}.png")
    argv = [sys.executable, "-m", "sod100k", "predict", "photos", "-o", "maps",
            "-w", str(weights_x1), *FAST, "--batch-size", "1", "--workers", "1"]  # fmt: skip
    # An ignored SIGINT is inherited, and Python then installs no KeyboardInterrupt
    # handler: in the full suite an earlier test leaves SIGINT ignored in pytest's process,
    # so the child must get the default disposition back.
    default_sigint = lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)  # noqa: E731
    proc = subprocess.Popen(argv, stderr=subprocess.PIPE, preexec_fn=default_sigint)
    try:
        deadline = time.monotonic() + 240
        while not list(Path("maps").glob("*.png")) and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, err.decode()
    done = sorted(Path("maps").rglob("*"))
    assert 1 <= len(done) < 83
    assert all(p.suffix == ".png" and not p.name.startswith(".") for p in done)
    for p in done:
        Image.open(p).load()  # every file left behind is complete
    assert main(["predict", "photos", "-o", "maps", "--skip-existing", "-w", str(weights_x1),
                 *FAST]) == 0  # fmt: skip
    assert len(list(Path("maps").rglob("*.png"))) == 83
