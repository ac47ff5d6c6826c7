"""The drainer's settings: one typed object built from flags and ``HEARTH_DRAINER_*`` variables (declared in
:mod:`hearth.api.drain`)."""

from __future__ import annotations

import dataclasses
import urllib.parse

from hearth.api import drain
from hearth.common import durations, netaddr
from hearth.drainer import policy

_DEFAULT_TIMEOUT = durations.Duration.parse(drain.DEFAULT_TIMEOUT)
_DEFAULT_ENDPOINT_DELAY = durations.Duration.parse(drain.DEFAULT_ENDPOINT_DELAY)
_DEFAULT_POLL_INTERVAL = durations.Duration.parse(drain.DEFAULT_POLL_INTERVAL)


@dataclasses.dataclass(frozen=True, slots=True)
class DrainerSettings:
    #: Where the kubelet's preStop httpGet reaches the sidecar.
    listen: netaddr.ListenAddress
    #: The engine's Prometheus endpoint, over the pod's loopback, e.g. http://127.0.0.1:8000/metrics.
    metrics_url: str
    #: Series names of requests running and waiting (the runtime's metrics.running and metrics.queueDepth).
    running_metric: str
    waiting_metric: str
    #: The cap on one drain: the LLMService's drainTimeout.
    timeout: durations.Duration = _DEFAULT_TIMEOUT
    endpoint_delay: durations.Duration = _DEFAULT_ENDPOINT_DELAY
    poll_interval: durations.Duration = _DEFAULT_POLL_INTERVAL

    def __post_init__(self) -> None:
        url = urllib.parse.urlsplit(self.metrics_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(
                f"{drain.METRICS_URL_ENV} / --metrics-url must be an http(s) URL, got {self.metrics_url!r}"
            )
        if not self.running_metric or not self.waiting_metric:
            raise ValueError("the running and waiting metric names must not be empty")
        self.timing()  # a negative duration or a zero poll interval is refused here, naming the setting

    def timing(self) -> policy.Timing:
        try:
            return policy.Timing(
                timeout=self.timeout.seconds,
                endpoint_delay=self.endpoint_delay.seconds,
                poll_interval=self.poll_interval.seconds,
            )
        except ValueError as error:
            raise ValueError(
                f"{drain.TIMEOUT_ENV}, {drain.ENDPOINT_DELAY_ENV}, {drain.POLL_INTERVAL_ENV}: {error}"
            ) from None
