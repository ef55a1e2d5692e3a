"""A local Optuna study: persisted in a file, resumable, each trial a full training run.

Every trial is its own (offline or online) ClearML task; weak trials are pruned from their
intermediate ``val/map`` by Optuna's median rule.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Callable
from pathlib import Path

import optuna
import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf

from lightdet import outputs
from lightdet.search.space import check_space, suggest, trial_overrides

log = logging.getLogger(__name__)


class OptunaPruning(pl.Callback):
    """Reports ``monitor`` after each validation and stops the trial when Optuna prunes it.

    The trial stops as a run that ends early (``trainer.should_stop``), not by an exception
    from this hook: Lightning runs the checkpoint callbacks' ``on_validation_end`` after the
    others, so raising here lost the epoch's checkpoint, and a trial pruned at its first
    validation kept no weights at all. ``pruned`` says why; the objective then reports the
    trial as pruned."""

    def __init__(self, trial: optuna.Trial, monitor: str) -> None:
        self.trial = trial
        self.monitor = monitor
        self.pruned: str | None = None

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        value = trainer.callback_metrics.get(self.monitor)
        if trainer.sanity_checking or value is None or self.pruned:
            return
        self.trial.report(float(value), step=trainer.current_epoch)
        if self.trial.should_prune():
            self.pruned = f"epoch {trainer.current_epoch}: {self.monitor}={float(value):.4f}"
            log.info("trial %d pruned at %s", self.trial.number, self.pruned)
            trainer.should_stop = True


def open_study(hpo: DictConfig) -> optuna.Study:
    """Create the study, or load it from its storage to resume or extend it."""
    pruner = optuna.pruners.MedianPruner(
        n_startup_trials=hpo.pruner.n_startup_trials, n_warmup_steps=hpo.pruner.n_warmup_steps
    )
    _check_storage(hpo.storage)
    kwargs = {"study_name": hpo.study_name, "storage": hpo.storage, "load_if_exists": True}
    existing = len(optuna.create_study(direction="maximize", **kwargs).trials)
    # samplers are not stored with the study: a fixed seed would replay the same suggestions on
    # every resume, so the seed moves on with the number of trials already run
    sampler = optuna.samplers.TPESampler(seed=hpo.sampler_seed + existing)
    return optuna.create_study(direction="maximize", sampler=sampler, pruner=pruner, **kwargs)


def _check_storage(storage: str) -> None:
    """The write policy's rule for a study storage (:func:`lightdet.guard.writes.check_storage`:
    an SQLite file, however the URL spells it, is new in a folder lightdet may write, or already
    an Optuna study), checked again where it is opened; its folder is made (and marked)."""
    from lightdet.guard.writes import check_storage, sqlite_file

    check_storage("hpo.storage", storage, None)
    path = sqlite_file(storage)
    if path is not None:
        outputs.make_folders(path.parent, kind="hpo")


def run_study(
    hpo: DictConfig, run_trial: Callable[[list[str], list], float | None]
) -> optuna.Study:
    """Run trials until the study holds ``hpo.n_trials`` finished ones.

    Args:
        hpo: the ``hpo`` config group.
        run_trial: trains with the given training overrides and extra callbacks, and returns
            the objective (best ``val/map`` over the run); a pruned trial's run ends early and
            its callback says so (``OptunaPruning.pruned``).
    """
    check_space(hpo.search_space)
    study = open_study(hpo)
    done = [t for t in study.trials if t.state.is_finished()]
    remaining = max(0, hpo.n_trials - len(done))
    log.info("study %s: %d trials done, %d to run", hpo.study_name, len(done), remaining)

    def objective(trial: optuna.Trial) -> float:
        params = {k: suggest(trial, k, spec) for k, spec in hpo.search_space.items()}
        overrides = trial_overrides(params, hpo.train_overrides)
        trial.set_user_attr("overrides", overrides)
        pruning = OptunaPruning(trial, hpo.objective)
        value = run_trial(overrides, [pruning], trial.number)
        if pruning.pruned:
            raise optuna.TrialPruned(pruning.pruned)
        if value is None:
            raise RuntimeError(f"trial {trial.number}: the run logged no {hpo.objective}")
        return value

    if remaining:
        study.optimize(objective, n_trials=remaining, catch=())
    return study


def write_results(
    study: optuna.Study, out_dir: Path, compose_best: Callable[[list[str]], DictConfig]
) -> dict:
    """Trials table (CSV), best configuration (YAML) and plots (PNG) in ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = trials_table(study)
    with (out_dir / "trials.csv").open("w", newline="") as f:
        csv.writer(f).writerows(rows)
    results = {"trials": out_dir / "trials.csv", "plots": save_plots(study, out_dir)}
    if any(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials):
        best = study.best_trial
        (out_dir / "best_params.yaml").write_text(
            OmegaConf.to_yaml({"value": best.value, **best.params})
        )
        best_cfg = compose_best(best.user_attrs["overrides"])
        (out_dir / "best_config.yaml").write_text(OmegaConf.to_yaml(best_cfg))
        results["best_config"] = out_dir / "best_config.yaml"
    return results


def trials_table(study: optuna.Study) -> list[list]:
    """One row per trial: number, state, objective, duration, then the parameters."""
    keys = sorted({k for t in study.trials for k in t.params})
    rows = [["trial", "state", "value", "seconds", *keys]]
    for t in study.trials:
        seconds = (
            (t.datetime_complete - t.datetime_start).total_seconds() if t.datetime_complete else ""
        )
        value = "" if t.value is None else round(t.value, 4)
        rows.append(
            [
                t.number,
                t.state.name,
                value,
                seconds and round(seconds, 1),
                *(t.params.get(k, "") for k in keys),
            ]
        )
    return rows


def save_plots(study: optuna.Study, out_dir: Path) -> list[Path]:
    """Optimisation history, parameter importance and parallel coordinates, where computable."""
    import matplotlib

    matplotlib.use("Agg")
    from optuna.visualization import matplotlib as vis

    saved = []
    for name, plot in (
        ("optimization_history", vis.plot_optimization_history),
        ("param_importances", vis.plot_param_importances),
        ("parallel_coordinate", vis.plot_parallel_coordinate),
    ):
        try:
            ax = plot(study)
        except (ValueError, RuntimeError) as err:  # e.g. importance needs 2+ completed trials
            log.info("no %s plot yet: %s", name, err)
            continue
        figure = (ax[0] if hasattr(ax, "__len__") else ax).figure
        figure.tight_layout()
        figure.savefig(out_dir / f"{name}.png", dpi=110)
        matplotlib.pyplot.close(figure)
        saved.append(out_dir / f"{name}.png")
    return saved
