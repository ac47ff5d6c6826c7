"""The Go-template subset of runtime args and env values."""

from __future__ import annotations

import re

import pytest

from hearth.render import gotemplate
from hearth.render.gotemplate import TemplateError

CONTEXT = gotemplate.service_context(model_path="Qwen/Qwen3-8B", service_name="qwen", service_namespace="ml")


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ .Model.Path }}", "Qwen/Qwen3-8B"),
        ("{{.Model.Path}}", "Qwen/Qwen3-8B"),
        ("{{   .Service.Name   }}", "qwen"),
        ("--served-model-name={{ .Service.Name }}", "--served-model-name=qwen"),
        ("{{ .Service.Name }}.{{ .Service.Namespace }}.svc", "qwen.ml.svc"),
        ("no template", "no template"),
        ("", ""),
        ("a {{- .Service.Name }}", "aqwen"),
        ("{{ .Service.Name -}}  b", "qwenb"),
        ("x {{- .Service.Name -}} y", "xqweny"),
    ],
)
def test_renders_field_references_with_any_spacing(template: str, expected: str) -> None:
    assert gotemplate.render(template, CONTEXT) == expected


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{ .Nope }}", 'unknown field ".Nope" (known: .Model, .Service)'),
        ("{{ .Model.Name }}", 'unknown field ".Model.Name" (known: .Model.Path)'),
        ("{{ .Model.Path.X }}", 'unknown field ".Model.Path.X"'),
        ("{{ .Model }}", "is an object, not a value"),
        ("{{ .Model.Path | upper }}", "unsupported action"),
        ("{{ if .Model.Path }}x{{ end }}", "unsupported action"),
        ("{{ Model.Path }}", "unsupported action"),
        ("{{ .Model.Path", "unbalanced"),
        ("x }}", "unbalanced"),
    ],
)
def test_refuses_what_it_cannot_render_exactly(template: str, message: str) -> None:
    with pytest.raises(TemplateError, match=re.escape(message)) as caught:
        gotemplate.render(template, CONTEXT)
    assert f'"{template}"' in str(caught.value)
