"""The scenarios of issue 31 for ``hearth e2e``: a scheduled warm window and a fallback while cold.

In :data:`hearth.e2e.scenarios.SCENARIOS` before scenario 14. Both passed on the test bed in builtin,
metrics-api and external-push (session 10); W1 is promised in builtin and metrics-api (KEDA's cron trigger
differs from the operator's early wake, and is the same in both KEDA modes), W2 in builtin mode only (the
fallback is the route's decision, whoever scales).

- W1: a window that opens in the near future makes the model Ready by the window's start (within one wake
  estimate) without any request, shows in ``status.warmWindow``, and after the window and the idle period
  (scaleDownStabilization) the backend returns to zero. Builtin mode: the operator wakes it ahead of the
  start; KEDA modes: KEDA's cron trigger wakes it at the start, so there the check is "Ready within one wake
  estimate after the start".
- W2: a cold model with a fallback to a warm one answers its first request from the fallback in under a
  second while its own wake proceeds; once it is Ready, the next request is answered by itself; the
  ``X-Hearth-Served-By`` header, the answers' ``model`` and the gateway's fallback metric say which.
"""

from __future__ import annotations

import datetime
import time
from typing import Any

import aiohttp

from hearth.api import scalermodes
from hearth.e2e import fixtures, promtext, steps
from hearth.e2e.runner import Run, ScenarioFailedError
from hearth.kube import resources
from hearth.render import names

WINDOW_SERVICE = "warm-window"
#: The window opens at the first whole minute at least this far ahead (so the model is seen at zero first
#: in KEDA modes, and its early wake is seen in builtin mode), and stays open this many minutes.
WINDOW_AHEAD_SECONDS = 90
WINDOW_MINUTES = 1
#: What one wake of the stub may take on the test bed (the scenarios' cold starts take 5-15 s).
WAKE_ESTIMATE_SECONDS = 30
#: How late after the start "ready by the start" may be observed (the runner looks once a second).
READY_SLACK_SECONDS = 5
FALLBACK_SMALL = "fb-small"
FALLBACK_BIG = "fb-big"
FALLBACK_BUDGET_SECONDS = 1.0
CHAT = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}


def _cron_at(moment: datetime.datetime) -> str:
    return f"{moment.minute} {moment.hour} * * *"


async def _warm_window(run: Run) -> dict[str, Any]:
    service = await run.client.get(resources.LLMSERVICE, WINDOW_SERVICE, run.namespace)
    return dict((service or {}).get("status", {}).get("warmWindow") or {})


async def window_opens_ready_and_closes_to_zero(run: Run) -> str:
    if (await run.traits("cold")).mode is scalermodes.ScalerMode.EXTERNAL_PUSH:
        # The window is KEDA's cron trigger beside the demand trigger, rendered alike in both KEDA modes:
        # proven in metrics-api, and CI runs it once (about 4.5 minutes).
        run.not_promised("a warm window is KEDA's cron trigger in both KEDA modes, proven in metrics-api")
    manifest = fixtures.service(WINDOW_SERVICE, run.namespace, run.runtime)
    await run.client.apply(manifest)
    url = await run.gateway_url(WINDOW_SERVICE)
    traits = await run.traits(WINDOW_SERVICE)
    backend = names.backend(WINDOW_SERVICE)

    async def at_zero() -> bool:
        return (await run.replicas(backend))[0] == 0

    # One wake first, as a model in use has: the operator leads a window by its measured wake time (a
    # model that never woke is led by its whole activationTimeout, which would open this window at once).
    await run.wait(f"{WINDOW_SERVICE} at 0", at_zero)
    events, _ = await run.stream(url, 1)
    if events[-1] != b"data: [DONE]":
        raise ScenarioFailedError(f"the first wake was not answered: {events[-2:]}")
    await run.wait(f"{WINDOW_SERVICE} at 0 after its first wake", at_zero)

    now = datetime.datetime.now(tz=datetime.UTC)
    start = (now + datetime.timedelta(seconds=WINDOW_AHEAD_SECONDS + 59)).replace(second=0, microsecond=0)
    end = start + datetime.timedelta(minutes=WINDOW_MINUTES)
    manifest["spec"]["scaling"]["schedules"] = [
        {"name": "e2e", "start": _cron_at(start), "end": _cron_at(end), "timezone": "UTC", "minReplicas": 1}
    ]
    await run.client.apply(manifest)
    await run.wait(f"{WINDOW_SERVICE} at 0 before its window", at_zero)
    ahead = traits.scales is scalermodes.Driver.OPERATOR
    if ahead:
        window = await run.wait(
            "status.warmWindow (Warming) without any request",
            lambda: _warm_window(run),
            within=WINDOW_AHEAD_SECONDS + 90,
        )
        if window.get("state") not in ("Warming", "Open"):
            raise ScenarioFailedError(f"status.warmWindow {window}")

    async def ready() -> bool:
        return (await run.replicas(backend))[1] >= 1

    await run.wait(
        f"{WINDOW_SERVICE} Ready", ready, within=WINDOW_AHEAD_SECONDS + 60 + WAKE_ESTIMATE_SECONDS * 2
    )
    ready_at = datetime.datetime.now(tz=datetime.UTC)
    late = (ready_at - start).total_seconds()
    # Builtin: ready by the start (woken ahead; a few seconds of observation slack); KEDA: woken at the
    # start, so ready within one wake estimate after it.
    allowed = READY_SLACK_SECONDS if ahead else WAKE_ESTIMATE_SECONDS
    if late > allowed:
        raise ScenarioFailedError(f"Ready {late:.0f}s after the window's start (allowed {allowed}s)")
    remaining = (end - datetime.datetime.now(tz=datetime.UTC)).total_seconds()
    if (await run.replicas(backend))[0] < 1:
        raise ScenarioFailedError("scaled down inside the window")

    async def closed_and_zero() -> bool:
        return not await _warm_window(run) and await at_zero()

    await run.wait(
        f"{WINDOW_SERVICE} back at 0 after the window and the idle period",
        closed_and_zero,
        within=max(remaining, 0) + fixtures.STABILIZATION_SECONDS + 90,
    )
    zero_at = datetime.datetime.now(tz=datetime.UTC)
    after_end = (zero_at - end).total_seconds()
    if after_end < fixtures.STABILIZATION_SECONDS - 2:
        raise ScenarioFailedError(f"back at 0 {after_end:.0f}s after the window: before the idle period")
    service = await run.client.get(resources.LLMSERVICE, WINDOW_SERVICE, run.namespace) or {}
    scheduled = float(service.get("status", {}).get("accounting", {}).get("scheduledAcceleratorHours") or 0)
    return (
        f"window {start:%H:%M}-{end:%H:%M} UTC: Ready {abs(late):.0f}s {'after' if late > 0 else 'before'} "
        "its start without a request "
        f"({'woken ahead by the operator' if ahead else 'woken at the start by KEDA'}); back at 0 "
        f"{after_end:.0f}s after its end (stabilization {fixtures.STABILIZATION_SECONDS}s); "
        f"scheduled accelerator-hours {scheduled}"
    )


async def _chat(run: Run, url: str, model: str) -> tuple[float, int, dict[str, str], dict[str, Any]]:
    started = time.monotonic()
    async with run.http.post(
        f"{url}/v1/chat/completions", json={**CHAT, "model": model}, timeout=aiohttp.ClientTimeout(total=300)
    ) as response:
        body = await response.json(content_type=None)
        return time.monotonic() - started, response.status, dict(response.headers), body


async def cold_model_answered_by_its_fallback_then_itself(run: Run) -> str:
    # Passed in every mode on the test bed (session 10): the fallback is the route's decision.
    await run.only_in_builtin("the fallback")
    small = fixtures.service(FALLBACK_SMALL, run.namespace, run.runtime)
    small["spec"]["scaling"]["min"] = 1
    big = fixtures.service(FALLBACK_BIG, run.namespace, run.runtime)
    big["spec"]["endpoint"]["fallback"] = {"service": FALLBACK_SMALL, "whileCold": "Immediately"}
    await run.client.apply(small)
    await run.client.apply(big)
    small_backend, big_backend = names.backend(FALLBACK_SMALL), names.backend(FALLBACK_BIG)

    async def small_ready() -> bool:
        return (await run.replicas(small_backend))[1] >= 1

    await run.wait(f"{FALLBACK_SMALL} Ready (min 1)", small_ready)
    # Created at 1 replica, it serves until its pod has left every gateway's view (and then wakes anew).
    await steps.cold_everywhere(run, FALLBACK_BIG)
    url = await run.gateway_url(FALLBACK_BIG)
    before = await run.gateway_metrics(FALLBACK_BIG)
    seconds, status, headers, body = await _chat(run, url, FALLBACK_BIG)
    if status != 200:
        raise ScenarioFailedError(f"first request: {status} {body}")
    served_by = headers.get("X-Hearth-Served-By")
    if served_by != FALLBACK_SMALL or body.get("model") != FALLBACK_SMALL:
        raise ScenarioFailedError(
            f"first request served by {served_by!r} (model {body.get('model')!r}), not {FALLBACK_SMALL}"
        )
    if seconds >= FALLBACK_BUDGET_SECONDS:
        raise ScenarioFailedError(
            f"the fallback answered in {seconds:.2f}s (budget {FALLBACK_BUDGET_SECONDS}s)"
        )

    async def big_ready() -> bool:
        return (await run.replicas(big_backend))[1] >= 1

    woke = time.monotonic()
    await run.wait(f"{FALLBACK_BIG}'s own wake (no request since the first)", big_ready)
    wake_seconds = time.monotonic() - woke
    _, status, headers, body = await _chat(run, url, FALLBACK_BIG)
    if status != 200 or headers.get("X-Hearth-Served-By") != FALLBACK_BIG or "X-Hearth-Fallback" in headers:
        raise ScenarioFailedError(f"after Ready: {status}, served by {headers.get('X-Hearth-Served-By')!r}")
    if body.get("model") != FALLBACK_BIG:
        raise ScenarioFailedError(f"after Ready the answer's model is {body.get('model')!r}")
    after = await run.gateway_metrics(FALLBACK_BIG)
    counted = promtext.total_delta(
        before, after, "hearth_gateway_fallback_answers_total", reason="cold", result="ok"
    )
    if counted != 1:
        raise ScenarioFailedError(f"hearth_gateway_fallback_answers_total{{reason=cold}} grew by {counted}")
    return (
        f"first request answered by {FALLBACK_SMALL} in {seconds * 1000:.0f} ms while {FALLBACK_BIG} woke "
        f"(Ready {wake_seconds:.1f}s later, no request meanwhile); the next answered by {FALLBACK_BIG}; "
        "fallback metric +1 (reason cold)"
    )


SCENARIOS = [
    ("W1 warm window: Ready by its start, 0 after", window_opens_ready_and_closes_to_zero),
    ("W2 cold model answered by its fallback, then itself", cold_model_answered_by_its_fallback_then_itself),
]
