"""``sod100k predict --ray`` and the Ray Data entry point, on a local 2-CPU cluster.

One cluster for the whole module (``ray.init(num_cpus=2)``, started here and shut down
at the end); a handful of ECSSD images. The outputs of ``--ray`` must be the same bytes
as the local command's, a killed worker must not lose or corrupt any output, and bad
files are failure lines.
"""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray", reason="the ray extra is not installed")

from sod100k.cli import main  # noqa: E402

pytestmark = pytest.mark.timeout(300)

STEMS = ("0001", "0002", "0557", "0010")  # 0557 is grayscale


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def photos(tmp_path_factory, ecssd) -> Path:
    """Four ECSSD images (one in a sub-folder, one grayscale) and a file that is no image."""
    root = tmp_path_factory.mktemp("photos")
    (root / "sub").mkdir()
    for i, stem in enumerate(STEMS):
        shutil.copy(
            ecssd / "images" / f"{stem}.jpg", root / ("sub" if i == 3 else "") / f"{stem}.jpg"
        )
    (root / "broken.jpg").write_bytes(b"this is not a jpeg")
    return root


def _outputs(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def _run(*args: str) -> int:
    return main([*args, "-q"])


@pytest.fixture(scope="module")
def local_masks(photos, weights_x2, tmp_path_factory) -> dict[str, bytes]:
    out = tmp_path_factory.mktemp("local") / "masks"
    assert _run("predict", str(photos), "-o", str(out), "-w", str(weights_x2)) == 1
    return _outputs(out)


@pytest.mark.parametrize("command", ["predict", "cutout"])
def test_ray_writes_the_same_bytes_as_local(
    cluster, photos, weights_x2, tmp_path, command, local_masks, capsys
):
    if command == "cutout":
        local = tmp_path / "local"
        assert _run(command, str(photos), "-o", str(local), "-w", str(weights_x2)) == 1
        expected = _outputs(local)
    else:
        expected = local_masks
    capsys.readouterr()
    out = tmp_path / "ray"
    code = _run(command, str(photos), "-o", str(out), "-w", str(weights_x2), "--ray")
    err = capsys.readouterr().err
    assert code == 1  # the broken file, as locally
    assert f"{photos / 'broken.jpg'}: not an image file" in err and "1 item(s) failed" in err
    assert sorted(expected) == ["0001.png", "0002.png", "0557.png", "sub/0010.png"]
    assert _outputs(out) == expected


def test_skip_existing_does_no_work(cluster, photos, weights_x2, tmp_path, local_masks, capsys):
    out = tmp_path / "ray"
    shutil.copytree(photos, tmp_path / "copy")
    args = ["predict", str(tmp_path / "copy"), "-o", str(out), "-w", str(weights_x2), "--ray"]
    (tmp_path / "copy" / "broken.jpg").unlink()
    assert _run(*args) == 0
    capsys.readouterr()
    assert _run(*args, "--skip-existing") == 0
    assert "wrote 0 mask image(s)" in capsys.readouterr().err
    assert _outputs(out) == local_masks


def test_uris_in_and_out(cluster, photos, weights_x2, tmp_path, local_masks, capsys):
    out = f"file://{tmp_path}/uri-out"
    code = _run("predict", f"file://{photos}", "-o", out, "-w", str(weights_x2), "--ray")
    err = capsys.readouterr().err
    assert code == 1 and f"file://{photos}/broken.jpg: not an image file" in err
    assert _outputs(tmp_path / "uri-out") == local_masks


def test_missing_input_is_a_failure_line(cluster, photos, weights_x2, tmp_path, capsys):
    missing = tmp_path / "gone.jpg"
    code = _run(
        "predict", str(photos / "0001.jpg"), str(missing), "-o", str(tmp_path / "o"),
        "-w", str(weights_x2), "--ray",
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1 and f"{missing}: no such file or folder" in err
    assert (tmp_path / "o" / "0001.png").is_file()


def test_options_that_cannot_run_on_ray(photos, tmp_path, capsys):
    out = str(tmp_path / "o")
    assert _run("predict", str(photos), "-o", out, "--ray", "--streams", "2") == 2
    assert "--streams is for a local run" in capsys.readouterr().err
    assert _run("predict", str(photos), "-o", out, "--ray", str(photos / "0001.jpg")) == 2
    assert "not a cluster address" in capsys.readouterr().err


def test_entry_point_adds_mask_and_cutout_columns(cluster, photos, weights_x2):
    from sod100k.api import get_predictor
    from sod100k.data.images import load_rgb
    from sod100k.distributed.model import ModelSpec
    from sod100k.distributed.predictor import SaliencyPredictor
    from sod100k.infer.batch import render_rgba

    spec = ModelSpec.load(weights=str(weights_x2))
    ds = ray.data.read_binary_files(str(photos), include_paths=True)
    ds = ds.map_batches(
        SaliencyPredictor,
        fn_constructor_kwargs={"spec": spec, "cutout": True},
        # one actor of one CPU: the other CPU runs the read tasks that feed it
        compute=ray.data.ActorPoolStrategy(size=1),
        num_cpus=1,
        batch_size=4,
    )
    rows = {Path(r["path"]).name: r for r in ds.take_all()}
    assert sorted(rows) == ["0001.jpg", "0002.jpg", "0010.jpg", "0557.jpg", "broken.jpg"]
    assert "not an image file" in rows["broken.jpg"]["error"]
    assert rows["broken.jpg"]["mask"].shape == (0, 0)
    local = get_predictor(weights=str(weights_x2))
    for name in ("0001.jpg", "0557.jpg"):
        rgb = load_rgb(next(photos.rglob(name)))
        assert rows[name]["error"] == ""
        assert np.array_equal(rows[name]["mask"], local(rgb))
        assert np.array_equal(rows[name]["cutout"], render_rgba(rgb, local(rgb)))


def _worker_pids(name: str) -> list[int]:
    """Processes of this test's cluster (our descendants) whose title names ``name``."""
    import psutil

    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            if name in " ".join(child.cmdline()):
                found.append(child.pid)
        except psutil.Error:
            continue
    return found


def test_a_killed_worker_loses_nothing(cluster, ecssd, weights_x2, tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    for i in range(48):  # small images: enough rows for several actor tasks
        shutil.copy(ecssd / "images" / f"{STEMS[i % 3]}.jpg", src / f"{i:02d}.jpg")
    local = tmp_path / "local"
    assert _run("predict", str(src), "-o", str(local), "-w", str(weights_x2)) == 0
    out = tmp_path / "ray"
    killed: list[int] = []

    def kill_one_worker() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed:
            written = list(out.glob("*.png")) if out.exists() else []
            pids = _worker_pids("FileWorker")
            if written and pids:
                os.kill(pids[0], signal.SIGKILL)
                killed.append(len(written))
            time.sleep(0.01)

    killer = threading.Thread(target=kill_one_worker)
    killer.start()
    args = ["predict", str(src), "-o", str(out), "-w", str(weights_x2), "--ray",
            "--ray-actors", "1", "--ray-cpus-per-actor", "1"]  # fmt: skip
    code = _run(*args)
    killer.join()
    assert killed and killed[0] < 48, "the worker was not killed in the middle of the run"
    assert code == 0
    assert _outputs(out) == _outputs(local)  # every output there and complete
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary left
    capsys.readouterr()
    assert _run(*args, "--skip-existing") == 0
    assert "wrote 0 mask image(s)" in capsys.readouterr().err


def test_unreadable_inputs_and_unwritable_outputs_are_failure_rows(
    cluster, photos, weights_x2, tmp_path
):
    from sod100k.distributed.batch import predict_files
    from sod100k.distributed.model import ModelSpec
    from sod100k.infer.batch import render_mask

    items = [
        (str(photos / "0001.jpg"), str(tmp_path / "ok.png"), "ok.jpg"),
        (str(tmp_path / "gone.jpg"), str(tmp_path / "gone.png"), "gone.jpg"),  # deleted since
        (str(photos / "sub"), str(tmp_path / "dir.png"), "dir.jpg"),  # not a file
        (str(photos / "0002.jpg"), str(photos / "0001.jpg" / "x.png"), "0002.jpg"),  # no folder
    ]
    spec = ModelSpec.load(weights=str(weights_x2))
    report = predict_files(
        items, spec, render_mask, actors=1, cpus_per_actor=1, batch_size=2, progress=False
    )
    assert report.written == [str(tmp_path / "ok.png")]
    failed = dict(report.failed)
    assert sorted(failed) == ["0002.jpg", "dir.jpg", "gone.jpg"]
    assert failed["gone.jpg"].startswith("gone.jpg: cannot read file")
    assert failed["dir.jpg"].startswith("dir.jpg: cannot read file")
    assert str(photos / "0001.jpg") in failed["0002.jpg"]  # the file in the way
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok.png"]
