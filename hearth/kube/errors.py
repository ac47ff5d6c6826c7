"""API errors with the status and reason the API server sent, so callers can branch on them."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """A non-2xx answer from the API server."""

    def __init__(
        self, *, status: int, reason: str, message: str, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message
        self.details = details or {}

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def conflict(self) -> bool:
        return self.status == 409

    @property
    def already_exists(self) -> bool:
        return self.status == 409 and self.reason == "AlreadyExists"

    @property
    def gone(self) -> bool:
        """The resourceVersion a watch asked for is too old (410): relist."""
        return self.status == 410


class ApiUnreachableError(Exception):
    """The API server could not be reached."""
