"""What the commands do, as functions: the library under the entry points (``train``,
``evaluate``, ``hpo``, ``show_augment``) and under the Python API (:mod:`lightdet`).

- :mod:`~lightdet.runs.build`: the datamodule, the Lightning system for training, and one
  rebuilt from a checkpoint;
- :mod:`~lightdet.runs.training`, :mod:`~lightdet.runs.evaluation`: a whole run, on a composed
  config, inside one ClearML task; :mod:`~lightdet.runs.search`: a hyperparameter search;
  :mod:`~lightdet.runs.augment_preview`: the augmentation grid;
- :mod:`~lightdet.runs.compose`: the same runs from Python, composing ``conf/`` with Hydra's
  compose API (``lightdet.train(overrides=[...])``).
"""
