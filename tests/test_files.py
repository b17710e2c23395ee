"""Atomic writes: all or nothing, and the permissions a plain open() would give."""

import os
import stat

import pytest

from sod100k.utils.files import atomic_open, atomic_path, atomic_write_bytes


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_new_file_gets_the_umask_mode_not_mkstemps_0600(tmp_path):
    umask = os.umask(0o022)
    os.umask(umask)
    path = tmp_path / "out.png"
    atomic_write_bytes(path, b"data")
    assert path.read_bytes() == b"data"
    assert mode(path) == 0o666 & ~umask


def test_replacing_a_file_keeps_its_permissions(tmp_path):
    path = tmp_path / "out.png"
    path.write_bytes(b"old")
    path.chmod(0o640)
    atomic_write_bytes(path, b"new")
    assert path.read_bytes() == b"new" and mode(path) == 0o640


def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "out.png"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_open(path) as f:
        f.write(b"partial")
        raise RuntimeError("disk full")
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]


def test_atomic_path_renames_on_success_and_removes_the_temporary_on_error(tmp_path):
    dst = tmp_path / "sub" / "clip.mp4"
    with atomic_path(dst) as tmp:
        assert tmp.parent == dst.parent and tmp.suffix == ".mp4" and tmp != dst
        tmp.write_bytes(b"new")
        assert not dst.exists()
    assert dst.read_bytes() == b"new"
    with pytest.raises(RuntimeError), atomic_path(dst) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("encoder died")
    assert dst.read_bytes() == b"new"
    assert sorted(p.name for p in dst.parent.iterdir()) == ["clip.mp4"]
