"""Input classification and output planning of ``sod100k predict`` (no model involved)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sod100k.data.images import IMAGE_SUFFIXES, load_rgb
from sod100k.infer.inputs import (
    Destination,
    PlanError,
    check_writable,
    classify_inputs,
    plan_run,
    resolve_output,
    split_writable,
)


def image(path: Path, size=(24, 16), color=(200, 30, 30)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)
    return path


@pytest.fixture
def tree(tmp_path, monkeypatch) -> Path:
    """photos/{a.jpg, b.png, notes.txt, .hidden.png, sub/c.gif, .cache/d.png} in the cwd."""
    monkeypatch.chdir(tmp_path)
    root = Path("photos")
    image(root / "a.jpg")
    image(root / "b.png")
    image(root / "sub" / "c.gif")
    image(root / ".hidden.png")
    image(root / ".cache" / "d.png")
    (root / "notes.txt").write_text("not an image")
    return root


def kinds(*args: str) -> list[str]:
    return [i.kind for i in classify_inputs(args)]


def test_classify_inputs(tree) -> None:
    assert kinds("-", "photos", "photos/a.jpg", "photos/*.jpg", "nope.jpg") == [
        "stdin",
        "folder",
        "file",
        "glob",
        "missing",
    ]
    weird = image(Path("photos/[x].png"))  # an existing path wins over its glob reading
    assert kinds(str(weird)) == ["file"]
    (glob,) = classify_inputs(["photos/**/x*/*.png"])
    assert glob.path == Path("photos")


def out(args: list[str], output: str | None, fmt: str = "mask") -> Destination:
    return resolve_output(classify_inputs(args), output, fmt)


def test_resolve_output_forms(tree) -> None:
    assert out(["photos/a.jpg"], None) == Destination("beside")
    assert out(["photos"], None) == Destination("beside")
    assert out(["-"], None) == Destination("stdout")
    assert out(["-"], "-") == Destination("stdout")
    assert out(["photos/a.jpg"], "-") == Destination("stdout")
    assert out(["photos/a.jpg"], "m.png") == Destination("file", Path("m.png"))
    assert out(["-"], "m.png") == Destination("file", Path("m.png"))
    assert out(["photos/a.jpg"], "maps") == Destination("folder", Path("maps"))
    assert out(["photos/a.jpg"], "maps.png/") == Destination("folder", Path("maps.png"))
    assert out(["photos/a.jpg"], "c.webp", "rgba") == Destination("file", Path("c.webp"))
    assert out(["photos/a.jpg"], "v.JPG", "overlay") == Destination("file", Path("v.JPG"))
    assert out(["photos", "photos/a.jpg"], "maps") == Destination("folder", Path("maps"))
    Path("old.png").mkdir()  # an existing folder stays a folder, whatever its name
    assert out(["photos"], "old.png") == Destination("folder", Path("old.png"))


@pytest.mark.parametrize(
    ("args", "output", "fmt", "message"),
    [
        (["-", "photos/a.jpg"], None, "mask", "must be the only input"),
        (["photos"], "-", "mask", "takes exactly one input"),
        (["photos"], "maps.png", "mask", "names an image file, but the inputs are a folder"),
        (["photos/a.jpg", "photos/b.png"], "m.png", "mask", "the inputs are 2 paths"),
        (["photos/a.jpg"], "m.webp", "mask", "writes a mask as .png, not .webp"),
        (["photos/a.jpg"], "m.jpg", "mask", "writes a mask as .png, not .jpg"),
        (["photos/a.jpg"], "c.jpg", "rgba", "writes a cut-out as .png or .webp, not .jpg"),
        (["photos/a.jpg"], "v.webp", "overlay", "not .webp"),
        (["-"], "maps", "mask", "with input '-' give an image file name"),
        (["-"], "photos", "mask", "is a folder"),
    ],
)
def test_resolve_output_refusals(tree, args, output, fmt, message) -> None:
    with pytest.raises(PlanError, match=message):
        out(args, output, fmt)


def plan(args: list[str], output: str | None = None, fmt: str = "mask", **kw):
    inputs = classify_inputs(args)
    return plan_run(inputs, resolve_output(inputs, output, fmt), fmt, **kw)


def pairs(p) -> set[tuple[str, str]]:
    return {(str(j.src), str(j.dst)) for j in p.jobs}


def test_folder_beside_and_into_a_folder(tree) -> None:
    here = Path.cwd()
    p = plan(["photos"])
    assert pairs(p) == {
        ("photos/a.jpg", f"{here}/photos_mask/a.png"),
        ("photos/b.png", f"{here}/photos_mask/b.png"),
        ("photos/sub/c.gif", f"{here}/photos_mask/sub/c.png"),
    }
    assert p.skipped == [Path("photos/notes.txt")]  # hidden files and folders: silent
    assert not p.failed and not p.left_out
    assert pairs(plan(["photos"], "maps", "rgba")) == {
        ("photos/a.jpg", "maps/a.png"),
        ("photos/b.png", "maps/b.png"),
        ("photos/sub/c.gif", "maps/sub/c.png"),
    }


def test_files_and_globs(tree) -> None:
    assert pairs(plan(["photos/a.jpg", "photos/sub/c.gif"], fmt="overlay")) == {
        ("photos/a.jpg", "photos/a.overlay.png"),
        ("photos/sub/c.gif", "photos/sub/c.overlay.png"),
    }
    assert pairs(plan(["photos/a.jpg"], "one.png")) == {("photos/a.jpg", "one.png")}
    p = plan(["photos/**/*"], "maps")
    assert pairs(p) == {
        ("photos/a.jpg", "maps/a.png"),
        ("photos/b.png", "maps/b.png"),
        ("photos/sub/c.gif", "maps/sub/c.png"),
    }
    assert p.skipped == [Path("photos/notes.txt")]
    p = plan(["photos/*.tif", "photos/x.jpg"])
    assert p.failed == [
        ("photos/*.tif", "no image file matches this pattern"),
        ("photos/x.jpg", "no such file or folder"),
    ]


def test_explicit_files_are_tried_whatever_their_suffix(tree) -> None:
    assert pairs(plan(["photos/notes.txt"])) == {("photos/notes.txt", "photos/notes.mask.png")}


def test_output_folder_inside_the_input_folder_is_not_read(tree) -> None:
    image(Path("photos/maps/a.png"))  # a result of an earlier run
    image(Path("photos/maps/old/z.png"))
    p = plan(["photos"], "photos/maps")
    assert {j.src.name for j in p.jobs} == {"a.jpg", "b.png", "c.gif"}
    assert sorted(p.left_out) == [Path("photos/maps/a.png"), Path("photos/maps/old/z.png")]
    p = plan(["photos/**/*.png"], "photos/maps")
    assert {j.src.name for j in p.jobs} == {"b.png"}
    # Written elsewhere, the same folder is input like any other.
    assert "z.png" in {j.src.name for j in plan(["photos"], "maps").jobs}


def test_earlier_results_beside_the_inputs_are_not_inputs(tree) -> None:
    image(Path("photos/a.mask.png"))
    p = plan(["photos/*.*"])
    assert {j.src.name for j in p.jobs} == {"a.jpg", "b.png"}
    assert p.left_out == [Path("photos/a.mask.png")]


def test_no_output_replaces_an_input(tree) -> None:
    image(Path("photos/a.mask.png"))
    p = plan(["photos/a.jpg", "photos/a.mask.png"])  # both named: a.jpg's output is an input
    assert pairs(p) == {("photos/a.mask.png", "photos/a.mask.mask.png")}
    assert p.failed == [("photos/a.jpg", "output photos/a.mask.png would overwrite an input")]
    p = plan(["photos/b.png"], "photos")
    assert not p.jobs and "would overwrite an input" in p.failed[0][1]
    with pytest.raises(PlanError, match="is the input folder"):
        plan(["photos"], "photos")
    image(Path("other/a.png"))
    p = plan(["photos/a.jpg", "other/a.png"], "maps")
    assert p.failed == [("other/a.png", "output maps/a.png is already the output of photos/a.jpg")]


def test_skip_existing(tree) -> None:
    image(Path("maps/a.png"))
    p = plan(["photos"], "maps", skip_existing=True)
    assert p.existing == [Path("maps/a.png")]
    assert {j.src.name for j in p.jobs} == {"b.png", "c.gif"}
    assert len(plan(["photos"], "maps").jobs) == 3


def test_stdin_job_carries_the_data(tree) -> None:
    inputs = classify_inputs(["-"])
    p = plan_run(inputs, resolve_output(inputs, "x.png", "mask"), stdin=b"abc")
    (job,) = p.jobs
    assert (job.name, job.data, job.dst) == ("<stdin>", b"abc", Path("x.png"))


def test_unwritable_output_folders(tree) -> None:
    Path("file.txt").write_text("a file, not a folder")
    jobs = plan(["photos"], "file.txt/maps").jobs
    ok, failed = check_writable(jobs)
    assert not ok
    assert {f[0] for f in failed} == {"file.txt/maps", "file.txt/maps/sub"}
    assert "file.txt is not a folder" in failed[0][1] and "2 image(s) not processed" in failed[0][1]
    ok, failed = check_writable(plan(["photos"], "new/maps").jobs)  # created when written
    assert len(ok) == 3 and not failed and not Path("new").exists()


def test_read_only_output_folder(tree, deny_writes) -> None:
    Path("ro").mkdir()
    deny_writes(Path("ro"))
    ok, failed = check_writable(plan(["photos"], "ro").jobs)
    assert not ok
    assert sorted(failed) == [
        ("ro", "cannot write here (Permission denied); 2 image(s) not processed"),
        ("ro/sub", "cannot write here (Permission denied); 1 image(s) not processed"),
    ]  # ro/sub does not exist yet: its nearest existing parent, ro, is what is tried
    ok, failed = split_writable(["a", "b"], lambda name: Path("ro") / name, "video")
    assert (
        not ok
        and [f[1] for f in failed]
        == ["cannot write here (Permission denied); 1 video(s) not processed"] * 2
    )


@pytest.mark.parametrize("suffix", IMAGE_SUFFIXES)
def test_every_listed_suffix_decodes(tmp_path, suffix) -> None:
    rgb = np.zeros((16, 24, 3), np.uint8)
    rgb[4:12, 6:18] = (250, 250, 250)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, Image.registered_extensions()[suffix])
    path = tmp_path / f"x{suffix}"
    path.write_bytes(buf.getvalue())
    (job,) = plan_run(classify_inputs([str(tmp_path)]), Destination("folder", tmp_path / "o")).jobs
    got = load_rgb(job.src)
    assert got.shape == (16, 24, 3)
    assert np.abs(got.astype(int) - rgb).mean() < 8  # lossy formats come close


def test_gif_gives_its_first_frame(tmp_path) -> None:
    frames = [Image.new("RGB", (20, 10), c) for c in ((255, 0, 0), (0, 0, 255))]
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:], duration=50)
    assert tuple(load_rgb(tmp_path / "a.gif")[5, 5]) == (255, 0, 0)
