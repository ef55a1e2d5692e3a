"""Dataset readers (VOC, COCO, shapes), records and transforms."""
