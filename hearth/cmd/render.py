"""``hearth render``: print the objects an LLMService becomes, with no cluster."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
import yaml

from hearth.api import loading, meta, scalermodes
from hearth.api.llmservice import LLMService
from hearth.api.runtime import InferenceRuntime
from hearth.cmd import params
from hearth.common import bundle
from hearth.render import plan
from hearth.render.config import DEFAULT_GATEWAY_IMAGE, OperatorConfig
from hearth.render.errors import ReconcileError


def _read(path: str, *, flag: str) -> tuple[str, str]:
    if path == "-":
        return sys.stdin.read(), "<stdin>"
    try:
        return Path(path).read_text(encoding="utf-8"), path
    except OSError as error:
        raise click.BadParameter(f"cannot read {path}: {error.strerror}", param_hint=flag) from None
    except UnicodeDecodeError as error:
        message = f"{path} is not UTF-8 text (byte {error.start})"
        raise click.BadParameter(message, param_hint=flag) from None


def _load(paths: tuple[str, ...], *, flag: str) -> list[loading.ApiObject]:
    objects: list[loading.ApiObject] = []
    for path in paths:
        text, source = _read(path, flag=flag)
        try:
            objects.extend(loading.load_all(text, source=source))
        except loading.LoadError as error:
            raise click.ClickException(str(error)) from None
    return objects


def _manifests(
    service: LLMService,
    *,
    namespace: str,
    runtimes: list[InferenceRuntime],
    config: OperatorConfig,
    keda_installed: bool,
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
    return [
        step.manifest
        for step in built.steps
        # What the operator applies: deletions of leftovers are left out, and so are KEDA's objects
        # when the cluster has no KEDA (the operator skips them too, SPEC §2.6).
        if step.mode is not plan.Mode.DELETE and (keda_installed or step.requires_crd is None)
    ]


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
    type=params.NAMESPACE,
    default=meta.DEFAULT_NAMESPACE,
    show_default=True,
    help="Namespace of LLMServices that set none.",
)
@click.option(
    "--scaler-mode",
    type=click.Choice([mode.value for mode in scalermodes.ScalerMode]),
    default=scalermodes.ScalerMode.AUTO.value,
    show_default=True,
    help="The operator's --scaler-mode (auto: metrics-api with --keda, builtin without, as the operator "
    "resolves it).",
)
@click.option(
    "--keda/--no-keda",
    default=None,
    help="Whether the cluster has KEDA: it resolves auto, and without KEDA the ScaledObject is left out "
    "as the operator leaves it out [default: --keda for a mode that needs KEDA, else --no-keda, so a "
    "bare 'hearth render' shows what the operator does on a cluster without KEDA].",
)
@click.option(
    "--gateway-image",
    type=params.TEXT,
    default=DEFAULT_GATEWAY_IMAGE,
    show_default=True,
    help="Gateway container image (the operator's --gateway-image).",
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
    keda: bool | None,
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
    objects = _load(files, flag="'-f' / '--filename'") + _load(runtime_files, flag="'-r' / '--runtime'")
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
    choice = scalermodes.ScalerMode(scaler_mode)
    if keda is None:
        keda = choice is not scalermodes.ScalerMode.AUTO and scalermodes.traits(choice).needs_keda
    try:
        scalermodes.check_gateway_replicas(choice, replicas=gateway_replicas)
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    config = OperatorConfig(
        gateway_image=gateway_image,
        gateway_replicas=gateway_replicas,
        scaler_mode=choice.resolve(keda_installed=keda),
        network_policies=network_policies,
    )
    manifests = [
        manifest
        for service in services
        for manifest in _manifests(
            service, namespace=namespace, runtimes=runtimes, config=config, keda_installed=keda
        )
    ]
    if output == "json":
        click.echo(json.dumps({"apiVersion": "v1", "kind": "List", "items": manifests}, indent=2))
    else:
        click.echo(yaml.safe_dump_all(manifests, sort_keys=False), nl=False)
