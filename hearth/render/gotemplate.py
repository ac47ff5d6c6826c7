"""The Go ``text/template`` subset InferenceRuntime profiles use: field references such as
``{{ .Model.Path }}``, with any spacing and ``{{-``/``-}}`` trim markers.

The reference renders with Go's ``text/template`` and ``missingkey=error``, so an unknown field is an error,
never an empty string. Actions beyond field references (pipelines, functions, ``if``/``range``) are refused
with a message, because no profile uses them and silently mis-rendering one would be worse.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

# {{ .A.B }} with optional trim markers; the field path is checked separately for a clear message.
_ACTION = re.compile(r"(\s*)\{\{(-\s)?\s*(.*?)\s*(\s-)?\}\}(\s*)", re.DOTALL)
_FIELD_PATH = re.compile(r"^(\.[A-Za-z_][A-Za-z0-9_]*)+$")

#: A template context: nested mappings of field names to values.
Context = Mapping[str, "str | Context"]


class TemplateError(ValueError):
    """A template that cannot be rendered: unknown field, unsupported action or unbalanced braces."""


def render(template: str, context: Context) -> str:
    """Render *template*; raises :class:`TemplateError` naming the template and the problem."""
    pieces: list[str] = []
    position = 0
    for match in _ACTION.finditer(template):
        leading, trim_left, action, trim_right, trailing = match.groups()
        pieces.append(template[position : match.start()])
        if not trim_left:
            pieces.append(leading)
        pieces.append(_lookup(action, context, template))
        if not trim_right:
            pieces.append(trailing)
        position = match.end()
    rest = template[position:]
    if "{{" in rest or "}}" in rest:
        raise TemplateError(f'template "{template}": unbalanced "{{{{" or "}}}}"')
    pieces.append(rest)
    return "".join(pieces)


def _lookup(action: str, context: Context, template: str) -> str:
    if not _FIELD_PATH.match(action):
        raise TemplateError(
            f'template "{template}": unsupported action "{{{{ {action} }}}}" '
            "(only field references such as {{ .Model.Path }} are supported)"
        )
    value: str | Context = context
    walked = ""
    for name in action[1:].split("."):
        if isinstance(value, str) or name not in value:
            known = ", ".join(f"{walked}.{key}" for key in value) if not isinstance(value, str) else ""
            raise TemplateError(
                f'template "{template}": unknown field "{walked}.{name}"'
                + (f" (known: {known})" if known else "")
            )
        value = value[name]
        walked += f".{name}"
    if not isinstance(value, str):
        raise TemplateError(f'template "{template}": "{action}" is an object, not a value')
    return value


def service_context(*, model_path: str, service_name: str, service_namespace: str) -> Context:
    """The context the reference exposes: ``.Model.Path``, ``.Service.Name``, ``.Service.Namespace``."""
    return {
        "Model": {"Path": model_path},
        "Service": {"Name": service_name, "Namespace": service_namespace},
    }
