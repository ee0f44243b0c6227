"""``moldiff train`` and the engine: bad configs, bad training data, truncated, foreign and malicious
checkpoints, resumes over unreadable files, a full disk while logging, kill -9 during checkpoint and
log writes, and concurrent runs."""

from __future__ import annotations

import errno
import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path
from unittest import mock

import torch

from . import fixtures as fx
from .harness import CORRECT, SILENT, Guard, Outcome, Proxy, call, case, cli, files_in, named, succeeded


def _train(config: Path, out: Path, *extra):
    return cli("train", config, "--out", out, "--no-progress", *extra)


def _log(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines() if line.strip()]


# ------------------------------------------------------------------------------------------------
# Bad configs
# ------------------------------------------------------------------------------------------------


def _bad_override(tmp: Path, override: str, *names) -> Outcome:
    run = _train(fx.toy_config(tmp), tmp / "run", override)
    result = named(run, *names)
    return result if not (tmp / "run" / "checkpoints").exists() else Outcome(SILENT, "it trained")


@case("bad configs")
def case_config_lr_inf(tmp):
    return _bad_override(tmp, "train.lr=.inf", "train.lr", "finite")


@case("bad configs")
def case_config_lr_nan(tmp):
    return _bad_override(tmp, "train.lr=nan", "train.lr", "finite")


@case("bad configs")
def case_config_hidden_zero(tmp):
    return _bad_override(tmp, "model.hidden=0", "model.hidden")


@case("bad configs")
def case_config_molecule_layers_zero(tmp):
    run = _train(fx.molecule_config(tmp, fx.good_sdf()), tmp / "run", "model.layers=0")
    return named(run, "model.layers")


@case("bad configs")
def case_config_steps_zero(tmp):
    return _bad_override(tmp, "train.steps=0", "train.steps")


@case("bad configs")
def case_config_negative_batch(tmp):
    return _bad_override(tmp, "train.batch_size=-4", "train.batch_size")


@case("bad configs")
def case_config_unknown_key(tmp):
    return _bad_override(tmp, "train.lrr=1", "train.lrr", "did you mean")


@case("bad configs")
def case_config_wrong_type(tmp):
    return _bad_override(tmp, "train.steps=many", "train.steps")


@case("bad configs")
def case_config_schedule_option_inf(tmp):
    run = _train(fx.molecule_config(tmp, fx.good_sdf()), tmp / "run", "model.schedule_options={num_steps: .inf}")
    return named(run, "model.schedule_options.num_steps", "finite")


@case("bad configs")
def case_config_duplicate_key(tmp):
    config = fx.toy_config(tmp, fx.TOY_CONFIG.replace("  lr: 1.0e-3\n", "  lr: 1.0e-3\n  lr: 5.0\n"))
    return named(_train(config, tmp / "run"), config, "'lr'", "twice")


@case("bad configs")
def case_config_invalid_yaml(tmp):
    config = fx.toy_config(tmp, "task: gaussian_mixture\ntrain: {steps: [1, 2\n")
    return named(_train(config, tmp / "run"), config, "invalid YAML")


@case("bad configs")
def case_config_not_a_mapping(tmp):
    config = fx.toy_config(tmp, "- just\n- a list\n")
    return named(_train(config, tmp / "run"), config, "mapping")


@case("bad configs")
def case_config_binary_file(tmp):
    config = tmp / "binary.yaml"
    config.write_bytes(b"\xff\xfe\x00\x01" * 20)
    return named(_train(config, tmp / "run"), config)


@case("bad configs")
def case_config_missing_file(tmp):
    return named(_train(tmp / "absent.yaml", tmp / "run"), "absent.yaml")


@case("bad configs")
def case_config_unknown_task(tmp):
    config = fx.toy_config(tmp, fx.TOY_CONFIG.replace("gaussian_mixture", "gaussian_mixtur"))
    return named(_train(config, tmp / "run"), "gaussian_mixtur", "did you mean")


@case("bad configs")
def case_config_unknown_dataset(tmp):
    run = _train(fx.molecule_config(tmp, fx.good_sdf()), tmp / "run", "data.dataset=pdbbind")
    return named(run, "data.dataset", "pdbbind")


@case("bad configs")
def case_config_bad_on_error(tmp):
    run = _train(fx.molecule_config(tmp, fx.good_sdf()), tmp / "run", "data.on_error=ignore")
    return named(run, "data.on_error")


@case("bad configs", CORRECT)
def case_config_missing_sections_are_announced(tmp):
    config = fx.toy_config(tmp, "task: gaussian_mixture\ndata: {num_train: 16, num_valid: 8}\n")
    run = _train(config, tmp / "run", "train.steps=1", "train.batch_size=8", "train.device=cpu", "train.eval_batches=1")
    return succeeded(
        run, lambda: None if "no model: section" in run.err and "defaults are used" in run.err else "no note"
    )


@case("bad configs")
def case_init_from_other_task(tmp):
    return _bad_override(tmp, "train.init_from=qm9_edm", "train.init_from", "task")


@case("truncated checkpoints")
def case_init_from_truncated_file(tmp):
    bad = tmp / "cut.pt"
    data = fx_shipped_bytes("qm9_edm")
    bad.write_bytes(data[: len(data) // 3])
    return _bad_override(tmp, f"train.init_from={bad}", "cut.pt", "truncated")


def fx_shipped_bytes(name: str) -> bytes:
    from moldiff.pretrained import pretrained_path

    return pretrained_path(name).read_bytes()


# ------------------------------------------------------------------------------------------------
# Bad training data
# ------------------------------------------------------------------------------------------------


def _bad_sdf(tmp: Path) -> Path:
    records = fx.sdf_records()
    bad = fx.replace_atom(records[1], 0, fx.atom_line("nan", "0", "0"))
    path = tmp / "train.sdf"
    path.write_text(records[0] + bad + records[2] + records[0])
    return path


@case("malformed SDF")
def case_train_on_bad_record(tmp):
    source = _bad_sdf(tmp)
    return named(_train(fx.molecule_config(tmp, source), tmp / "run"), source, "record 2")


@case("malformed SDF", CORRECT)
def case_train_skips_and_reports_bad_records(tmp):
    source = _bad_sdf(tmp)
    out = tmp / "run"
    run = _train(fx.molecule_config(tmp, source, on_error="skip"), out)

    def check():
        if "skipped 1 bad record" not in run.err:
            return "the skipped record is not printed"
        events = [r for r in _log(out) if r.get("event") == "data"]
        if not events or events[0]["skipped"] != {"nonfinite_coordinates": 1}:
            return f"the skipped record is not logged: {events}"

    return succeeded(run, check)


@case("binary SDF")
def case_train_on_binary_sdf(tmp):
    source = tmp / "train.sdf"
    source.write_bytes(b"\x00\x01" * 500)
    return named(_train(fx.molecule_config(tmp, source), tmp / "run"), source, "binary")


@case("binary SDF", CORRECT)
def case_train_skips_a_binary_file(tmp):
    folder = tmp / "data"
    folder.mkdir()
    (folder / "a.sdf").write_text(fx.good_sdf_text())
    (folder / "b.sdf.gz").write_bytes(b"\x1f\x8b\x08broken")
    run = _train(fx.molecule_config(tmp, folder, on_error="skip"), tmp / "run")
    return succeeded(run, lambda: None if "unreadable" in run.err else "the unreadable file is not reported")


@case("empty")
def case_train_nothing_usable(tmp):
    source = tmp / "train.sdf"
    source.write_bytes(b"\x00" * 50)
    return named(_train(fx.molecule_config(tmp, source, on_error="skip"), tmp / "run"), "no usable molecules")


@case("missing files")
def case_train_missing_data(tmp):
    return named(_train(fx.molecule_config(tmp, tmp / "nowhere.sdf"), tmp / "run"), "nowhere.sdf")


# ------------------------------------------------------------------------------------------------
# Truncated, foreign and malicious checkpoints
# ------------------------------------------------------------------------------------------------


class _Payload:
    """Pickles into a call that creates a marker file: it must never run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _malicious(tmp: Path, name: str = "evil.pt") -> tuple[Path, Path]:
    marker = tmp / "PAYLOAD_RAN"
    path = tmp / name
    torch.save({"format": "moldiff-checkpoint", "version": 1, "task": "gaussian_mixture", "x": _Payload(marker)}, path)
    return path, marker


def _never_ran(outcome: Outcome, marker: Path) -> Outcome:
    return Outcome(SILENT, "THE PICKLE PAYLOAD RAN") if marker.exists() else outcome


@case("malicious checkpoints")
def case_pickle_via_sample_model(tmp):
    evil, marker = _malicious(tmp)
    return _never_ran(named(cli("sample", "--model", evil, "--out", tmp / "s.sdf"), evil, "refused unread"), marker)


@case("malicious checkpoints")
def case_pickle_via_resume_from(tmp):
    evil, marker = _malicious(tmp)
    run = _train(fx.toy_config(tmp), tmp / "run", "--resume-from", evil)
    return _never_ran(named(run, evil, "refused unread"), marker)


@case("malicious checkpoints")
def case_pickle_via_resume_in_run_folder(tmp):
    out = tmp / "run"
    (out / "checkpoints").mkdir(parents=True)
    evil, marker = _malicious(out / "checkpoints", "step_00000002.ckpt")
    run = _train(fx.toy_config(tmp), out, "--resume")
    return _never_ran(named(run, "step_00000002.ckpt", "refused unread"), marker)


@case("malicious checkpoints")
def case_pickle_via_init_from(tmp):
    evil, marker = _malicious(tmp)
    return _never_ran(_bad_override(tmp, f"train.init_from={evil}", evil, "refused unread"), marker)


@case("malicious checkpoints")
def case_pickle_via_python_api(tmp):
    from moldiff.hub import load_model, load_pretrained
    from moldiff.train.checkpoint import export_ema, load_checkpoint, load_trained_model

    evil, marker = _malicious(tmp)
    for fn, args in (
        (load_checkpoint, (evil,)),
        (load_pretrained, (evil,)),
        (load_model, (evil,)),
        (load_trained_model, (evil,)),
        (export_ema, (evil, tmp / "out.pt")),
    ):
        result = _never_ran(named(call(fn, *args), evil), marker)
        if result.kind != "named error":
            return Outcome(result.kind, f"{fn.__name__}: {result.detail}")
    return result


@case("truncated checkpoints")
def case_sample_truncated_model(tmp):
    bad = tmp / "cut.pt"
    data = fx_shipped_bytes("qm9_edm")
    bad.write_bytes(data[: len(data) // 2])
    return named(cli("sample", "--model", bad, "--out", tmp / "s.sdf"), bad, "truncated")


@case("truncated checkpoints")
def case_sample_empty_model_file(tmp):
    bad = tmp / "empty.pt"
    bad.write_bytes(b"")
    return named(cli("sample", "--model", bad, "--out", tmp / "s.sdf"), bad)


@case("foreign checkpoints")
def case_sample_plain_state_dict(tmp):
    path = tmp / "weights.pt"
    torch.save({"layer.weight": torch.zeros(2, 2)}, path)
    return named(cli("sample", "--model", path, "--out", tmp / "s.sdf"), path, "not a moldiff checkpoint")


@case("foreign checkpoints")
def case_sample_text_file_as_model(tmp):
    path = tmp / "notes.pt"
    path.write_text("these are not weights\n")
    return named(cli("sample", "--model", path, "--out", tmp / "s.sdf"), path)


@case("foreign checkpoints")
def case_sample_future_version(tmp):
    state = torch.load(fx_path("qm9_edm"), weights_only=True)
    state["version"] = 99
    path = tmp / "future.pt"
    torch.save(state, path)
    return named(cli("sample", "--model", path, "--out", tmp / "s.sdf"), path, "version 99")


@case("foreign checkpoints")
def case_sample_checkpoint_without_config(tmp):
    state = torch.load(fx_path("qm9_edm"), weights_only=True)
    del state["config"]
    path = tmp / "noconfig.pt"
    torch.save(state, path)
    return named(cli("sample", "--model", path, "--out", tmp / "s.sdf"), path, "incomplete")


@case("foreign checkpoints")
def case_sample_weights_that_do_not_fit(tmp):
    state = torch.load(fx_path("qm9_edm"), weights_only=True)
    state["config"]["model"]["hidden"] = 32
    path = tmp / "misfit.pt"
    torch.save(state, path)
    return named(cli("sample", "--model", path, "--out", tmp / "s.sdf"), path, "do not fit")


@case("foreign checkpoints")
def case_sample_unknown_task(tmp):
    state = torch.load(fx_path("qm9_edm"), weights_only=True)
    state["task"] = "teleportation"
    path = tmp / "alien.pt"
    torch.save(state, path)
    return named(cli("sample", "--model", path, "--out", tmp / "s.sdf"), "teleportation")


@case("foreign checkpoints")
def case_resume_from_exported_weights(tmp):
    run = _train(fx.toy_config(tmp), tmp / "run", "--resume-from", fx_path("qm9_edm"))
    return named(run, "qm9_edm.pt", "exported weights", "train.init_from")


def fx_path(name: str) -> Path:
    from moldiff.pretrained import pretrained_path

    return pretrained_path(name)


# ------------------------------------------------------------------------------------------------
# Resuming over unreadable or partial files
# ------------------------------------------------------------------------------------------------


def _trained_run(tmp: Path, *extra) -> tuple[Path, Path]:
    config, out = fx.toy_config(tmp), tmp / "run"
    run = _train(config, out, *extra)
    if run.rc != 0:
        raise RuntimeError(f"the fixture run failed: {run.err}")
    return config, out


@case("truncated checkpoints")
def case_resume_when_every_checkpoint_is_unreadable(tmp):
    config, out = _trained_run(tmp, "train.eval_every=2")
    for path in (out / "checkpoints").glob("step_*.ckpt"):
        path.write_bytes(path.read_bytes()[:100])
    guard = Guard.over(out)
    run = _train(config, out, "--resume", "train.steps=6")
    return guard.judge(named(run, "step_00000002.ckpt", "step_00000004.ckpt", "nothing was changed"))


@case("truncated checkpoints", CORRECT)
def case_resume_skips_one_unreadable_checkpoint(tmp):
    config, out = _trained_run(tmp)
    newest = out / "checkpoints" / "step_00000004.ckpt"
    newest.write_bytes(newest.read_bytes()[:100])
    run = _train(config, out, "--resume", "train.steps=6")

    def check():
        if "skipping unreadable checkpoint" not in run.err:
            return "the unreadable checkpoint is not reported"
        if [r["step"] for r in _log(out) if r.get("kind") == "train"] != [1, 2, 3, 4, 5, 6]:
            return "the log does not continue from step 2"

    return succeeded(run, check)


@case("truncated checkpoints", CORRECT)
def case_resume_with_only_a_best_checkpoint(tmp):
    config, out = _trained_run(tmp, "train.eval_every=2")
    for path in (out / "checkpoints").glob("step_*.ckpt"):
        path.unlink()
    step = torch.load(out / "checkpoints" / "best.ckpt", weights_only=True)["step"]
    run = _train(config, out, "--resume", "train.steps=6")
    return succeeded(
        run, lambda: None if "resuming from best.ckpt" in run.err and step in (2, 4) else "not resumed from best.ckpt"
    )


@case("truncated checkpoints")
def case_resume_with_only_an_unreadable_best_checkpoint(tmp):
    config, out = _trained_run(tmp)
    for path in (out / "checkpoints").glob("step_*.ckpt"):
        path.unlink()
    best = out / "checkpoints" / "best.ckpt"
    best.write_bytes(best.read_bytes()[:200])
    guard = Guard.over(out)
    return guard.judge(named(_train(config, out, "--resume"), "best.ckpt", "nothing was changed"))


@case("truncated checkpoints")
def case_fresh_start_never_replaces_a_best_checkpoint(tmp):
    config, out = _trained_run(tmp)
    for path in (out / "checkpoints").glob("step_*.ckpt"):
        path.unlink()
    guard = Guard.over(out)
    return guard.judge(named(_train(config, out), "best.ckpt", "--resume-from"))


@case("truncated checkpoints", CORRECT)
def case_fresh_start_keeps_an_earlier_log(tmp):
    config, out = fx.toy_config(tmp), tmp / "run"
    out.mkdir()
    (out / "log.jsonl").write_text('{"kind": "train", "step": 1, "loss": 0.5}\n')
    before = (out / "log.jsonl").read_text()
    run = _train(config, out, "--resume")

    def check():
        kept = out / "log.jsonl.1"
        if not kept.is_file() or kept.read_text() != before:
            return "the earlier log is lost"
        if "kept as log.jsonl.1" not in run.err:
            return "the kept log is not reported"

    return succeeded(run, check)


@case("kill -9", CORRECT)
def case_crash_between_checkpoint_and_best_keeps_a_best(tmp):
    """The run dies just after a checkpoint file is renamed into place (an injected crash at every
    rename in turn): after --resume there is always a readable best.ckpt."""
    import moldiff.files

    config = fx.toy_config(tmp, fx.TOY_CONFIG.replace("steps: 4", "steps: 2"))
    for crash_at in range(1, 5):
        out = tmp / f"run{crash_at}"
        renames = {"n": 0}

        class Crash(BaseException):
            pass

        def replace(src, dst, _real=os.replace, _renames=renames, _crash_at=crash_at, _crash=Crash):
            _real(src, dst)
            _renames["n"] += 1
            if _renames["n"] == _crash_at:
                raise _crash

        with mock.patch.object(moldiff.files, "os", Proxy(os, replace=replace)):
            try:
                cli_run = _train(config, out, "train.eval_every=1", "train.ckpt_every=1")
            except Crash:
                cli_run = None
        if cli_run is not None and cli_run.exception is not None and not isinstance(cli_run.exception, Crash):
            return Outcome("traceback", str(cli_run.exception))
        run = _train(config, out, "--resume", "train.eval_every=1", "train.ckpt_every=1")
        if run.rc != 0:
            return named(run)
        best = out / "checkpoints" / "best.ckpt"
        if not best.is_file():
            return Outcome(SILENT, f"crash at rename {crash_at}: no best.ckpt after the resume")
        torch.load(best, weights_only=True)
    return Outcome(CORRECT, "best.ckpt present after a crash at each of 4 renames")


@case("kill -9", CORRECT)
def case_pruning_never_keeps_an_unreadable_checkpoint(tmp):
    from moldiff.train.checkpoint import CheckpointManager, load_checkpoint

    manager = CheckpointManager(tmp, keep_last=2)
    state = {"format": "moldiff-checkpoint", "version": 1, "model": {"w": torch.zeros(3)}}
    manager.save({**state, "step": 1}, 1)
    manager.save({**state, "step": 2}, 2)
    manager.path_for(3).write_bytes(b"PK\x03\x04 torn")  # a damaged file among the newest
    manager.save({**state, "step": 4}, 4)
    kept = [s for s, _ in manager.checkpoints()]
    if kept != [2, 4] or not all(load_checkpoint(p) for _, p in manager.checkpoints()):
        return Outcome(SILENT, f"kept {kept}: pruning counted the unreadable step 3 and deleted step 2")
    return Outcome(CORRECT, f"kept {kept}; {files_in(tmp, '*.unreadable')} set aside")


# ------------------------------------------------------------------------------------------------
# Logs: a full disk and torn lines
# ------------------------------------------------------------------------------------------------


@case("full disk", CORRECT)
def case_full_disk_while_logging_then_resume(tmp):
    import moldiff.train.logs as logs

    config, out = fx.toy_config(tmp), tmp / "run"
    calls = {"n": 0}

    def write(fd, data, _real=os.write):
        calls["n"] += 1
        if calls["n"] == 4:  # the disk fills in the middle of the fourth line
            _real(fd, data[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")
        return _real(fd, data)

    with mock.patch.object(logs, "os", Proxy(os, write=write)):
        failed = _train(config, out)
    first = named(failed, "No space left", "log.jsonl")
    if first.kind != "named error":
        return first
    for line in (out / "log.jsonl").read_text().splitlines():
        json.loads(line)  # no partial line was left behind
    run = _train(config, out, "--resume")
    return succeeded(
        run,
        lambda: (
            None if [r["step"] for r in _log(out) if r.get("kind") == "train"] == [1, 2, 3, 4] else "log steps wrong"
        ),
    )


@case("kill -9", CORRECT)
def case_torn_last_log_line_is_recovered(tmp):
    config, out = _trained_run(tmp, "train.steps=2")
    with open(out / "log.jsonl", "a") as f:
        f.write('{"kind": "train", "step": 3, "lo')  # a writer killed mid-line
    run = _train(config, out, "--resume")

    def check():
        if "torn" not in run.err:
            return "the torn line is not reported"
        if not (out / "log.jsonl.torn").read_text().startswith('{"kind": "train", "step": 3'):
            return "the torn text is not kept"

    return succeeded(run, check)


_KILLER = """
import os, sys
import torch
import moldiff.train.logs as logs
from moldiff.cli import main

mode = sys.argv[1]
real_save, real_write = torch.save, os.write

def dying_save(obj, f, *args, **kwargs):
    if isinstance(obj, dict) and obj.get("step") == 4:  # half of the second checkpoint, then kill -9
        f.write(b"PK\\x03\\x04" + b"x" * 500)
        f.flush()
        os.kill(os.getpid(), 9)
    return real_save(obj, f, *args, **kwargs)

class DyingOs:
    def __getattr__(self, name):
        return getattr(os, name)
    @staticmethod
    def write(fd, data):
        if b'"step": 3' in data and b'"kind": "train"' in data:  # half of a log line, then kill -9
            real_write(fd, data[: len(data) // 2])
            os.kill(os.getpid(), 9)
        return real_write(fd, data)

if mode == "checkpoint":
    torch.save = dying_save
else:
    logs.os = DyingOs()
sys.exit(main(sys.argv[2:]))
"""


def _killed_then_resumed(tmp: Path, mode: str) -> Outcome:
    config = fx.toy_config(tmp)
    reference = tmp / "reference"
    if _train(config, reference).rc != 0:
        return Outcome(SILENT, "the reference run failed")
    script = tmp / "killer.py"
    script.write_text(textwrap.dedent(_KILLER))
    out = tmp / "killed"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, str(script), mode, "train", str(config), "--out", str(out), "--no-progress"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    if proc.returncode != -9:
        return Outcome(SILENT, f"the child was not killed (status {proc.returncode}): {proc.stderr[-500:]}")
    run = _train(config, out, "--resume")

    def check():
        a = torch.load(out / "checkpoints" / "step_00000004.ckpt", weights_only=True)
        b = torch.load(reference / "checkpoints" / "step_00000004.ckpt", weights_only=True)
        for key in ("model", "ema"):
            sa, sb = (a[key] if key == "model" else a[key]["module"]), (b[key] if key == "model" else b[key]["module"])
            if not all(torch.equal(sa[k], sb[k]) for k in sb):
                return f"{key} weights differ from the uninterrupted run"
        losses = [[r["loss"] for r in _log(d) if r.get("kind") == "train"] for d in (out, reference)]
        if losses[0] != losses[1]:
            return f"losses differ: {losses}"
        if [n for n in files_in(out / "checkpoints") if n.endswith(".tmp")]:
            return "a half-written temporary file was left"

    return succeeded(run, check)


@case("kill -9", CORRECT)
def case_kill_9_during_checkpoint_write_resumes_exactly(tmp):
    return _killed_then_resumed(tmp, "checkpoint")


@case("kill -9", CORRECT)
def case_kill_9_during_log_write_resumes_exactly(tmp):
    return _killed_then_resumed(tmp, "log")


# ------------------------------------------------------------------------------------------------
# Concurrent runs
# ------------------------------------------------------------------------------------------------


@case("concurrent runs")
def case_second_live_trainer_refused(tmp):
    from moldiff.train.checkpoint import run_lock

    config, out = fx.toy_config(tmp), tmp / "run"
    with run_lock(out):
        run = _train(config, out)
    return named(run, "in use by another training process", f"pid {os.getpid()}")


@case("concurrent runs")
def case_lock_of_another_host_is_never_taken_over(tmp):
    config, out = fx.toy_config(tmp), tmp / "run"
    out.mkdir()
    (out / "run.lock").write_text("other-node.cluster 4242 0f0f0f0f")
    guard = Guard.over(out)
    run = _train(config, out)
    result = named(run, "other-node.cluster", "delete")
    return (
        guard.judge(result)
        if not (out / "checkpoints").exists()
        else Outcome(SILENT, "it trained beside the other host")
    )


@case("concurrent runs")
def case_lock_of_another_boot_is_never_taken_over(tmp):
    config, out = fx.toy_config(tmp), tmp / "run"
    out.mkdir()
    (out / "run.lock").write_text(f"{socket.gethostname()} 1 00000000-not-this-boot")
    return named(_train(config, out), "another boot")


@case("concurrent runs", CORRECT)
def case_lock_of_a_dead_local_process_is_taken_over(tmp):
    config, out = fx.toy_config(tmp), tmp / "run"
    out.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (out / "run.lock").write_text(f"{socket.gethostname()} {dead.stdout.strip()}")
    run = _train(config, out)
    return succeeded(run, lambda: None if not (out / "run.lock").exists() else "the lock was not released")
