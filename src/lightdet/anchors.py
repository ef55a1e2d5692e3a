"""``make anchors [MODEL=...] [DATA=...] [ARGS=...]``: how well the model's anchors cover the
training boxes, and anchors fitted to them, printed as the override to train with.

The config is the one ``make train`` with the same arguments would run (nothing is trained,
no run folder or ClearML task is made). Options (``anchors.<key>=...`` in ARGS): ``split``
(train), ``max_images`` (2000, a seeded sample beyond), ``clusters`` (9: the k-means shapes
shown). See :mod:`lightdet.models.anchor_fit` for the method.
"""

from __future__ import annotations

import sys


def main() -> None:
    from hydra.errors import CompactHydraException

    from lightdet.data.records import AnnotationError
    from lightdet.runs.anchors import report

    try:
        lines = report(sys.argv[1:])
    except (CompactHydraException, AnnotationError, FileNotFoundError, ValueError) as err:
        raise SystemExit(f"anchors: {str(err).strip()}") from None
    print("\n".join(lines))


if __name__ == "__main__":
    main()
