"""A callback the preemption test adds to real training processes through the config
(``+callbacks.probe._target_=tests.integration.probe.StepProbe``, allowed by
``allow_targets`` in ``train_with_probe.py``): it records each trained batch and can send
the process a real signal at a given step."""

from __future__ import annotations

import json
import os
import signal
import subprocess

import pytorch_lightning as pl


class StepProbe(pl.Callback):
    def __init__(
        self,
        path: str,
        kill_at_step: int = -1,
        signal_name: str = "SIGTERM",
        whole_group: bool = False,
        kill_in_validation_of: int = -1,
    ) -> None:
        self.path = path
        self.kill_at_step = kill_at_step
        self.kill_in_validation_of = kill_in_validation_of  # an epoch: after its first val batch
        self.signum = getattr(signal, signal_name)
        self.whole_group = whole_group  # like pkill -f / scancel: the loader workers get it too

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        ids = [int(t["image_id"]) for t in batch[1]]
        with open(self.path, "a") as f:
            row = {"epoch": trainer.current_epoch, "step": trainer.global_step, "ids": ids}
            f.write(json.dumps(row) + "\n")
        if trainer.global_step == self.kill_at_step:
            if self.whole_group:  # from another process, as pkill or scancel would; the test
                group = os.getpgid(0)  # starts training in a process group of its own
                subprocess.run(["kill", f"-{self.signum}", "--", f"-{group}"])  # it gets it too
            else:
                os.kill(os.getpid(), self.signum)  # a real signal, delivered to this process

    def on_validation_batch_end(
        self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0
    ) -> None:
        if (
            not trainer.sanity_checking
            and batch_idx == 0
            and trainer.current_epoch == self.kill_in_validation_of
        ):
            os.kill(os.getpid(), self.signum)
