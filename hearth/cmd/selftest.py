"""``hearth selftest``: prove that the operator installed in the current kube-context reconciles."""

from __future__ import annotations

import asyncio
import os

import click

from hearth.api import meta
from hearth.cmd import params
from hearth.install import manifests, selftest
from hearth.kube.client import KubeClient
from hearth.kube.errors import ApiError, ApiUnreachableError


@click.command("selftest", short_help="Prove the installed operator reconciles (the Helm chart's test).")
@click.option(
    "-n",
    "--namespace",
    type=params.NAMESPACE,
    default=lambda: os.environ.get("POD_NAMESPACE") or meta.DEFAULT_NAMESPACE,
    show_default="$POD_NAMESPACE, else default",
    help="Namespace of the throwaway LLMService.",
)
@click.option(
    "--name",
    type=params.NAMESPACE,  # an LLMService name is a DNS label (it names Services)
    default="hearth-selftest",
    show_default=True,
    help="Name of the throwaway objects.",
)
@click.option(
    "--image",
    type=params.TEXT,
    default=manifests.DEFAULT_IMAGE,
    show_default=True,
    help="Image of the throwaway runtime (it never runs: no node has the device it asks for).",
)
@click.option(
    "--timeout",
    "timeout_seconds",
    type=click.IntRange(min=1),
    default=120,
    show_default=True,
    help="Longest wait of each step, in seconds.",
)
@params.kube_options
def command(
    *,
    namespace: str,
    name: str,
    image: str,
    timeout_seconds: int,
    kubeconfig: str | None,
    context: str | None,
) -> None:
    """Apply a throwaway InferenceRuntime and LLMService, wait until the operator has made the LLMService's
    gateway Deployment and it is ready, then delete both and wait until the gateway is gone. Exits 1 if the
    operator does not do so within --timeout. Needs create/delete on inferenceruntimes and llmservices, and
    get on deployments."""

    async def main() -> None:
        try:
            client = await KubeClient.connect(kubeconfig=kubeconfig, context=context)
        except Exception as error:  # the kubeconfig loader raises many kinds; all mean "cannot connect"
            raise click.ClickException(f"cannot load Kubernetes credentials: {error}") from None
        try:
            await selftest.run(
                client,
                namespace=namespace,
                name=name,
                image=image,
                within=float(timeout_seconds),
                report=lambda line: click.echo(f"  {line}"),
            )
        except (selftest.SelftestError, ApiError) as error:
            raise click.ClickException(str(error)) from None
        except ApiUnreachableError as error:
            raise click.ClickException(f"cannot reach the Kubernetes API server: {error}") from None
        finally:
            await client.close()

    click.echo(f"Self-test of the Hearth operator (LLMService {namespace}/{name}):")
    asyncio.run(main())
    click.echo("PASS: the operator reconciled a new LLMService and cleaned up after its deletion")
