"""The training loop: the loss falls, runs resume exactly, bad steps are skipped, schedules have their shape."""

from __future__ import annotations

import math
import os
import signal
from pathlib import Path

import pytest
import torch
from torch import nn
from train_regression_task import regression_config

from moldiff.train.checkpoint import export_ema, load_checkpoint, load_trained_model
from moldiff.train.ema import EMA, ema_decay_at
from moldiff.train.logs import read_log
from moldiff.train.loop import Trainer
from moldiff.train.optim import GradClipper, LRSchedule
from moldiff.train.tasks import TaskBundle

TRAIN_FIELDS = {
    "step",
    "loss",
    "grad_norm",
    "lr",
    "ema_decay",
    "items_per_s",
    "peak_mem_mb",
    "skipped_steps",
    "loss_std",
}


def _equal_state(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_end_to_end_loss_falls(tmp_path, toy_config):
    cfg = toy_config(steps=240, eval_every=120, ckpt_every=120)
    result = Trainer(cfg, out_dir=tmp_path).fit()
    logs = read_log(tmp_path / "log.jsonl")
    assert [r["step"] for r in logs] == list(range(1, 241))
    assert all(TRAIN_FIELDS <= r.keys() for r in logs)
    first = sum(r["loss"] for r in logs[:20]) / 20
    last = sum(r["loss"] for r in logs[-20:]) / 20
    assert last < 0.8 * first, (first, last)
    evals = read_log(tmp_path / "log.jsonl", kind="eval")
    assert [e["step"] for e in evals] == [120, 240]
    assert {"valid_loss", "mode_distance", "mode_coverage", "mean_error"} <= evals[-1].keys()
    assert result.step == 240 and result.skipped_steps == 0
    assert result.last_checkpoint == tmp_path / "checkpoints" / "step_00000240.ckpt"
    assert (tmp_path / "checkpoints" / "best.ckpt").is_file() and (tmp_path / "config.yaml").is_file()

    ckpt = load_checkpoint(result.last_checkpoint)
    assert ckpt["format"] == "moldiff-checkpoint" and ckpt["step"] == 240 and ckpt["task"] == "gaussian_mixture"
    assert ckpt["config"]["train"]["steps"] == 240 and ckpt["dataset_stats"]["dim"] == 2
    assert ckpt["best_metric"] == min(e["valid_loss"] for e in evals)

    # Ship the EMA weights in fp16 and rebuild the model from the small file alone.
    small = export_ema(result.last_checkpoint, tmp_path / "toy.pt")
    assert small.stat().st_size < result.last_checkpoint.stat().st_size / 4
    model = load_trained_model(small)
    samples = model.sample(64, generator=torch.Generator().manual_seed(0))
    assert samples.shape == (64, 2) and torch.isfinite(samples).all()

    # New sampling defaults at export (chosen after training); the training recipe stays as it was.
    retuned = load_trained_model(export_ema(result.last_checkpoint, tmp_path / "toy7.pt", sampling={"sample_steps": 7}))
    assert retuned.cfg.sample_steps == 7 and model.cfg.sample_steps == 8  # toy_config trains with 8
    assert load_checkpoint(tmp_path / "toy7.pt")["config"]["train"] == ckpt["config"]["train"]
    for bad in ({"hidden": 8}, {"sample_stepz": 7}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            export_ema(result.last_checkpoint, tmp_path / "bad.pt", sampling=bad)
    assert not (tmp_path / "bad.pt").exists()
    # A run started before its model config gained a sampling field can still be given it at export.
    older = {**ckpt, "config": {**ckpt["config"], "model": dict(ckpt["config"]["model"])}}
    del older["config"]["model"]["sample_steps"]
    torch.save(older, tmp_path / "older.ckpt")
    from_older = load_trained_model(
        export_ema(tmp_path / "older.ckpt", tmp_path / "older.pt", sampling={"sample_steps": 5})
    )
    assert from_older.cfg.sample_steps == 5


def _run(cfg, out_dir, **fit):
    trainer = Trainer(cfg, out_dir=out_dir)
    trainer.fit(**fit)
    return trainer


def test_resume_is_exact(tmp_path, toy_config):
    cfg = toy_config(steps=60, ckpt_every=20, eval_every=30)
    full = _run(cfg, tmp_path / "full")
    # Interrupted at step 50, after the checkpoint of step 40; the resumed run redoes steps 41-50.
    _run(cfg, tmp_path / "cut", stop_at=50)
    resumed = _run(cfg, tmp_path / "cut", resume=True)
    assert resumed.resumed_from.name == "step_00000040.ckpt"

    logs_full = read_log(tmp_path / "full" / "log.jsonl")
    logs_cut = read_log(tmp_path / "cut" / "log.jsonl")
    assert [r["step"] for r in logs_cut] == list(range(1, 61))
    assert [r["loss"] for r in logs_cut] == [r["loss"] for r in logs_full]
    assert [r["grad_norm"] for r in logs_cut] == [r["grad_norm"] for r in logs_full]
    assert read_log(tmp_path / "cut" / "log.jsonl", "eval") == read_log(tmp_path / "full" / "log.jsonl", "eval")
    assert _equal_state(resumed.model.state_dict(), full.model.state_dict())
    assert _equal_state(resumed.ema.module.state_dict(), full.ema.module.state_dict())


def test_grad_accumulation_matches_larger_batch(tmp_path):
    # Two accumulated micro-batches of 8 hold the same items as one batch of 16 (the sampler hands out
    # consecutive chunks of one permutation), so with a noise-free loss the runs agree.
    big = _run(regression_config(batch_size=16), tmp_path / "big")
    acc = _run(regression_config(batch_size=8, grad_accum=2), tmp_path / "acc")
    for key, value in big.model.state_dict().items():
        torch.testing.assert_close(acc.model.state_dict()[key], value, rtol=1e-5, atol=1e-6)
    losses_big = [r["loss"] for r in read_log(tmp_path / "big" / "log.jsonl")]
    losses_acc = [r["loss"] for r in read_log(tmp_path / "acc" / "log.jsonl")]
    assert losses_acc == pytest.approx(losses_big, rel=1e-5)


class _Fragile(nn.Module):
    """Loss finite, gradient not: d sqrt(w^2 * 0) / dw is NaN."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.ones(3))

    def training_loss(self, batch, generator=None):
        if batch.isnan().any():
            return (self.w * batch).sum(), {}
        if (batch == 0).all():
            return torch.sqrt((self.w * batch) ** 2).sum(), {}
        return ((self.w - batch) ** 2).mean(), {}


def test_non_finite_steps_are_skipped_and_counted(tmp_path, toy_config):
    cfg = toy_config(steps=10, clip="norm", clip_value=1.0)
    model = _Fragile()
    bundle = TaskBundle(model=model, train_dataset=torch.randn(64, 3))
    trainer = Trainer(cfg, out_dir=tmp_path, bundle=bundle)
    good = torch.randn(8, 3)
    trainer.train_step([good])
    weights = model.w.detach().clone()
    ema = trainer.ema.module.w.detach().clone()
    moments = {k: v.clone() for k, v in trainer.optimizer.state[model.w].items()}

    for bad in (torch.full((8, 3), float("nan")), torch.zeros(8, 3)):
        result = trainer.train_step([bad])
        assert result.skipped and result.ema_decay is None
        assert torch.equal(model.w, weights) and torch.equal(trainer.ema.module.w, ema)
        assert all(torch.equal(trainer.optimizer.state[model.w][k], v) for k, v in moments.items())
        assert model.w.grad is None
    assert trainer.skipped_steps == 2 and trainer.step == 3 and trainer.ema.num_updates == 1

    result = trainer.train_step([good])
    assert not result.skipped and not torch.equal(model.w, weights)


def test_skipped_steps_are_logged(tmp_path, toy_config):
    data = torch.randn(64, 3)
    data[5] = float("nan")  # poisons exactly the batches that contain item 5
    cfg = toy_config(steps=16, batch_size=8, eval_every=0, best_metric=None, ckpt_every=100)
    trainer = Trainer(cfg, out_dir=tmp_path, bundle=TaskBundle(model=_Fragile(), train_dataset=data))
    result = trainer.fit()
    logs = read_log(tmp_path / "log.jsonl")
    assert result.skipped_steps == 2  # two epochs of 8 batches, item 5 once per epoch
    assert logs[-1]["skipped_steps"] == 2
    assert sum(r["loss"] == "nan" for r in logs) == 2 and torch.isfinite(trainer.model.w).all()


def test_lr_schedule_shape():
    warm = LRSchedule(total_steps=110, warmup_steps=10, decay="cosine", min_ratio=0.1)
    assert [warm.factor(s) for s in range(10)] == pytest.approx([(s + 1) / 10 for s in range(10)])
    assert warm.factor(10) == pytest.approx(1.0)
    assert warm.factor(60) == pytest.approx(0.1 + 0.9 * 0.5)
    assert warm.factor(110) == pytest.approx(0.1) and warm.factor(500) == pytest.approx(0.1)
    factors = [warm.factor(s) for s in range(10, 111)]
    assert all(a >= b for a, b in zip(factors, factors[1:]))
    lin = LRSchedule(total_steps=100, decay="linear")
    assert [lin.factor(s) for s in (0, 25, 50, 100)] == pytest.approx([1.0, 0.75, 0.5, 0.0])
    assert LRSchedule(100, warmup_steps=5).factor(99) == 1.0


def test_ema_warmup_formula_and_update():
    assert ema_decay_at(0, 0.999) == pytest.approx(0.1)
    assert ema_decay_at(10, 0.999) == pytest.approx(11 / 20)
    assert ema_decay_at(10**6, 0.999) == 0.999
    assert ema_decay_at(0, 0.999, warmup=False) == 0.999
    model = nn.Linear(2, 2)
    ema = EMA(model, decay=0.9)
    start = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    d = ema.update(model)
    assert d == pytest.approx(0.1)
    torch.testing.assert_close(ema.module.weight, d * start + (1 - d) * model.weight)
    assert ema.current_decay() == pytest.approx(2 / 11)


def test_adaptive_clipping_rule():
    clipper = GradClipper("adaptive", value=1.0, history=4)
    p = nn.Parameter(torch.zeros(4))
    for norm in (1.0, 1.0, 1.0):
        assert clipper.clip_([p], norm) == pytest.approx(1.5)  # history all ones: 1.5 * 1 + 2 * 0
    hist = [1.0, 1.0, 1.0, 1.0]
    mean, std = 1.0, 0.0
    p.grad = torch.full((4,), 5.0)  # norm 10 > 1.5: clipped, and 1.5 is recorded
    assert clipper.clip_([p], p.grad.norm()) == pytest.approx(1.5 * mean + 2 * std)
    assert p.grad.norm() == pytest.approx(1.5, rel=1e-5)
    hist = hist[1:] + [1.5]
    m = sum(hist) / 4
    s = math.sqrt(sum((h - m) ** 2 for h in hist) / 4)
    assert clipper.threshold() == pytest.approx(1.5 * m + 2 * s)
    fixed = GradClipper("norm", value=2.0)
    p.grad = torch.full((4,), 0.5)  # norm 1 < 2: untouched
    fixed.clip_([p], p.grad.norm())
    assert torch.equal(p.grad, torch.full((4,), 0.5))


def test_data_workers_give_the_same_stream(tmp_path, toy_config):
    with_workers = _run(toy_config(steps=6, num_workers=2, ckpt_every=100), tmp_path / "workers")
    in_process = _run(toy_config(steps=6, ckpt_every=100), tmp_path / "main")
    assert [r["loss"] for r in read_log(tmp_path / "workers" / "log.jsonl")] == [
        r["loss"] for r in read_log(tmp_path / "main" / "log.jsonl")
    ]
    assert _equal_state(with_workers.model.state_dict(), in_process.model.state_dict())


def test_cli_train_then_resume_longer(tmp_path):
    from moldiff.cli import main

    config = str(Path(__file__).resolve().parents[2] / "configs" / "toy_gaussian_mixture.yaml")
    small = [
        "train.batch_size=32",
        "train.log_every=5",
        "train.eval_every=0",
        "train.ckpt_every=10",
        "model.hidden=16",
        "model.eval_samples=32",
        "model.sample_steps=4",
        "data.num_train=256",
        "data.num_valid=64",
        "train.device=cpu",
    ]
    out = str(tmp_path / "run")
    assert main(["train", config, "train.steps=20", *small, "--out", out, "--no-progress"]) == 0
    assert (tmp_path / "run" / "checkpoints" / "step_00000020.ckpt").is_file()
    assert main(["train", config, "train.steps=30", *small, "--out", out, "--resume", "--no-progress"]) == 0
    logs = read_log(tmp_path / "run" / "log.jsonl", kind=None)
    assert [r["step"] for r in logs if r["kind"] == "train"] == [5, 10, 15, 20, 25, 30]
    events = [r for r in logs if r["kind"] == "event"]
    assert events[-1]["event"] == "resume" and events[-1]["checkpoint"].endswith("step_00000020.ckpt")
    assert any(e.get("event") == "config_changed_on_resume" and e["keys"] == ["train.steps"] for e in events)


TOY_YAML = str(Path(__file__).resolve().parents[2] / "configs" / "toy_gaussian_mixture.yaml")
#: The toy config file, sized down: the first launches below give these, the resumes give none.
SMALL = [
    "train.batch_size=32",
    "train.log_every=5",
    "train.eval_every=0",
    "train.ckpt_every=10",
    "model.hidden=16",
    "model.eval_samples=32",
    "model.sample_steps=4",
    "data.num_train=256",
    "data.num_valid=64",
    "train.device=cpu",
]


def test_cli_resume_continues_the_saved_run_config_and_says_where_the_file_differs(tmp_path, capsys):
    from moldiff.cli import main

    out = str(tmp_path / "run")
    assert main(["train", TOY_YAML, "train.steps=20", "train.lr=1e-3", *SMALL, "--out", out, "--no-progress"]) == 0
    capsys.readouterr()

    # No overrides now: the saved run's 20 steps at lr 1e-3, not the file's 5,000 at 2e-3, and one line per
    # key where the file and the saved run differ; the run is done already, so nothing is trained.
    assert main(["train", TOY_YAML, "--out", out, "--resume", "--no-progress"]) == 0
    lines = capsys.readouterr().err.splitlines()
    assert (
        f"moldiff train: resuming with train.steps = 20, as in the saved run ({TOY_YAML} says 5000; "
        "give train.steps=5000 to use that)"
    ) in lines
    assert any(
        line.startswith("moldiff train: resuming with train.lr = 0.001, as in the saved run (")
        and "give train.lr=0.002 to use that" in line
        for line in lines
    )
    keys = {line.split(" = ")[0].rsplit(" ", 1)[-1] for line in lines if line.startswith("moldiff train: resuming")}
    assert keys == {"train.steps", "train.lr"} | {o.split("=")[0] for o in SMALL}
    assert lines[-1] == "run already at step 20 of 20: nothing to do; raise train.steps=N to train on"
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").glob("step_*")) == [
        "step_00000010.ckpt",
        "step_00000020.ckpt",
    ]  # nothing new written

    # An override given now applies, the rest stays the saved run's; the log records the decision.
    assert main(["train", TOY_YAML, "train.steps=30", "--out", out, "--resume", "--no-progress"]) == 0
    lines = capsys.readouterr().err.splitlines()
    assert "moldiff train: resuming with train.steps = 30, given now (the saved run had 20)" in lines
    assert lines[-1].startswith("done: step 30")
    ckpt = load_checkpoint(tmp_path / "run" / "checkpoints" / "step_00000030.ckpt")
    assert ckpt["config"]["train"]["lr"] == 1e-3 and ckpt["config"]["model"]["hidden"] == 16
    assert ckpt["config"]["train"]["steps"] == 30
    events = read_log(tmp_path / "run" / "log.jsonl", kind="event")
    assert [e["event"] for e in events] == [
        "start",
        "nothing_to_do",
        "config_changed_on_resume",
        "resume_config",
        "resume",
    ]
    decision = {s["key"]: s for s in events[-2]["settings"]}
    assert decision["train.steps"] == {"key": "train.steps", "saved": 20, "given": 30, "used": 30, "source": "override"}
    assert decision["train.lr"] == {"key": "train.lr", "saved": 1e-3, "given": 2e-3, "used": 1e-3, "source": "saved"}
    assert events[-2]["saved_config"] == str(tmp_path / "run" / "config.yaml")


def test_a_killed_run_resumed_by_the_cli_without_overrides_is_exact(tmp_path, capsys):
    from moldiff.cli import main
    from moldiff.train.config import load_config

    cfg = load_config(TOY_YAML, ["train.steps=20", "train.progress=false", *SMALL])
    full = _run(cfg, tmp_path / "full")
    _run(cfg, tmp_path / "cut", stop_at=15)  # killed after the checkpoint of step 10
    assert main(["train", TOY_YAML, "--out", str(tmp_path / "cut"), "--resume", "--no-progress"]) == 0
    resumed = load_checkpoint(tmp_path / "cut" / "checkpoints" / "step_00000020.ckpt")
    assert _equal_state(resumed["model"], full.model.state_dict())
    assert [r["loss"] for r in read_log(tmp_path / "cut" / "log.jsonl")] == [
        r["loss"] for r in read_log(tmp_path / "full" / "log.jsonl")
    ]


def test_resume_refuses_model_settings_the_checkpoint_does_not_fit(tmp_path, capsys):
    from moldiff.cli import main

    out = str(tmp_path / "run")
    assert main(["train", TOY_YAML, "train.steps=10", *SMALL, "--out", out, "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["train", TOY_YAML, "train.steps=20", "model.hidden=24", "--out", out, "--resume"]) == 2
    err = capsys.readouterr().err
    assert "moldiff train: resuming with model.hidden = 24, given now (the saved run had 16)" in err
    assert "do not fit the model of this run's config" in err and "Traceback" not in err
    assert main(["train", TOY_YAML, *SMALL, "--out", str(tmp_path / "fresh"), "--resume", "train.steps=1"]) == 0
    assert f"no checkpoint in {tmp_path / 'fresh'} yet: starting a fresh run" in capsys.readouterr().err


@pytest.mark.skipif(not hasattr(signal, "SIGUSR1"), reason="needs SIGUSR1")
def test_stop_signal_checkpoints_and_resumes_exactly(tmp_path, toy_config):
    cfg = toy_config(steps=40, ckpt_every=100)
    full = _run(cfg, tmp_path / "full")
    trainer = Trainer(cfg, out_dir=tmp_path / "cut")
    take_step = trainer.train_step

    def step_then_preempt(batches):
        if trainer.step == 24:
            os.kill(os.getpid(), signal.SIGUSR1)  # what a cluster scheduler sends before pre-emption
        return take_step(batches)

    trainer.train_step = step_then_preempt
    result = trainer.fit()
    assert result.stopped and result.step == 25
    assert result.last_checkpoint == tmp_path / "cut" / "checkpoints" / "step_00000025.ckpt"
    assert signal.getsignal(signal.SIGUSR1) is signal.SIG_DFL  # handler restored

    resumed = _run(cfg, tmp_path / "cut", resume=True)
    assert _equal_state(resumed.model.state_dict(), full.model.state_dict())
    assert [r["loss"] for r in read_log(tmp_path / "cut" / "log.jsonl")] == [
        r["loss"] for r in read_log(tmp_path / "full" / "log.jsonl")
    ]


def test_fresh_run_refuses_a_folder_with_checkpoints(tmp_path, toy_config):
    cfg = toy_config(steps=5, eval_every=0)
    _run(cfg, tmp_path)
    with pytest.raises(FileExistsError, match="--resume"):
        _run(cfg, tmp_path)


def test_init_from_starts_a_fresh_run_at_trained_weights(tmp_path, toy_config):
    first = _run(toy_config(steps=40, eval_every=0), tmp_path / "first")
    shipped = export_ema(first.checkpoints.latest(), tmp_path / "first.pt", dtype=None)
    trained = load_trained_model(shipped).state_dict()

    # stop_at=0: the state a fresh run with init_from starts its first step from.
    start = _run(toy_config(steps=40, eval_every=0, init_from=str(shipped)), tmp_path / "second", stop_at=0)
    assert start.step == 0 and start.ema.num_updates == 0
    assert _equal_state(start.model.state_dict(), trained)
    assert _equal_state(start.ema.module.state_dict(), trained)
    assert not _equal_state(
        _run(toy_config(steps=40, eval_every=0), tmp_path / "scratch", stop_at=0).model.state_dict(), trained
    )

    # It trains on from there (fresh optimiser), and a resumed run keeps its own weights.
    cfg = toy_config(steps=20, eval_every=0, ckpt_every=10, init_from=str(first.checkpoints.latest()))
    cut = _run(cfg, tmp_path / "third", stop_at=15)
    resumed = _run(cfg, tmp_path / "third", resume=True)
    full = _run(cfg, tmp_path / "full")
    assert _equal_state(resumed.model.state_dict(), full.model.state_dict())
    assert not _equal_state(cut.model.state_dict(), trained)
    start_event = read_log(tmp_path / "third" / "log.jsonl", kind="event")[0]
    assert start_event["event"] == "start" and start_event["init_from"] == str(first.checkpoints.latest())


def test_init_from_refuses_weights_that_do_not_fit(tmp_path, toy_config):
    first = _run(toy_config(steps=5, eval_every=0), tmp_path / "first")
    wider = toy_config(steps=5, eval_every=0, init_from=str(first.checkpoints.latest()))
    wider.model.hidden = 48
    with pytest.raises(ValueError, match=r"do not fit this run's model.*shape \(32"):
        _run(wider, tmp_path / "wider")
    with pytest.raises(FileNotFoundError, match="neither a pretrained model"):
        _run(toy_config(steps=5, init_from=str(tmp_path / "nothing.pt")), tmp_path / "missing")
    with pytest.raises(ValueError, match="task 'molecules'"):
        _run(toy_config(steps=5, init_from="qm9_edm"), tmp_path / "other_task")


def test_init_partial_grows_the_trained_tensors_and_refuses_shrinking_ones(tmp_path, toy_config):
    from moldiff.train.loop import grow_weights

    first = _run(toy_config(steps=5, eval_every=0), tmp_path / "first")
    trained = first.ema.module.state_dict()  # init_from takes a training checkpoint's EMA weights
    wider = toy_config(steps=5, eval_every=0, init_from=str(first.checkpoints.latest()), init_partial=True)
    wider.model.hidden = 48
    start = _run(wider, tmp_path / "wider", stop_at=0)
    grown = start.init_report["grown"]
    assert grown and not start.init_report["new"]
    for name in grown:  # the trained block kept, zeros around it
        old, new = trained[name], start.model.state_dict()[name]
        block = tuple(slice(0, n) for n in old.shape)
        assert torch.equal(new[block], old) and float(new.abs().sum()) == float(old.abs().sum())
        assert torch.equal(start.ema.module.state_dict()[name], new)
    event = read_log(tmp_path / "wider" / "log.jsonl", kind="event")[0]
    assert event["init_partial"]["grown"] == grown
    narrower = toy_config(steps=5, eval_every=0, init_from=str(first.checkpoints.latest()), init_partial=True)
    narrower.model.hidden = 16
    with pytest.raises(ValueError, match="do not fit this run's model.*shape \\(32"):
        _run(narrower, tmp_path / "narrower")
    # a tensor the file lacks keeps the model's own values and is reported new
    own = {"a": torch.ones(2, 3), "b": torch.full((4,), 7.0)}
    weights, report = grow_weights({"a": torch.full((2, 2), 5.0)}, own)
    assert weights["a"].tolist() == [[5.0, 5.0, 0.0], [5.0, 5.0, 0.0]] and torch.equal(weights["b"], own["b"])
    assert report == {"grown": ["a"], "new": ["b"]} and grow_weights(own, own)[1] == {}


def test_new_lr_scale_moves_the_added_tensors_that_much_faster_and_resumes_exactly(tmp_path, toy_config):
    """train.new_lr_scale: the tensors init_partial adds train at k x lr. Adam's first step moves a
    parameter by lr * m / (sqrt(v) + eps), the same gradient for both runs here, so k x lr moves the
    added tensors exactly k times as far and leaves every trained tensor's step as it was."""
    from moldiff.train.config import ConfigError

    first = _run(toy_config(steps=5, eval_every=0), tmp_path / "first")
    source = str(first.checkpoints.latest())

    def deeper(**train):
        cfg = toy_config(eval_every=0, init_from=source, init_partial=True, weight_decay=0.0, **train)
        cfg.model.depth = 3  # a third layer the trained weights lack
        return cfg

    start = _run(deeper(steps=20), tmp_path / "start", stop_at=0).model.state_dict()
    moved = {}
    for scale in (1.0, 10.0):
        trainer = _run(deeper(steps=20, new_lr_scale=scale), tmp_path / f"scale{scale:g}", stop_at=1)
        moved[scale] = {k: v - start[k] for k, v in trainer.model.state_dict().items()}
        lrs = {group["lr_scale"]: group["lr"] for group in trainer.optimizer.param_groups}
        assert set(lrs) == ({1.0} if scale == 1.0 else {1.0, scale})
        assert lrs[scale] == pytest.approx(scale * lrs[1.0])
    added = trainer.lr_scaled
    assert added == trainer.init_report["new"] and added
    event = read_log(tmp_path / "scale10" / "log.jsonl", kind="event")[0]
    assert event["lr_scaled"] == added and event["new_lr_scale"] == 10.0
    for name, step in moved[1.0].items():
        factor = 10.0 if name in added else 1.0
        assert torch.allclose(moved[10.0][name], factor * step, rtol=1e-4, atol=1e-7), name
    assert all(float(moved[1.0][name].abs().max()) > 0 for name in added)

    # the scaled groups come back on resume: an interrupted run ends where an uninterrupted one does
    cfg = deeper(steps=12, ckpt_every=4, new_lr_scale=5.0)
    full = _run(cfg, tmp_path / "full")
    _run(cfg, tmp_path / "cut", stop_at=6)
    resumed = _run(cfg, tmp_path / "cut", resume=True)
    assert resumed.lr_scaled == added and _equal_state(resumed.model.state_dict(), full.model.state_dict())

    with pytest.raises(ConfigError, match="train.new_lr_scale.*init_partial"):
        toy_config(new_lr_scale=10.0)
    with pytest.raises(ConfigError, match="train.new_lr_scale: must be a positive"):
        toy_config(init_from=source, init_partial=True, new_lr_scale=0.0)
