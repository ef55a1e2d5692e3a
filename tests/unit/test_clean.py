"""`make clean`: the run outputs go, saying what and how much; the runs' offline ClearML
sessions go only when asked; nothing else is touched."""

from lightdet.clean import SESSION_NOTE, clean


def _tree(tmp_path):
    root, cache = tmp_path / "repo", tmp_path / "cache" / "offline"
    run = root / "logs" / "retinanet" / "runs" / "2026-12-02_10-00-00"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.ckpt").write_bytes(b"x" * 3000)
    session = cache / "offline-0123abcd"
    session.mkdir(parents=True)
    (session / "task.json").write_text("{}")
    session.with_suffix(".zip").write_bytes(b"z" * 2000)
    (run / SESSION_NOTE).write_text(f"{session}\n")
    other = cache / "offline-feedbeef"  # another project's session: never named by a run here
    other.mkdir()
    (root / "data").mkdir()
    (root / "multirun").mkdir()
    bogus = root / "logs" / "x" / SESSION_NOTE  # a note naming something that is no session
    bogus.parent.mkdir(parents=True)
    bogus.write_text(f"{root / 'data'}\n")
    return root, session, other


def test_clean_says_what_it_removes_and_keeps_sessions_unless_asked(tmp_path):
    root, session, other = _tree(tmp_path)
    logs = sum(p.stat().st_size for p in (root / "logs").rglob("*") if p.is_file())
    assert 3100 < logs < 3400  # the checkpoint and two notes
    lines = clean(root)
    assert lines[0] == f"removing {root / 'logs'} ({logs / 1000:.1f} KB)" and lines[1].startswith(
        f"removing {root / 'multirun'} (0 B)"
    )
    assert lines[2].startswith("kept 2 offline ClearML session files of these runs (2.0 KB")
    assert "make clean SESSIONS=1" in lines[2] and lines[-1] == f"removed {logs / 1000:.1f} KB"
    assert not (root / "logs").exists() and (root / "data").is_dir() and session.is_dir()
    assert clean(root) == ["nothing to remove"]


def test_clean_with_sessions_removes_the_runs_sessions_only(tmp_path):
    root, session, other = _tree(tmp_path)
    lines = clean(root, sessions=True)
    assert f"removing {session} (2 B)" in lines and f"removing {session}.zip (2.0 KB)" in lines
    assert not session.exists() and not session.with_suffix(".zip").exists()
    assert other.is_dir() and (root / "data").is_dir()  # not named by a run: kept
    logs = 3000 + len(f"{session}\n") + len(f"{root / 'data'}\n")
    assert lines[-1] == f"removed {(logs + 2 + 2000) / 1000:.1f} KB"
