"""``hearth install`` and ``hearth uninstall``: add Hearth to, or remove it from, the current kube-context."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import click
import yaml

from hearth.api import scalermodes
from hearth.cmd import operatorflags, params
from hearth.install import installer, manifests
from hearth.kube.client import KubeClient
from hearth.kube.errors import ApiUnreachableError


def _shared(function: Any) -> Any:
    for option in reversed(
        [
            click.option(
                "-n",
                "--namespace",
                type=params.NAMESPACE,
                default=manifests.InstallConfig().namespace,
                show_default=True,
                help="Namespace of the operator.",
            ),
            params.kube_options,
        ]
    ):
        function = option(function)
    return function


def _report(line: str) -> None:
    click.echo(f"  {line}")


async def _with_client(kubeconfig: str | None, context: str | None, work: Any) -> None:
    try:
        client = await KubeClient.connect(kubeconfig=kubeconfig, context=context)
    except Exception as error:  # the kubeconfig loader raises many kinds; all mean "cannot connect"
        raise click.ClickException(f"cannot load Kubernetes credentials: {error}") from None
    try:
        await work(client)
    except installer.InstallError as error:
        raise click.ClickException(str(error)) from None
    except ApiUnreachableError as error:
        raise click.ClickException(f"cannot reach the Kubernetes API server: {error}") from None
    finally:
        await client.close()


@click.command(
    "install", short_help="Install CRDs, runtimes, RBAC and the operator into the current kube-context."
)
@_shared
@click.option(
    "--image",
    type=params.TEXT,
    default=manifests.DEFAULT_IMAGE,
    show_default=True,
    help="The hearth image (operator).",
)
@click.option(
    "--image-pull-policy",
    type=click.Choice(["IfNotPresent", "Always", "Never"]),
    default=manifests.InstallConfig().image_pull_policy,
    show_default=True,
    help="Pull policy of the operator's image.",
)
@click.option(
    "--replicas",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Operator replicas (one leads; the others stand by).",
)
@operatorflags.install_options
@click.option(
    "--metrics-port",
    type=click.IntRange(min=0, max=65535),
    default=0,
    show_default=True,
    help="Serve the operator's /metrics over HTTPS on this port (e.g. 8443) behind Service "
    "hearth-operator-metrics; scrapers need the hearth-metrics-reader ClusterRole. 0: off.",
)
@click.option(
    "--runtimes/--no-runtimes",
    default=True,
    show_default=True,
    help="Also install the bundled InferenceRuntime profiles.",
)
@click.option(
    "--wait",
    "wait_seconds",
    type=click.IntRange(min=0),
    default=None,
    help="Wait this many seconds for the operator to become ready.",
)
@click.option("--dry-run", is_flag=True, help="Print the objects instead of applying them.")
@click.option(
    "-o",
    "--output",
    type=click.Choice(["yaml", "json"]),
    default="yaml",
    show_default=True,
    help="Format of --dry-run.",
)
def install_command(
    *,
    namespace: str,
    kubeconfig: str | None,
    context: str | None,
    image: str,
    gateway_image: str | None,
    image_pull_policy: str,
    scaler_mode: str,
    gateway_replicas: int,
    replicas: int,
    network_policies: bool,
    metrics_port: int,
    runtimes: bool,
    wait_seconds: int | None,
    dry_run: bool,
    output: str,
) -> None:
    """Install Hearth: CRDs (waiting until established), the bundled InferenceRuntimes, the operator's
    namespace, ServiceAccount and least-privilege RBAC, and the operator Deployment. Safe to re-run: every
    object is server-side applied (field manager hearth-install)."""
    mode = scalermodes.ScalerMode(scaler_mode)
    try:
        scalermodes.check_gateway_replicas(mode, replicas=gateway_replicas)
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    config = manifests.InstallConfig(
        namespace=namespace,
        image=image,
        gateway_image=gateway_image,
        image_pull_policy=image_pull_policy,
        scaler=mode,
        gateway_replicas=gateway_replicas,
        replicas=replicas,
        network_policies=network_policies,
        metrics_port=metrics_port,
        runtimes=runtimes,
    )
    if dry_run:
        objects = manifests.objects(config)
        if output == "json":
            click.echo(json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}, indent=2))
        else:
            click.echo(yaml.safe_dump_all(objects, sort_keys=False), nl=False)
        return
    click.echo(f"Installing Hearth (operator image {image}) into namespace {namespace}:")

    async def work(client: KubeClient) -> None:
        await installer.install(client, config, report=_report, wait_seconds=wait_seconds)

    asyncio.run(_with_client(kubeconfig, context, work))
    click.echo(
        "Hearth is installed. Next: kubectl apply -f <your LLMService>.yaml; kubectl get llmservices -A"
    )


@click.command("uninstall", short_help="Remove what 'hearth install' created.")
@_shared
@click.option(
    "--crds", is_flag=True, help="Also delete the CRDs, and with them every LLMService and its workloads."
)
def uninstall_command(*, namespace: str, kubeconfig: str | None, context: str | None, crds: bool) -> None:
    """Remove the operator, its RBAC and namespace, and the bundled runtimes. CRDs (and so every
    LLMService) stay unless --crds is given."""
    config = manifests.InstallConfig(namespace=namespace)
    click.echo(f"Uninstalling Hearth from namespace {namespace}:")

    async def work(client: KubeClient) -> None:
        await installer.uninstall(client, config, report=_report, remove_crds=crds)

    asyncio.run(_with_client(kubeconfig, context, work))
