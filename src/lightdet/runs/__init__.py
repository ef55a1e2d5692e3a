"""What the commands do, as functions: one module per command, named as the command
(``lightdet/<command>.py`` parses the command line, ``runs/<command>.py`` is its body), and
under the Python API (:mod:`lightdet`).

- ``train``, ``evaluate``, ``predict``, ``export``, ``hpo``, ``study``, ``show_augment``,
  ``anchors``, ``show_config``: each command's body;
- :mod:`~lightdet.runs.build`: the datamodule, the Lightning system for training, and one
  rebuilt from a checkpoint; :mod:`~lightdet.runs.preflight`: the checks each entry point
  declares, run when its config is composed;
- :mod:`~lightdet.runs.compose`: the same runs from Python, composing ``conf/`` with Hydra's
  compose API (``lightdet.train(overrides=[...])``).
"""
