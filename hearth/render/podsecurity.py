"""The restricted Pod Security Standard, declared once for every pod Hearth renders (issue 27).

Hearth's own pods (gateways, the drain sidecar, the operator) always meet it. A backend (and its prewarm Job,
which runs the same image) meets it when its InferenceRuntime names the image's non-root user
(``spec.container.runAsUser``): Hearth cannot know the user of an engine image, and the official vLLM images
run as root. Host paths (the Ascend vendor's driver mounts, ``cache.strategy: HostPath``) are the documented
exception: no Pod Security level but privileged admits a hostPath volume.
See https://kubernetes.io/docs/concepts/security/pod-security-standards/#restricted.
"""

from __future__ import annotations

from typing import Any

#: The user of the images Hearth builds (hearth, the stub): distroless' "nonroot" (testing/image's
#: DEFAULT_USER). Pinned in the pod, so runAsNonRoot holds whatever the image declares.
NONROOT_UID = 65532


def pod_context(uid: int = NONROOT_UID, *, fs_group: bool = False) -> dict[str, Any]:
    """A pod securityContext meeting ``restricted``: non-root as *uid*, RuntimeDefault seccomp; with
    *fs_group*, volumes that support it (a cache PVC) are made writable by *uid*'s group."""
    context: dict[str, Any] = {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": uid,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    if fs_group:
        context["fsGroup"] = uid
    return context


def container_context(*, read_only_root: bool = False) -> dict[str, Any]:
    """A container securityContext meeting ``restricted``: no privilege escalation, no capabilities."""
    context: dict[str, Any] = {"allowPrivilegeEscalation": False}
    if read_only_root:
        context["readOnlyRootFilesystem"] = True
    context["capabilities"] = {"drop": ["ALL"]}
    return context


def restrict(pod: dict[str, Any], uid: int | None) -> None:
    """Make a pod that runs an InferenceRuntime's image (a backend, a prewarm Job) meet ``restricted``
    when the runtime names the image's non-root user *uid* (``spec.container.runAsUser``); None: leave
    it as the image says. Containers added later (the drain sidecar) bring their own context."""
    if uid is None:
        return
    pod["securityContext"] = pod_context(uid, fs_group=True)
    for container in pod["containers"]:
        container["securityContext"] = container_context()
