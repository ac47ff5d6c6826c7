"""Scheduled warm windows (``spec.scaling.schedules``, issue 31): times a model is kept warm whether or not
requests come, and the status that shows the window in force (``status.warmWindow``).

The shape follows KEDA's cron scaler (``start``/``end`` five-field cron expressions, an IANA ``timezone``,
the replicas to keep), so a window means the same in builtin mode, where the operator's autoscaler keeps
it, and in the KEDA modes, where it becomes a cron trigger of the ScaledObject.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import pydantic

from hearth.api.base import ApiModel, Int32
from hearth.api.telemetry import DateTime
from hearth.common import cron

#: Windows per LLMService: a working week with a few exceptions; each is one cron trigger under KEDA.
MAX_SCHEDULES = 16
#: Five whitespace-separated fields of digits, names, ``* , - /``: the API server refuses anything else,
#: naming the field; value ranges are checked by the operator (reconcile fails naming the field).
CRON_PATTERN = r"^\s*[0-9A-Za-z*,/-]+(\s+[0-9A-Za-z*,/-]+){4}\s*$"
#: An IANA zone name's shape (``UTC``, ``Europe/Berlin``, ``America/Argentina/Buenos_Aires``, ``Etc/GMT+5``).
TIMEZONE_PATTERN = r"^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$"
NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"

WindowState = Literal["Warming", "Open"]
#: A window's replicas are being brought up ahead of its start (by the model's measured wake time).
WARMING: WindowState = "Warming"
#: Inside the window.
OPEN: WindowState = "Open"

CronText = Annotated[str, pydantic.Field(max_length=128, pattern=CRON_PATTERN)]


def _check_cron(value: str) -> str:
    cron.Cron.parse(value)  # CronError is a ValueError naming the cron field at fault
    return value


def _check_zone(value: str) -> str:
    cron.zone(value)
    return value


class WarmWindow(ApiModel):
    """A recurring time range in which at least ``minReplicas`` backend replicas are kept warm."""

    model_config = pydantic.ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "self.start != self.end",
                    "message": "start and end must differ (a window that opens and closes at once)",
                    "fieldPath": ".end",
                    "reason": "FieldValueInvalid",
                }
            ]
        }
    )

    name: Annotated[str, pydantic.Field(min_length=1, max_length=63, pattern=NAME_PATTERN)]
    """Names the window in status.warmWindow, Events, metrics and the kubectl Window column."""
    start: Annotated[CronText, pydantic.AfterValidator(_check_cron)]
    """When the window opens: a five-field cron expression (minute hour day-of-month month day-of-week,
    e.g. "0 9 * * 1-5" for 09:00 on weekdays) in timezone. The operator starts the wake earlier, by the
    model's measured wake time (status.wakeHistory), so it is ready at this time (builtin mode)."""
    end: Annotated[CronText, pydantic.AfterValidator(_check_cron)]
    """When the window closes (e.g. "0 18 * * 1-5"); after it the normal idle rule applies (scaling.min,
    and zero after scaleDownStabilization without demand)."""
    timezone: Annotated[str, pydantic.Field(max_length=64, pattern=TIMEZONE_PATTERN)] = "UTC"
    """IANA time zone of start and end (e.g. Europe/Berlin); daylight-saving changes follow the zone."""
    min_replicas: Int32 = pydantic.Field(default=1, ge=1)
    """Backend replicas kept warm inside the window (at most scaling.max); demand may add more."""

    @pydantic.field_validator("timezone")
    @classmethod
    def _valid_zone(cls, value: str) -> str:
        return _check_zone(value)

    @pydantic.model_validator(mode="after")
    def _distinct(self) -> WarmWindow:
        if self.start.split() == self.end.split():
            raise ValueError("start and end must differ (a window that opens and closes at once)")
        return self


def schedules_field() -> Any:
    """``scaling.schedules``: a list keyed by name (server-side apply merges windows by name)."""
    return pydantic.Field(
        default=None,
        max_length=MAX_SCHEDULES,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )


#: CEL rules on ``scaling`` that involve both a window and another scaling field.
SCALING_RULES: list[dict[str, Any]] = [
    {
        "rule": "!has(self.schedules) || self.schedules.all(w, !has(w.minReplicas) || w.minReplicas <= "
        "(has(self.max) ? self.max : 1))",
        "message": "schedules[].minReplicas must not exceed max",
        "fieldPath": ".schedules",
        "reason": "FieldValueInvalid",
    }
]


class WarmWindowStatus(ApiModel):
    """The warm window in force (or about to be: its wake has started)."""

    name: str
    """The window's name (spec.scaling.schedules[].name)."""
    state: WindowState
    """Warming: its wake was started ahead of its start; Open: inside the window."""
    opens_at: DateTime
    """The start of this occurrence of the window."""
    closes_at: DateTime | None = None
    """Its end (absent when no end is due within a year)."""
    min_replicas: Int32
    """Replicas kept warm until closesAt."""
    lead_seconds: float | None = None
    """How early the wake starts: the model's measured wake time plus a margin (the default when it has
    never woken)."""
