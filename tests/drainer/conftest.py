"""The drainer's tests read a real stub's metrics: reuse the stub tests' in-process stub fixture."""

from tests.stub.conftest import stub

__all__ = ["stub"]
