"""Keep the Helm chart's data files (``charts/hearth/files``) byte-identical to the bundled CRDs and runtimes,
and to the checkout's monitoring objects (``monitoring/``) and Grafana dashboard (``dashboards/``).

The chart's templates read them with ``.Files.Get`` (Helm cannot read outside the chart), so the chart and
``hearth install`` apply the same YAML and the chart ships the very alerts and dashboard the tests check;
``python -m hearth.install.chartfiles`` rewrites them after a change, ``--check`` (run by the tests)
reports drift.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hearth.common import bundle

#: Kinds of bundled data the chart carries, each in files/<kind>/.
KINDS = ("crds", "runtimes")
#: Folders of the checkout the chart carries as files/<folder>/, and which of their files.
CHECKOUT_FILES = {"monitoring": "*.yaml", "dashboards": "*.json"}


def default_chart() -> Path:
    """``charts/hearth`` of the source checkout this module belongs to."""
    return bundle.source_folder("crds").parents[2] / "charts" / "hearth"


def _checkout() -> Path:
    return default_chart().parents[1]


def expected_files() -> dict[str, str]:
    """Path inside the chart -> text, for every data file the chart must carry."""
    files = {
        f"files/{kind}/{name}": bundle.read_text(kind, name) for kind in KINDS for name in bundle.names(kind)
    }
    for folder, pattern in CHECKOUT_FILES.items():
        for path in sorted((_checkout() / folder).glob(pattern)):
            if not path.name.endswith(".test.yaml"):  # promtool's unit tests stay out of the chart
                files[f"files/{folder}/{path.name}"] = path.read_text(encoding="utf-8")
    return files


def drift(chart: Path) -> list[str]:
    """The chart's data files that are missing, differ from the bundle, or are no longer bundled."""
    expected = expected_files()
    stale = [
        path
        for path, text in expected.items()
        if not (chart / path).is_file() or (chart / path).read_text(encoding="utf-8") != text
    ]
    folders = [*((kind, "*.yaml") for kind in KINDS), *CHECKOUT_FILES.items()]
    extra = [
        str(path.relative_to(chart))
        for folder, pattern in folders
        for path in sorted((chart / "files" / folder).glob(pattern))
        if str(path.relative_to(chart)) not in expected
    ]
    return stale + extra


def write(chart: Path) -> None:
    expected = expected_files()
    for path in drift(chart):
        target = chart / path
        if path in expected:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(expected[path], encoding="utf-8")
        else:
            target.unlink()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write (or --check) the Helm chart's copies of the bundle.")
    parser.add_argument("--check", action="store_true", help="exit 1 if the chart's copies are out of date")
    parser.add_argument("--chart", type=Path, default=default_chart(), help="the chart directory")
    options = parser.parse_args(argv)
    stale = drift(options.chart)
    if options.check:
        if stale:
            print(
                f"out of date in {options.chart}: {', '.join(stale)}; "
                "run: python -m hearth.install.chartfiles",
                file=sys.stderr,
            )
            return 1
        print(f"checked {len(expected_files())} files in {options.chart}")
        return 0
    write(options.chart)
    print(f"wrote {len(stale)} of {len(expected_files())} files in {options.chart}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
