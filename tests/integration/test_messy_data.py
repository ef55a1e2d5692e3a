"""Training in the default mode on the messy VOC and COCO folders (every row of docs/bad_inputs.md):
it completes, and the counts reach the log and the ClearML dataset summary."""

import json

import pytest

from lightdet.runs.train import run_training
from tests.conftest import compose_train, offline_events
from tests.messy import (
    EXPECTED_FIXED,
    EXPECTED_NOTED,
    EXPECTED_SKIPPED,
    HUGE_LIMIT,
    write_messy_coco,
    write_messy_voc,
)


def _table(session, title):
    (event,) = [
        e
        for e in offline_events(session, "plot")
        if (e["metric"], e["variant"]) == ("dataset", title)
    ]
    columns = json.loads(event["plot_str"])["data"][0]["cells"]["values"]
    return [list(row) for row in zip(*columns)]


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["voc", "coco"])
def test_training_on_messy_data_completes_and_reports_every_count(
    tmp_path, clearml_cache, caplog, layout
):
    if layout == "voc":
        root = write_messy_voc(tmp_path / "VOC")
        data = [
            "data=voc",
            f"data.source.roots=[{root}]",
            "data.source.train=train",
            "data.source.val=val",
            "+data.source.class_names=[circle,square,triangle]",
        ]
    else:
        root = write_messy_coco(tmp_path / "COCO")
        data = [
            "data=coco",
            f"data.source.root={root}",
            "data.source.train=train",
            "data.source.val=val",
        ]
    cfg = compose_train(
        tmp_path, *data, f"data.policy.max_image_pixels={HUGE_LIMIT}", "test=false", tiny_data=False
    )
    with caplog.at_level("INFO"):
        score = run_training(cfg).best
    assert score is not None and 0 <= score <= 1
    assert "image_truncated 1" in caplog.text and "box_clipped 1" in caplog.text

    session = max(
        (p for p in clearml_cache.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime
    )
    rows = _table(session, "data checks")
    reported = {(r[1], r[2]): int(r[3]) for r in rows if r[0] == "train"}
    expected = {("skipped", k): v for k, v in EXPECTED_SKIPPED.items()}
    expected |= {("fixed", k): v for k, v in EXPECTED_FIXED.items()}
    expected |= {("noted", k): v for k, v in EXPECTED_NOTED.items()}
    assert reported == expected
