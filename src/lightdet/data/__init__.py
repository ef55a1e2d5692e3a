"""Dataset readers (VOC, COCO, YOLO, shapes), records, checks and transforms."""
