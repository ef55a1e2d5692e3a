"""``make config [MODEL=...] [DATA=...] [ARGS=...]``: the training config a ``make train`` with
the same arguments would run, composed, printed and checked, without training and without
making anything (no run folder, no ClearML task; the shapes data is not generated).

Checked: the composition itself (a mistyped key gets the closest existing keys), the guard's
rules (targets, interpolations), the data (its folders exist, its class names can be read,
its splits are indexed with the run's checks: names and counts are printed) and the model (it
is built with those classes: its parameters are counted). Exit status 1 and one line naming the
problem when a check fails.
"""

from __future__ import annotations

import sys


def main() -> None:
    from hydra.errors import CompactHydraException

    from lightdet.data.records import AnnotationError
    from lightdet.runs.show_config import check

    show_yaml = "--yaml" in sys.argv[1:]
    try:
        text, lines = check([a for a in sys.argv[1:] if a != "--yaml"])
    except (CompactHydraException, AnnotationError, FileNotFoundError, ValueError) as err:
        raise SystemExit(f"config: {str(err).strip()}") from None
    if show_yaml:
        print(text)
    print("\n".join(lines))  # the verdict last, where the eye lands
    yaml = "" if show_yaml else " (the composed config: make config YAML=1)"
    print(f"config OK: `make train` with the same arguments runs it{yaml}")


if __name__ == "__main__":
    main()
