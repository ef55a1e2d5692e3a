"""The target allow-list decides on the located object, never on the dotted string."""

import importlib
import inspect
import pkgutil
import types

import pytest
import torch

import lightdet
from lightdet.guard import UnsafeConfigError, allow_targets, check_targets
from lightdet.guard import targets as targets_module
from lightdet.guard.targets import check_target, is_allowed_object
from tests.conftest import compose_train

DANGEROUS = {torch.load, torch.jit.load, __import__("pickle").load, __import__("pickle").loads,
             __import__("os").system, __import__("subprocess").run, __import__("shutil").rmtree,
             __import__("shutil").copyfile, eval, exec}  # fmt: skip


def test_the_shipped_training_config_is_allowed(tmp_path):
    check_targets(compose_train(tmp_path))


@pytest.mark.parametrize(
    "target,message",
    [
        ("os.system", r"'os.system' is not an allowed target"),
        ("builtins.eval", r"'builtins.eval' is not an allowed target"),
        ("lightdet.guard.checkpoints.torch.load", r"it is torch.serialization.load"),
        ("lightdet.data.shapes.shutil.rmtree", r"it is shutil.rmtree"),
        ("lightdet.tracking.callbacks.export_weights", r"it is lightdet.tracking.callbacks.export"),
        ("lightdet.data.coco.write_coco", r"it is lightdet.data.coco.write_coco"),
        ("lightdet.models.retinanet._private", r"cannot be located"),
        ("lightdet.models", r"it is the module lightdet.models"),  # a module is never a target
        ("torch.optim.Optimizer", r"it is torch.optim.optimizer.Optimizer"),
        ("${oc.env:X}", r"an interpolated target"),
    ],
)
def test_a_target_outside_the_allow_list_is_refused_naming_the_key(target, message):
    cfg = {"model": {"net": {"backbone": {"_target_": target}}}}
    with pytest.raises(UnsafeConfigError, match=rf"model\.net\.backbone\._target_=.*{message}"):
        check_targets(cfg)


def test_nested_targets_are_checked_at_any_depth_and_in_lists():
    cfg = {"trainer": {"plugins": [{"_target_": "pytorch_lightning.Trainer",
                                    "x": {"_args_": [{"_target_": "os.system"}]}}]}}  # fmt: skip
    with pytest.raises(UnsafeConfigError, match=r"trainer\.plugins\[0\]\.x\._args_\[0\]\._target_"):
        check_targets(cfg)


def test_get_method_may_only_name_an_allowed_function():
    ok = {"f": {"_target_": "hydra.utils.get_method", "path": "lightdet.data.dataset.batch_size"}}
    check_targets(ok)
    bad = {"f": {"_target_": "hydra.utils.get_method", "path": "lightdet.guard.checkpoints.torch.load"}}
    with pytest.raises(UnsafeConfigError, match=r"f\.path=.*torch.serialization.load"):
        check_targets(bad)


def test_the_environment_no_longer_widens_the_list_but_code_can(monkeypatch):
    cfg = {"model": {"net": {"_target_": "tests.unit.guard.payloads.crafted_pickle"}}}
    monkeypatch.setenv("LIGHTDET_ALLOWED_TARGETS", "tests.,torch.")
    with pytest.raises(UnsafeConfigError, match="not an allowed target"):
        check_targets(cfg)
    monkeypatch.setattr(targets_module, "_extra_modules", set())
    allow_targets("tests.unit.guard.payloads")
    check_targets(cfg)
    with pytest.raises(ValueError, match="not a module name"):
        allow_targets("tests.")


def _lightdet_modules():
    for info in pkgutil.walk_packages(lightdet.__path__, "lightdet."):
        try:
            yield importlib.import_module(info.name)
        except ImportError:  # pragma: no cover - every module imports here
            continue


def _sideways_paths():
    """``(path, object)`` for every name a lightdet module imports from elsewhere and, for an
    imported module, each of its public attributes (one lightdet path per imported object)."""
    seen = set()
    for module in _lightdet_modules():
        for name, value in vars(module).items():
            home = getattr(value, "__name__" if isinstance(value, types.ModuleType) else
                           "__module__", None) or ""  # fmt: skip
            if name.startswith("__") or home.startswith("lightdet") or id(value) in seen:
                continue
            seen.add(id(value))
            yield f"{module.__name__}.{name}", value
            if isinstance(value, types.ModuleType):
                for attr in dir(value):
                    if not attr.startswith("_"):
                        yield f"{module.__name__}.{name}.{attr}", getattr(value, attr, None)


def test_no_path_through_any_imported_name_walks_out_of_the_allow_list():
    """Property: ``lightdet.<module>.<imported name>[.<attr>]`` is accepted only when the
    object it locates to is itself allowed, and nothing that unpickles, deletes or runs
    commands ever is."""
    tried, accepted, refused_dangerous = 0, 0, set()
    for path, obj in _sideways_paths():
        tried += 1
        try:
            check_target(path, "x._target_", "test")
        except UnsafeConfigError:
            if any(obj is d for d in DANGEROUS):
                refused_dangerous.add(".".join(path.split(".")[-2:]))
            continue
        accepted += 1
        assert is_allowed_object(obj), path
        assert not any(obj is d for d in DANGEROUS), path
        assert inspect.isclass(obj) or inspect.isfunction(obj), path
    assert tried > 2000
    assert {"torch.load", "shutil.rmtree", "shutil.copyfile", "os.system", "pickle.load"} <= (
        refused_dangerous
    )
    assert 0 < accepted < tried / 50  # only the explicit optimizers, callbacks and Trainer
