"""Every generated file of the checkout, each written from its one source by one command.

- CRDs, from the API models (``hearth/api``, through :mod:`hearth.api.crd`): ``hearth/bundled/crds/``,
  ``crds/`` and ``charts/hearth/files/crds/``;
- InferenceRuntime profiles, from ``runtimes/``: ``hearth/bundled/runtimes/`` and
  ``charts/hearth/files/runtimes/``;
- alert rules and ServiceMonitors, from ``monitoring/`` (not its promtool tests):
  ``charts/hearth/files/monitoring/``;
- the Grafana dashboard, from ``dashboards/``: ``charts/hearth/files/dashboards/``;
- the chart's scaler-mode choices (``values.schema.json``) and guards (a block of ``_helpers.tpl``), from
  the registry :mod:`hearth.api.scalermodes`;
- the chart's operator ClusterRole and leader-election Role rules (blocks of ``templates/rbac.yaml``), from
  the table :mod:`hearth.api.rbac`;
- the chart's operator arguments (a block of ``templates/deployment.yaml``) and health port (a block of
  ``_helpers.tpl``), and the schema and default of
  each value passing an operator setting (``values.schema.json``, ``values.yaml``), from the table
  :mod:`hearth.api.operatorsettings`.

The copies exist because each reader can only see its own tree: the package and the PyInstaller binary
read ``hearth/bundled`` through ``importlib.resources``, Helm's ``.Files.Get`` reads only inside the chart,
and ``kubectl apply -f crds`` cannot apply a symlinked folder. A copy is never edited by hand::

    python -m hearth.install.generate           # rewrite every copy that differs, remove stale ones
    python -m hearth.install.generate --check   # exit 1 naming each copy that differs (a test runs it)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from hearth.api import crd, operatorsettings, rbac, scalermodes
from hearth.install import manifests

COMMAND = "python -m hearth.install.generate"


@dataclasses.dataclass(frozen=True, slots=True)
class Mirror:
    """A folder whose every *pattern* file is generated: a file there without a source is stale."""

    folder: str
    pattern: str


CRD_MIRRORS = ("hearth/bundled/crds", "crds", "charts/hearth/files/crds")
#: Hand-written folders of the checkout and where each is copied, file by file.
COPIED: dict[str, tuple[str, tuple[str, ...]]] = {
    "runtimes": ("*.yaml", ("hearth/bundled/runtimes", "charts/hearth/files/runtimes")),
    "monitoring": ("*.yaml", ("charts/hearth/files/monitoring",)),
    "dashboards": ("*.json", ("charts/hearth/files/dashboards",)),
}


HELPERS = "charts/hearth/templates/_helpers.tpl"
RBAC = "charts/hearth/templates/rbac.yaml"
VALUES_SCHEMA = "charts/hearth/values.schema.json"
VALUES = "charts/hearth/values.yaml"
DEPLOYMENT = "charts/hearth/templates/deployment.yaml"


class GenerateError(Exception):
    """A hand-written file lost the place its generated part goes."""


def checkout() -> Path:
    """The source checkout this module belongs to (generation only makes sense in one)."""
    return Path(__file__).resolve().parents[2]


def mirrors() -> list[Mirror]:
    return [
        *(Mirror(folder, "*.yaml") for folder in CRD_MIRRORS),
        *(Mirror(folder, pattern) for pattern, folders in COPIED.values() for folder in folders),
    ]


def _copied(source: Path) -> bool:
    # promtool's unit tests of the alert rules stay out of the chart.
    return not source.name.endswith(".test.yaml")


def expected_files(root: Path) -> dict[str, str]:
    """Path inside *root* (POSIX) -> the text it must have, for every generated file."""
    files = {
        f"{folder}/{name}": text for name, text in crd.generated_files().items() for folder in CRD_MIRRORS
    }
    for source_folder, (pattern, folders) in COPIED.items():
        for source in sorted((root / source_folder).glob(pattern)):
            if _copied(source):
                text = source.read_text(encoding="utf-8")
                files.update({f"{folder}/{source.name}": text for folder in folders})
    files.update(_partly_generated(root))
    return files


def _with_block(text: str, *, path: str, name: str, body: str) -> str:
    """*text* with the lines between its ``BEGIN <name>`` and ``END <name>`` marker lines replaced by
    *body* (the markers stay, so the hand-written rest of the file is kept as it is)."""
    lines = text.splitlines(keepends=True)
    begins = [number for number, line in enumerate(lines) if f"BEGIN {name}" in line]
    ends = [number for number, line in enumerate(lines) if f"END {name}" in line]
    if len(begins) != 1 or len(ends) != 1 or begins[0] > ends[0]:
        raise GenerateError(f"{path}: needs one 'BEGIN {name}' line and then one 'END {name}' line")
    return "".join(lines[: begins[0] + 1]) + body + "".join(lines[ends[0] :])


def _quoted(text: str) -> str:
    # A JSON string is a valid Go template string literal (the same escapes), and Helm templates are Go's.
    return json.dumps(text)


def scaler_mode_guards() -> str:
    """The chart's templates that know the scaler modes: the guard ``hearth.validate`` includes (an unknown
    mode, a gateway-replica limit: what ``hearth install`` refuses) and whether a mode needs KEDA."""
    modes = " ".join(_quoted(mode) for mode in scalermodes.ScalerMode)
    lines = [
        '{{- define "hearth.validateScalerMode" -}}',
        f"{{{{- $modes := list {modes} }}}}",
        "{{- if not (has .Values.gateway.scalerMode $modes) }}",
        '{{- fail (printf "gateway.scalerMode must be one of %s, got %q" (join ", " $modes) '
        "(toString .Values.gateway.scalerMode)) }}",
        "{{- end }}",
    ]
    for mode in scalermodes.ScalerMode:
        for resolved in mode.candidates():
            traits = scalermodes.traits(resolved)
            if traits.max_gateway_replicas is None:
                continue
            wanted = scalermodes.replicas_wanted(traits.max_gateway_replicas)
            why = traits.max_gateway_replicas_why
            message = f"gateway.scalerMode={mode} requires gateway.replicas{wanted}: {why}"
            lines += [
                f"{{{{- if and (eq .Values.gateway.scalerMode {_quoted(mode)}) "
                f"(gt (int .Values.gateway.replicas) {traits.max_gateway_replicas}) }}}}",
                f"{{{{- fail {_quoted(message)} }}}}",
                "{{- end }}",
            ]
    keda = " ".join(_quoted(mode) for mode in scalermodes.RESOLVED if scalermodes.traits(mode).needs_keda)
    lines += [
        "{{- end }}",
        "",
        '{{/* "true" when gateway.scalerMode always needs KEDA (auto only uses it when it is there). */}}',
        '{{- define "hearth.scalerModeNeedsKeda" -}}',
        f"{{{{- has .Values.gateway.scalerMode (list {keda}) }}}}",
        "{{- end }}",
    ]
    return "".join(f"{line}\n" for line in lines)


def rbac_rules(*, namespaced: bool) -> str:
    """The operator's (Cluster)Role rules as the chart's ``rbac.yaml`` lists them under ``rules:``."""
    lines = []
    for rule in rbac.granted(namespaced=namespaced):
        # JSON lists are YAML flow sequences: one line per key, as a person writes RBAC rules.
        lines += [
            f"  - apiGroups: {json.dumps(rule['apiGroups'])}",
            f"    resources: {json.dumps(rule['resources'])}",
            f"    verbs: {json.dumps(rule['verbs'])}",
        ]
    return "".join(f"{line}\n" for line in lines)


def operator_args() -> str:
    """The chart's operator arguments after ``operator``, as ``hearth install`` writes them
    (:func:`hearth.install.manifests.operator_args`): the table's deployed settings in its order, then
    logging and metrics."""
    lines = []
    for setting, deployed in operatorsettings.deployed():
        expression = deployed.expression()
        if setting.kind is operatorsettings.Kind.SWITCH and deployed.fixed is not None:
            # Always passed, on or off (install's value is fixed; the chart's may turn it off).
            on, off = _quoted(setting.flag), _quoted(setting.off_flag or "")
            lines.append(
                f"- {{{{ ternary {on} {off} {expression} }}}}" if expression else f"- {setting.flag}"
            )
        elif setting.kind is operatorsettings.Kind.SWITCH:
            # Passed when on; off is the operator's default, so install leaves it out too.
            lines += [f"{{{{- if {expression} }}}}", f"- {setting.flag}", "{{- end }}"]
        else:
            value = deployed.fixed if expression is None else f"{{{{ {expression} }}}}"
            lines.append(f"- {setting.flag}={value}")
    lines += [
        f"- --log-format={manifests.LOG_FORMAT}",
        "{{- if .Values.metrics.enabled }}",
        f"- {operatorsettings.METRICS_ADDRESS.flag}=:{{{{ .Values.metrics.port }}}}",
        "{{- end }}",
    ]
    return "".join(f"            {line}\n" for line in lines)


def value_schema(setting: operatorsettings.Setting[object]) -> dict[str, object]:
    """The JSON schema of a chart value passing *setting*: what the operator's flag accepts."""
    if setting.kind is operatorsettings.Kind.SWITCH:
        return {"type": "boolean"}
    if setting.kind is operatorsettings.Kind.COUNT:
        return {"type": "integer", **({"minimum": setting.minimum} if setting.minimum is not None else {})}
    if setting.kind is operatorsettings.Kind.CHOICE:
        # The reference's empty spelling stays the operator's own.
        return {"type": "string", "enum": [choice for choice in setting.choices if choice]}
    raise GenerateError(f"no chart schema for a {setting.kind.value} setting ({setting.flag})")


def value_default(setting: operatorsettings.Setting[object], deployed: operatorsettings.Deployed) -> str:
    """A chart value's default in ``values.yaml``: what ``hearth install`` passes when not told."""
    text = deployed.fixed if deployed.fixed is not None else setting.default_text()
    return text or '""'


def _string_end(text: str, start: int) -> int:
    """Just past the JSON string that starts at *start* (its opening quote)."""
    index = start + 1
    while text[index] != '"':
        index += 2 if text[index] == "\\" else 1
    return index + 1


def _json_object_span(text: str, path: tuple[str, ...]) -> tuple[int, int] | None:
    """Where the object at *path* (keys from the top) starts and ends in the JSON *text*."""
    stack: list[str | None] = []
    key: str | None = None
    start: int | None = None
    index = 0
    while index < len(text):
        character = text[index]
        if character == '"':
            end = _string_end(text, index)
            if text[end:].lstrip().startswith(":"):
                key = json.loads(text[index:end])
            index = end
            continue
        if character in "{[":
            stack.append(key)
            if start is None and character == "{" and tuple(stack[1:]) == path:
                start, depth = index, len(stack)
            key = None
        elif character in "}]":
            if start is not None and len(stack) == depth:
                return start, index + 1
            stack.pop()
        elif character == ",":
            key = None
        index += 1
    return None


def _with_schema(text: str, *, value: str, schema: dict[str, object]) -> str:
    """*text* (``values.schema.json``) with the property of chart value *value* replaced by *schema*."""
    path = tuple(part for name in value.split(".") for part in ("properties", name))
    span = _json_object_span(text, path)
    if span is None:
        raise GenerateError(f"{VALUES_SCHEMA}: has no property {value}")
    return text[: span[0]] + json.dumps(schema) + text[span[1] :]


def _with_default(text: str, *, value: str, default: str) -> str:
    """*text* (``values.yaml``) with the line of chart value *value* (``section.key``) set to *default*."""
    section, _, name = value.partition(".")
    lines = text.splitlines(keepends=True)
    inside = False
    for number, line in enumerate(lines):
        if not line.startswith((" ", "#", "\n")):
            inside = line.startswith(f"{section}:")
        elif inside and line.startswith(f"  {name}:"):
            lines[number] = f"  {name}: {default}\n"
            return "".join(lines)
    raise GenerateError(f"{VALUES}: has no line '  {name}:' under '{section}:'")


def _chart_values(root: Path) -> dict[str, str]:
    """``values.schema.json`` and ``values.yaml`` with each value passing an operator setting as the table
    says (the scaler-mode choices among them)."""
    schema = (root / VALUES_SCHEMA).read_text(encoding="utf-8")
    values = (root / VALUES).read_text(encoding="utf-8")
    for setting, deployed in operatorsettings.deployed():
        if deployed.chart_value is not None:
            schema = _with_schema(schema, value=deployed.chart_value, schema=value_schema(setting))
            values = _with_default(
                values, value=deployed.chart_value, default=value_default(setting, deployed)
            )
    return {VALUES_SCHEMA: schema, VALUES: values}


def _partly_generated(root: Path) -> dict[str, str]:
    """Hand-written files with a generated part: path -> the whole text they must have."""
    helpers = (root / HELPERS).read_text(encoding="utf-8")
    roles = (root / RBAC).read_text(encoding="utf-8")
    for name, namespaced in (("operator rules", False), ("leader-election rules", True)):
        body = rbac_rules(namespaced=namespaced)
        roles = _with_block(roles, path=RBAC, name=f"generated {name}", body=body)
    deployment = (root / DEPLOYMENT).read_text(encoding="utf-8")
    return {
        HELPERS: _with_block(
            _with_block(helpers, path=HELPERS, name="generated scaler modes", body=scaler_mode_guards()),
            path=HELPERS,
            name="generated health port",
            body=f'{{{{- define "hearth.healthPort" -}}}}{operatorsettings.HEALTH_PORT}{{{{- end }}}}\n',
        ),
        RBAC: roles,
        DEPLOYMENT: _with_block(
            deployment, path=DEPLOYMENT, name="generated operator arguments", body=operator_args()
        ),
        **_chart_values(root),
    }


def drift(root: Path) -> list[str]:
    """Generated files under *root* that are missing, differ from their source, are not regular files (a
    symlink would not survive packaging or ``kubectl apply``), or have no source any more."""
    expected = expected_files(root)
    # kubectl cannot apply a symlinked folder ("is a directory"), and packaging would not follow one.
    linked = [mirror.folder for mirror in mirrors() if (root / mirror.folder).is_symlink()]
    stale = [
        path
        for path, text in expected.items()
        if (root / path).is_symlink()
        or not (root / path).is_file()
        or (root / path).read_text(encoding="utf-8") != text
    ]
    extra = [
        path.relative_to(root).as_posix()
        for mirror in mirrors()
        for path in sorted((root / mirror.folder).glob(mirror.pattern))
        if path.relative_to(root).as_posix() not in expected
    ]
    return linked + stale + extra


def write(root: Path) -> list[str]:
    """Bring every generated file under *root* up to date; returns what was out of date."""
    changed = drift(root)
    for mirror in mirrors():
        if (root / mirror.folder).is_symlink():
            (root / mirror.folder).unlink()
    expected = expected_files(root)
    for path in drift(root):
        target = root / path
        if target.is_symlink():
            target.unlink()
        if path in expected:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(expected[path], encoding="utf-8")
        elif target.is_file():
            target.unlink()
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write (or --check) every generated file of the checkout.")
    parser.add_argument("--check", action="store_true", help="exit 1 if a generated file is out of date")
    parser.add_argument("--root", type=Path, default=checkout(), help="the checkout (default: this one)")
    options = parser.parse_args(argv)
    try:
        return _run(options.root, check=options.check)
    except GenerateError as error:
        print(f"cannot generate: {error}", file=sys.stderr)
        return 2


def _run(root: Path, *, check: bool) -> int:
    if check:
        stale = drift(root)
        if stale:
            print(f"out of date in {root}: {', '.join(stale)}; run: {COMMAND}", file=sys.stderr)
            return 1
        print(f"checked {len(expected_files(root))} generated files in {root}")
        return 0
    changed = write(root)
    print(f"wrote {len(changed)} of {len(expected_files(root))} generated files in {root}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
