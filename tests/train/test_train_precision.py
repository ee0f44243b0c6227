"""train.precision: bf16 autocast on the CPU, "auto" from the CPU's bf16 flags, the choice in the log."""

from __future__ import annotations

import pytest
import torch

import moldiff.train.precision as precision
from moldiff.errors import ConfigError
from moldiff.train.config import TrainConfig
from moldiff.train.logs import read_log
from moldiff.train.loop import Trainer


@pytest.mark.parametrize(
    "flags,expected", [(("avx512_bf16",), "bf16"), (("amx_bf16", "avx512_bf16"), "bf16"), ((), "fp32")]
)
def test_auto_follows_the_cpu_flags(monkeypatch, flags, expected):
    monkeypatch.setattr(precision, "cpu_bf16_flags", lambda: flags)
    assert precision.resolve_precision("auto", "cpu") == expected
    assert precision.resolve_precision("fp32", "cpu") == "fp32"
    assert precision.resolve_precision("bf16", "cpu") == "bf16"
    with pytest.raises(ValueError, match="precision"):
        precision.resolve_precision("fp16", "cpu")


def test_cpu_flags_are_read_from_proc_cpuinfo():
    flags = precision.cpu_bf16_flags()
    assert set(flags) <= {"avx512_bf16", "amx_bf16"}
    try:
        text = open("/proc/cpuinfo").read()
    except OSError:
        pytest.skip("no /proc/cpuinfo")
    assert ("avx512_bf16" in text) == ("avx512_bf16" in flags)


def test_precision_autocast_contexts():
    with precision.precision_autocast("bf16", "cpu"):
        assert torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
        with precision.precision_autocast("fp32", "cpu"):
            assert not torch.is_autocast_enabled("cpu")
        with precision.precision_autocast(None, "cpu"):
            assert torch.is_autocast_enabled("cpu")
    assert not torch.is_autocast_enabled("cpu")


def test_train_config_takes_auto_and_refuses_unknown_precisions():
    assert TrainConfig(precision="auto").precision == "auto"
    from moldiff.train.config import from_dict

    with pytest.raises(ConfigError, match="precision"):
        from_dict(TrainConfig, {"precision": "fp16"}, "train")


@pytest.mark.parametrize(
    "requested,flags,expected", [("bf16", (), "bf16"), ("auto", ("avx512_bf16",), "bf16"), ("auto", (), "fp32")]
)
def test_cpu_training_runs_in_the_chosen_precision_and_logs_it(
    monkeypatch, tmp_path, toy_config, requested, flags, expected
):
    monkeypatch.setattr(precision, "cpu_bf16_flags", lambda: flags)
    cfg = toy_config(steps=30, precision=requested)
    seen = []
    trainer = Trainer(cfg, out_dir=tmp_path)
    loss_fn = trainer.model.training_loss

    def spy(*args, **kwargs):
        seen.append(torch.is_autocast_enabled("cpu"))
        return loss_fn(*args, **kwargs)

    trainer.model.training_loss = spy
    result = trainer.fit()
    start = read_log(tmp_path / "log.jsonl", kind="event")[0]
    assert start["precision"] == expected and start["precision_requested"] == requested
    assert set(seen) == {expected == "bf16"}
    logs = read_log(tmp_path / "log.jsonl")
    assert result.skipped_steps == 0 and all(torch.isfinite(torch.tensor(r["loss"])) for r in logs)
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())
    assert all(p.dtype == torch.float32 for p in trainer.ema.module.parameters())
