"""The body of ``config`` (:mod:`lightdet.show_config` parses the command line): the training
config composed, printed and checked, without making anything."""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf


def check(overrides: list[str]) -> tuple[str, list[str]]:
    """``(the config as YAML, the check lines)``; raises on the first failed check."""
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    from lightdet.cli import CONFIG_DIR
    from lightdet.data.shapes import is_generated
    from lightdet.data.sources import ShapesSource

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides)
    cfg.paths.output_dir = "<the run folder: logs/<task_name>/runs/<time>>"
    text = OmegaConf.to_yaml(cfg, resolve=True)
    lines = ["config: composed; targets and interpolations allowed"]
    source = instantiate(cfg.data.source)
    if isinstance(source, ShapesSource):
        state = "present" if is_generated(source.folder, source.spec) else "generated on first use"
        lines.append(f"data: the built-in shapes in {source.folder} ({state})")
    else:
        source.prepare()  # its folders and files exist
        lines.append(f"data: {source!r}")
    names = list(source.class_names)
    lines.append(f"classes: {len(names)}: {', '.join(names)}")
    if not isinstance(source, ShapesSource):  # index the splits, with the run's checks
        datamodule = instantiate(cfg.data, source=source)
        datamodule.setup("fit")
        sizes = ", ".join(f"{split} {len(d)}" for split, d in datamodule.datasets.items())
        lines.append(f"images: {sizes} (indexed and checked as training will)")
        lines += _skipped(datamodule.checks)
    from lightdet.data.classes import num_classes
    from lightdet.runs.build import build_net, pretrained_choice

    synthetic = isinstance(source, ShapesSource)
    net = build_net(cfg.model.net, num_classes(names), synthetic=synthetic)  # a file is checked
    params = sum(p.numel() for p in net.parameters())
    lines.append(
        f"model: {cfg.model.net._target_} ({params / 1e6:.1f} M parameters, "
        f"{num_classes(names)} labels with background)"
    )
    choice = pretrained_choice(cfg.model.net, synthetic=synthetic)
    if choice is not None:
        lines.append(f"weights: pretrained=auto: {choice.reason}")
    budget = cfg.get("budget_minutes")
    epochs = f"{budget} minutes" if budget else f"{cfg.trainer.get('max_epochs')} epochs"
    lines.append(
        f"training: {epochs}, batch {cfg.data.batch_size}, "
        f"precision {_precision(cfg)}, "
        f"accelerator {cfg.trainer.get('accelerator')}"
    )
    return text, lines


def _skipped(checks: dict) -> list[str]:
    """Which files and boxes the checks skipped or fixed, by split and reason (the first few
    of each), not only how many."""
    lines = []
    for split, checker in checks.items():
        for kind, counter in (("skipped", checker.skipped), ("fixed", checker.fixed)):
            for reason, count in sorted(counter.items()):
                lines.append(f"{split}: {kind} {count} ({reason}):")
                shown = [m for m in checker.messages.get(reason, []) if m]
                lines += [f"  {m}" for m in shown]
                if count > len(shown):
                    lines.append(f"  ... and {count - len(shown)} more")
    return lines


def _precision(cfg: DictConfig) -> str:
    from lightdet.lightning.precision import resolve_precision

    configured = cfg.trainer.get("precision")
    resolved, why = resolve_precision(configured, cfg.trainer.get("accelerator"))
    return f"{resolved} ({why})" if str(configured) == "auto" else str(configured)
