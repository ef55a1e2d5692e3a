"""Only interpolations that build nothing and read no environment (but LIGHTDET_ROOT) pass."""

import pytest

from lightdet.guard import UnsafeConfigError
from lightdet.guard.interpolations import check_interpolations, check_value


@pytest.mark.parametrize(
    "value",
    [
        "plain text",
        "${model.name}",
        "${paths.root_dir}/logs",
        "${now:%Y-%m-%d_%H-%M-%S}",
        "${oc.select:model.precision,bf16-mixed}",
        "${hydra:runtime.output_dir}",
        "${oc.env:LIGHTDET_ROOT,.}",
        "${ oc.env : LIGHTDET_ROOT }",
        "\\${oc.env:HOME}",  # escaped
    ],
)
def test_references_and_the_listed_resolvers_pass(value):
    check_value(value, "k", "test")


@pytest.mark.parametrize(
    "value,named",
    [
        ("${oc.create:{_target_: torch.load}}", "'oc.create'"),
        ("${oc.env:CLEARML_API_SECRET_KEY}", "'oc.env:CLEARML_API_SECRET_KEY'"),
        ("${ oc.env : HOME }", "'oc.env:HOME'"),
        ("${oc.decode:'{a: 1}'}", "'oc.decode'"),
        ("${oc.select:x,${oc.env:SECRET}}", "'oc.env:SECRET'"),  # nested in an allowed one
        ("run-${oc.env:TOKEN}-x", "'oc.env:TOKEN'"),
        ("${${name}:x}", r"'\$\{name\}'"),  # a resolver named by an interpolation
        ("${oc.dict.keys:model}", "'oc.dict.keys'"),
    ],
)
def test_other_resolvers_are_refused_naming_key_and_resolver(value, named):
    with pytest.raises(UnsafeConfigError, match=rf"test: task_name=.*the resolver {named} is not"):
        check_value(value, "task_name", "test")


def test_every_string_of_a_config_is_checked_lists_and_keys_included():
    cfg = {"logger": {"clearml": {"tags": ["ok", "${oc.env:SECRET_KEY}"]}}}
    with pytest.raises(UnsafeConfigError, match=r"logger\.clearml\.tags\[1\]="):
        check_interpolations(cfg)


def test_a_stored_config_may_hold_no_interpolation_at_all():
    check_interpolations({"a": "${b}"})
    with pytest.raises(UnsafeConfigError, match=r"ckpt: a='\$\{b\}': no interpolation"):
        check_interpolations({"a": "${b}"}, "ckpt", allow_any=False)


def test_an_invalid_interpolation_is_refused():
    with pytest.raises(UnsafeConfigError, match="not a valid interpolation"):
        check_value("${oc.env:", "k", "test")
