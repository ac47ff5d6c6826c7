"""``hearth render``: print the objects an LLMService becomes, with no cluster."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
import yaml

from hearth.api import loading
from hearth.api.llmservice import LLMService
from hearth.api.runtime import InferenceRuntime
from hearth.common import bundle
from hearth.render import plan
from hearth.render.config import DEFAULT_GATEWAY_IMAGE, OperatorConfig, ScalerMode
from hearth.render.errors import ReconcileError


def _read(path: str) -> tuple[str, str]:
    if path == "-":
        return sys.stdin.read(), "<stdin>"
    try:
        return Path(path).read_text(encoding="utf-8"), path
    except OSError as error:
        raise click.BadParameter(f"cannot read {path}: {error.strerror}", param_hint="'-f' / '-r'") from None
    except UnicodeDecodeError as error:
        message = f"{path} is not UTF-8 text (byte {error.start})"
        raise click.BadParameter(message, param_hint="'-f' / '-r'") from None


def _namespace(_: click.Context, __: click.Parameter, value: str) -> str:
    problem = loading.namespace_problem(value)
    if problem is not None:
        raise click.BadParameter(problem)
    return value


def _load(paths: tuple[str, ...]) -> list[loading.ApiObject]:
    objects: list[loading.ApiObject] = []
    for path in paths:
        text, source = _read(path)
        try:
            objects.extend(loading.load_all(text, source=source))
        except loading.LoadError as error:
            raise click.ClickException(str(error)) from None
    return objects


def _manifests(
    service: LLMService, namespace: str, runtimes: list[InferenceRuntime], config: OperatorConfig
) -> list[dict[str, Any]]:
    if not service.metadata.namespace:
        service = service.model_copy(
            update={"metadata": service.metadata.model_copy(update={"namespace": namespace})}
        )
    try:
        built = plan.build(service, runtimes, config)
    except ReconcileError as error:
        where = f"{service.metadata.namespace}/{service.metadata.name}"
        raise click.ClickException(f"LLMService {where}: {error.reason}: {error.message}") from None
    return [step.manifest for step in built.steps if step.mode is not plan.Mode.DELETE]


@click.command("render", short_help="Print the objects an LLMService becomes, with no cluster.")
@click.option(
    "-f",
    "--filename",
    "files",
    multiple=True,
    required=True,
    help="YAML with LLMServices (and optionally InferenceRuntimes); '-' reads stdin. Repeatable.",
)
@click.option(
    "-r",
    "--runtime",
    "runtime_files",
    multiple=True,
    help="YAML with InferenceRuntimes. Without -r (and none in -f), the bundled runtimes are used.",
)
@click.option(
    "-n",
    "--namespace",
    default="default",
    show_default=True,
    callback=_namespace,
    help="Namespace of LLMServices that set none.",
)
@click.option(
    "--scaler-mode",
    type=click.Choice([mode.value for mode in ScalerMode]),
    default=ScalerMode.METRICS_API.value,
    show_default=True,
    help="Scaler mode the operator would run with.",
)
@click.option(
    "--gateway-image", default=DEFAULT_GATEWAY_IMAGE, show_default=True, help="Gateway container image."
)
@click.option(
    "--gateway-replicas", type=click.IntRange(min=1), default=1, show_default=True, help="Gateway replicas."
)
@click.option(
    "--network-policies/--no-network-policies",
    default=False,
    show_default=True,
    help="Include the backend NetworkPolicy (the operator's --network-policies).",
)
@click.option("-o", "--output", type=click.Choice(["yaml", "json"]), default="yaml", show_default=True)
def command(
    *,
    files: tuple[str, ...],
    runtime_files: tuple[str, ...],
    namespace: str,
    scaler_mode: str,
    gateway_image: str,
    gateway_replicas: int,
    network_policies: bool,
    output: str,
) -> None:
    """Print every object the operator would create for each LLMService in -f, in apply order.

    Objects the operator creates once (the cache PVC, the prewarm Job) are included; owner references are
    left out because they need the LLMService's uid. Exit status 1 names the LLMService and the SPEC reason
    when one cannot be rendered.
    """
    objects = _load(files) + _load(runtime_files)
    services = [item for item in objects if isinstance(item, LLMService)]
    runtimes = [item for item in objects if isinstance(item, InferenceRuntime)]
    if not services:
        raise click.UsageError("no LLMService found in the -f files")
    if not runtimes:
        runtimes = [
            item
            for name in bundle.names("runtimes")
            for item in loading.load_all(bundle.read_text("runtimes", name), source=name)
            if isinstance(item, InferenceRuntime)
        ]
    config = OperatorConfig(
        gateway_image=gateway_image,
        gateway_replicas=gateway_replicas,
        scaler_mode=ScalerMode(scaler_mode),
        network_policies=network_policies,
    )
    manifests = [
        manifest for service in services for manifest in _manifests(service, namespace, runtimes, config)
    ]
    if output == "json":
        click.echo(json.dumps({"apiVersion": "v1", "kind": "List", "items": manifests}, indent=2))
    else:
        click.echo(yaml.safe_dump_all(manifests, sort_keys=False), nl=False)
