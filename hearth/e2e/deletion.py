"""The last scenario of ``hearth e2e`` (14): deleting every LLMService of the run removes all their
children."""

from __future__ import annotations

from hearth.e2e.runner import Run
from hearth.kube import resources


async def deletion_removes_everything(run: Run) -> str:
    # Every LLMService the run made (the other scenario modules' too), since their children are all counted.
    services, _ = await run.client.list(resources.LLMSERVICE, namespace=run.namespace)
    for service in services:
        await run.client.delete(resources.LLMSERVICE, service["metadata"]["name"], run.namespace)

    async def gone() -> bool:
        kinds = (
            resources.DEPLOYMENT,
            resources.SERVICE,
            resources.SERVICE_ACCOUNT,
            resources.ROLE,
            resources.POD_DISRUPTION_BUDGET,
            resources.NETWORK_POLICY,
        )
        for rt in kinds:
            items, _ = await run.client.list(
                rt, namespace=run.namespace, label_selector="app.kubernetes.io/managed-by=hearth"
            )
            if items:
                return False
        return True

    await run.wait("every child garbage-collected", gone, within=120)
    return (
        f"{len(services)} LLMService(s) deleted: every Deployment, Service, ServiceAccount, Role, "
        "PodDisruptionBudget and NetworkPolicy is gone"
    )


SCENARIOS = [
    ("14 deleting LLMServices removes everything", deletion_removes_everything),
]
