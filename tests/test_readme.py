"""The README's examples run as written.

Every ```python block of ``README.md`` runs, in order and in one namespace, from a fresh
temporary directory, on the CPU (the blocks use the built-in sample data or files an earlier
block wrote). The command lines of its ```bash blocks that start with ``cupatch`` or
``python -m cupatch`` (also after ``pip install ... &&``), and the ``cat > FILE <<'EOF'``
files they need, run in the same directory with a timeout; ``pip``, ``make``, ``scripts/``
and ``python -m pytest`` lines are not run. Comment lines right below a command are its
expected output (``...`` stands for any text): each must appear, in order; so must the
comment after a ``print(...)`` line of a Python block in what the block prints. Sybil parses
the README and evaluates the Python blocks.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from sybil import Sybil
from sybil.evaluators.python import PythonEvaluator
from sybil.parsers.markdown import CodeBlockParser

README = Path(__file__).resolve().parents[1] / "README.md"

#: command lines of ```bash blocks that are run (a segment after `&&` counts too)
RUN_PREFIXES = ("cupatch ", "python -m cupatch ", "cat > ")
COMMAND_TIMEOUT_S = 60


@dataclass(frozen=True)
class Command:
    line: int  # line in README.md
    text: str  # the command as bash runs it (continuations and heredoc included)
    expected: tuple[str, ...]  # comment lines right below it


def _runs(segment: str) -> bool:
    segment = segment.strip()
    return segment.startswith(RUN_PREFIXES) or segment in ("cupatch", "python -m cupatch")


def parse_commands(source: str, first_line: int) -> list[Command]:
    """The commands of one ```bash block that the test runs, with their expected output."""
    lines = source.splitlines()
    commands = []
    i = 0
    while i < len(lines):
        start = i
        text = lines[i]
        while text.endswith("\\") and i + 1 < len(lines):  # continuation lines
            i += 1
            text = text[:-1] + " " + lines[i].strip()
        i += 1
        heredoc = re.search(r"<<-?\s*'?(\w+)'?", text)
        if heredoc:
            body = []
            while i < len(lines) and lines[i].strip() != heredoc.group(1):
                body.append(lines[i])
                i += 1
            i += 1  # the terminator
            text = "\n".join([text, *body, heredoc.group(1)])
        expected = []
        while i < len(lines) and lines[i].startswith("#"):
            expected.append(lines[i][1:].strip())
            i += 1
        stripped = text.strip()
        if not stripped or stripped.startswith("#"):
            continue
        segments = stripped.split("&&")
        if _runs(segments[0]):
            run = stripped
        else:  # e.g. `pip install . && cupatch predict`: only the cupatch part
            kept = [s.strip() for s in segments[1:] if _runs(s)]
            if not kept:
                continue
            run = " && ".join(kept)
        commands.append(Command(first_line + start, run, tuple(e for e in expected if e)))
    return commands


def _pattern(expected: str) -> re.Pattern:
    return re.compile(".*".join(re.escape(part) for part in expected.split("...")))


def check_output(command: Command, output: str) -> None:
    """Each expected line must match a line of the output, in order (`...`: any text)."""
    remaining = [line.strip() for line in output.splitlines()]
    for expected in command.expected:
        pattern = _pattern(expected)
        for k, line in enumerate(remaining):
            if pattern.fullmatch(line):
                remaining = remaining[k + 1 :]
                break
        else:
            raise AssertionError(
                f"README.md line {command.line}: `{command.text}` did not print the documented line\n"
                f"    {expected}\nafter the lines matched before it; its output was:\n{output}"
            )


def _bash_prelude() -> str:
    bindir = Path(sys.executable).parent
    prelude = f'export PATH="{bindir}:$PATH"\n'
    if shutil.which("cupatch", path=str(bindir)) is None:  # not installed as a script
        prelude += f'cupatch() {{ "{sys.executable}" -m cupatch "$@"; }}\n'
    return prelude + f'python() {{ "{sys.executable}" "$@"; }}\n'


def run_bash_block(example) -> None:
    """Sybil evaluator of ```bash blocks: run the block's cupatch commands."""
    commands = parse_commands(str(example.parsed), example.line + 1)
    RUN_COMMANDS.extend(commands)
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", MPLBACKEND="Agg")  # the CPU, as the Python blocks
    for command in commands:
        try:
            done = subprocess.run(
                ["bash", "-o", "pipefail", "-c", _bash_prelude() + command.text],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT,  # one stream, in the order printed
                text=True, timeout=COMMAND_TIMEOUT_S, env=env,
            )
        except subprocess.TimeoutExpired as exc:
            raise AssertionError(
                f"README.md line {command.line}: `{command.text}` took over {COMMAND_TIMEOUT_S} s; "
                "make the example smaller"
            ) from exc
        output = done.stdout
        if done.returncode != 0:
            raise AssertionError(
                f"README.md line {command.line}: `{command.text}` exited with status {done.returncode}:\n{output}"
            )
        check_output(command, output)


_PRINT_WITH_COMMENT = re.compile(r"^\s*print\(.*\)\s*#\s*(\S.*)$")


def run_python_block(example) -> None:
    """Sybil evaluator of ```python blocks: run it; what `print(...)  # text` lines document
    must be printed, in order."""
    __tracebackhide__ = True
    source = str(example.parsed)
    expected = tuple(m.group(1).strip() for m in map(_PRINT_WITH_COMMENT.match, source.splitlines()) if m)
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        PythonEvaluator()(example)
    sys.stdout.write(stdout.getvalue())  # still shown by pytest on failure
    check_output(Command(example.line, "the python block", expected), stdout.getvalue())


#: every command the bash blocks ran (filled as they run)
RUN_COMMANDS: list[Command] = []

SYBIL = Sybil(
    parsers=[CodeBlockParser("python", evaluator=run_python_block), CodeBlockParser("bash", evaluator=run_bash_block)],
    path=str(README.parent),
    filenames=[README.name],
)
DOCUMENT = SYBIL.parse(README)
EXAMPLES = list(DOCUMENT)
#: line numbers of the examples evaluated so far, and of those that failed
_DONE: dict[int, bool] = {}


@pytest.fixture(scope="module")
def readme_dir(tmp_path_factory):
    """One fresh directory for the whole README, as a reader following it would have."""
    return tmp_path_factory.mktemp("readme")


@pytest.fixture
def on_the_cpu(readme_dir, monkeypatch):
    from cupatch import _backend

    monkeypatch.chdir(readme_dir)
    # The Python blocks run here, on the CPU, also where a GPU is usable (as the commands do,
    # with CUDA_VISIBLE_DEVICES="").
    monkeypatch.setattr(_backend, "_gpu_status", lambda: (False, "the README examples run on the CPU"))
    monkeypatch.setenv("MPLBACKEND", "Agg")


def _evaluate(example) -> None:
    if _is_python(example) and "import torch" in str(example.parsed) and importlib.util.find_spec("torch") is None:
        _DONE[example.line] = True  # torch is optional; the blocks after this one do not need it
        pytest.skip("torch is not installed (pip install torch)")
    try:
        example.evaluate()
    except BaseException:
        _DONE[example.line] = False
        raise
    _DONE[example.line] = True


@pytest.mark.parametrize("example", EXAMPLES, ids=[f"README.md:{e.line}" for e in EXAMPLES])
def test_readme_example(example, on_the_cpu):
    # The blocks build on each other: run the earlier ones first when they were deselected.
    # A failed Python block fails the later ones (they would use its names); a failed
    # command is reported by its own test only.
    for earlier in EXAMPLES:
        if earlier is example:
            break
        if earlier.line not in _DONE:
            try:
                _evaluate(earlier)
            except (Exception, pytest.skip.Exception):
                pass
        if not _DONE[earlier.line] and _is_python(earlier):
            pytest.fail(f"an earlier README example (line {earlier.line}) failed; this one builds on it")
    _evaluate(example)


def _is_python(example) -> bool:
    return example.region.evaluator is run_python_block


def test_readme_commands_ran():
    """The bash blocks did run commands (a parser that finds none would pass silently)."""
    for example in EXAMPLES:
        if example.line not in _DONE:
            pytest.skip("the README examples were not all run in this test run")
    ran = [c.text.split()[:2] for c in RUN_COMMANDS]
    assert ["cupatch", "predict"] in ran and ["cupatch", "info"] in ran, RUN_COMMANDS


@pytest.mark.parametrize(
    ("block", "expected"),
    [
        ("pip install . && cupatch predict\n", ["cupatch predict"]),
        ('pip install ".[test]" && python -m pytest\n', []),
        ("CUPATCH_CUDA=OFF pip install .   # CPU only\nscripts/emulated_check.sh\n", []),
        ("cupatch predict vol.zarr \\\n    --tile 32   # a comment\n", ["cupatch predict vol.zarr  --tile 32   # a comment"]),
        ("cupatch info; echo \"exit $?\"\n# {\n#   ...\n", ['cupatch info; echo "exit $?"']),
        ("cat > m.py <<'EOF'\nx = 1\nEOF\ncupatch predict --model m.py:x\n",
         ["cat > m.py <<'EOF'\nx = 1\nEOF", "cupatch predict --model m.py:x"]),
    ],
)
def test_parse_commands(block, expected):
    assert [c.text for c in parse_commands(block, 1)] == expected


def test_check_output_needs_the_documented_lines_in_order():
    command = Command(1, "cupatch x", ("error: argument --tile: ..., got -5", "exit status 2"))
    check_output(command, "cupatch x: error: argument --tile: must be positive, got -5\nexit status 2\n".replace("cupatch x: ", ""))
    with pytest.raises(AssertionError, match="exit status 2"):
        check_output(command, "error: argument --tile: bad, got -5\nexit status 1\n")
    with pytest.raises(AssertionError, match="got -5"):
        check_output(command, "exit status 2\nerror: argument --tile: bad, got -5\n")
