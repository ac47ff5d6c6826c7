"""The resource types Hearth reads or writes, with their REST paths (no discovery round trips)."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True, slots=True)
class ResourceType:
    api_version: str
    kind: str
    plural: str
    namespaced: bool

    def path(
        self, *, namespace: str | None = None, name: str | None = None, subresource: str | None = None
    ) -> str:
        base = f"/api/{self.api_version}" if "/" not in self.api_version else f"/apis/{self.api_version}"
        if self.namespaced and namespace is not None:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        if name is not None:
            base += f"/{name}"
            if subresource is not None:
                base += f"/{subresource}"
        return base


DEPLOYMENT = ResourceType("apps/v1", "Deployment", "deployments", True)
SERVICE = ResourceType("v1", "Service", "services", True)
SERVICE_ACCOUNT = ResourceType("v1", "ServiceAccount", "serviceaccounts", True)
SECRET = ResourceType("v1", "Secret", "secrets", True)
CONFIG_MAP = ResourceType("v1", "ConfigMap", "configmaps", True)
CLAIM = ResourceType("v1", "PersistentVolumeClaim", "persistentvolumeclaims", True)
EVENT = ResourceType("v1", "Event", "events", True)
NAMESPACE = ResourceType("v1", "Namespace", "namespaces", False)
STORAGE_CLASS = ResourceType("storage.k8s.io/v1", "StorageClass", "storageclasses", False)
POD = ResourceType("v1", "Pod", "pods", True)
JOB = ResourceType("batch/v1", "Job", "jobs", True)
POD_DISRUPTION_BUDGET = ResourceType("policy/v1", "PodDisruptionBudget", "poddisruptionbudgets", True)
NETWORK_POLICY = ResourceType("networking.k8s.io/v1", "NetworkPolicy", "networkpolicies", True)
ROLE = ResourceType("rbac.authorization.k8s.io/v1", "Role", "roles", True)
ROLE_BINDING = ResourceType("rbac.authorization.k8s.io/v1", "RoleBinding", "rolebindings", True)
CLUSTER_ROLE = ResourceType("rbac.authorization.k8s.io/v1", "ClusterRole", "clusterroles", False)
CLUSTER_ROLE_BINDING = ResourceType(
    "rbac.authorization.k8s.io/v1", "ClusterRoleBinding", "clusterrolebindings", False
)
LEASE = ResourceType("coordination.k8s.io/v1", "Lease", "leases", True)
TOKEN_REVIEW = ResourceType("authentication.k8s.io/v1", "TokenReview", "tokenreviews", False)
SUBJECT_ACCESS_REVIEW = ResourceType(
    "authorization.k8s.io/v1", "SubjectAccessReview", "subjectaccessreviews", False
)
ENDPOINT_SLICE = ResourceType("discovery.k8s.io/v1", "EndpointSlice", "endpointslices", True)
CRD = ResourceType("apiextensions.k8s.io/v1", "CustomResourceDefinition", "customresourcedefinitions", False)
SCALED_OBJECT = ResourceType("keda.sh/v1alpha1", "ScaledObject", "scaledobjects", True)
#: Read by KEDA, written only by the e2e (spec.scaling.externalScaler.tls names one; Hearth never reads it).
TRIGGER_AUTHENTICATION = ResourceType(
    "keda.sh/v1alpha1", "TriggerAuthentication", "triggerauthentications", True
)
LLMSERVICE = ResourceType("serving.hearth.dev/v1alpha1", "LLMService", "llmservices", True)
LLMGATEWAY = ResourceType("serving.hearth.dev/v1alpha1", "LLMGateway", "llmgateways", True)
INFERENCE_RUNTIME = ResourceType(
    "serving.hearth.dev/v1alpha1", "InferenceRuntime", "inferenceruntimes", False
)
ACCELERATOR_POOL = ResourceType("serving.hearth.dev/v1alpha1", "AcceleratorPool", "acceleratorpools", False)

_BY_KIND = {
    (rt.api_version, rt.kind): rt
    for rt in (
        DEPLOYMENT,
        SERVICE,
        SERVICE_ACCOUNT,
        SECRET,
        CONFIG_MAP,
        CLAIM,
        EVENT,
        NAMESPACE,
        POD,
        JOB,
        POD_DISRUPTION_BUDGET,
        NETWORK_POLICY,
        ROLE,
        ROLE_BINDING,
        CLUSTER_ROLE,
        CLUSTER_ROLE_BINDING,
        LEASE,
        ENDPOINT_SLICE,
        CRD,
        SCALED_OBJECT,
        TRIGGER_AUTHENTICATION,
        LLMSERVICE,
        LLMGATEWAY,
        INFERENCE_RUNTIME,
        ACCELERATOR_POOL,
    )
}


def of(manifest: dict[str, object]) -> ResourceType:
    """The resource type of a manifest, by its apiVersion and kind."""
    key = (str(manifest.get("apiVersion")), str(manifest.get("kind")))
    try:
        return _BY_KIND[key]
    except KeyError:
        raise ValueError(f"unknown resource type {key[0]} {key[1]}") from None
