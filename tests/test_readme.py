"""README.md's code blocks: every one is labelled, and every runnable one runs.

The rules, for whoever edits the README:

* Every fenced code block carries a label, an HTML comment on the line just before its opening fence:
  ``<!-- runnable -->`` (it runs as written from the repository root, with the shared data folder at
  ``../shared/data``) or ``<!-- sketch: why -->`` (not run; ``why`` says what it needs: a GPU, hours of
  training, your own files). Blocks whose info string is ``text`` are console output or file listings:
  they are never run and need no label.
* Runnable blocks are ``bash`` or ``python``. They run in README order in one scratch working folder
  (a later block may use what an earlier one wrote, as in a reader's shell): bash blocks with
  ``bash -e -o pipefail``, python blocks with this interpreter in a subprocess. The folder holds
  symlinks ``configs``, ``examples`` and ``benchmarks`` to the repository's, and its ``../shared/data``
  is the shared data folder (``$MOLDIFF_DATA_DIR``, else ``../shared/data`` beside the checkout), which
  the blocks also get as ``MOLDIFF_DATA_DIR``; without that folder the test skips and names it. Blocks
  run with ``OMP_NUM_THREADS=1`` and this interpreter's ``bin`` folder first on ``PATH``.
* Sizes are shrunk before a block runs (the README says so once): ``--num N`` and ``-n N`` become 3,
  ``.sample(N,`` and ``range(N)`` become 3, ``train.steps=N`` and ``--steps N`` become 2, and a
  ``moldiff train`` command without ``train.steps=`` gets ``train.steps=2``.
* Installing is not repeated: leading ``pip install ... &&`` parts of a command are dropped (the test
  runs inside the installed package), and a command that is then just ``python -m pytest -q`` is not
  run here (it would run this test again): ``.ci/run`` runs it, and
  :func:`test_ci_runs_the_readme_test_command_verbatim` checks that ``.ci/run`` holds that README line.

The runnable blocks take about two to three minutes on one CPU core (one thread), so the test is in
the default run; it prints each block's time.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
CI_RUN = REPO / ".ci" / "run"

INSTALL_TORCH = "pip install torch==2.13.0 --extra-index-url https://download.pytorch.org/whl/cpu"
MAIN_COMMAND = (
    f"{INSTALL_TORCH} && pip install -e . && moldiff sample --model qm9 --num 100 --out samples.sdf "
    "&& moldiff evaluate samples.sdf --bonds file"
)
TEST_COMMAND = f'{INSTALL_TORCH} && pip install -e ".[test]" && python -m pytest -q'

_FENCE = re.compile(r"^```(\S*)\s*$")
_LABEL = re.compile(r"^<!-- (runnable|sketch: \S.*?) -->$")
_TRAILING_COMMENT = re.compile(r"\s+#.*$")


@dataclass
class Block:
    line: int  # 1-based line of the opening fence
    info: str  # the fence's info string: bash, python, text, ...
    label: str | None  # "runnable", "sketch: ..." or None
    body: str

    def __str__(self) -> str:
        return f"README.md:{self.line} ({self.info or 'no info string'})"


def readme_blocks(text: str | None = None) -> list[Block]:
    """The fenced code blocks of the README, each with the label on the line before it."""
    lines = (README.read_text() if text is None else text).splitlines()
    blocks, i = [], 0
    while i < len(lines):
        fence = _FENCE.match(lines[i])
        if not fence:
            i += 1
            continue
        end = next((j for j in range(i + 1, len(lines)) if lines[j].rstrip() == "```"), None)
        assert end is not None, f"README.md:{i + 1}: code block never closed"
        label = _LABEL.match(lines[i - 1].strip()) if i > 0 else None
        blocks.append(Block(i + 1, fence.group(1), label.group(1) if label else None, "\n".join(lines[i + 1 : end])))
        i = end + 1
    return blocks


def command_part(line: str) -> str:
    """A shell line without its trailing ``# comment``."""
    return _TRAILING_COMMENT.sub("", line).strip()


def shrink_shell(body: str) -> str:
    """A bash block as the test runs it (see the module docstring)."""
    out = []
    for line in re.sub(r"\s*\\\n\s*", " ", body).splitlines():
        line = re.sub(r"^(\s*)(?:pip install [^&#]*&&\s*)+", r"\1", line)
        if command_part(line) == "python -m pytest -q":
            continue
        line = re.sub(r"--num \d+", "--num 3", line)
        line = re.sub(r"(?<=\s)-n \d+", "-n 3", line)
        line = re.sub(r"train\.steps=\d+", "train.steps=2", line)
        line = re.sub(r"--steps \d+", "--steps 2", line)
        if "train.steps=" not in command_part(line):
            line = re.sub(r"(\bmoldiff train \S+)", r"\1 train.steps=2", line)
        out.append(line)
    return "\n".join(out)


def shrink_python(body: str) -> str:
    """A python block as the test runs it (see the module docstring)."""
    body = re.sub(r"\.sample\(\s*\d+\s*,", ".sample(3,", body)  # also split over lines, as ruff formats blocks
    return re.sub(r"\brange\(\d+\)", "range(3)", body)


def _data_dir() -> Path:
    return Path(os.environ.get("MOLDIFF_DATA_DIR") or REPO.parent / "shared" / "data").resolve()


# ------------------------------------------------------------------------------------------------
# cheap checks
# ------------------------------------------------------------------------------------------------


def test_every_code_block_is_labelled_runnable_or_sketch():
    blocks = readme_blocks()
    assert blocks, "README.md has no code blocks"
    unlabelled = [str(b) for b in blocks if b.info != "text" and b.label is None]
    assert unlabelled == [], (
        "blocks without <!-- runnable --> or <!-- sketch: why --> on the line before "
        f"(console output takes the info string `text`): {unlabelled}"
    )
    odd = [str(b) for b in blocks if b.label == "runnable" and b.info not in ("bash", "python")]
    assert odd == [], f"runnable blocks must be bash or python: {odd}"
    assert [b for b in blocks if b.label == "runnable"], "no runnable block"


def test_the_readme_opens_with_the_main_command_and_the_test_command():
    first = readme_blocks()[0]
    assert first.line <= 5, f"the first code block starts at README.md:{first.line}, not at the top"
    assert first.label == "runnable" and first.info == "bash"
    commands = [command_part(line) for line in first.body.splitlines()]
    assert commands == [MAIN_COMMAND, TEST_COMMAND]


def test_ci_runs_the_readme_test_command_verbatim():
    second = command_part(readme_blocks()[0].body.splitlines()[1])
    lines = [line.strip() for line in CI_RUN.read_text().splitlines()]
    assert second in lines, f".ci/run does not run the README's test command as one line: {second}"
    lint = next((i for i, line in enumerate(lines) if line.startswith("ruff check .")), None)
    assert lint is not None and "ruff format --check ." in lines[lint], ".ci/run does not run ruff check and format"
    assert lint < lines.index(second), ".ci/run should lint before it tests"


def test_the_shrinking_rules():
    shell = (
        "pip install torch==2.13.0 --extra-index-url X && pip install -e . && moldiff sample --num 100 "
        '--steps 50   # c\npip install -e ".[test]" && python -m pytest -q   # tests\n'
        "moldiff train configs/a.yaml --out r   # long\nmoldiff train configs/a.yaml \\\n    train.steps=500 --out r\n"
        "torchrun -m moldiff.cli sample -n 10000"
    )
    assert shrink_shell(shell).splitlines() == [
        "moldiff sample --num 3 --steps 2   # c",
        "moldiff train configs/a.yaml train.steps=2 --out r   # long",
        "moldiff train configs/a.yaml train.steps=2 --out r",
        "torchrun -m moldiff.cli sample -n 3",
    ]
    assert (
        shrink_python("g.sample(100, labels=[k % 10 for k in range(100)])")
        == "g.sample(3, labels=[k % 10 for k in range(3)])"
    )
    assert (
        shrink_python("g.sample(\n    100, labels=[k % 10 for k in range(100)]\n)")
        == "g.sample(3, labels=[k % 10 for k in range(3)]\n)"
    )


# ------------------------------------------------------------------------------------------------
# the runnable blocks
# ------------------------------------------------------------------------------------------------


def test_the_runnable_blocks_run(tmp_path):
    data = _data_dir()
    if not data.is_dir():
        pytest.skip(
            f"shared data folder {data} not found (set MOLDIFF_DATA_DIR to the folder holding qm9/, "
            "molecules/, proteins/, images/): the README's runnable blocks read it"
        )
    work = tmp_path / "work"
    work.mkdir()
    for name in ("configs", "examples", "benchmarks"):
        (work / name).symlink_to(REPO / name, target_is_directory=True)
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "data").symlink_to(data, target_is_directory=True)
    env = {
        **os.environ,
        "MOLDIFF_DATA_DIR": str(data),
        "OMP_NUM_THREADS": "1",
        "PYTHONUNBUFFERED": "1",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }

    failures, times = [], []
    for block in [b for b in readme_blocks() if b.label == "runnable"]:
        if block.info == "bash":
            script = shrink_shell(block.body)
            argv = ["bash", "-e", "-o", "pipefail", "-x", "-c", script]
        else:
            script = shrink_python(block.body)
            argv = [sys.executable, "-c", script]
        tick = time.perf_counter()
        try:
            proc = subprocess.run(argv, cwd=work, env=env, capture_output=True, text=True, timeout=600)
            ok, output = proc.returncode == 0, proc.stdout + proc.stderr
        except subprocess.TimeoutExpired as err:
            ok, output = False, f"timed out after {err.timeout} s"
        times.append(f"{block}: {time.perf_counter() - tick:.1f} s")
        if not ok:
            failures.append(
                f"{block} failed; as run:\n{script}\n--- output (last 3000 characters) ---\n{output[-3000:]}"
            )
    print("\n".join(times))
    assert not failures, "\n\n".join(failures)
