"""The index cache: a second indexing of unchanged files reads nothing again and gives the same
records and checks; a changed file means indexing again."""

import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from lightdet.data.sources import VOCSource
from lightdet.lightning.datamodule import DetectionDataModule


def _settle(folder: Path, age_s: float = 60.0) -> None:
    """Every file's time a minute back: files written just now are not cached (racily clean)."""
    past = time.time() - age_s
    for p in folder.rglob("*"):
        os.utime(p, (past, past))


@pytest.fixture
def voc(tmp_path, tiny_shapes, monkeypatch) -> Path:
    monkeypatch.setenv("LIGHTDET_CACHE_DIR", str(tmp_path / "cache"))
    folder = tmp_path / "VOC"
    shutil.copytree(tiny_shapes / "VOC", folder)
    # one box mostly outside the image: skipped and counted, so counts travel with the cache
    xml = folder / "Annotations" / "000001.xml"
    text = xml.read_text()
    start = text.index("<xmax>") + len("<xmax>")
    xml.write_text(text[:start] + "500" + text[text.index("</xmax>") :])
    _settle(folder)
    return folder


def _index(folder: Path, class_names=None):
    source = VOCSource(folder, class_names=class_names, train="train", val="val")
    datamodule = DetectionDataModule(source, num_workers=0)
    datamodule.setup("fit")
    return datamodule


def _same(a, b):
    assert len(a) == len(b) > 0
    for x, y in zip(a, b):
        assert (x.image_path, x.image_id, x.width, x.height, x.name, x.source, x.box_refs) == (
            y.image_path,
            y.image_id,
            y.width,
            y.height,
            y.name,
            y.source,
            y.box_refs,
        )
        for field in ("boxes", "labels", "iscrowd"):
            assert getattr(x, field).dtype == getattr(y, field).dtype
            assert np.array_equal(getattr(x, field), getattr(y, field))


def _count_reads(monkeypatch) -> list[str]:
    """The splits VOCSource reads from its files from now on (cache misses), in order."""
    read: list[str] = []
    original = VOCSource.records

    def counting(self, split, checker=None):
        read.append(split)
        return original(self, split, checker)

    monkeypatch.setattr(VOCSource, "records", counting)
    return read


def test_a_second_index_of_unchanged_files_comes_from_the_cache(voc, monkeypatch):
    first = _index(voc)  # class names from the training split's objects
    assert first.checks["train"].skipped["box_mostly_outside"] == 1
    assert len(list((voc.parent / "cache" / "index").glob("*.npz"))) == 2  # train and val

    def no_reading(self, split, checker=None):
        raise AssertionError(f"{split}: read again")

    monkeypatch.setattr(VOCSource, "records", no_reading)
    second = _index(voc)
    for split in ("train", "val"):
        _same(first.datasets[split].records, second.datasets[split].records)
        for outcome in ("skipped", "fixed", "noted"):
            assert getattr(first.checks[split], outcome) == getattr(second.checks[split], outcome)
    assert second.class_names == first.class_names  # restored without reading the objects


def test_a_changed_file_or_another_setting_means_indexing_again(voc, monkeypatch):
    first = _index(voc)
    xml = voc / "Annotations" / "000002.xml"
    text = xml.read_text()
    start = text.index("<xmin>") + len("<xmin>")
    end = text.index("</xmin>")
    xml.write_text(text[:start] + "1.50" + text[end:])  # a moved box (1-based: 0.5)
    os.utime(xml, (time.time() - 30, time.time() - 30))
    read = _count_reads(monkeypatch)
    second = _index(voc)
    assert sorted(read) == ["train", "val"]  # every split of the folder indexed again
    changed = {r.name: r for r in second.datasets["train"].records}.get("000002") or {
        r.name: r for r in second.datasets["val"].records
    }["000002"]
    assert changed.boxes[0, 0] == pytest.approx(0.5)
    read.clear()
    _index(voc, class_names=list(first.class_names)[::-1])  # another setting: another key
    assert sorted(read) == ["train", "val"]


def test_fresh_files_and_a_damaged_cache_are_not_used(voc, monkeypatch):
    _settle(voc, age_s=0.0)  # just written: a change within the clock's tick would go unseen
    _index(voc)
    assert not list((voc.parent / "cache").rglob("*.npz"))
    _settle(voc)
    _index(voc)
    for npz in (voc.parent / "cache" / "index").glob("*.npz"):
        npz.write_bytes(b"not an npz")
    read = _count_reads(monkeypatch)
    again = _index(voc)  # read again, not failed
    assert sorted(read) == ["train", "val"] and len(again.datasets["train"]) == 16
    read.clear()
    _index(voc)  # and written again whole
    assert read == []


def _cache_files(voc: Path) -> list[tuple[Path, Path]]:
    return [
        (j, j.with_suffix(".npz")) for j in sorted((voc.parent / "cache" / "index").glob("*.json"))
    ]


def _tamper_rows(voc: Path, change) -> None:
    import json

    for meta_path, _ in _cache_files(voc):
        meta = json.loads(meta_path.read_text())
        change(meta)
        meta_path.write_text(json.dumps(meta))


def _tamper_arrays(voc: Path, name: str, change) -> None:
    for _, npz in _cache_files(voc):
        with np.load(npz) as loaded:
            arrays = {k: loaded[k] for k in loaded.files}
        change(arrays[name])
        np.savez(npz, **arrays)


def _rows(meta, field, value):
    meta["records"][0][field] = value


@pytest.mark.parametrize(
    "tamper",
    [
        lambda voc: _tamper_rows(voc, lambda m: _rows(m, "image_path", "/etc/passwd")),
        lambda voc: _tamper_rows(voc, lambda m: _rows(m, "image_path", str(voc / ".." / "x.jpg"))),
        lambda voc: _tamper_arrays(voc, "boxes", lambda b: b.__setitem__((0, 2), np.nan)),
        lambda voc: _tamper_arrays(voc, "boxes", lambda b: b.__setitem__((0, 2), 1e6)),
        lambda voc: _tamper_arrays(voc, "labels", lambda x: x.__setitem__(0, 99)),
        lambda voc: _tamper_arrays(voc, "labels", lambda x: x.__setitem__(0, 0)),
        lambda voc: _tamper_rows(
            voc,
            lambda m: m["source_state"].update(class_names=["background", "square", "triangle"]),
        ),
        lambda voc: _tamper_rows(voc, lambda m: m.update(checks="x")),  # damaged: crashed
        lambda voc: _tamper_rows(voc, lambda m: _rows(m, "width", "wide")),
        lambda voc: _tamper_rows(voc, lambda m: m["records"].pop()),
    ],
    ids=[
        "path-outside",
        "path-dotdot",
        "nan-box",
        "box-outside-image",
        "label-high",
        "label-background",
        "background-class",
        "damaged-checks",
        "bad-width",
        "row-missing",
    ],
)
def test_a_tampered_cache_is_checked_ignored_with_a_warning_and_indexed_again(
    voc, monkeypatch, caplog, tamper
):
    """Round 2: cached records were used without the checks they passed when indexed."""
    first = _index(voc)
    tamper(voc)
    read = _count_reads(monkeypatch)
    with caplog.at_level("WARNING"):
        again = _index(voc)
    assert sorted(read) == ["train", "val"]  # not trusted: read and checked again
    assert "is damaged or not lightdet's" in caplog.text
    for split in ("train", "val"):
        _same(first.datasets[split].records, again.datasets[split].records)
    assert again.class_names == first.class_names


def test_a_fifo_in_the_cache_folder_does_not_hang_indexing(voc, monkeypatch, caplog):
    """Round 2: opening a FIFO named like a cache file blocked for ever."""
    import threading

    _index(voc)
    for meta_path, _ in _cache_files(voc):
        meta_path.unlink()
        os.mkfifo(meta_path)
    done: list = []
    worker = threading.Thread(target=lambda: done.append(_index(voc)), daemon=True)
    with caplog.at_level("WARNING"):
        worker.start()
        worker.join(60)
    if worker.is_alive():  # release the blocked reader before failing
        for meta_path, _ in _cache_files(voc):
            os.close(os.open(meta_path, os.O_WRONLY | os.O_NONBLOCK))
        worker.join(10)
    assert done and len(done[0].datasets["train"]) == 16
    assert "not a regular file" in caplog.text


def test_a_symlink_loop_in_the_dataset_is_fingerprinted_once(voc):
    """Round 2: a folder link back to the dataset (which indexing walks fine) crashed the
    cache's fingerprint walk."""
    from lightdet.data.index_cache import fingerprint

    (voc / "JPEGImages" / "loop").symlink_to(voc, target_is_directory=True)
    digest, newest = fingerprint([voc])
    assert digest == fingerprint([voc])[0] and newest > 0
    first = _index(voc)
    assert len(first.datasets["train"]) == 16
