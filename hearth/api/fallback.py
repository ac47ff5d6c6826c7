"""A fallback that answers while a model is cold or full (``spec.endpoint.fallback``, issue 31): another
LLMService of the same namespace (typically a small, always-warm one) or an external OpenAI-compatible
endpoint, and when the gateway sends a request there instead of waiting for its own backend.

The decision is the gateway's, per model (:mod:`hearth.gateway.model.fallback`); the operator checks the
reference (a missing LLMService, itself, a loop: condition ``Fallback``) and records an Event when prompts may
leave the cluster (an external URL).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import pydantic

from hearth.api.base import ApiModel, GoDuration

KIND_SERVICE = "service"
KIND_URL = "url"

#: When a cold model's requests go to the fallback.
WhileCold = Literal["Immediately", "AfterHold", "Never"]
#: At once: the model's wake still starts, and later requests go to it once it is ready.
IMMEDIATELY: WhileCold = "Immediately"
#: After holding the request for holdFor without the model becoming ready.
AFTER_HOLD: WhileCold = "AfterHold"
#: Never for a cold model (only whenFull).
NEVER: WhileCold = "Never"

#: Why a request was answered by the fallback: the metric's reason label and the progress comment's word.
Reason = Literal["cold", "hold_timeout", "queue_full", "no_capacity", "wake_failed"]
REASONS: tuple[Reason, ...] = ("cold", "hold_timeout", "queue_full", "no_capacity", "wake_failed")

SERVICE_NAME_PATTERN = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
URL_PATTERN = r"^https?://[^\s/?#]+(/[^\s?#]*)?$"
SECRET_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"
SECRET_KEY_PATTERN = r"^[-._a-zA-Z0-9]+$"


class SecretKey(ApiModel):
    """One key of a Secret in this namespace."""

    name: Annotated[str, pydantic.Field(min_length=1, max_length=253, pattern=SECRET_NAME_PATTERN)]
    """The Secret's name."""
    key: Annotated[str, pydantic.Field(min_length=1, max_length=253, pattern=SECRET_KEY_PATTERN)] = "apiKey"
    """The key whose value is sent as "Authorization: Bearer <value>"."""


class Fallback(ApiModel):
    """Where requests go while this model is cold or full, and when: exactly one of service or url.
    Privacy: with url, prompts and answers of the requests it takes leave the cluster for that endpoint (the
    operator records an ExternalFallback Event when one is configured); use service to keep them inside."""

    model_config = pydantic.ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "has(self.service) != has(self.url)",
                    "message": "set exactly one of service or url",
                    "reason": "FieldValueInvalid",
                },
                {
                    "rule": "!has(self.apiKeySecret) || has(self.url)",
                    "message": "apiKeySecret is for an external url (a service fallback uses its own auth)",
                    "fieldPath": ".apiKeySecret",
                    "reason": "FieldValueInvalid",
                },
                {
                    "rule": "!has(self.url) || has(self.model)",
                    "message": "model is required with url (the name the external API serves)",
                    "fieldPath": ".model",
                    "reason": "FieldValueRequired",
                },
            ],
        }
    )

    service: Annotated[str, pydantic.Field(max_length=55, pattern=SERVICE_NAME_PATTERN)] | None = None
    """Another LLMService in this namespace (not this one, and not one whose own fallback leads back
    here). Requests reach it through its Service <service>, with model=<service> unless model is set."""
    url: Annotated[str, pydantic.Field(max_length=2048, pattern=URL_PATTERN)] | None = None
    """Base URL of an external OpenAI-compatible API, including its version path (e.g.
    https://api.example.com/v1): a request to /v1/chat/completions goes to <url>/chat/completions.
    Prompts sent there leave the cluster."""
    model: Annotated[str, pydantic.Field(min_length=1, max_length=256)] | None = None
    """The model name sent to the fallback (the request's model is replaced); default: the service's name.
    Required with url."""
    api_key_secret: SecretKey | None = None
    """The external endpoint's API key (url only); the client's own Authorization header is never
    forwarded to a fallback."""
    while_cold: WhileCold = IMMEDIATELY
    """Immediately: a request for a cold model is answered by the fallback at once while the model's own
    wake starts (requests go to the model again once it is ready); AfterHold: held as usual, and sent to
    the fallback if the model is not ready after holdFor; Never: only whenFull."""
    hold_for: GoDuration = "30s"
    """With AfterHold: how long a request waits for the model before the fallback answers it."""
    when_full: bool = True
    """Also answer from the fallback when this model has no room: its gateway queue is full (instead of
    429), or its AcceleratorPool has no devices for it now (instead of waiting)."""

    @pydantic.model_validator(mode="after")
    def _one_target(self) -> Fallback:
        if (self.service is None) == (self.url is None):
            raise ValueError("set exactly one of service or url")
        if self.api_key_secret is not None and self.url is None:
            raise ValueError("apiKeySecret is for an external url (a service fallback uses its own auth)")
        if self.url is not None and self.model is None:
            raise ValueError("model is required with url (the name the external API serves)")
        return self

    @property
    def kind(self) -> str:
        return KIND_URL if self.url is not None else KIND_SERVICE

    def target_model(self) -> str:
        """The model name the fallback is asked for."""
        return self.model or self.service or ""

    def base_url(self, namespace: str) -> str:
        """Where requests go: an external url as written, another LLMService through its Service
        ``<service>`` (its own gateway, or the LLMGateway serving it)."""
        if self.url is not None:
            return self.url.rstrip("/")
        return f"http://{self.service}.{namespace}.svc/v1"


#: The rule on the whole LLMService (only there are both its name and its fallback in reach).
SELF_REFERENCE_RULE: dict[str, Any] = {
    "rule": "!has(self.spec.endpoint) || !has(self.spec.endpoint.fallback) || "
    "!has(self.spec.endpoint.fallback.service) || self.spec.endpoint.fallback.service != self.metadata.name",
    "message": "spec.endpoint.fallback.service must name another LLMService, not this one",
    "fieldPath": ".spec.endpoint.fallback.service",
    "reason": "FieldValueInvalid",
}
