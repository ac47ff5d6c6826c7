"""``hearth render``: print the objects LLMServices and LLMGateways become, with no cluster."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypeVar

import click
import yaml

from hearth.api import loading, meta, operatorsettings, scalermodes
from hearth.api.llmgateway import LLMGateway
from hearth.api.llmservice import LLMService
from hearth.api.runtime import InferenceRuntime
from hearth.cmd import operatorflags, params
from hearth.common import bundle
from hearth.render import plan, sharedgateway
from hearth.render.config import OperatorConfig
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


_Namespaced = TypeVar("_Namespaced", LLMService, LLMGateway)


def _in_namespace(item: _Namespaced, namespace: str) -> _Namespaced:
    """*item* in *namespace* when its manifest names none (as ``kubectl apply -n`` places it)."""
    if item.metadata.namespace:
        return item
    return item.model_copy(update={"metadata": item.metadata.model_copy(update={"namespace": namespace})})


def _applied(steps: Iterable[plan.Step], *, keda_installed: bool) -> list[dict[str, Any]]:
    return [
        step.manifest
        for step in steps
        # What the operator applies: deletions of leftovers are left out, and so are KEDA's objects
        # when the cluster has no KEDA (the operator skips them too, SPEC §2.6).
        if step.mode is not plan.Mode.DELETE and (keda_installed or step.requires_crd is None)
    ]


def _manifests(
    services: list[LLMService],
    gateways: list[LLMGateway],
    *,
    runtimes: list[InferenceRuntime],
    config: OperatorConfig,
    keda_installed: bool,
) -> list[dict[str, Any]]:
    """Each LLMService's objects, then each LLMGateway's, as the operator reconciles them: a service an
    LLMGateway of its namespace selects is served by it instead of a gateway of its own."""
    manifests: list[dict[str, Any]] = []
    for service in services:
        neighbours = [each for each in services if each.namespace == service.namespace]
        serving = sharedgateway.serving(
            service,
            (each for each in gateways if each.namespace == service.namespace),
            (each.metadata.name for each in neighbours),
        )
        try:
            built = plan.build(service, runtimes, config, gateways=serving)
        except ReconcileError as error:
            raise _refused("LLMService", service.namespace, service.metadata.name, error) from None
        manifests += _applied(built.steps, keda_installed=keda_installed)
    for gateway in gateways:
        neighbours = [each for each in services if each.namespace == gateway.namespace]
        try:
            shared = sharedgateway.build(gateway, neighbours, config)
        except ReconcileError as error:
            raise _refused("LLMGateway", gateway.namespace, gateway.metadata.name, error) from None
        manifests += _applied(shared.steps, keda_installed=keda_installed)
    return manifests


def _refused(kind: str, namespace: str, name: str, error: ReconcileError) -> click.ClickException:
    return click.ClickException(f"{kind} {namespace}/{name}: {error.reason}: {error.message}")


@click.command("render", short_help="Print the objects LLMServices and LLMGateways become, with no cluster.")
@click.option(
    "-f",
    "--filename",
    "files",
    multiple=True,
    required=True,
    help="YAML with LLMServices and LLMGateways (and optionally InferenceRuntimes); '-' reads stdin. "
    "Repeatable.",
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
    help="Namespace of LLMServices and LLMGateways that set none.",
)
@operatorflags.install_option(
    operatorsettings.SCALER,
    flag=operatorsettings.SCALER.flag,
    says="The operator's (auto resolves to metrics-api with --keda, to builtin without)",
)
@click.option(
    "--keda/--no-keda",
    default=None,
    help="Whether the cluster has KEDA: it resolves auto, and without KEDA the ScaledObject is left out "
    "as the operator leaves it out [default: --keda for a mode that needs KEDA, else --no-keda, so a "
    "bare 'hearth render' shows what the operator does on a cluster without KEDA].",
)
@operatorflags.install_option(
    operatorsettings.GATEWAY_IMAGE, flag=operatorsettings.GATEWAY_IMAGE.flag, says="The operator's"
)
@operatorflags.install_option(
    operatorsettings.GATEWAY_REPLICAS, flag=operatorsettings.GATEWAY_REPLICAS.flag, says="The operator's"
)
@operatorflags.install_option(
    operatorsettings.NETWORK_POLICIES, flag=operatorsettings.NETWORK_POLICIES.flag, says="The operator's"
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
    """Print every object the operator would create for each LLMService in -f, in apply order, then each
    LLMGateway's. An LLMService that an LLMGateway of its namespace selects is served by it, without a
    gateway of its own, as in the cluster.

    Objects the operator creates once (the cache PVC, the prewarm Job) are included; owner references are
    left out because they need the object's uid. Exit status 1 names the object and the SPEC reason when
    one cannot be rendered.
    """
    objects = _load(files, flag="'-f' / '--filename'") + _load(runtime_files, flag="'-r' / '--runtime'")
    services = [_in_namespace(item, namespace) for item in objects if isinstance(item, LLMService)]
    gateways = [_in_namespace(item, namespace) for item in objects if isinstance(item, LLMGateway)]
    runtimes = [item for item in objects if isinstance(item, InferenceRuntime)]
    if not services and not gateways:
        raise click.UsageError("no LLMService or LLMGateway found in the -f files")
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
    manifests = _manifests(services, gateways, runtimes=runtimes, config=config, keda_installed=keda)
    if output == "json":
        click.echo(json.dumps({"apiVersion": "v1", "kind": "List", "items": manifests}, indent=2))
    else:
        click.echo(yaml.safe_dump_all(manifests, sort_keys=False), nl=False)
