"""lightdet writes only into folders it created: output paths at user files are refused."""

import os
import sqlite3

import optuna
import pytest
from PIL import Image

from lightdet.guard import UnsafeConfigError
from lightdet.outputs import (
    MARKER,
    ForeignFolderError,
    check_replaceable,
    claim,
    is_optuna_storage,
    is_ours,
    mark,
)
from lightdet.runs.show_augment import show_augment
from lightdet.runs.train import run_training
from tests.conftest import compose_train, snapshot


def _user_folder(root):
    (root / "src").mkdir(parents=True)
    (root / "src" / "model.py").write_text("print('mine')\n")
    (root / "checkpoints").mkdir()
    (root / "checkpoints" / "last.ckpt").write_bytes(b"my weights")
    return snapshot(root)


def test_claim_marks_new_and_empty_folders_and_refuses_foreign_ones(tmp_path):
    assert is_ours(claim(tmp_path / "new", "k"))
    (tmp_path / "empty").mkdir()
    assert is_ours(claim(tmp_path / "empty", "k"))
    before = _user_folder(tmp_path / "user")
    with pytest.raises(ForeignFolderError, match=r"paths.output_dir=.*user: the folder holds"):
        claim(tmp_path / "user", "paths.output_dir")
    assert snapshot(tmp_path / "user") == before and not (tmp_path / "user" / MARKER).exists()


def test_the_marker_is_not_inherited_by_the_folders_below(tmp_path):
    """Round 2: a marker that got into a user's folder handed lightdet every folder below."""
    marked = claim(tmp_path / "run", "k")
    (marked / "user_sub").mkdir()
    (marked / "user_sub" / "f.txt").write_text("mine")
    assert not is_ours(marked / "user_sub")
    with pytest.raises(ForeignFolderError, match="user_sub: the folder holds"):
        claim(marked / "user_sub", "callbacks.model_checkpoint.dirpath")
    assert is_ours(claim(marked / "checkpoints", "k"))  # one lightdet makes: its own marker
    deep = mark(tmp_path / "a" / "b" / "c", "k")  # each parent it had to create is marked
    assert all(is_ours(p) for p in (tmp_path / "a", tmp_path / "a" / "b", deep))
    (tmp_path / "u").mkdir()
    (tmp_path / "u" / MARKER).symlink_to(marked / MARKER)  # a link to a marker is none
    assert not is_ours(tmp_path / "u")


def test_an_existing_file_is_replaced_only_where_lightdet_wrote_it(tmp_path):
    (tmp_path / "photo.png").write_bytes(b"mine")
    with pytest.raises(ForeignFolderError, match=r"output=.*photo.png: the file exists"):
        check_replaceable(tmp_path / "photo.png", "output")
    check_replaceable(tmp_path / "photo.png", "output", ours=True)
    check_replaceable(tmp_path / "new.png", "output")
    claim(tmp_path / "run", "k")
    (tmp_path / "run" / "grid.png").write_bytes(b"ours")
    check_replaceable(tmp_path / "run" / "grid.png", "output")


def test_an_optuna_study_file_is_recognised_and_other_databases_are_not(tmp_path):
    optuna.create_study(storage=f"sqlite:///{tmp_path / 'study.db'}", study_name="s")
    assert is_optuna_storage(tmp_path / "study.db")
    with sqlite3.connect(tmp_path / "mine.db") as db:
        db.execute("CREATE TABLE accounts (id INTEGER)")
    (tmp_path / "notes.txt").write_text("not a database")
    assert not is_optuna_storage(tmp_path / "mine.db") and not is_optuna_storage(
        tmp_path / "notes.txt"
    )


@pytest.mark.parametrize(
    "override",
    [
        "paths.output_dir={user}",
        "data.source.root={user}",
        "callbacks.model_checkpoint.dirpath={user}",
    ],
)
def test_training_pointed_at_user_files_refuses_and_changes_nothing(tmp_path, override):
    """Output keys are refused at composition (the write policy), the data root when the
    shapes source claims it."""
    user = tmp_path / "user"
    before = _user_folder(user)
    with pytest.raises(
        (ForeignFolderError, UnsafeConfigError), match=override.split("=")[0].replace(".", r"\.")
    ):
        run_training(compose_train(tmp_path, override.format(user=user)))
    assert snapshot(user) == before


def test_show_augment_replaces_its_own_grid_but_not_a_users_file(tmp_path):
    from hydra import compose, initialize_config_dir

    from lightdet.cli import CONFIG_DIR
    from tests.conftest import TINY

    def cfg(output):
        with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
            return compose(
                config_name="show_augment",
                overrides=[
                    f"paths.root_dir={tmp_path}",
                    f"output={output}",
                    "num_images=1",
                    "repeats=1",
                    *(f"++data.source.{k}={v}" for k, v in TINY.items()),
                ],
            )

    photo = tmp_path / "photo.png"
    Image.new("RGB", (4, 4), "red").save(photo)
    before = photo.read_bytes()
    with pytest.raises(UnsafeConfigError, match=r"output=.*photo.png: the file exists"):
        show_augment(cfg(photo))
    assert photo.read_bytes() == before
    grid = tmp_path / "grids" / "plain.png"
    show_augment(cfg(grid))
    first = grid.stat().st_mtime_ns
    show_augment(cfg(grid))  # its own grid: replaced
    assert grid.stat().st_mtime_ns >= first and Image.open(grid).size[0] > 4


def test_a_study_storage_at_a_users_database_is_refused(tmp_path):
    from lightdet.search.local import _check_storage

    mine = tmp_path / "mine.db"
    with sqlite3.connect(mine) as db:
        db.execute("CREATE TABLE accounts (id INTEGER)")
    before = mine.read_bytes()
    for url in (f"sqlite:///{mine}", f"sqlite+pysqlite:///{mine}", f"SQLite:///{mine}"):
        with pytest.raises(UnsafeConfigError, match=r"hpo.storage=.*mine.db: .* not an Optuna"):
            _check_storage(url)
    with pytest.raises(UnsafeConfigError, match=r"with options \(uri\)"):
        _check_storage(f"sqlite:///file:{mine}?uri=true")
    assert mine.read_bytes() == before
    _check_storage(f"sqlite:///{tmp_path / 'new' / 'study.db'}")  # new: its folder is made
    assert (tmp_path / "new").is_dir()


def test_runs_started_at_once_never_share_a_folder(tmp_path):
    """Eight processes' worth of claims on one name (same task, same second): eight folders."""
    from concurrent.futures import ThreadPoolExecutor

    from lightdet.outputs import is_ours, new_run_dir

    target = tmp_path / "logs" / "retinanet" / "runs" / "2026-12-02_10-00-00"
    with ThreadPoolExecutor(8) as pool:
        folders = list(pool.map(lambda _: new_run_dir(target), range(8)))
    assert len(set(folders)) == 8
    assert sorted(f.name for f in folders) == sorted(
        ["2026-12-02_10-00-00", *(f"2026-12-02_10-00-00-{n}" for n in range(2, 9))]
    )
    assert all(is_ours(f) and sorted(p.name for p in f.iterdir()) == [".lightdet"] for f in folders)


def test_the_clock_cannot_make_two_runs_share_a_folder(tmp_path, monkeypatch):
    """The CLI's folder pattern with a clock that says the same second twice (or goes back).
    Hydra re-registers its ``now`` resolver on every compose, so the clock it reads is frozen."""
    import datetime as real

    import hydra.core.utils

    from lightdet.runs.compose import compose_config

    class FrozenClock(real.datetime):
        @classmethod
        def now(cls, tz=None):
            return cls(2026, 12, 2, 10, 0, 0)

    monkeypatch.setattr(hydra.core.utils, "datetime", FrozenClock)
    first, second = (compose_config("train", [f"paths.root_dir={tmp_path}"]) for _ in range(2))
    assert first.paths.output_dir.endswith("2026-12-02_10-00-00")
    assert first.paths.output_dir != second.paths.output_dir
    assert second.paths.output_dir == first.paths.output_dir + "-2"


def test_a_folder_that_cannot_be_made_or_written_is_refused_in_one_line(tmp_path, monkeypatch):
    (tmp_path / "notes.txt").write_text("mine\n")
    with pytest.raises(
        ForeignFolderError, match=r"^k=.*notes.txt/out: cannot be created: .*notes.txt is a file$"
    ):
        claim(tmp_path / "notes.txt" / "out", "k")
    # a folder without write permission (simulated: the tests may run as root, who has it)
    import os

    real = os.access
    monkeypatch.setattr(
        os, "access", lambda p, mode: False if str(p) == str(tmp_path) else real(p, mode)
    )
    with pytest.raises(
        ForeignFolderError, match=r"^k=.*/new: cannot be written: .* is not writable"
    ):
        claim(tmp_path / "new", "k")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_the_grid_file_name_must_be_an_image_before_anything_is_drawn(tmp_path):
    from hydra import compose, initialize_config_dir

    from lightdet.cli import CONFIG_DIR

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        with pytest.raises(
            UnsafeConfigError,
            match=r"output=.*grid: expected a file name ending in \.png, \.jpg, \.jpeg$",
        ):
            compose(
                config_name="show_augment",
                overrides=[f"paths.root_dir={tmp_path}", f"output={tmp_path}/grid"],
            )
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_during_a_run_is_one_line_naming_the_file():
    import errno

    from lightdet.cli import FileError, file_errors_in_one_line

    with pytest.raises(FileError) as caught:
        with file_errors_in_one_line("predict"):
            raise OSError(errno.ENOSPC, "No space left on device", "/out/images/0001.png")
    assert str(caught.value) == "predict: No space left on device: /out/images/0001.png"
    assert caught.value.errno == errno.ENOSPC
    with pytest.raises(KeyError):  # anything else passes unchanged
        with file_errors_in_one_line("predict"):
            raise KeyError("x")


def test_a_folder_refused_after_the_run_began_is_one_line_too():
    from lightdet.cli import FileError, file_errors_in_one_line

    with pytest.raises(FileError, match=r"^train: data.source.root=/x: the folder holds files"):
        with file_errors_in_one_line("train"):
            raise ForeignFolderError("data.source.root=/x: the folder holds files lightdet did not")


def test_the_shapes_root_is_checked_when_the_config_is_composed(tmp_path):
    """The shapes data is generated into data.source.root on first use; a root that is a
    file, a user's folder or under a file is refused at composition (it was a traceback
    after the run folder existed)."""
    from hydra import compose, initialize_config_dir

    from lightdet.cli import CONFIG_DIR
    from lightdet.runs.preflight import InputError, check_generated_data

    before = _user_folder(tmp_path / "user")
    (tmp_path / "notes.txt").write_text("mine\n")
    for root, message in (
        (tmp_path / "notes.txt", "exists and is not a folder"),
        (tmp_path / "notes.txt" / "shapes", "cannot be created: .*notes.txt is a file"),
        (tmp_path / "user", "the folder holds files lightdet did not create"),
    ):
        with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
            cfg = compose(config_name="train", overrides=[f"data.source.root={root}"])
        with pytest.raises(InputError, match=rf"^data.source.root={root}: {message}"):
            check_generated_data(cfg)
    assert snapshot(tmp_path / "user") == before
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="train", overrides=[f"data.source.root={tmp_path}/new"])
    check_generated_data(cfg)  # a new folder: fine, and nothing is written yet
    assert not (tmp_path / "new").exists()


def test_disk_usage_counts_a_hard_linked_file_once(tmp_path):
    from lightdet.outputs import disk_usage, human_size

    run, session = tmp_path / "run", tmp_path / "offline-1"
    run.mkdir()
    session.mkdir()
    (run / "best.ckpt").write_bytes(b"w" * 5000)
    (run / "last.ckpt").write_bytes(b"l" * 15000)
    os.link(run / "best.ckpt", session / "model_best.ckpt")
    (tmp_path / "offline-1.zip").write_bytes(b"z" * 4000)
    assert disk_usage(run) == 20000 and disk_usage(session) == 5000
    assert disk_usage(run, session, tmp_path / "offline-1.zip") == 24000  # the link once
    assert [human_size(n) for n in (999, 24000, 190_300_000, 2.5e9)] == [
        "999 B",
        "24.0 KB",
        "190.3 MB",
        "2.5 GB",
    ]
