"""The project's own exception tree.

Library errors (kubernetes, boto3, cryptography, pydantic) are translated once,
at the adapter that calls the library, into one of these, chained with
``raise ... from exc`` so the cause is never lost. Handlers map the tree to
responses: ``InvalidInput`` is the caller's fault (a 4xx or a denial), the rest
are ours or the environment's and degrade instead of crashing.
"""

from __future__ import annotations


class SpotpackError(Exception):
    """Root of every error spotpack raises on purpose."""


class InvalidInput(SpotpackError):  # noqa: N818 - reads better at call sites
    """Input from a user or a peer that cannot be accepted as given."""


class InvalidAnnotation(InvalidInput):
    """A ``spotpack.io/`` policy annotation whose value is not allowed.

    The message names the annotation, the value and the allowed values, so the
    person who wrote the manifest can fix it without reading our code.
    """

    def __init__(self, key: str, value: str, allowed: str, where: str = "pod") -> None:
        self.key = key
        self.value = value
        self.allowed = allowed
        self.where = where
        super().__init__(f"{where} annotation {key}={value!r} is not valid; allowed: {allowed}")


class InvalidGPURequest(InvalidInput):
    """A vGPU request that cannot be normalized (conflicting or out-of-range values)."""

    def __init__(self, container: str, message: str) -> None:
        self.container = container
        super().__init__(f"container {container!r}: {message}")


class InvalidQuantity(InvalidInput):
    """A Kubernetes resource quantity string that does not parse."""


class ConfigError(SpotpackError):
    """Settings or a data file that cannot be used; raised at start-up."""


class ClusterUnavailable(SpotpackError):  # noqa: N818
    """The Kubernetes API cannot be reached or refused us."""


class CloudError(SpotpackError):
    """A cloud API call failed; ``retryable`` says whether trying again may help."""

    def __init__(self, message: str, *, code: str = "", retryable: bool = False) -> None:
        self.code = code
        self.retryable = retryable
        super().__init__(message)


class CertificateError(SpotpackError):
    """Certificate or key files are missing, unreadable or do not match."""
