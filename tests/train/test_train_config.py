"""Configs: dataclasses from YAML, overrides, and error messages that name the key."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional

import pytest
import yaml

from moldiff.cli import main
from moldiff.train.config import (
    ConfigError,
    ExperimentConfig,
    TrainConfig,
    apply_overrides,
    experiment_from_dict,
    from_dict,
    load_config,
    to_dict,
)

REPO_CONFIG = str(Path(__file__).resolve().parents[2] / "configs" / "toy_gaussian_mixture.yaml")


@dataclass
class Inner:
    width: int = 4
    names: list[str] = field(default_factory=lambda: ["a"])


@dataclass
class Outer:
    inner: Inner = field(default_factory=Inner)
    scale: float = 1.0
    mode: Literal["x", "y"] = "x"
    pair: tuple[int, int] = (1, 2)
    maybe: Optional[int] = None
    table: dict[str, float] = field(default_factory=dict)


def test_round_trip_nested():
    cfg = Outer(Inner(8, ["p", "q"]), 2.5, "y", (3, 4), 7, {"a": 1.0})
    data = yaml.safe_load(yaml.safe_dump(to_dict(cfg)))
    assert from_dict(Outer, data) == cfg


def test_experiment_round_trip_through_yaml(tmp_path):
    cfg = load_config(REPO_CONFIG)
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg.to_dict()))
    again = load_config(path)
    assert again == cfg
    assert isinstance(again.train, TrainConfig) and again.train.betas == (0.9, 0.999)


def test_overrides_dotted_paths_and_yaml_values():
    cfg = load_config(
        REPO_CONFIG,
        [
            "train.lr=3e-4",
            "train.steps=7",
            "model.hidden=16",
            "train.betas=[0.8, 0.9]",
            "train.best_metric=null",
            "data.dim=3",
        ],
    )
    assert cfg.train.lr == pytest.approx(3e-4) and cfg.train.steps == 7
    assert cfg.model.hidden == 16 and cfg.data.dim == 3
    assert cfg.train.betas == (0.8, 0.9) and cfg.train.best_metric is None


def test_float_written_without_dot_is_accepted():
    # YAML 1.1 reads "1e-4" as a string; a float field accepts it.
    assert from_dict(TrainConfig, {"lr": "1e-4"}).lr == pytest.approx(1e-4)


def test_unknown_key_names_it_and_suggests():
    with pytest.raises(ConfigError) as err:
        load_config(REPO_CONFIG, ["train.lrr=0.1"])
    assert str(err.value) == "unknown key 'train.lrr' (did you mean 'lr'?)"
    with pytest.raises(ConfigError, match=r"unknown key 'inner.widht' \(did you mean 'width'\?\)"):
        from_dict(Outer, {"inner": {"widht": 3}})
    with pytest.raises(ConfigError, match=r"unknown key 'trian' \(did you mean 'train'\?\)"):
        experiment_from_dict({"task": "gaussian_mixture", "trian": {}})


def test_wrong_type_names_key_type_and_value():
    with pytest.raises(ConfigError) as err:
        load_config(REPO_CONFIG, ["train.steps=10k"])
    assert str(err.value) == "train.steps: expected int, got '10k' (str)"
    with pytest.raises(ConfigError, match=r"train.lr_decay: expected one of 'none', 'cosine', 'linear', got 'cos'"):
        load_config(REPO_CONFIG, ["train.lr_decay=cos"])
    with pytest.raises(ConfigError, match=r"train.compile: expected bool, got 1 \(int\)"):
        from_dict(TrainConfig, {"compile": 1}, "train")
    with pytest.raises(ConfigError, match=r"pair: expected tuple\[int, int\] \(2 values\), got \[1\]"):
        from_dict(Outer, {"pair": [1]})
    with pytest.raises(ConfigError, match=r"inner.names\[1\]: expected str, got 3 \(int\)"):
        from_dict(Outer, {"inner": {"names": ["a", 3]}})
    with pytest.raises(ConfigError, match=r"maybe: expected int, got 'x' \(str\)"):
        from_dict(Outer, {"maybe": "x"})


def test_value_checks_and_bad_overrides():
    with pytest.raises(ConfigError, match=r"train.steps: must be at least 1, got 0"):
        load_config(REPO_CONFIG, ["train.steps=0"])
    with pytest.raises(ConfigError, match="not of the form key=value"):
        load_config(REPO_CONFIG, ["train.steps"])
    with pytest.raises(ConfigError, match="'train.lr' is a value, not a section"):
        apply_overrides({"train": {"lr": 1.0}}, ["train.lr.x=1"])
    with pytest.raises(ConfigError, match=r"unknown task 'gausian_mixture' \(did you mean 'gaussian_mixture'\?"):
        experiment_from_dict({"task": "gausian_mixture"})


def test_defaults_fill_missing_sections():
    cfg = experiment_from_dict({"task": "gaussian_mixture"})
    assert isinstance(cfg, ExperimentConfig) and cfg.train == TrainConfig() and cfg.model.hidden == 128


def test_cli_reports_config_errors(capsys):
    assert main(["train", REPO_CONFIG, "train.lrr=1"]) == 2
    assert "unknown key 'train.lrr' (did you mean 'lr'?)" in capsys.readouterr().err


def test_cli_takes_overrides_after_options(capsys):
    """``moldiff train CFG --out DIR KEY=VALUE``: the override is still read (and checked) after an option."""
    assert main(["train", REPO_CONFIG, "--no-progress", "train.lrr=1"]) == 2
    assert "unknown key 'train.lrr'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", REPO_CONFIG, "--no-progress", "--nonsense"])
    assert "unrecognized arguments: --nonsense" in capsys.readouterr().err
