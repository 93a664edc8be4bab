"""The documentation runs as written: every code block a reader would run, in README.md and docs/.

How a page's fenced blocks are treated (the convention every page follows):

- ```` ```python ````: a complete script, run with this Python;
- ```` ```console ````: each ``$ `` line is a command (a line ending in ``\\`` continues it, and a
  here-document's lines up to its end word belong to it); a block's commands run as one bash script
  (``set -euo pipefail``: each must succeed; ``cd`` and ``export`` last to the block's end); the other
  lines are output, shown to the reader and not compared (it holds timings and paths);
- ```` ```text ```` (and data such as ```` ```yaml ````, ```` ```json ````, ```` ```toml ````): never run,
  for what needs a real cluster or shows a file. A shell block must be ``console`` or ``text``, so
  nothing a reader would type escapes the tests by its fence.

A page's blocks run in order in one temporary directory holding a copy of ``examples/`` and
``parsl_configs/``, as if the reader stood at the root of a checkout, with a fresh fragment cache. The
README's blocks run from the wheel built from this checkout, installed in a fresh environment
(``tests/test_packaging.py``); the docs' from the test environment. A page
that needs Slurm says so with the comment ``<!-- docs-test: slurm -->``: it runs against the tests'
single-node Slurm (``slurm_cluster``), whose partition is ``debug``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
RUN = {"python", "console"}
SHELLS = {"bash", "sh", "shell", "shell-session", "zsh", "sh-session", "pycon", "python-console"}
SLURM_MARK = "<!-- docs-test: slurm -->"
#: Copied into each page's directory: the files a reader of a checkout has at hand.
CHECKOUT_FILES = ("examples", "parsl_configs")
BLOCK_TIMEOUT = 300
#: ``cat > site.yaml <<'EOF'``: the lines up to ``EOF`` belong to the command.
HEREDOC = re.compile(r"<<-?\s*['\"]?(\w+)['\"]?")


@dataclass(frozen=True)
class Block:
    language: str
    text: str
    line: int  # 1-based line of the opening fence

    def commands(self) -> list[str]:
        """The ``$ `` lines of a console block, with their continuation lines and here-documents."""
        commands: list[str] = []
        pending: list[str] = []
        heredoc: str | None = None
        for line in self.text.splitlines():
            if heredoc is not None:
                pending.append(line)
                if line.strip() == heredoc:
                    heredoc = None
            elif pending or line.startswith("$ "):
                pending.append(line[2:] if not pending else line)
                marker = HEREDOC.search(line)
                heredoc = marker.group(1) if marker else None
            if pending and heredoc is None and not line.rstrip().endswith("\\"):
                commands.append("\n".join(pending))
                pending = []
        assert not pending, f"line {self.line}: a command, backslash or here-document never ends"
        return commands


def blocks(page: Path) -> list[Block]:
    tokens = MarkdownIt("commonmark").parse(page.read_text())
    found = []
    for token in tokens:
        if token.type == "fence":
            found.append(Block(token.info.split()[0] if token.info.strip() else "", token.content,
                               token.map[0] + 1))
        elif token.type == "code_block" and "```" in token.content:
            raise AssertionError(f"{page.relative_to(ROOT)}:{token.map[0] + 1}: a fence inside an indented "
                                 "block is never run; write it at the margin")
    return found


def _page_id(page: Path) -> str:
    return str(page.relative_to(ROOT))


def _runnable(page: Path) -> pytest.param:
    marks = [pytest.mark.slurm] if SLURM_MARK in page.read_text() else []
    return pytest.param(page, id=_page_id(page), marks=marks)


#: The README is what a user of the installed package reads: tests/test_packaging.py runs it from the wheel.
RUNNABLE = [_runnable(page) for page in PAGES[1:] if any(b.language in RUN for b in blocks(page))]


@pytest.mark.fast
@pytest.mark.parametrize("page", PAGES, ids=_page_id)
def test_every_block_says_whether_it_runs(page):
    for block in blocks(page):
        where = f"{_page_id(page)}:{block.line}"
        assert block.language, f"{where}: say what the block is (python, console, text, yaml, ...)"
        assert block.language not in SHELLS, (
            f"{where}: a {block.language} block: write it as console ($ lines, run by the tests) or text "
            "(never run)"
        )
        if block.language == "console":
            assert block.commands(), f"{where}: a console block without a `$ ` command line"


def checkout_copy(work: Path) -> None:
    """The files a reader of a checkout has at hand, copied into ``work``."""
    for name in CHECKOUT_FILES:
        ignore = shutil.ignore_patterns("*.result.json", "*.input.json", "__pycache__")
        shutil.copytree(ROOT / name, work / name, ignore=ignore)


def environment(prefix: Path) -> dict[str, str]:
    """This environment as a reader's shell has it with the virtual environment ``prefix`` activated."""
    path = f"{prefix / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"
    return {**os.environ, "PATH": path, "VIRTUAL_ENV": str(prefix), "COLUMNS": "120"}


def _run(argv: list[str], where: str, shown: str, work: Path, env: dict[str, str]) -> None:
    proc = subprocess.run(argv, cwd=work, env=env, capture_output=True, text=True, timeout=BLOCK_TIMEOUT,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, (
        f"{where}: exit status {proc.returncode} from\n{shown}\n--- stdout\n{proc.stdout[-3000:]}"
        f"\n--- stderr\n{proc.stderr[-3000:]}"
    )


def run_page(page: Path, work: Path, prefix: Path) -> None:
    """Every python and console block of ``page``, in order, in ``work``, with the environment ``prefix``."""
    env = environment(prefix)
    for number, block in enumerate(blocks(page)):
        where = f"{_page_id(page)}:{block.line}"
        if block.language == "python":
            script = work / f"block_{number}.py"
            script.write_text(block.text)
            _run([str(prefix / "bin" / "python"), script.name], where, block.text, work, env)
        elif block.language == "console":
            script = "\n".join(block.commands())
            _run(["bash", "-euo", "pipefail", "-c", script], where, block.text, work, env)


@pytest.mark.parametrize("page", RUNNABLE)
def test_page_runs_as_written(page, tmp_path, request):
    if SLURM_MARK in page.read_text():
        request.getfixturevalue("slurm_cluster")
    checkout_copy(tmp_path)
    run_page(page, tmp_path, Path(sys.prefix))


@pytest.mark.fast
def test_readme_links_are_absolute_and_point_at_files_that_exist():
    """The README is the package index's long description, where a relative link is broken; its links
    into the docs site name pages of the site's nav."""
    from importlib.metadata import metadata

    urls = metadata("qcmb_parsl").get_all("Project-URL") or []
    project = dict(url.split(", ", 1) for url in urls)
    repository, documentation = project["Repository"], project["Documentation"].rstrip("/") + "/"
    site_pages = set(re.findall(r"([\w/.-]+\.md)\s*$", (ROOT / "mkdocs.yml").read_text(), re.MULTILINE))
    text = (ROOT / "README.md").read_text()
    links = re.findall(r"\]\(([^)\s]+)\)", text) + re.findall(r'src="([^"]+)"', text)
    assert links
    for link in links:
        assert link.startswith("https://"), f"README.md links {link!r}: give the whole address"
        for prefix in (f"{repository}/blob/main/", f"{repository}/raw/main/", f"{repository}/tree/main/"):
            if link.startswith(prefix):
                path = link.removeprefix(prefix).split("#")[0]
                assert (ROOT / path).exists(), f"README.md links {link!r}: {path} is not in the checkout"
        if link.startswith(documentation):
            page = link.removeprefix(documentation).split("#")[0].strip("/")
            assert {f"{page}.md", f"{page}/index.md"} & site_pages, f"README.md links {link!r}: no page {page}"
