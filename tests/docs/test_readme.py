"""The README is a short front door for users: at most 200 lines, the quickstart shown as the file is, and
every file, command, flag and Helm value it names real. What it said before (as of commit 413fb27) moved
into docs/, section by section: MOVED lists where each section lives now."""

from __future__ import annotations

import re
import shlex
import subprocess

import click
import pytest
import yaml

from hearth.cmd.main import cli
from tests.helpers import REPO

README = REPO / "README.md"
MAX_LINES = 200
#: Every section heading of the README as of commit 413fb27 -> the page that holds that section now
#: (with the same heading), so none of it was lost when the README became short.
OLD_README = "413fb27"
MOVED: dict[str, str] = {
    "Hearth": "docs/index.md",
    "Quick start (fresh Linux machine: Debian 12, Python ≥ 3.11, Go, root)": "docs/development/test-bed.md",
    "What works today": "docs/reference/index.md",
    "The API: `serving.hearth.dev/v1alpha1`": "docs/concepts/api.md",
    "Draining a backend: until idle, or the reference's sleep": "docs/concepts/drain.md",
    "The CLI": "docs/reference/index.md",
    "`hearth operator`: the control loop": "docs/concepts/operator.md",
    "Wakes and accelerator accounting": "docs/concepts/accounting.md",
    "Wakes that cannot succeed": "docs/concepts/fail-fast.md",
    "Dashboard, alerts, monitors": "docs/how-to/monitoring.md",
    "Running with less RBAC (e.g. only the reference chart's ClusterRole)": "docs/how-to/reference-rbac.md",
    "`hearth install` / `hearth uninstall`": "docs/how-to/install-cli.md",
    "Installing with Helm": "docs/how-to/helm.md",
    "Scaling modes": "docs/concepts/scaling-modes.md",
    "Accelerator pools: many models, few accelerators": "docs/concepts/pools.md",
    "Shared endpoints: one URL for many models": "docs/concepts/shared-endpoints.md",
    "`hearth e2e`": "docs/development/e2e.md",
    "`hearth gateway`: the scale-to-zero data plane": "docs/concepts/gateway.md",
    "`hearth stub`: a CPU fake of vLLM": "docs/reference/stub.md",
    "`hearth stub-hub` and the stub image's `python3`: a prewarm Job without internet": (
        "docs/reference/stub.md"
    ),
    "The container image, without Docker": "docs/development/index.md",
    "Development": "docs/development/index.md",
}


def _readme() -> str:
    return README.read_text(encoding="utf-8")


def _headings(markdown: str) -> list[str]:
    """Markdown headings outside fenced code (a `# comment` in a YAML block is not one)."""
    found, fenced = [], False
    for line in markdown.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and (match := re.match(r"^#+ (.+)$", line)):
            found.append(match.group(1).strip())
    return found


def _blocks(markdown: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```$", markdown, flags=re.DOTALL | re.MULTILINE)


def test_the_readme_is_short() -> None:
    lines = len(_readme().splitlines())
    assert lines <= MAX_LINES, f"README.md has {lines} lines; move detail into docs/ (at most {MAX_LINES})"


@pytest.mark.parametrize(("heading", "page"), sorted(MOVED.items()))
def test_each_section_of_the_old_readme_lives_in_the_docs(heading: str, page: str) -> None:
    path = REPO / page
    assert path.is_file(), f"{page} is gone: where does '{heading}' live now?"
    assert heading in _headings(path.read_text(encoding="utf-8")), f"{page} lost the section '{heading}'"


def test_moved_lists_every_section_of_the_old_readme() -> None:
    old = subprocess.run(
        ["git", "show", f"{OLD_README}:README.md"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if old.returncode != 0:
        pytest.skip(f"commit {OLD_README} is not in this clone (a shallow checkout)")
    assert _headings(old.stdout) == list(MOVED)


def test_the_quickstart_is_shown_as_the_file_is() -> None:
    quickstart = (REPO / "examples/quickstart.yaml").read_text(encoding="utf-8")
    assert quickstart in _blocks(_readme(), "yaml")


def test_every_relative_link_and_named_path_exists() -> None:
    text = _readme()
    links = [link for link in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text) if "://" not in link]
    assert "docs/getting-started/kind.md" in links
    named = re.findall(
        r"(?<![\w./-])((?:docs|scripts|examples|charts|testing|monitoring|\.ci)/[\w./-]*\w)", text
    )
    assert "scripts/test.sh" in named
    missing = sorted({path for path in [*links, *named] if not (REPO / path).exists()})
    assert missing == [], f"README.md names paths that do not exist: {missing}"


def _hearth_commands(text: str) -> list[list[str]]:
    """Every `hearth ...` invocation in the README's shell blocks and inline code, as arguments."""
    sources = _blocks(text, "sh") + re.findall(r"`([^`\n]*\bhearth [^`\n]*)`", text)
    found = []
    for source in sources:
        for line in source.replace("\\\n", " ").splitlines():
            # `hearth <word>`, not `helm install hearth charts/hearth` (a release name before a path).
            pattern = r"(?:^|[\s;&|(])(?:dist/)?hearth ([a-z][a-z-]*(?=\s|$)[^#;&|)]*)"
            for match in re.finditer(pattern, line):
                words = shlex.split(re.sub(r"<[^>]*>", "X", match.group(1)))
                found.append(words)
    return found


def test_every_hearth_command_and_flag_the_readme_names_exists() -> None:
    commands = _hearth_commands(_readme())
    assert ["install", "--image", "X/hearth:X", "--wait", "180"] in commands
    root = click.Context(cli, info_name="hearth")
    for words in commands:
        command = cli.get_command(root, words[0])
        assert command is not None, f"README.md names `hearth {words[0]}`, which does not exist"
        options = {
            name for param in command.params for name in (*param.opts, *getattr(param, "secondary_opts", []))
        }
        for word in words[1:]:
            if word.startswith("--"):
                assert word.split("=", 1)[0] in options, (
                    f"README.md: `hearth {words[0]}` has no option {word}"
                )


def test_every_helm_value_the_readme_sets_exists() -> None:
    values = yaml.safe_load((REPO / "charts/hearth/values.yaml").read_text())
    settings = re.findall(r"--set ([\w.]+)=", _readme())
    assert "image.registry" in settings
    for key in settings:
        node = values
        for part in key.split("."):
            assert isinstance(node, dict), f"README.md sets {key}, which values.yaml lacks"
            assert part in node, f"README.md sets {key}, which values.yaml lacks"
            node = node[part]


def test_the_develop_commands_are_the_projects() -> None:
    text = _readme()
    for command in ("bash scripts/run.sh", "bash scripts/test.sh"):
        assert f"`{command}`" in text
        assert (REPO / command.split()[1]).is_file()
    # CI runs the README's test command.
    assert "bash scripts/test.sh" in (REPO / ".ci/run").read_text()
    for module in ("python -m hearth.docs", "python -m hearth.install.generate"):
        assert f"`{module}`" in text
