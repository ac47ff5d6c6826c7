"""What a wake from zero is doing, in the words every role shares (no pydantic here: the gateway reads it).

The operator times the phases between the boundaries it writes into ``status.currentWake``
(:data:`TIMED`); a gateway tells held clients the phase in its progress comments (README, "Progress
comments: a stable contract, version 1"), a clients' contract whose values never change meaning; the e2e
reads those comments as a client would, in :data:`RANK` order.
"""

from __future__ import annotations

import enum


class Phase(enum.StrEnum):
    """What a wake is doing, as a held client is told (the operator's status.currentWake, by boundary)."""

    #: The gateway cannot read its LLMService's status.
    UNKNOWN = "unknown"
    #: Demand is raised; the backend has not left zero replicas yet (the scaler is about to act).
    REQUESTED = "requested"
    #: The backend pod cannot be placed: no node has the accelerators free (or the quota is spent).
    WAITING_FOR_CAPACITY = "waiting_for_capacity"
    #: The backend pod exists and waits for the scheduler.
    SCHEDULING = "scheduling"
    #: Bound to a node: pulling the image, creating the containers.
    CREATING = "creating"
    #: The engine runs and loads the model, until its readiness probe passes.
    LOADING = "loading"
    #: A backend is ready; the request goes to it now.
    READY = "ready"
    #: The backend cannot come up (an image that cannot be pulled, a crash loop, ...): the stream ends
    #: with an error event naming the reason.
    FAILED = "failed"


#: The phases of a wake under way: the backend has left zero replicas.
STARTED = frozenset(
    {Phase.WAITING_FOR_CAPACITY, Phase.SCHEDULING, Phase.CREATING, Phase.LOADING, Phase.READY}
)
#: The phases the operator times, in order (``status.lastWake.<phase>Seconds``,
#: ``hearth_wake_phase_seconds{phase}``): the backend leaving zero -> a pod bound -> its containers
#: running -> Ready.
TIMED = (Phase.SCHEDULING, Phase.CREATING, Phase.LOADING)
#: The order in which a wake passes the phases a client is told. The three before the pod is bound share a
#: rank: they may alternate (a pool grants a device: waiting -> requested; the scheduler finds no room:
#: scheduling -> waiting).
RANK = {
    Phase.REQUESTED: 0,
    Phase.WAITING_FOR_CAPACITY: 0,
    Phase.SCHEDULING: 0,
    Phase.CREATING: 1,
    Phase.LOADING: 2,
    Phase.READY: 3,
}
