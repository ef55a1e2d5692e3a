"""Hyperparameter search: one search space, a local Optuna study or ClearML's optimizer."""
