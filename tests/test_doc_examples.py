"""Every code block in README.md and docs/**/*.md runs as written.

The rules, for whoever writes a page:

- Every fenced ```python block is run, each in a fresh subprocess (``configure()`` is global),
  with a timeout, in an empty temporary directory, with an environment cleaned of the variables
  obskit reads (``OTEL_*``, ``OBSKIT_*``, ``PROMETHEUS_*``, ``APPLICATIONINSIGHTS_*``), so each
  block runs on obskit's defaults and on what it says itself. A block must therefore be complete:
  its imports, and the values it uses (``rid = ...``). A block that needs a peer uses loopback.
- A block that defines ``test_*`` functions (at the top level) is a pytest file: it is run with
  ``python -m pytest`` in a subprocess (the ``obskit_capture`` fixture comes from obskit's
  pytest plugin) and must pass.
- Web applications are served in-process, never on a port: when a block leaves a module-level
  ``app`` that is a WSGI application (Flask, a WSGI function), the test sends it ``GET /``
  through werkzeug's test ``Client`` (what Flask's ``test_client()`` is); when it is an ASGI
  application (FastAPI, Starlette, ``obskit.asgi.middleware(...)``: an async callable), through
  Starlette's ``TestClient`` (without the lifespan protocol, which a bare ASGI app may ignore).
  The answer must not be a 5xx. A block that wants a particular request makes it itself.
- Markers, HTML comments on the lines just before the fence (invisible on the site):
  ``<!-- continues -->``: the block continues the previous python block of the same page; the
  two (or more) run as one program. ``<!-- not-run: reason -->``: the block cannot run here
  (cloud credentials, a package obskit does not depend on, a server's configuration file); the
  reason is mandatory and such blocks stay few (under 15%). ``<!-- docs-test: run -->`` and
  ``<!-- docs-test: requires=module -->`` (docs/index.md, read by test_docs_site.py too) mean
  "run" and "run when the module is installed".
- ``--8<-- "path"`` lines (pymdownx.snippets) are replaced by the file they include.
- Shell blocks (bash, console, sh, shell) are not run; every ``obskit <command>`` in them must be
  a command of ``obskit --help``, and its ``--options`` options of that command's help.
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import obskit

ROOT = Path(__file__).resolve().parent.parent
SRC = Path(obskit.__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
TIMEOUT = 60  # seconds per block; a block takes about one
NOT_RUN_SHARE = 0.15
SHELL = {"bash", "console", "sh", "shell"}
CLEANED = ("OTEL_", "OBSKIT_", "PROMETHEUS_", "APPLICATIONINSIGHTS_", "PYTEST_")

_FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<lang>[\w+-]*)[ \t]*$")
_COMMENT = re.compile(r"^\s*<!--\s*(?P<text>.*?)\s*-->\s*$")
_SNIPPET = re.compile(r'^--8<--\s+"(?P<path>[^"]+)"\s*$', re.M)


@dataclass
class Block:
    page: str  # relative to the repository root
    line: int  # of the opening fence, 1-based
    lang: str
    code: str
    markers: list[str] = field(default_factory=list)

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"

    @property
    def not_run(self) -> str | None:
        """The reason of a not-run marker ("" when it has none), or None."""
        for marker in self.markers:
            if re.match(r"not-run\b", marker):
                return marker.removeprefix("not-run").lstrip(" :").strip()
        return None

    @property
    def continues(self) -> bool:
        return "continues" in self.markers


def _blocks(path: Path, root: Path = ROOT) -> list[Block]:
    """The fenced blocks of a page, dedented (fences inside tabs and lists are indented)."""
    lines = path.read_text().splitlines()
    blocks: list[Block] = []
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if opening is None:  # whole blocks are skipped below, so any fence here opens one
            index += 1
            continue
        indent = opening["indent"]
        end = index + 1
        while end < len(lines) and lines[end].rstrip() != f"{indent}```":
            end += 1
        markers: list[str] = []
        above = index - 1
        while above >= 0 and (comment := _COMMENT.match(lines[above])):
            markers.insert(0, comment["text"])
            above -= 1
        body = textwrap.dedent("\n".join(lines[index + 1 : end])) + "\n"
        code = _SNIPPET.sub(lambda m: (ROOT / m["path"]).read_text(), body)
        blocks.append(Block(path.relative_to(root).as_posix(), index + 1, opening["lang"], code, markers))
        index = end + 1
    return blocks


@functools.cache
def _all_blocks() -> list[Block]:
    return [block for page in PAGES for block in _blocks(page)]


def _python_blocks() -> list[Block]:
    return [block for block in _all_blocks() if block.lang == "python"]


def _program(block: Block, blocks: list[Block] | None = None) -> str:
    """The block's code, after the blocks it continues (python blocks of `blocks`, all by default)."""
    if not block.continues:
        return block.code
    python = [b for b in blocks or _all_blocks() if b.lang == "python"]
    same_page = [b for b in python if b.page == block.page and b.line < block.line]
    assert same_page, f"{block.id}: <!-- continues --> on the first python block of the page"
    previous = same_page[-1]
    assert previous.not_run is None, f"{block.id} continues {previous.id}, which is not run"
    return _program(previous, python) + "\n" + block.code


def _runnable() -> list[Block]:
    return [block for block in _python_blocks() if block.not_run is None]


# Runs the block as __main__, then serves a module-level `app` one request, as the rules say.
_DRIVER = """\
import inspect
import runpy
import sys

namespace = runpy.run_path("snippet.py", run_name="__main__")
app = namespace.get("app")
if app is None or not callable(app):
    sys.exit(0)
if inspect.iscoroutinefunction(app) or inspect.iscoroutinefunction(getattr(app, "__call__", None)):
    from starlette.testclient import TestClient

    status = TestClient(app).get("/").status_code  # no lifespan: a bare ASGI app may not speak it
else:  # WSGI: Flask's test_client() is this client
    from werkzeug.test import Client

    status = Client(app).get("/").status_code
print(f"docs-test: GET / answered {status}", file=sys.stderr)
sys.exit(1 if status >= 500 else 0)
"""


def _environment() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(CLEANED)}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), env.get("PYTHONPATH")]))
    env.pop("PYTHONSTARTUP", None)
    return env


def _is_pytest_file(code: str) -> bool:
    return re.search(r"^(?:async\s+)?def\s+test_\w*\s*\(", code, flags=re.M) is not None


def _run(code: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    if _is_pytest_file(code):
        (tmp_path / "test_snippet.py").write_text(code)
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly"]
        command += ["-p", "no:xdist", "test_snippet.py"]
    else:
        (tmp_path / "snippet.py").write_text(code)
        (tmp_path / "driver.py").write_text(_DRIVER)
        command = [sys.executable, "driver.py"]
    return subprocess.run(
        command, cwd=tmp_path, env=_environment(), capture_output=True, text=True, timeout=TIMEOUT
    )


@pytest.mark.parametrize("block", _runnable(), ids=lambda block: block.id)
def test_python_block_runs(block: Block, tmp_path: Path) -> None:
    for marker in block.markers:
        if marker.startswith("docs-test: requires="):
            for module in marker.removeprefix("docs-test: requires=").split(","):
                pytest.importorskip(module.strip())
    result = _run(_program(block), tmp_path)
    assert result.returncode == 0, f"{block.id} failed:\n{result.stdout}\n{result.stderr}"


# -- the markers ----------------------------------------------------------------------------------

_KNOWN = re.compile(r"^(?:continues|not-run\b.*|docs-test: (?:run|requires=[\w.,]+)|fmt: (?:on|off))$")


def test_blocks_are_found() -> None:
    for page in PAGES:
        text = page.read_text()
        found = [block for block in _python_blocks() if block.page == page.relative_to(ROOT).as_posix()]
        assert len(found) == len(re.findall(r"^[ \t]*```python[ \t]*$", text, flags=re.M)), page
    assert any(block.id == "README.md:21" or block.page == "README.md" for block in _python_blocks())


def test_markers_before_code_blocks_are_known() -> None:
    unknown = [(b.id, m) for b in _all_blocks() for m in b.markers if not _KNOWN.match(m)]
    assert unknown == []
    misplaced = [b.id for b in _all_blocks() if b.lang != "python" and (b.continues or b.not_run is not None)]
    assert misplaced == []


def test_continuations_follow_a_block_that_runs() -> None:
    for block in _python_blocks():
        if block.continues:
            _program(block)  # asserts


def test_markers_are_read(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "```python\na = 1\n```\n\n<!-- continues -->\n```python\nb = a + 1\n```\n\n"
        '=== "Tab"\n\n    <!-- not-run: needs a cloud -->\n    ```python\n    cloud()\n    ```\n'
        "<!-- not-run -->\n```bash\nobskit demo\n```\n"
    )
    first, second, third, shell = _blocks(page, tmp_path)
    assert (first.id, first.markers, first.not_run, first.continues) == ("page.md:1", [], None, False)
    assert second.continues
    assert _program(second, [first, second, third]) == "a = 1\n\nb = a + 1\n"
    assert (third.id, third.code, third.not_run) == ("page.md:13", "cloud()\n", "needs a cloud")
    assert (shell.lang, shell.not_run) == ("bash", "")


def test_not_run_blocks_say_why_and_are_few() -> None:
    blocks = _python_blocks()
    not_run = [block for block in blocks if block.not_run is not None]
    print(f"{len(not_run)} of {len(blocks)} python blocks are not run:")
    for block in not_run:
        print(f"  {block.id}: {block.not_run}")
    assert [block.id for block in not_run if not block.not_run] == []
    assert len(not_run) <= NOT_RUN_SHARE * len(blocks)


def test_the_runner_reports_a_failing_block(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    assert _run("raise SystemExit(3)\n", tmp_path / "a").returncode == 3
    assert _run("def test_fails():\n    assert False\n", tmp_path / "b").returncode == 1


def test_the_runner_serves_an_app_and_fails_on_a_5xx(tmp_path: Path) -> None:
    flask = "from flask import Flask\napp = Flask(__name__)\n"
    broken = flask + "@app.get('/')\ndef index():\n    raise RuntimeError('boom')\n"
    assert _run(flask, tmp_path).returncode == 0
    assert "GET / answered 404" in _run(flask, tmp_path).stderr
    assert _run(broken, tmp_path).returncode == 1
    asgi = "from starlette.applications import Starlette\napp = Starlette()\n"
    assert "GET / answered 404" in _run(asgi, tmp_path).stderr


def test_the_environment_is_cleaned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
    code = "import os\nassert 'OTEL_TRACES_EXPORTER' not in os.environ\n"
    assert _run(code, tmp_path).returncode == 0


# -- shell blocks ---------------------------------------------------------------------------------

_OBSKIT_COMMAND = re.compile(
    r"(?:^|[;&|(]\s*|\$\s+)(?:\w+=\S*\s+)*(?:python3?\s+-m\s+)?obskit(?=\s|$)((?:[ \t]+[^\s;&|#)<>]+)*)", re.M
)


@functools.cache
def _help(*words: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "obskit", *words, "--help"],
        env=_environment(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def _subcommands(*words: str) -> set[str]:
    """The commands listed under 'commands:' (argparse's sub-parser list) in a help text."""
    text = _help(*words)
    if "\ncommands:\n" not in text:
        return set()
    section = text.split("\ncommands:\n", 1)[1]
    return set(re.findall(r"^    ([a-z][\w-]*)", section, flags=re.M))


def _shell_commands() -> list[tuple[str, list[str]]]:
    """(block id, the words after `obskit`) for each obskit command line of the shell blocks."""
    found = []
    for block in _all_blocks():
        if block.lang in SHELL:
            code = re.sub(r"(?:^|\s)#.*$", "", block.code.replace("\\\n", " "), flags=re.M)
            for match in _OBSKIT_COMMAND.finditer(code):
                found.append((block.id, match[1].split()))
    return found


def test_shell_blocks_mention_obskit_commands() -> None:
    assert any(words[:1] == ["demo"] for _, words in _shell_commands())


def _command_problem(words: list[str]) -> str | None:
    """What is wrong with `obskit <words>`: an unknown command or option; None when nothing."""
    command: list[str] = []
    for word in words:
        if word.startswith("--"):
            option = word.split("=", 1)[0]
            if not re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", _help(*command)):
                return f"obskit {' '.join(command)} has no option {option}"
        elif word.startswith("-") or not re.fullmatch(r"[a-z][\w-]*", word):
            continue  # a short option or an argument (a file, a value)
        elif commands := _subcommands(*command):
            if word not in commands:
                return f"'obskit {' '.join([*command, word])}' is no command: {sorted(commands)}"
            command.append(word)
    return None


def test_the_shell_check_finds_a_wrong_command_or_option() -> None:
    assert _command_problem(["logs", "summarize", "--top", "3", "app.log"]) is None
    assert "is no command" in str(_command_problem(["demoo"]))
    assert "is no command" in str(_command_problem(["logs", "summarise"]))
    assert "has no option --nope" in str(_command_problem(["doctor", "--nope"]))


@pytest.mark.parametrize(
    ("where", "words"),
    [
        pytest.param(where, words, id=f"{where} obskit {' '.join(words)}")
        for where, words in _shell_commands()
    ],
)
def test_shell_block_obskit_command_exists(where: str, words: list[str]) -> None:
    problem = _command_problem(words)
    assert problem is None, f"{where}: {problem}"
