"""The latency figures: what is timed and how the repeats are summarised."""

from __future__ import annotations

import torch

from lightdet.studies.latency import time_batches


class _Recorder:
    """A detector stand-in that records what ``forward`` was given."""

    device = torch.device("cpu")

    def __init__(self) -> None:
        self.calls: list[list[tuple]] = []

    def forward(self, images):
        self.calls.append([tuple(i.shape) for i in images])
        return [{}] * len(images)


def test_warm_up_excluded_batches_cycled_and_summary_consistent():
    detector = _Recorder()
    images = [torch.zeros(3, 8, 8), torch.zeros(3, 16, 16), torch.zeros(3, 4, 4)]
    found = time_batches(detector, images, batch_size=8, warmup=2, repeats=5)
    assert len(detector.calls) == 2 + 5  # warm-up runs, then the timed ones
    assert detector.calls[0] == [tuple(images[i % 3].shape) for i in range(8)]  # cycled
    assert found["repeats"] == 5
    assert (
        found["min_ms"]
        <= found["p10_ms"]
        <= found["median_ms"]
        <= found["p90_ms"]
        <= found["max_ms"]
    )
