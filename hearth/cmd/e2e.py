"""``hearth e2e``: drive the 0->1->N->0 loop against the current kube-context and print a verdict table."""

from __future__ import annotations

import asyncio
import functools

import click

from hearth.cmd import params
from hearth.e2e import runner, scenarios
from hearth.kube.client import KubeClient


@click.command("e2e", short_help="Drive the 0->1->N->0 loop against the current kube-context.")
@click.option(
    "--stub-image",
    type=params.TEXT,
    default="hearth.dev/vllm-stub:e2e",
    show_default=True,
    help="Image of the CPU stub the test runtime serves (must be pullable or preloaded).",
)
@click.option(
    "--engine-image",
    type=params.TEXT,
    envvar="HEARTH_E2E_ENGINE_IMAGE",
    show_envvar=True,
    help="Image of llama.cpp's llama-server for the real-engine scenarios (testing/llamacpp/build-image.sh).",
)
@click.option(
    "--gguf",
    type=click.Path(exists=True, dir_okay=False),
    envvar="HEARTH_E2E_GGUF",
    show_envvar=True,
    help="The GGUF model the real-engine scenarios serve (testing/llamacpp/make_gguf.py writes one).",
)
@click.option(
    "--access",
    type=click.Choice(["auto", "service", "port-forward"]),
    default="auto",
    show_default=True,
    help="How to reach gateways: their Service ClusterIP, or kubectl port-forward (auto: try the Service).",
)
@click.option(
    "--timeout",
    "timeout_seconds",
    type=click.IntRange(min=10),
    default=180,
    show_default=True,
    help="Longest wait of any single step, in seconds.",
)
@click.option("--keep", is_flag=True, help="Leave the namespace and runtimes behind for inspection.")
@click.option(
    "--no-skip",
    is_flag=True,
    help="Fail scenarios the cluster cannot run instead of skipping them (e.g. with one gateway replica).",
)
@click.option(
    "--pod-security-restricted",
    is_flag=True,
    help="Label the run's namespace pod-security.kubernetes.io/enforce=restricted, so the API server "
    "refuses any pod short of the restricted Pod Security Standard; the HostPath cache scenario is then "
    "not promised (skipped even with --no-skip: host paths are the documented exception).",
)
@click.option(
    "--scenario",
    "only",
    type=params.TEXT,
    multiple=True,
    help="Run only the scenarios whose name contains this text (repeatable; e.g. --scenario pool).",
)
@click.option(
    "--delivery",
    "delivery_file",
    type=click.Path(exists=True, dir_okay=False),
    envvar="HEARTH_E2E_DELIVERY",
    show_envvar=True,
    help="The JSON file testing/delivery/serve.sh writes: the registry and S3 store the delivery scenarios "
    "push to (at an address pods reach), their credentials and the ORAS CLI.",
)
@click.option(
    "--fault-hook",
    type=params.COMMAND,
    envvar="HEARTH_E2E_FAULT_HOOK",
    show_envvar=True,
    help="The test bed's fault command (testing/cluster/cluster.sh fault): given 'restart kube-apiserver', "
    "'restart kubelet' or 'pause etcd SECONDS', it breaks that component and returns once the cluster is "
    "healthy. Without it the scenarios that restart the control plane (X2-X4) are not promised.",
)
@params.kube_options
def command(
    *,
    only: tuple[str, ...],
    delivery_file: str | None,
    fault_hook: tuple[str, ...] | None,
    stub_image: str,
    engine_image: str | None,
    gguf: str | None,
    access: str,
    timeout_seconds: int,
    keep: bool,
    no_skip: bool,
    pod_security_restricted: bool,
    kubeconfig: str | None,
    context: str | None,
) -> None:
    """Run the end-to-end scenarios: an idle backend reaches 0; a cold streaming request is held with
    heartbeats and answered (with the wake's timeline); load spread over the gateway replicas scales 1->2;
    the backend returns to 0, never inside the stabilization window; cold requests on two gateway replicas
    cause one scale-up and their demand is summed; deleting the leading operator pod under load leaves
    the scale untouched and the new leader takes over; a stream survives the deletion of its backend pod;
    a rolling restart of the gateway under traffic fails no request; killing one of two gateway replicas
    still answers at least 90%; API keys gate the endpoint and reject mode answers 503 at once; the
    operator's metrics need a reader's token; a NodeLocalPVC and a HostPath cache are prewarmed by their
    Job from a stand-in hub in the run's namespace and the backend starts from them; three models behind one
    LLMGateway are listed cold, streamed at once through one URL, a key limited to one model sees only it,
    and a deleted model's route goes within seconds (and, in builtin mode, the same before a pool); an
    AcceleratorPool of 2 devices and three models swaps the least recently used idle model out for a cold
    one, never one with a stream in flight, a pinned one or one of higher priority, and bounds swaps under
    alternating traffic; a real engine (llama.cpp's llama-server, given --engine-image and --gguf) is
    prewarmed, woken from zero, answers the openai client, passes its own errors through and scales 1->2->0;
    a warm window opening soon makes a model Ready by its start without a request, and it returns to 0
    after the window; a cold model with a fallback is answered by the fallback at once, then by itself;
    cold requests held on every gateway are answered although the operator leader, the kube-apiserver
    (restarted), the kubelet (restarted), etcd (paused), the new backend pod or a gateway replica is
    struck in the middle of the wake (builtin mode; the control-plane faults need --fault-hook); deleting
    the LLMServices removes everything.

    Needs Hearth installed (hearth install; --gateway-replicas 2 for the two-gateway scenario), a node
    advertising hearth.dev/fake-accelerator, the stub image, and a default StorageClass (for the
    NodeLocalPVC scenario). Exits 1 if any scenario fails."""
    try:
        delivery = runner.DeliveryServers.load(delivery_file) if delivery_file else None
    except (OSError, ValueError) as error:
        raise click.BadParameter(str(error), param_hint="--delivery") from None
    options = runner.Options(
        delivery=delivery,
        fault_hook=fault_hook or (),
        stub_image=stub_image,
        engine_image=engine_image,
        gguf=gguf,
        access=access,
        timeout=float(timeout_seconds),
        keep=keep,
        no_skip=no_skip,
        pod_security_restricted=pod_security_restricted,
        kubeconfig=kubeconfig,
        context=context,
    )

    async def main() -> tuple[list[runner.Result], str | None]:
        client = await KubeClient.connect(kubeconfig=kubeconfig, context=context)
        try:
            async with runner.run(client, options, click.echo) as run:
                for name, body in scenarios.SCENARIOS:
                    if only and not any(text in name for text in only):
                        continue
                    await run.scenario(name, functools.partial(body, run))
                return run.results, run.mode
        finally:
            await client.close()

    results, mode = asyncio.run(main())
    click.echo("\n" + runner.verdict_table(results, mode=mode))
    if not all(result.passed for result in results):
        raise SystemExit(1)
