import numpy as np
import torch

from lightdet.tracking.reports import dataset_rows, report_ap_table, report_confusion


class RecordingLogger:
    def __init__(self):
        self.calls = []

    def __getattr__(self, name):
        return lambda *args, **kwargs: self.calls.append((name, args, kwargs))


def test_confusion_matrix_rows_are_truth_and_columns_predictions():
    matrix = torch.zeros(3, 3, dtype=torch.long)
    matrix[1, 2] = 5  # five "a" objects predicted as "b"
    logger = RecordingLogger()
    report_confusion(logger, matrix, ["a", "b"], "val", 7)
    ((name, args, kw),) = logger.calls
    assert name == "report_confusion_matrix" and kw["iteration"] == 7
    z = kw["matrix"]  # plotly puts z[i][j] at y=ylabels[i], x=xlabels[j]
    (i,), (j,) = np.nonzero(z)
    assert (kw["ylabels"][i], kw["xlabels"][j]) == ("a", "b")
    assert (kw["yaxis"], kw["xaxis"]) == ("true", "predicted")


def test_ap_table_names_classes_and_marks_missing_ones():
    from lightdet.evaluation.coco import CocoResult
    from lightdet.evaluation.report import EvaluationReport

    stats = [0.5, *[0.0] * 7, 0.6, 0.0, 0.0, 0.0]  # map first, mar_100 ninth
    per_class = {10: {"AP": 0.7, "AR100": 0.8}, 20: {}}  # class b: no ground truth
    report = EvaluationReport(
        split="val",
        class_names=["a", "b"],
        category_ids={1: 10, 2: 20},
        coco=CocoResult(stats, per_class, np.zeros(0), [10, 20]),
        voc={},
        threshold={},
        confusion=np.zeros((3, 3)),
        f1_curves={},
        positives={},
    )
    logger = RecordingLogger()
    report_ap_table(logger, report, 3)
    ((_, _, kw),) = logger.calls
    assert kw["table_plot"] == [
        ["class", "AP", "AR@100"],
        ["a", "0.7000", "0.8000"],
        ["b", "n/a", "n/a"],
        ["all", "0.5000", "0.6000"],
    ]


def test_dataset_rows_count_images_boxes_and_classes():
    from lightdet.data.records import DetectionRecord

    recs = [
        DetectionRecord("x", 1, 10, 10, np.array([[0, 0, 1, 1], [0, 0, 2, 2]]), np.array([1, 2])),
        DetectionRecord("y", 2, 10, 10, np.zeros((0, 4)), np.zeros(0)),
    ]
    rows = dataset_rows({"train": recs}, ["a", "b"])
    assert rows == [
        ["split", "images", "empty images", "boxes", "a", "b"],
        ["train", 2, 1, 2, 1, 1],
    ]
