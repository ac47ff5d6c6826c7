"""``hearth e2e``: drive the 0->1->N->0 loop against the current kube-context and print a verdict table."""

from __future__ import annotations

import asyncio
import functools
import json

import click

from hearth.cmd import params
from hearth.common import durations
from hearth.e2e import runner, scenarios, soak, soakreport
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
    "refuses any pod short of the restricted Pod Security Standard; the HostPath cache scenario (host paths: "
    "the documented exception) relaxes it to privileged while it runs, and only then.",
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
    "--soak",
    "soak_for",
    type=params.GoDurationType(minimum=durations.Duration.parse("1m")),
    help="Run the soak instead of the scenarios: random bursty traffic for this long (e.g. 60m) over pooled "
    "models behind one endpoint with API keys, then a report (lost requests, wakes, swaps, time to first "
    "token, RSS, idle API writes). Exits 1 if a request was lost or RSS grew over 10 %. Builtin mode only.",
)
@click.option(
    "--soak-seed",
    type=click.IntRange(min=0),
    help="The soak traffic's RNG seed (default: a random one, printed), to repeat a run's traffic.",
)
@click.option(
    "--soak-max-requests",
    type=click.IntRange(min=1),
    default=20000,
    show_default=True,
    help="The most requests the soak sends, however long it runs.",
)
@click.option(
    "--soak-report",
    "soak_report",
    type=click.Path(dir_okay=False, writable=True),
    help="Also write the soak's report as JSON to this file.",
)
@click.option(
    "--network-policies-enforced",
    "network_policy_enforcer",
    type=params.TEXT,
    envvar="HEARTH_E2E_NETWORK_POLICIES",
    show_envvar=True,
    help="Name the NetworkPolicy implementation that enforces policies on the cluster (the test bed's "
    "testing/netpol/netpol.sh up prints it): the NetworkPolicy scenario (N1) runs only then, since an API "
    "server alone accepts a policy and enforces nothing.",
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
    soak_for: durations.Duration | None,
    soak_seed: int | None,
    soak_max_requests: int,
    soak_report: str | None,
    delivery_file: str | None,
    network_policy_enforcer: str | None,
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
    with an enforcing NetworkPolicy implementation named, the backend answers its gateway and a metrics
    namespace's pod and refuses other pods; cold requests held on every gateway are answered although
    the operator leader, the kube-apiserver (restarted), the kubelet (restarted), etcd (paused), the new
    backend pod or a gateway replica is struck in the middle of the wake (builtin mode; the control-plane
    faults need --fault-hook); deleting the LLMServices removes everything.

    Needs Hearth installed (hearth install; --gateway-replicas 2 for the two-gateway scenario), a node
    advertising hearth.dev/fake-accelerator, the stub image, and a default StorageClass (for the
    NodeLocalPVC scenario). Exits 1 if any scenario fails."""
    try:
        delivery = runner.DeliveryServers.load(delivery_file) if delivery_file else None
    except (OSError, ValueError) as error:
        raise click.BadParameter(str(error), param_hint="--delivery") from None
    options = runner.Options(
        delivery=delivery,
        network_policy_enforcer=network_policy_enforcer,
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

    if soak_for is not None:
        if only:
            raise click.UsageError("--soak runs only the soak: leave out --scenario")
        plan = soak.Plan.seeded(soak_for.seconds, soak_max_requests, soak_seed)
        _soak(options, plan, soak_report)
        return
    results, mode = asyncio.run(main())
    click.echo("\n" + runner.verdict_table(results, mode=mode))
    if not all(result.passed for result in results):
        raise SystemExit(1)


def _soak(options: runner.Options, plan: soak.Plan, report_path: str | None) -> None:
    """Run the soak in its own e2e namespace; print its report (and write it as JSON); exit 1 if it failed."""

    async def main() -> soakreport.SoakReport | None:
        client = await KubeClient.connect(kubeconfig=options.kubeconfig, context=options.context)
        found: list[soakreport.SoakReport] = []

        async def body(run: runner.Run) -> str:
            found.append(await soak.soak(run, plan, click.echo))
            return "report follows"

        try:
            async with runner.run(client, options, click.echo) as run:
                await run.scenario("soak", functools.partial(body, run))
                return found[0] if found else None
        finally:
            await client.close()

    report = asyncio.run(main())
    if report is None:  # it could not run (the line above says why): no soak is no pass
        raise SystemExit(1)
    click.echo("\n" + report.text())
    if report_path:
        with open(report_path, "w", encoding="utf-8") as out:
            json.dump(report.to_json(), out, indent=2)
            out.write("\n")
        click.echo(f"soak: report written to {report_path}")
    if report.failures():
        raise SystemExit(1)
