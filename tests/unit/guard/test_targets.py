"""The target registry: exact names, each allowed in one place; nothing else composes."""

import importlib
import inspect
import pkgutil
import sys
import types

import pytest
import torch

import lightdet
from lightdet.guard import UnsafeConfigError, allow_targets, check_targets
from lightdet.guard import targets as targets_module
from lightdet.guard.targets import COMPONENT, REGISTRY, check_target, registered
from tests.conftest import compose_train

DANGEROUS = {
    torch.load,
    torch.jit.load,
    __import__("pickle").load,
    __import__("pickle").loads,
    __import__("os").system,
    __import__("subprocess").run,
    __import__("shutil").rmtree,
    __import__("shutil").copyfile,
    eval,
    exec,
}


def test_the_shipped_training_config_is_allowed(tmp_path):
    check_targets(compose_train(tmp_path))


@pytest.mark.parametrize(
    "target,message",
    [
        ("os.system", r"'os.system' is not a registered target"),
        ("builtins.eval", r"'builtins.eval' is not a registered target"),
        ("lightdet.guard.checkpoints.torch.load", r"not a registered target"),
        ("lightdet.data.shapes.shutil.rmtree", r"not a registered target"),
        ("lightdet.tracking.callbacks.export_weights", r"not a registered target"),
        ("lightdet.data.coco.write_coco", r"not a registered target"),
        # round 2: a function of a once wholly allowed package that saves any mapping anywhere
        ("lightdet.lightning.checkpoint_io.atomic_save", r"not a registered target"),
        ("lightdet.models.weights_file.load_weights_file", r"not a registered target"),
        ("lightdet.models.retinanet._private", r"not a registered target"),
        ("lightdet.models", r"not a registered target"),  # a module is never a target
        ("torch.optim.Optimizer", r"not a registered target"),
        # registered, but for another place: a Hydra callback is no config component
        ("lightdet.studies.report.StudyReport", r"registered for hydra.callbacks"),
        ("lightdet.data.dataset.batch_size", r"registered for a hydra.utils.get_method path"),
        # an alias of a registered object is not its registered name
        ("lightdet.models.build_retinanet", r"not a registered target"),
        (
            "lightdet.models.retinanet.build_retinanetx",
            r"did you mean "
            r"lightdet.models.retinanet.build_retinanet",
        ),
        ("${oc.env:X}", r"an interpolated target"),
    ],
)
def test_a_target_outside_the_allow_list_is_refused_naming_the_key(target, message):
    cfg = {"model": {"net": {"backbone": {"_target_": target}}}}
    with pytest.raises(UnsafeConfigError, match=rf"model\.net\.backbone\._target_=.*{message}"):
        check_targets(cfg)


def test_nested_targets_are_checked_at_any_depth_and_in_lists():
    cfg = {
        "trainer": {
            "plugins": [
                {
                    "_target_": "pytorch_lightning.Trainer",
                    "x": {"_args_": [{"_target_": "os.system"}]},
                }
            ]
        }
    }
    with pytest.raises(UnsafeConfigError, match=r"trainer\.plugins\[0\]\.x\._args_\[0\]\._target_"):
        check_targets(cfg)


def test_get_method_may_only_name_an_allowed_function():
    ok = {"f": {"_target_": "hydra.utils.get_method", "path": "lightdet.data.dataset.batch_size"}}
    check_targets(ok)
    bad = {
        "f": {"_target_": "hydra.utils.get_method", "path": "lightdet.guard.checkpoints.torch.load"}
    }
    with pytest.raises(UnsafeConfigError, match=r"f\.path=.*not a registered target"):
        check_targets(bad)


def test_the_environment_no_longer_widens_the_list_but_code_can(monkeypatch):
    cfg = {"model": {"net": {"_target_": "tests.unit.guard.payloads.crafted_pickle"}}}
    monkeypatch.setenv("LIGHTDET_ALLOWED_TARGETS", "tests.,torch.")
    with pytest.raises(UnsafeConfigError, match="not a registered target"):
        check_targets(cfg)
    monkeypatch.setattr(targets_module, "_extra_modules", set())
    monkeypatch.setattr(targets_module, "_extra_names", set())
    allow_targets("tests.unit.guard.payloads")
    check_targets(cfg)
    with pytest.raises(ValueError, match="not a module or callable name"):
        allow_targets("tests.")


def test_code_can_allow_one_exact_callable_and_nothing_beside_it(monkeypatch):
    monkeypatch.setattr(targets_module, "_extra_modules", set())
    monkeypatch.setattr(targets_module, "_extra_names", set())
    allow_targets("tests.unit.guard.payloads.create_value")
    check_targets({"x": {"_target_": "tests.unit.guard.payloads.create_value"}})
    with pytest.raises(UnsafeConfigError, match="not a registered target"):
        check_targets({"x": {"_target_": "tests.unit.guard.payloads.crafted_pickle"}})


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
            home = (
                getattr(
                    value, "__name__" if isinstance(value, types.ModuleType) else "__module__", None
                )
                or ""
            )
            if name.startswith("__") or home.startswith("lightdet") or id(value) in seen:
                continue
            seen.add(id(value))
            yield f"{module.__name__}.{name}", value
            if isinstance(value, types.ModuleType):
                for attr in dir(value):
                    if not attr.startswith("_"):
                        yield f"{module.__name__}.{name}.{attr}", getattr(value, attr, None)


def test_no_path_through_any_imported_name_walks_out_of_the_registry(monkeypatch):
    """Property: ``lightdet.<module>.<imported name>[.<attr>]`` is never accepted unless it
    is a registered name itself; nothing that unpickles, deletes or runs commands ever is."""
    monkeypatch.setattr(targets_module, "_hint", lambda path, place: "")  # 80k refusals: fast
    tried, accepted, refused_dangerous = 0, set(), set()
    for path, obj in _sideways_paths():
        tried += 1
        try:
            check_target(path, "x._target_", "test")
        except UnsafeConfigError:
            if any(obj is d for d in DANGEROUS):
                refused_dangerous.add(".".join(path.split(".")[-2:]))
            continue
        accepted.add(path)
    assert tried > 2000
    assert {"torch.load", "shutil.rmtree", "shutil.copyfile", "os.system", "pickle.load"} <= (
        refused_dangerous
    )
    assert accepted <= set(REGISTRY), accepted - set(REGISTRY)


def test_nothing_outside_the_registry_composes_from_any_loaded_library(monkeypatch):
    """Every public callable of lightdet and of every library loaded with it (torch,
    torchvision, Lightning, Hydra, ClearML, albumentations, ...), named by its module path: the
    guard accepts exactly the registered names among them, and every registered component
    locates to a class or function."""
    monkeypatch.setattr(targets_module, "_hint", lambda path, place: "")
    for _ in _lightdet_modules():  # every lightdet module, and so every library they import
        pass
    accepted, tried = set(), 0
    for module_name, module in list(sys.modules.items()):
        try:
            names = [n for n, v in vars(module).items() if not n.startswith("_") and callable(v)]
        except TypeError:  # None entries and odd module objects
            continue
        for attr in names:
            tried += 1
            try:
                check_target(f"{module_name}.{attr}", "x._target_", "test")
            except UnsafeConfigError:
                continue
            accepted.add(f"{module_name}.{attr}")
    components = set(registered(COMPONENT))
    assert tried > 50_000
    assert accepted == components & accepted
    assert components - accepted <= {"hydra.utils.get_method"}  # its module attr is re-exported
    for name in components:
        obj = targets_module._locate(name)
        assert inspect.isclass(obj) or inspect.isfunction(obj), name


def test_an_override_naming_the_checkpoint_writer_is_refused_by_composition(tmp_path):
    """The round-2 finding, as an edited clone would send it: ``atomic_save`` writes any
    mapping to any path (an ``authorized_keys`` on an agent). Refused before anything runs."""
    target = tmp_path / "authorized_keys"
    with pytest.raises(UnsafeConfigError, match=r"callbacks\.x\._target_=.*atomic_save"):
        compose_train(
            tmp_path,
            *[
                f"+callbacks.x={{_target_:lightdet.lightning.checkpoint_io."
                f"atomic_save,checkpoint:{{a:1}},path:'{target}'}}"
            ],
        )
    assert not target.exists()
