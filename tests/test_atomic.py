import json

import pytest

from visionops import atomic


def test_write_json_replaces_whole_file(tmp_path):
    path = tmp_path / "sub" / "x.json"
    atomic.write_json(path, {"a": 1})
    atomic.write_json(path, {"b": 2})
    assert json.loads(path.read_text()) == {"b": 2}
    assert [p.name for p in path.parent.iterdir()] == ["x.json"]


def test_atomic_path_leaves_nothing_on_error(tmp_path):
    path = tmp_path / "out.bin"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic.atomic_path(path) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("crash mid-write")
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_atomic_dir_keeps_old_content_on_failure_and_swaps_on_success(tmp_path):
    target = tmp_path / "raw"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(KeyboardInterrupt), atomic.atomic_dir(target) as staging:
        (staging / "new.txt").write_text("new")
        raise KeyboardInterrupt
    assert sorted(p.name for p in target.iterdir()) == ["old.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["raw"]
    with atomic.atomic_dir(target) as staging:
        (staging / "new.txt").write_text("new")
    assert sorted(p.name for p in target.iterdir()) == ["new.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["raw"]


def test_remove_stale_temporaries(tmp_path):
    (tmp_path / ".tmp-raw.abc").mkdir()
    (tmp_path / ".tmp-x.json.1").write_text("")
    (tmp_path / "keep").write_text("")
    removed = atomic.remove_stale_temporaries(tmp_path)
    assert len(removed) == 2 and [p.name for p in tmp_path.iterdir()] == ["keep"]
