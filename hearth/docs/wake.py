"""The wake reference: the phases a held client is told (:mod:`hearth.api.wakephases`), the boundaries the
operator stamps into ``status.currentWake`` (:class:`hearth.api.telemetry.Wake`) and a timeline of one wake
drawn from both."""

from __future__ import annotations

from hearth.api import telemetry, wakephases
from hearth.api.wakephases import Phase
from hearth.docs import markdown as md

#: Each timed phase runs between two boundaries of status.currentWake (fields of telemetry.Wake).
BOUNDARIES: dict[Phase, tuple[str, str]] = {
    Phase.SCHEDULING: ("started_at", "bound_at"),
    Phase.CREATING: ("bound_at", "containers_started_at"),
    Phase.LOADING: ("containers_started_at", "ready_at"),
}
#: What happens at each boundary, as the timeline shows it.
_EVENTS = {
    "started_at": "the backend Deployment leaves zero replicas",
    "bound_at": "a backend pod is bound to a node",
    "containers_started_at": "every container of that pod runs",
    "ready_at": "the pod is Ready (the engine loaded the model)",
}


def _camel(field: str) -> str:
    head, *rest = field.split("_")
    return head + "".join(word.capitalize() for word in rest)


def timeline() -> str:
    """A Mermaid sequence diagram of one wake, phase by phase."""
    lines = [
        "sequenceDiagram",
        "    autonumber",
        "    participant C as Client",
        "    participant G as Gateway",
        "    participant K as Kubernetes",
        "    participant O as Operator",
        "    C->>G: request for a model at zero",
        "    G-->>C: stream: 200 at once, heartbeats",
        "    G->>K: demand (builtin mode: scale 0 to 1)",
        f"    Note over C,G: phase {Phase.REQUESTED}",
    ]
    for phase in wakephases.TIMED:
        start = BOUNDARIES[phase][0]
        lines.append(f"    K->>O: {_EVENTS[start]} ({_camel(start)})")
        told = f"{phase}"
        if phase is Phase.SCHEDULING:
            told += f" or {Phase.WAITING_FOR_CAPACITY}"
        lines.append(f"    O-->>G: status.currentWake: phase {told}")
        lines.append(f"    G-->>C: : hearth progress comment, phase {told}")
    last = BOUNDARIES[wakephases.TIMED[-1]][1]
    lines += [
        f"    K->>G: {_EVENTS[last]} ({_camel(last)}): endpoint ready",
        f"    G-->>C: : hearth progress comment, phase {Phase.READY}",
        "    G->>K: the held request, to the ready pod",
        "    K-->>C: first token (first_byte, the gateway's last phase)",
    ]
    return "```mermaid\n" + "\n".join(lines) + "\n```\n"


def page() -> str:
    fields = telemetry.Wake.model_fields
    missing = [name for pair in BOUNDARIES.values() for name in pair if name not in fields]
    if missing:  # a boundary renamed in the API must be renamed here too
        raise ValueError(f"hearth.docs.wake.BOUNDARIES names no field of telemetry.Wake: {missing}")
    comments = md.attribute_comments(wakephases.Phase)
    phases = md.table(
        ["phase", "told when", "timed by the operator"],
        [
            [
                md.code(phase.value),
                md.text(comments.get(phase.name, "")),
                (
                    f"`{_camel(BOUNDARIES[phase][0])}` → `{_camel(BOUNDARIES[phase][1])}` "
                    f"(`status.lastWake.{phase}Seconds`)"
                    if phase in BOUNDARIES
                    else ""
                ),
            ]
            for phase in Phase
        ],
    )
    return md.page(
        "Wake phases",
        "hearth.api.wakephases and hearth.api.telemetry",
        "A wake is the backend leaving zero replicas until its first pod is Ready. The operator stamps its "
        "boundaries into `status.currentWake` (then `status.lastWake`), and every gateway holding a request "
        'for the model tells the client the phase in its progress comments (`: hearth {"v":1,...}`, see '
        "[the gateway](../concepts/gateway.md)). Phases before the pod is bound may alternate (a pool "
        "grants a device, the scheduler finds no room); after that they only move forward.",
        "## Timeline\n\n" + timeline(),
        "## Phases\n\n" + phases,
    )
