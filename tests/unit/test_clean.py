"""`make clean`: lightdet's run outputs go (folders with its marker), saying what and how
much; the runs' offline ClearML sessions go with them (kept and listed when asked), only from
ClearML's own offline folder; nothing else is touched, links are not followed."""

from lightdet import outputs
from lightdet.clean import SESSION_NOTE, clean
from tests.conftest import snapshot


def _tree(tmp_path):
    root, offline = tmp_path / "repo", tmp_path / "cache" / "offline"
    run = outputs.new_run_dir(root / "logs" / "retinanet" / "runs" / "2026-12-02_10-00-00")
    outputs.claim(run / "checkpoints", "k", "checkpoints")
    (run / "checkpoints" / "last.ckpt").write_bytes(b"x" * 3000)
    session = offline / "offline-0123abcd"
    session.mkdir(parents=True)
    (session / "task.json").write_text("{}")
    session.with_suffix(".zip").write_bytes(b"z" * 2000)
    (run / SESSION_NOTE).write_text(f"{session}\n")
    other = offline / "offline-feedbeef"  # another project's session: never named by a run here
    other.mkdir()
    (root / "data").mkdir()
    return root, session, other, offline


def test_clean_keeping_sessions_lists_each_with_its_path_and_size(tmp_path):
    """Round 3: sessions were kept by default and named only by their folder; the hint
    `make clean SESSIONS=1` then found nothing (the runs naming them were gone)."""
    root, session, other, offline = _tree(tmp_path)
    logs = sum(p.stat().st_size for p in (root / "logs").rglob("*") if p.is_file())
    lines = clean(root, sessions=False, offline=offline)
    assert lines[0] == f"removing {root / 'logs'} ({logs / 1000:.1f} KB)"  # made, so marked
    assert lines[1].startswith("kept 2 offline ClearML session files of these runs (2.0 KB")
    assert lines[2:4] == [f"  {session} (2 B)", f"  {session}.zip (2.0 KB)"]
    assert lines[-1] == f"removed {logs / 1000:.1f} KB"
    assert not (root / "logs").exists() and (root / "data").is_dir() and session.is_dir()
    assert clean(root, offline=offline) == ["nothing to remove"]


def test_clean_removes_the_runs_sessions_only(tmp_path):
    root, session, other, offline = _tree(tmp_path)
    lines = clean(root, offline=offline)
    assert f"removing {session} (2 B)" in lines and f"removing {session}.zip (2.0 KB)" in lines
    assert not session.exists() and not session.with_suffix(".zip").exists()
    assert other.is_dir() and (root / "data").is_dir()  # not named by a run: kept


def test_only_marked_folders_go_and_a_users_files_in_the_output_folders_stay(tmp_path):
    """Round 2: outputs/ and multirun/ were deleted whole, whatever they held."""
    root = tmp_path / "repo"
    (root / "outputs" / "mine").mkdir(parents=True)  # made by the user: no marker
    (root / "outputs" / "mine" / "notes.txt").write_text("keep me")
    (root / "multirun").mkdir()
    (root / "multirun" / "paper.tex").write_text("keep me too")
    ours = outputs.new_run_dir(root / "outputs" / "run")
    (ours / "x.txt").write_text("lightdet's")
    before = {**snapshot(root / "outputs" / "mine"), **snapshot(root / "multirun")}
    size = sum(len(b) for b in snapshot(ours).values())  # x.txt and the marker
    lines = clean(root, offline=tmp_path / "offline")
    assert lines[0] == f"removing {ours} ({size} B)" and not ours.exists() and size > 10
    assert "kept 2 entries without lightdet's marker" in lines[1]
    assert {**snapshot(root / "outputs" / "mine"), **snapshot(root / "multirun")} == before


def test_a_session_note_never_leads_outside_clearmls_offline_folder(tmp_path):
    """Round 2: a note naming <anywhere>/offline/offline-x had that folder deleted."""
    root = tmp_path / "repo"
    run = outputs.new_run_dir(root / "logs" / "t" / "runs" / "r")
    elsewhere = tmp_path / "home" / "offline" / "offline-thesis"  # looks like a session
    elsewhere.mkdir(parents=True)
    (elsewhere / "chapter1.tex").write_text("years of work")
    (run / SESSION_NOTE).write_text(f"{elsewhere}\n")
    link = tmp_path / "cache" / "offline"
    link.mkdir(parents=True)
    (link / "offline-linked").symlink_to(elsewhere)  # a link in the offline folder: no either
    (run / "second").mkdir()
    (run / "second" / SESSION_NOTE).write_text(f"{link / 'offline-linked'}\n")
    clean(root, sessions=True, offline=link)
    assert (elsewhere / "chapter1.tex").read_text() == "years of work"


def test_a_symlinked_logs_folder_is_cleaned_where_it_points_and_kept_as_a_link(tmp_path):
    """Round 2: a symlinked logs/ crashed make clean."""
    root, disk = tmp_path / "repo", tmp_path / "disk" / "logs"
    disk.mkdir(parents=True)
    root.mkdir()
    (root / "logs").symlink_to(disk)
    run = outputs.new_run_dir(disk / "t" / "runs" / "r")
    (disk / "README").write_text("my disk")
    (run / "loop").symlink_to(tmp_path)  # a link inside a run is removed, never followed
    lines = clean(root, offline=tmp_path / "offline")
    assert (root / "logs").is_symlink() and (disk / "README").read_text() == "my disk"
    assert not (disk / "t").exists() and lines[-1].startswith("removed ")
    assert (tmp_path / "repo").is_dir()


def test_make_clean_without_lightdet_installed_removes_nothing(tmp_path):
    """Its fallback was ``rm -rf logs outputs multirun``, whatever they held."""
    import subprocess
    from pathlib import Path

    makefile = Path(__file__).resolve().parents[2] / "Makefile"
    (tmp_path / "outputs").mkdir()
    (tmp_path / "outputs" / "notes.txt").write_text("mine")
    proc = subprocess.run(
        ["make", "-s", "-f", str(makefile), "clean", f"VENV={tmp_path}/none"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "nothing removed" in proc.stdout
    assert (tmp_path / "outputs" / "notes.txt").read_text() == "mine"
