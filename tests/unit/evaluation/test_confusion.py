import pytest
import torch

from lightdet.evaluation.confusion import DetectionConfusionMatrix

GT = {
    "boxes": torch.tensor([[0.0, 0, 10, 10], [20, 20, 40, 40], [50, 50, 60, 60]]),
    "labels": torch.tensor([1, 2, 3]),
    "iscrowd": torch.tensor([False, False, True]),
}


def _pred(boxes, labels, scores):
    return {
        "boxes": torch.tensor(boxes, dtype=torch.float32),
        "labels": torch.tensor(labels),
        "scores": torch.tensor(scores),
    }


def test_hits_confusions_misses_and_false_alarms_land_in_their_cells():
    cm = DetectionConfusionMatrix(num_classes=4, iou_threshold=0.5, score_threshold=0.3)
    pred = _pred(
        [[0, 0, 10, 10], [21, 21, 40, 40], [70, 70, 80, 80], [0, 0, 9, 9], [50, 50, 60, 60]],
        [1, 3, 2, 1, 3],
        [0.9, 0.8, 0.7, 0.1, 0.9],  # the 0.1 one is below the threshold
    )
    cm.update([pred], [GT])
    m = cm.compute()
    assert m[1, 1] == 1  # class 1 found
    assert m[2, 3] == 1  # a class-2 object called class 3
    assert m[0, 2] == 1  # a class-2 box where there is nothing: false alarm in row 0
    assert m[3].sum() == 0 and m[0, 3] == 0  # the crowd box and its match are ignored
    assert m.sum() == 3


@pytest.mark.filterwarnings("ignore:The ``compute`` method")  # compute() after reset(), on purpose
def test_missed_objects_count_in_the_background_column():
    cm = DetectionConfusionMatrix(num_classes=4)
    cm.update([_pred([], [], [])], [GT])
    m = cm.compute()
    assert m[1, 0] == 1 and m[2, 0] == 1 and m[3, 0] == 0  # crowd not counted as missed
    cm.reset()
    assert cm.compute().sum() == 0


def test_each_box_matches_once():
    cm = DetectionConfusionMatrix(num_classes=4)
    pred = _pred([[0, 0, 10, 10], [0, 0, 10, 10]], [1, 1], [0.9, 0.8])  # a duplicate detection
    cm.update([pred], [{"boxes": GT["boxes"][:1], "labels": GT["labels"][:1]}])
    m = cm.compute()
    assert m[1, 1] == 1 and m[0, 1] == 1
