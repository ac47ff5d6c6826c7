"""Holding a committed event stream while the backend wakes: ``: heartbeat`` comments at the heartbeat
interval, byte for byte as SPEC §3.3 (reference clients may match them), and progress comments
(:mod:`hearth.gateway.wake.progress`) at commit, at every phase change, every progress interval and once more
when a backend is ready, until then or until the activation timeout passes or the gateway closes its
holds. What happens next is the caller's."""

from __future__ import annotations

import asyncio
import dataclasses
import enum
from collections.abc import Awaitable, Callable

from aiohttp import web

from hearth.gateway.wake import eta as eta_module
from hearth.gateway.wake import progress

HEARTBEAT = b": heartbeat\n\n"


class Outcome(enum.Enum):
    READY = "ready"
    TIMED_OUT = "timed_out"
    CLOSING = "closing"


@dataclasses.dataclass(frozen=True, slots=True)
class Hold:
    """One held stream's schedule and what it consults."""

    admitted_at: float
    deadline: float
    heartbeat_s: float
    #: 0: no progress comments.
    progress_s: float
    #: Wait for a ready backend until the given loop time; True when one is ready. It may also return
    #: (False) early when the wake's phase changed.
    wait_ready: Callable[[float], Awaitable[bool]]
    is_ready: Callable[[], bool]
    is_closing: Callable[[], bool]
    #: The ETA at this moment of the wake (None when unknown).
    eta: Callable[[], eta_module.Eta | None]
    #: What the wake is doing now.
    phase: Callable[[], progress.Phase]


async def hold(response: web.StreamResponse, plan: Hold) -> Outcome:
    """Write comments into *response* (already committed) until the hold ends; say why it ended."""
    loop = asyncio.get_running_loop()
    next_beat = plan.admitted_at + plan.heartbeat_s
    next_progress: float | None = None
    told = _tellable(plan, told=progress.Phase.REQUESTED)
    if plan.progress_s > 0:
        await _progress(response, plan, now=loop.time(), phase=told)
        next_progress = plan.admitted_at + plan.progress_s
    while not plan.is_ready():
        if plan.is_closing():
            return Outcome.CLOSING
        if loop.time() >= plan.deadline:
            return Outcome.TIMED_OUT
        wake_at = min(plan.deadline, next_beat, next_beat if next_progress is None else next_progress)
        if await plan.wait_ready(wake_at):
            break
        now = loop.time()
        if now >= next_beat:
            await response.write(HEARTBEAT)
            next_beat += plan.heartbeat_s
        if next_progress is None or now >= plan.deadline:
            continue
        phase = _tellable(plan, told=told)
        if now >= next_progress or phase is not told:
            told = phase
            await _progress(response, plan, now=now, phase=phase)
            while next_progress <= now:
                next_progress += plan.progress_s
    if next_progress is not None:
        # The last word before the backend's answer: when the wait ended (a client can time its wake).
        now = loop.time()
        ready = progress.comment(elapsed_s=now - plan.admitted_at, eta=None, phase=progress.Phase.READY)
        await response.write(ready)
    return Outcome.READY


def _tellable(plan: Hold, *, told: progress.Phase) -> progress.Phase:
    """The phase to tell a held stream now. Ready is this gateway's to say, when it forwards: while it
    holds, a status saying ready describes the wake before (right after a scale to 0) or is a moment
    ahead of this gateway's readiness watch, so what was told last stands."""
    phase = plan.phase()
    return told if phase is progress.Phase.READY else phase


async def _progress(response: web.StreamResponse, plan: Hold, *, now: float, phase: progress.Phase) -> None:
    await response.write(progress.comment(elapsed_s=now - plan.admitted_at, eta=plan.eta(), phase=phase))
