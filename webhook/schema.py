"""AdmissionReview ``admission.k8s.io/v1``: the one wire format of the webhook.

Parsed at the boundary and nowhere else. The envelope is validated with
pydantic (``extra="ignore"``: the API server adds fields over time); the pod in
``request.object`` stays a plain dict, since the mutation works on the JSON the
API server will patch, and validating a whole Pod model on every admission
would cost more than the decision itself.

Response keys are case-sensitive on the API server side: ``uid``, ``allowed``,
``patchType``, ``patch``, ``status``, ``warnings``.
"""

from __future__ import annotations

import base64
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from spotpack.errors import InvalidInput

API_VERSION = "admission.k8s.io/v1"
KIND = "AdmissionReview"


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class GroupVersionKind(_Model):
    group: str = ""
    version: str = ""
    kind: str = ""


class GroupVersionResource(_Model):
    group: str = ""
    version: str = ""
    resource: str = ""


class AdmissionRequest(_Model):
    uid: str = Field(min_length=1, max_length=128)
    kind: GroupVersionKind = GroupVersionKind()
    resource: GroupVersionResource = GroupVersionResource()
    sub_resource: str = Field(default="", alias="subResource")
    name: str = ""
    namespace: str = ""
    operation: str = ""
    object: dict[str, Any] | None = None
    dry_run: bool = Field(default=False, alias="dryRun")


class AdmissionReview(_Model):
    api_version: Literal["admission.k8s.io/v1"] = Field(alias="apiVersion")
    kind: Literal["AdmissionReview"]
    request: AdmissionRequest


class BadReview(InvalidInput):
    """The body is not an AdmissionReview v1 we can answer."""


def parse_review(body: bytes) -> AdmissionReview:
    """Parse a request body; raises :class:`BadReview` with a message a person can act on."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadReview(f"body is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise BadReview("body must be a JSON object (an AdmissionReview)")
    if data.get("apiVersion") != API_VERSION or data.get("kind") != KIND:
        raise BadReview(
            f"expected apiVersion {API_VERSION} kind {KIND}, got apiVersion "
            f"{data.get('apiVersion')!r} kind {data.get('kind')!r}; "
            "set admissionReviewVersions: [v1] in the webhook configuration"
        )
    try:
        return AdmissionReview.model_validate(data)
    except ValidationError as exc:
        raise BadReview(_describe(exc)) from exc


def _describe(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    return f"invalid AdmissionReview at {where}: {first['msg']}"


def build_response(
    uid: str,
    *,
    allowed: bool = True,
    patch: list[dict[str, Any]] | None = None,
    warnings: list[str] | tuple[str, ...] = (),
    code: int | None = None,
    message: str = "",
) -> dict[str, Any]:
    """Pure response builder: the AdmissionReview to send back for one request.

    No ``patch``/``patchType`` keys at all when there is nothing to change: an
    empty patch is a change of nothing that still costs the API server a patch
    application.
    """
    response: dict[str, Any] = {"uid": uid, "allowed": allowed}
    if patch:
        response["patchType"] = "JSONPatch"
        response["patch"] = base64.b64encode(orjson.dumps(patch)).decode("ascii")
    if code is not None or message:
        response["status"] = {"code": code or (200 if allowed else 400), "message": message}
        if not allowed:
            response["status"]["status"] = "Failure"
    if warnings:
        response["warnings"] = list(warnings)
    return {"apiVersion": API_VERSION, "kind": KIND, "response": response}
