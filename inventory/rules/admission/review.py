"""The AdmissionReview v1 contract (admission.k8s.io/v1), pure: a request body in, a response
body out, no I/O.

What the API server sends: `{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
"request": {"uid", "kind", "resource", "operation", "namespace", "name", "object", "oldObject",
"dryRun", "userInfo", ...}}`. What it needs back: the same apiVersion and kind, and
`response.uid` equal to `request.uid`, `response.allowed`, optionally `response.status` (`code`,
`message`, `reason`, `details.causes`) and `response.warnings` (kubectl prints each as
`Warning: ...`).

A body we cannot answer at all (not JSON, not an AdmissionReview v1, no uid to echo) is a
`ReviewError`: the door answers 400 with its message. Everything else gets a well-formed
response, whatever the object inside looks like.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

API_VERSION = "admission.k8s.io/v1"
KIND = "AdmissionReview"

# The API server truncates long warnings (and drops some when there are many); keep each short
# enough to survive and the list bounded. The full text is in the portal's log and records.
MAX_WARNING_CHARS = 512
MAX_WARNINGS = 12
MAX_MESSAGE_CHARS = 4000


class ReviewError(ValueError):
    """The body is not an AdmissionReview v1 request that can be answered (400)."""


@dataclass(frozen=True, slots=True)
class AdmissionRequest:
    uid: str
    group: str  # "" for the core group (pods), "k8s.cni.cncf.io" for NADs
    version: str
    resource: str  # "pods", "network-attachment-definitions", ...
    sub_resource: str
    operation: str  # CREATE | UPDATE | DELETE | CONNECT
    namespace: str
    name: str
    object: Any  # the object as sent (normally a dict; anything for a malformed request)
    old_object: Any
    dry_run: bool
    username: str

    @property
    def resource_key(self) -> str:
        """`group/resource` (`/pods` for the core group): the dispatch key."""
        return f"{self.group}/{self.resource}"


@dataclass(frozen=True, slots=True)
class Cause:
    """One reason for a denial: metav1.StatusCause (kubectl prints `field: message`)."""

    code: str  # NICPortal's finding code, e.g. CONFIG_INVALID_JSON, DEVICE_RESERVED
    field: str  # path in the object, e.g. spec.config, metadata.annotations[...]
    message: str
    fix: str = ""

    def text(self) -> str:
        return f"{self.code} [{self.field}]: {self.message}" + (
            f" Fix: {self.fix}" if self.fix else ""
        )


@dataclass(frozen=True, slots=True)
class Decision:
    """What NICPortal says about one request, before any mode (enforce / warn) is applied."""

    allowed: bool
    summary: str = ""  # one line naming the object, e.g. "NAD default/macvlan-conf"
    causes: tuple[Cause, ...] = ()  # why it is denied (empty when allowed)
    warnings: tuple[str, ...] = ()
    code: int = 403  # HTTP status the client sees for a denial
    reason: str = "Forbidden"  # metav1.StatusReason for a denial
    judged: bool = True  # False: not ours to judge (another resource, no host-device NAD)
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(c.code for c in self.causes))

    def message(self) -> str:
        lines = [f"NICPortal: {self.summary}" if self.summary else "NICPortal"]
        lines += [cause.text() for cause in self.causes]
        return _clip("\n".join(lines), MAX_MESSAGE_CHARS)


def parse_review(body: bytes | str) -> AdmissionRequest:
    """The request inside an AdmissionReview v1 body. Raises ReviewError naming what is wrong."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        raise ReviewError("the body is not JSON: expected an AdmissionReview") from None
    if not isinstance(data, dict):
        raise ReviewError("the body is not a JSON object: expected an AdmissionReview")
    if data.get("kind") != KIND:
        raise ReviewError(f'kind must be "{KIND}", got {json.dumps(data.get("kind"))}')
    if data.get("apiVersion") != API_VERSION:
        raise ReviewError(
            f'apiVersion must be "{API_VERSION}" (admissionReviewVersions: ["v1"]), got '
            f"{json.dumps(data.get('apiVersion'))}"
        )
    request = data.get("request")
    if not isinstance(request, dict):
        raise ReviewError("request is missing or not an object")
    uid = request.get("uid")
    if not isinstance(uid, str) or not uid:
        raise ReviewError("request.uid is missing: it must be echoed in the response")
    resource = _mapping(request.get("resource"))
    user = _mapping(request.get("userInfo"))
    return AdmissionRequest(
        uid=uid,
        group=_text(resource.get("group")),
        version=_text(resource.get("version")),
        resource=_text(resource.get("resource")),
        sub_resource=_text(request.get("subResource")),
        operation=_text(request.get("operation")).upper(),
        namespace=_text(request.get("namespace")),
        name=_text(request.get("name")),
        object=request.get("object"),
        old_object=request.get("oldObject"),
        dry_run=request.get("dryRun") is True,
        username=_text(user.get("username")),
    )


def response(
    uid: str,
    *,
    allowed: bool,
    code: int | None = None,
    reason: str = "",
    message: str = "",
    causes: Sequence[Cause] = (),
    warnings: Sequence[str] = (),
    subject: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """An AdmissionReview v1 response body. `subject` ({"group", "kind", "name"}) goes into
    status.details: kubectl then says `The <kind> "<name>" is invalid:` and lists each cause as
    `field: message` (it prints no cause code, so each message starts with it)."""
    answer: dict[str, Any] = {"uid": uid, "allowed": allowed}
    if not allowed or message:
        status: dict[str, Any] = {"status": "Success" if allowed else "Failure"}
        if code is not None:
            status["code"] = code
        if reason:
            status["reason"] = reason
        if message:
            status["message"] = message
        if causes:
            details: dict[str, Any] = {k: v for k, v in (subject or {}).items() if v}
            details["causes"] = [
                {
                    "reason": cause.code,
                    "field": cause.field,
                    "message": f"NICPortal {cause.code}: {cause.message}"
                    + (f" Fix: {cause.fix}" if cause.fix else ""),
                }
                for cause in causes
            ]
            status["details"] = details
        answer["status"] = status
    clipped = [_clip(w, MAX_WARNING_CHARS) for w in warnings if w]
    if len(clipped) > MAX_WARNINGS:
        more = len(clipped) - (MAX_WARNINGS - 1)
        clipped = clipped[: MAX_WARNINGS - 1] + [f"NICPortal: {more} more warnings in its log."]
    if clipped:
        answer["warnings"] = clipped
    return {"apiVersion": API_VERSION, "kind": KIND, "response": answer}


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""
