"""The drain sidecar's process: ``GET /drain`` answers when the engine's drain is over (see
:mod:`hearth.drainer.policy` for when), ``GET /healthz`` answers at once, and ``POST /drain/settled`` ends the
endpoint delay early (before or during the drain).

``/drain/settled`` is the operator's word, after a pool eviction, that every gateway pod has stopped routing
to this pod and has nothing outstanding at it (:mod:`hearth.operator.autoscaling.settle` asks each one): the
endpoint delay exists only to wait for that, so the drain reads the engine at once. A settled drain still ends
only when the engine says it is idle (or its metrics port is gone, or the timeout), so a wrong or hostile word
can shorten the wait for endpoint removal, never cut a request the engine has counted.

The kubelet runs the engine container's preStop ``httpGet /drain`` and holds the engine's termination
until the answer (or until the grace period ends), so the answer's timing *is* the drain. Every call joins
the one drain of this pod: the kubelet delivers hooks at least once and may repeat the call, and a repeat
must not restart the count.

Once it has answered, the drainer ends by itself. A native sidecar is stopped only after the engine's
container has exited, so its own stop (0.3 s measured on the test bed: a signal, the runtime's shutdown and
the single-file binary's cleanup) would otherwise add to every scale-down and pool swap; ended early, it
overlaps the engine's stop instead (issue 32). It also means an engine container restarted in a running pod
(a failed liveness probe also runs the preStop) gets a fresh drainer, restarted by the kubelet, rather than
a finished drain's answer at its next termination. (A sidecar that exits while its pod terminates stays
down for the rest of it, unless the kubelet has KEP-4438's alpha gate on, off by default, which restarts it
while the engine stops: the drain is unaffected, only this saving is lost.)
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import json
import logging
from collections.abc import Awaitable, Callable

import aiohttp
from aiohttp import web

from hearth.api import drain as drain_api
from hearth.common import logs, serve
from hearth.drainer import policy
from hearth.drainer.settings import DrainerSettings

log = logging.getLogger(__name__)

#: Reads the engine once, with a time budget in seconds.
Scraper = Callable[[float], Awaitable[policy.Scrape]]

#: How long an ending drainer waits for answers in flight (a repeated call's, sent at the same time).
SHUTDOWN_TIMEOUT_SECONDS = 1.0
#: Metrics bodies larger than this are not read whole (an engine's exposition is a few hundred KiB at most).
MAX_METRICS_BYTES = 8 * 1024 * 1024


@dataclasses.dataclass(frozen=True, slots=True)
class Result:
    outcome: policy.Outcome
    seconds: float
    #: The last count read (None when none was: refused, unknown, or a zero drainTimeout).
    in_flight: float | None


async def run_drain(
    timing: policy.Timing, scrape: Scraper, *, settled: asyncio.Event | None = None
) -> Result:
    """One drain, on the event loop's clock (so tests run it on fake time); *settled*, once set, ends the
    endpoint delay (the first wait)."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    last: float | None = None
    step = policy.first_step(timing)
    first = True
    while isinstance(step, policy.Wait):
        if first and settled is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(settled.wait(), step.seconds)
        else:
            await asyncio.sleep(step.seconds)
        first = False
        elapsed = loop.time() - started
        reading = await scrape(policy.scrape_budget(timing, elapsed=elapsed))
        if not isinstance(reading, policy.Reading):
            last = reading
        step = policy.next_step(timing, elapsed=loop.time() - started, scrape=reading)
    return Result(outcome=step.outcome, seconds=loop.time() - started, in_flight=last)


class HttpScraper:
    """Reads the engine's Prometheus endpoint over one reused connection pool."""

    def __init__(self, session: aiohttp.ClientSession, settings: DrainerSettings) -> None:
        self._session = session
        self._settings = settings
        self._logged: set[str] = set()

    async def __call__(self, budget: float) -> policy.Scrape:
        if budget <= 0:
            return policy.Reading.UNKNOWN
        try:
            async with self._session.get(
                self._settings.metrics_url, timeout=aiohttp.ClientTimeout(total=budget)
            ) as response:
                if response.status != 200:
                    self._once("status", "engine metrics answered an error", status=response.status)
                    return policy.Reading.UNKNOWN
                body = await response.content.read(MAX_METRICS_BYTES)
        except aiohttp.ClientConnectorError as error:
            if error.os_error.errno == errno.ECONNREFUSED:
                return policy.Reading.REFUSED
            self._once("connect", "engine metrics unreachable", error=str(error))
            return policy.Reading.UNKNOWN
        except (TimeoutError, aiohttp.ClientError) as error:
            # Slow or broken, not gone: an engine busy with the very streams the drain protects can be slow.
            self._once("scrape", "engine metrics not read", error=type(error).__name__)
            return policy.Reading.UNKNOWN
        reading = policy.in_flight(
            body.decode("utf-8", "replace"),
            running=self._settings.running_metric,
            waiting=self._settings.waiting_metric,
        )
        if reading is policy.Reading.UNKNOWN:
            self._once(
                "series",
                "engine metrics lack the running or waiting series (or a value is not a number)",
                running=self._settings.running_metric,
                waiting=self._settings.waiting_metric,
            )
        return reading

    def _once(self, key: str, message: str, **fields: object) -> None:
        # One line per kind of trouble per drain sidecar, not one per poll.
        if key not in self._logged:
            self._logged.add(key)
            log.warning(message, extra=logs.fields(url=self._settings.metrics_url, **fields))


class Drainer:
    """The pod's single drain, started by the first ``/drain`` call and shared by every later one."""

    def __init__(self, timing: policy.Timing, scrape: Scraper) -> None:
        self._timing = timing
        self._scrape = scrape
        self._task: asyncio.Task[Result] | None = None
        #: Set by ``POST /drain/settled``: no gateway routes here any more (kept for a drain not begun yet).
        self.settled = asyncio.Event()
        #: Set once a drain's answer has been sent: the process then ends.
        self.answered = asyncio.Event()

    def start(self) -> asyncio.Task[Result]:
        if self._task is None:
            log.info(
                "drain started",
                extra=logs.fields(timeout_s=self._timing.timeout, settled=self.settled.is_set()),
            )
            self._task = asyncio.create_task(run_drain(self._timing, self._scrape, settled=self.settled))
            self._task.add_done_callback(_log_result)
        return self._task

    async def handle_drain(self, request: web.Request) -> web.Response:
        # shield: a kubelet that gives up on the call (grace period over) must not cancel the drain for a
        # repeated call.
        result = await asyncio.shield(self.start())
        body = {"outcome": result.outcome.value, "seconds": round(result.seconds, 3)}
        if result.in_flight is not None:
            body["inFlight"] = result.in_flight
        response = web.json_response(body, dumps=json.dumps)
        # Sent whole before the process is told to end (its shutdown then waits for nothing of ours).
        await response.prepare(request)
        await response.write_eof()
        self.answered.set()
        return response

    async def handle_settled(self, request: web.Request) -> web.Response:
        if not self.settled.is_set():
            log.info("endpoint removal confirmed by the operator: no more endpoint delay")
            self.settled.set()
        return web.Response(status=204)


def _log_result(task: asyncio.Task[Result]) -> None:
    if task.cancelled():
        return
    error = task.exception()
    if error is not None:
        log.error("drain failed", extra=logs.fields(error=repr(error)))
        return
    result = task.result()
    log.info(
        "drain over",
        extra=logs.fields(outcome=result.outcome.value, seconds=round(result.seconds, 3)),
    )


async def _healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok\n")


def make_app(drainer: Drainer) -> web.Application:
    app = web.Application()
    app.router.add_get(drain_api.DRAIN_PATH, drainer.handle_drain)
    app.router.add_post(drain_api.SETTLED_PATH, drainer.handle_settled)
    app.router.add_get("/healthz", _healthz)
    return app


async def run(settings: DrainerSettings, *, on_started: serve.StartedHook | None = None) -> None:
    """The composition root: serve ``/drain`` until a drain is answered, or until SIGTERM (the pod went
    before its engine was ever stopped)."""
    # Loopback only and one connection at a time; no proxy from the environment may ever apply.
    connector = aiohttp.TCPConnector(limit=1)
    async with aiohttp.ClientSession(connector=connector, trust_env=False) as session:
        drainer = Drainer(settings.timing(), HttpScraper(session, settings))
        await serve.serve(
            make_app(drainer),
            address=settings.listen,
            shutdown_timeout=SHUTDOWN_TIMEOUT_SECONDS,
            name="drainer",
            on_started=on_started,
            stop=drainer.answered,
        )
