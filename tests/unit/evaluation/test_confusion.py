import numpy as np
import torch

from lightdet.evaluation.confusion import confusion_matrix

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
    pred = _pred(
        [[0, 0, 10, 10], [21, 21, 40, 40], [70, 70, 80, 80], [0, 0, 9, 9], [50, 50, 60, 60]],
        [1, 3, 2, 1, 3],
        [0.9, 0.8, 0.7, 0.1, 0.9],  # the 0.1 one is below the threshold
    )
    m = confusion_matrix([pred], [GT], num_classes=4, iou_threshold=0.5, score_threshold=0.3)
    assert m[1, 1] == 1  # class 1 found
    assert m[2, 3] == 1  # a class-2 object called class 3
    assert m[0, 2] == 1  # a class-2 box where there is nothing: false alarm in row 0
    assert m[3].sum() == 0 and m[0, 3] == 0  # the crowd box and its match are ignored
    assert m.sum() == 3


def test_missed_objects_count_in_the_background_column():
    m = confusion_matrix([_pred([], [], [])], [GT], num_classes=4)
    assert m[1, 0] == 1 and m[2, 0] == 1 and m[3, 0] == 0  # crowd not counted as missed
    assert m.sum() == 2
    assert confusion_matrix([], [], num_classes=4).sum() == 0


def test_each_box_matches_once():
    pred = _pred([[0, 0, 10, 10], [0, 0, 10, 10]], [1, 1], [0.9, 0.8])  # a duplicate detection
    m = confusion_matrix([pred], [{"boxes": GT["boxes"][:1], "labels": GT["labels"][:1]}], 4)
    assert m[1, 1] == 1 and m[0, 1] == 1


def test_images_are_matched_apart_and_the_closest_pair_first():
    """A prediction never matches a box of another image; within one, the pair of highest
    IoU is matched first, though the other pair comes first in the input."""
    near = _pred([[0, 0, 10, 10]], [2], [0.9])
    targets = [
        {"boxes": torch.tensor([[30.0, 30, 40, 40]]), "labels": torch.tensor([1])},
        {
            "boxes": torch.tensor([[1.0, 0, 11, 10], [0.0, 0, 10, 10]]),
            "labels": torch.tensor([1, 3]),
        },
    ]
    m = confusion_matrix([near, near], targets, num_classes=4)
    expected = np.zeros((4, 4), np.int64)
    expected[0, 2] = 1  # image 1: nothing near, a false alarm
    expected[1, 0] = 2  # image 1's box and image 2's class-1 box: missed
    expected[3, 2] = 1  # image 2: the exact box (IoU 1) wins over the shifted one (0.82)
    np.testing.assert_array_equal(m, expected)
