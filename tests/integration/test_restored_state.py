"""Issue 27's finding: a ``last.ckpt`` holding only plain containers (it passes
``weights_only``) whose checkpoint-callback state names a user's file made the resumed run
register it as its best model, then delete it in the top-k clean-up."""

from __future__ import annotations

import logging

import torch

from lightdet.runs.train import run_training
from tests.conftest import compose_train


def test_a_tampered_last_checkpoint_cannot_make_a_resumed_run_delete_a_file(tmp_path, caplog):
    run = tmp_path / "first"
    run_training(compose_train(run))
    last = run / "run" / "checkpoints" / "last.ckpt"
    victim = tmp_path / "user" / "thesis.tex"
    victim.parent.mkdir()
    victim.write_text("years of work\n")
    ckpt = torch.load(last, weights_only=True)
    (key,) = [k for k in ckpt["callbacks"] if k.startswith("ModelCheckpoint")]
    state = ckpt["callbacks"][key]
    # the user's file as the worst of the top k, through `..`: Lightning's own "inside the
    # checkpoint folder" check looks at the unresolved path, so it deletes it when replaced
    named = str(last.parent / ".." / ".." / ".." / "user" / "thesis.tex")
    state.update(
        best_k_models={named: torch.tensor(-1.0)},
        kth_best_model_path=named,
        kth_value=torch.tensor(-1.0),
        best_model_path=named,
        best_model_score=torch.tensor(-1.0),
    )
    torch.save(ckpt, last)
    torch.load(last, weights_only=True)  # plain containers only: it passes the loader's check

    with caplog.at_level(logging.WARNING):
        result = run_training(
            compose_train(tmp_path / "second", f"ckpt_path={last}", "trainer.max_epochs=2")
        )
    assert victim.read_text() == "years of work\n"
    assert result.best_checkpoint is not None and str(victim) != result.best_checkpoint
    assert any(
        "outside its folder" in r.getMessage() and named in r.getMessage() for r in caplog.records
    )
