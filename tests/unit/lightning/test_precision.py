"""``trainer.precision: auto``: bf16 where the hardware has it, fp32 on a CPU that emulates it."""

import pytest
import pytorch_lightning as pl
import torch
from hydra.utils import instantiate

from lightdet import Detector
from lightdet.lightning import precision as auto
from tests.conftest import compose_train


@pytest.fixture
def cpu(monkeypatch):
    def with_flags(*flags):
        monkeypatch.setattr(auto, "cpu_flags", lambda: frozenset(flags))

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    return with_flags


def test_a_cpu_gets_bf16_only_where_it_computes_it_natively(cpu):
    cpu("avx512f", "avx512_vnni")  # the newcomer's Xeon: bf16 emulated, 2.2x slower than fp32
    assert auto.resolve_precision("auto", "auto")[0] == "32-true"
    cpu("avx512_bf16", "amx_bf16")
    assert auto.resolve_precision("auto", "cpu")[0] == "bf16-mixed"
    assert auto.resolve_precision("16-mixed", "cpu") == ("16-mixed", "as configured")


def test_a_gpu_gets_bf16_where_it_has_it_else_fp16(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert auto.resolve_precision("auto", "gpu")[0] == "bf16-mixed"
    assert auto.resolve_precision("auto", "auto")[0] == "bf16-mixed"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    assert auto.resolve_precision("auto", "cuda")[0] == "16-mixed"
    assert auto.resolve_precision("auto", "cpu")[0] in ("32-true", "bf16-mixed")  # the CPU's


def test_make_train_builds_an_fp32_trainer_on_a_cpu_without_native_bf16(cpu, tmp_path):
    """The default config says auto; the trainer it builds on such a CPU is exactly the one
    trainer.precision=32-true builds, so it runs as fast; model configs still choose."""
    cpu("avx2", "avx512_vnni")
    cfg = compose_train(tmp_path)
    assert cfg.trainer.precision == "auto"
    built = instantiate(cfg.trainer, precision=auto.trainer_precision(cfg.trainer), logger=False)
    assert isinstance(built, pl.Trainer) and built.precision == "32-true"
    cpu("amx_bf16")
    built = instantiate(cfg.trainer, precision=auto.trainer_precision(cfg.trainer), logger=False)
    assert built.precision == "bf16-mixed"
    ssdlite = compose_train(tmp_path, "model=ssdlite", resize=False)
    assert ssdlite.trainer.precision == "32-true"  # its own choice (model.precision)


def test_a_detector_with_auto_runs_as_its_device_suits(cpu):
    cpu("avx512_vnni")
    net = torch.nn.Identity()
    assert Detector(net, ["a"], device="cpu", precision="auto").precision == "32-true"
    cpu("avx512_bf16")
    assert Detector(net, ["a"], device="cpu", precision="auto").precision == "bf16-mixed"
