"""The documentation site builds with ``mkdocs build --strict`` (a broken link, a missing page, a page left
out of the nav or a snippet of a file that is gone fail it), into a temporary directory: the site is never
committed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.helpers import REPO

MKDOCS = [sys.executable, "-m", "mkdocs"]


def _build(root: Path, site: Path) -> subprocess.CompletedProcess[str]:
    # Snippets (`--8<--`) are read relative to the working directory: the checkout's root.
    environment = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    return subprocess.run(
        [*MKDOCS, "build", "--strict", "--config-file", str(root / "mkdocs.yml"), "--site-dir", str(site)],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=environment,
    )


def test_the_site_builds_strictly(tmp_path: Path) -> None:
    result = _build(REPO, tmp_path / "site")
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stdout}\n{result.stderr}"
    assert (tmp_path / "site/getting-started/kind/index.html").is_file()
    # The quickstart is shown from its file, not copied.
    assert "hf://Qwen/Qwen3-0.6B" in (tmp_path / "site/getting-started/kind/index.html").read_text()


def _copy(tmp_path: Path) -> Path:
    root = tmp_path / "checkout"
    shutil.copytree(REPO / "docs", root / "docs")
    shutil.copytree(REPO / "examples", root / "examples")
    shutil.copy(REPO / "mkdocs.yml", root / "mkdocs.yml")
    return root


def test_a_broken_link_fails_the_build(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    page = root / "docs/how-to/pools.md"
    page.write_text(page.read_text() + "\n[gone](../concepts/no-such-page.md)\n")
    result = _build(root, tmp_path / "site")
    assert result.returncode != 0
    assert "no-such-page.md" in result.stdout + result.stderr


def test_a_page_left_out_of_the_nav_fails_the_build(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    (root / "docs/how-to/orphan.md").write_text("# Not in the nav\n")
    result = _build(root, tmp_path / "site")
    assert result.returncode != 0
    assert "orphan.md" in result.stdout + result.stderr


def test_the_built_site_is_not_committed() -> None:
    ignored = (REPO / ".gitignore").read_text().splitlines()
    assert "/site/" in ignored
    tracked = subprocess.run(
        ["git", "ls-files", "site"], cwd=REPO, capture_output=True, text=True, check=True, timeout=60
    )
    assert tracked.stdout == ""
