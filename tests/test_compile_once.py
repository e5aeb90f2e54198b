"""A trial compiles once per stage: its first stage trains with the compile that set the trial
up (for the "before" evaluation), not with a second one."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize(
    ("overrides", "compiles"),
    [
        # naive: one stage; expert: pretrain, train (one compile each, the first from start)
        ((), {"lenet-naive": 1, "lenet-expert": 2}),
        # a dropout override clones the model at each stage, and a clone compiles afresh
        (("training.dropout=0.25",), {"lenet-naive": 2, "lenet-expert": 3}),
    ],
)
def test_a_trial_compiles_once_per_stage(recipe, cli, monkeypatch, tmp_path, overrides, compiles):
    from kvision.train import trial

    seen: dict[str, int] = {}
    real_compile, real_start = trial.compile_model, trial.Trial.start

    def start(self):
        seen.setdefault(self.plan.name, 0)
        return real_start(self)

    def counting(model, training, **options):
        name = next(reversed(seen))  # the trial being set up or trained
        seen[name] += 1
        return real_compile(model, training, **options)

    monkeypatch.setattr(trial.Trial, "start", start)
    monkeypatch.setattr(trial, "compile_model", counting)
    done = cli("run", recipe("tiny", *overrides), "--run-dir", tmp_path / "run")
    assert done.returncode == 0, done.stderr[-2000:]
    assert seen == compiles
