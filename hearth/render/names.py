"""Object names and label sets of an LLMService's children (SPEC §2.3); these are the compatibility
contract for label queries, metrics discovery and scripts written against the reference."""

from __future__ import annotations

from hearth.api import operatorsettings

MANAGED_BY = "hearth"
FIELD_MANAGER = "hearth-operator"

LABEL_NAME = "app.kubernetes.io/name"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_LLMSERVICE = "serving.hearth.dev/llmservice"
LABEL_GATEWAY = "serving.hearth.dev/gateway"
#: Pods of a shared gateway (an LLMGateway); LABEL_GATEWAY stays the mark of a dedicated one.
LABEL_LLMGATEWAY = "serving.hearth.dev/llmgateway"
LABEL_RUNTIME = "serving.hearth.dev/runtime"
VOLCANO_QUEUE_ANNOTATION = "scheduling.volcano.sh/queue-name"
#: The operator's leader-election Lease by default (the e2e looks for it).
LEADER_ELECTION_ID = operatorsettings.LEADER_ELECTION_ID.default
#: Namespaces with this label may reach backends through their NetworkPolicy (Prometheus scraping vLLM's
#: /metrics); the same convention as the reference's optional metrics NetworkPolicy.
METRICS_NAMESPACE_LABEL = {"metrics": "enabled"}
#: The operator's pods, as both installers label them (hearth install and the chart; their parity test
#: compares the two): the backend's NetworkPolicy lets them reach the drain sidecar (POST /drain/settled).
OPERATOR_COMPONENT_LABEL = {"app.kubernetes.io/component": "operator"}
OPERATOR_POD_SELECTOR = {"app.kubernetes.io/part-of": "hearth", **OPERATOR_COMPONENT_LABEL}


def backend(service: str) -> str:
    return service


def backend_service(service: str) -> str:
    return f"{service}-backend"


def gateway(service: str) -> str:
    return f"{service}-gateway"


def gateway_service(service: str) -> str:
    return service


def backend_network_policy(service: str) -> str:
    return f"{service}-backend"


def gateway_disruption_budget(service: str) -> str:
    return f"{service}-gateway"


def scaler_service(service: str) -> str:
    return f"{service}-scaler"


def cache_claim(service: str) -> str:
    return f"{service}-cache"


def prewarm_job(service: str) -> str:
    return f"{service}-prewarm"


def scaled_object(service: str) -> str:
    return service


def backend_selector(service: str) -> dict[str, str]:
    """``S``: the backend's selector labels."""
    return {LABEL_NAME: service, LABEL_MANAGED_BY: MANAGED_BY, LABEL_LLMSERVICE: service}


def backend_pod_labels(service: str, runtime: str) -> dict[str, str]:
    return {**backend_selector(service), LABEL_RUNTIME: runtime}


def gateway_selector(service: str) -> dict[str, str]:
    """``G``: the gateway's selector labels."""
    return {LABEL_NAME: gateway(service), LABEL_MANAGED_BY: MANAGED_BY, LABEL_GATEWAY: service}


def gateway_service_labels(service: str) -> dict[str, str]:
    """``G`` plus the llmservice label: the metrics-discovery contract shared with the backend Service."""
    return {**gateway_selector(service), LABEL_LLMSERVICE: service}


def endpoint_url(service: str, namespace: str) -> str:
    return f"http://{gateway_service(service)}.{namespace}.svc/v1"


def shared_gateway(gateway_name: str) -> str:
    """An LLMGateway's Deployment, ServiceAccount, Role, RoleBinding and PodDisruptionBudget."""
    return f"{gateway_name}-gateway"


def shared_gateway_service(gateway_name: str) -> str:
    """An LLMGateway's client Service (its endpoint)."""
    return gateway_name


def shared_scaler_service(gateway_name: str) -> str:
    return f"{gateway_name}-scaler"


def shared_gateway_selector(gateway_name: str) -> dict[str, str]:
    """The pod labels (and selector) of an LLMGateway's pods."""
    return {
        LABEL_NAME: shared_gateway(gateway_name),
        LABEL_MANAGED_BY: MANAGED_BY,
        LABEL_LLMGATEWAY: gateway_name,
    }


def shared_endpoint_url(gateway_name: str, namespace: str) -> str:
    return f"http://{shared_gateway_service(gateway_name)}.{namespace}.svc/v1"


#: The gateway container's HTTP port: its Service targets it, and KEDA's metrics-api trigger names it (KEDA
#: matches the trigger URL's port against the EndpointSlice ports, which are pod ports).
GATEWAY_HTTP_PORT = 8080
