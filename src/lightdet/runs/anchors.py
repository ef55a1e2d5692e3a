"""The body of ``anchors`` (:mod:`lightdet.anchors` parses the command line): how well a
model's anchors cover the training boxes, and anchors fitted to them."""

from __future__ import annotations

from omegaconf import OmegaConf

OPTIONS = {"split": "train", "max_images": 2000, "clusters": 9, "seed": 0}


def _options(overrides: list[str]) -> tuple[dict, list[str]]:
    options, rest = dict(OPTIONS), []
    for item in overrides:
        key, _, value = item.partition("=")
        if key.startswith("anchors."):
            name = key[len("anchors.") :]
            if name not in OPTIONS:
                raise ValueError(
                    f"anchors.{name}: not an option; options: "
                    f"{', '.join('anchors.' + k for k in OPTIONS)}"
                )
            options[name] = type(OPTIONS[name])(value)
        else:
            rest.append(item)
    if options["split"] not in ("train", "val", "test"):
        raise ValueError(f"anchors.split={options['split']}: expected train, val or test")
    return options, rest


def _table(cov, levels: int, low: float | None) -> list[str]:
    lines = [
        f"{'boxes':<32} {'count':>6} {'BPR@' + format(cov.threshold, 'g'):>9} "
        + (f"{'>=' + format(low, 'g'):>7} " if low is not None else "")
        + f"{'mean IoU':>9}"
    ]
    for name, n, bpr, above, mean in cov.rows(levels, low):
        if n or not name.startswith("level"):
            shown = f"{above:>7.3f} " if above is not None else ""
            lines.append(f"{name:<32} {n:>6} {bpr:>9.3f} {shown}{mean:>9.3f}")
    return lines


def report(overrides: list[str]) -> list[str]:
    """The coverage report and the fitted anchors, as lines."""
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    from lightdet.cli import CONFIG_DIR
    from lightdet.models import anchor_fit as fit
    from lightdet.runs.build import build_datamodule

    options, overrides = _options(overrides)
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides)
    datamodule = build_datamodule(cfg)
    datamodule.setup("fit")
    split = options["split"]
    if split not in datamodule.datasets:
        raise ValueError(f"anchors.split={split}: the data has {sorted(datamodule.datasets)}")
    records = datamodule.datasets[split].records
    net_cfg = OmegaConf.to_container(cfg.model.net, resolve=True)
    net_cfg["pretrained"] = "none"

    def build(settings: dict | None = None):
        return instantiate({**net_cfg, **(settings or {})}, num_classes=datamodule.num_classes)

    net = build()
    boxes = fit.model_boxes(net, records, limit=options["max_images"], seed=options["seed"])
    high, low = fit.matcher_thresholds(net)
    cov = fit.coverage(net, boxes, high)
    levels = len(fit.anchor_generator(net).num_anchors_per_location())
    per_location = fit.anchor_generator(net).num_anchors_per_location()[0]
    sizes = sorted(boxes.by_size)
    lines = [
        f"anchors of {cfg.model.name} ({net_cfg['_target_']}) on {len(boxes.all())} {split} boxes "
        f"of {sum(len(g) for g in boxes.by_size.values())} images, as the model sees them "
        f"(input {sizes[0][1]}x{sizes[0][0]}{' and others' if len(sizes) > 1 else ''})",
        f"{per_location} anchors per location on {levels} levels; matcher: foreground at IoU >= "
        f"{high:g}" + (f", background below {low:g}" if low is not None else ""),
        "",
        "the model's anchors:",
        *_table(cov, levels, low),
    ]
    all_boxes = boxes.all()
    shapes = fit.kmeans_shapes(all_boxes, options["clusters"], seed=options["seed"])
    lines += [
        "",
        f"box shapes, k-means on 1 - IoU (k={options['clusters']}, width x height "
        "in input pixels): " + ", ".join(f"{w:.0f}x{h:.0f}" for w, h in shapes.tolist()),
    ]
    keys = ("anchor_sizes", "aspect_ratios")
    if not all(k in net_cfg for k in keys):
        lines += [
            "",
            f"fitting: {cfg.model.name} has no model.net.anchor_sizes/aspect_ratios "
            "to fit (coverage only)",
        ]
        return lines
    default = {k: list(net_cfg[k]) for k in keys}
    best = fit.fit_anchor_settings(
        build,
        boxes,
        high,
        levels=len(default["anchor_sizes"]),
        ratios=len(default["aspect_ratios"]),
        default=default,
        stride=fit.first_stride(net, sizes[0]),
    )
    if best.settings == default:
        lines += ["", "fitted: the model's own anchors are the best of those scanned; keep them"]
        return lines
    override = " ".join(
        f"model.net.{k}=[{','.join(format(v, 'g') for v in best.settings[k])}]" for k in keys
    )
    lines += [
        "",
        "fitted anchors:",
        *_table(best.coverage, levels, low),
        "",
        f"BPR {cov.bpr:.3f} -> {best.coverage.bpr:.3f}, mean best IoU {cov.mean_iou:.3f} -> "
        f"{best.coverage.mean_iou:.3f}; train with them:",
        f'  make train ARGS="{override}"',
    ]
    return lines
