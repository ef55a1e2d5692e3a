"""evaluate's split check names a split the data has, never the one that failed."""

import pytest
from omegaconf import OmegaConf

from lightdet.runs.preflight import InputError, check_split


def _cfg(split: str, **source):
    return OmegaConf.create({"split": split, "data": {"source": source}})


@pytest.mark.parametrize(
    ("cfg", "message"),
    [
        (
            _cfg("val", _target_="lightdet.data.sources.ShapesSource", num_val=0, num_test=20),
            "split=val: the data (ShapesSource) has no val split; use split=test, or set "
            "data.source.num_val=<images>",
        ),
        (
            _cfg("val", _target_="lightdet.data.sources.VOCSource", val=None, test=None),
            "split=val: the data (VOCSource) has no val split; set data.source.val=<its split name>",
        ),
        (
            _cfg("test", _target_="lightdet.data.sources.VOCSource", val="val", test=None),
            "split=test: the data (VOCSource) has no test split; use split=val, or set "
            "data.source.test=<its split name>",
        ),
    ],
)
def test_a_missing_split_names_one_the_data_has(cfg, message):
    with pytest.raises(InputError) as err:
        check_split(cfg)
    assert str(err.value) == message


def test_a_split_the_data_has_passes():
    assert (
        check_split(_cfg("test", _target_="lightdet.data.sources.ShapesSource", num_test=4)) is None
    )
