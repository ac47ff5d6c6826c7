"""Why a wake cannot succeed: the reason vocabulary shared by the operator (which detects the failure from
the backend's pods and Deployment, and writes ``status.wakeFailure``), the gateway (which ends held requests
and refuses cold ones with the reason's code) and the e2e checks. No pydantic here: the gateway reads it.

The same table gives the reasons of the LLMService conditions the reference v0.4 added (:class:`Condition`):
``Degraded`` is True with a :class:`Reason` while a wake cannot succeed (or with the reconcile step's
reason, SPEC §1.3, while reconcile fails), and False with a :class:`Health` reason otherwise;
``AutoscalingReady`` carries the reasons of Hearth's ``Scaling`` condition.

Reason names follow Kubernetes' own words where it has them (the kubelet's waiting and terminated reasons,
the Deployment's ProgressDeadlineExceeded), as Noctaya's conditions do; clients get the same reason as an
OpenAI-style error ``code`` in snake case (``image_pull_failed``).
"""

from __future__ import annotations

import enum
import re

#: On every 429 and 503 a gateway answers itself: why, as the error code (``queue_full``,
#: ``image_pull_failed``, ``backend_not_ready``, ...), so a client or a proxy can tell a model that is waking
#: or cannot start (503) from a saturated one (429) without reading the body.
REFUSAL_HEADER = "X-Hearth-Refusal"


class Reason(enum.StrEnum):
    """Why a backend cannot come up. Each one ends held requests at once and refuses cold ones until
    ``retryAt`` (or until the backend's pod template changes, e.g. a fixed image)."""

    #: The image cannot be pulled (ErrImagePull, ImagePullBackOff, InvalidImageName, ErrImageNeverPull).
    IMAGE_PULL_FAILED = "ImagePullFailed"
    #: The engine was killed for exceeding its memory limit.
    OOM_KILLED = "OOMKilled"
    #: The engine exits as it starts, again and again.
    CRASH_LOOP_BACK_OFF = "CrashLoopBackOff"
    #: The container cannot be created as declared (a missing Secret or ConfigMap key, a bad command).
    CONTAINER_CONFIG_ERROR = "ContainerConfigError"
    #: No node can take the pod, for longer than the operator waits (the pool or quota is not the cause).
    SCHEDULING_DELAYED = "SchedulingDelayed"
    #: The Deployment reports no progress within its progressDeadlineSeconds.
    PROGRESS_DEADLINE_EXCEEDED = "ProgressDeadlineExceeded"
    #: The pod's ``hearth fetch`` of its model failed (a wrong digest, wrong credentials, a missing object,
    #: a full volume): the message is the fetch's own error line.
    MODEL_FETCH_FAILED = "ModelFetchFailed"

    @property
    def code(self) -> str:
        """The reason as clients see it: an OpenAI-style error code (``image_pull_failed``)."""
        return client_code(self.value)


def client_code(reason: str) -> str:
    """*reason* (CamelCase, possibly one this version does not know) as a snake_case error code."""
    words = re.findall(r"[A-Z]+(?=[A-Z][a-z]|$)|[A-Z]?[a-z]+|[0-9]+", reason)
    return "_".join(word.lower() for word in words) or "wake_failed"


class Condition(enum.StrEnum):
    """The condition types of an LLMService's status (each with observedGeneration)."""

    READY = "Ready"
    RUNTIME_RESOLVED = "RuntimeResolved"
    MODEL_RESOLVED = "ModelResolved"
    #: Hearth's: who scales the backend, and whether it can.
    SCALING = "Scaling"
    #: Present only while the operator lacks RBAC for part of the service (issue 19).
    PERMISSIONS = "Permissions"
    #: The reference v0.4's: True while the backend cannot come up or reconcile fails.
    DEGRADED = "Degraded"
    #: The reference v0.4's: whether the backend's autoscaling is in place (Scaling's status and reason).
    AUTOSCALING_READY = "AutoscalingReady"


class Health(enum.StrEnum):
    """Why ``Degraded`` is False (the reference v0.4's words), by the phase the backend is in."""

    #: A backend replica is ready.
    HEALTHY = "Healthy"
    #: At zero replicas, with no failed wake to report.
    INACTIVE = "Inactive"
    #: Starting or loading, with no failure seen so far.
    PROGRESSING = "Progressing"
