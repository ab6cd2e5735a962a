"""EventBridge events about EC2 instances -> :class:`InterruptionNotice` values (pure).

The events an interruption rule forwards to SQS, with the fields we read
(checked against AWS's EC2 and Health user guides, and the parsers of
Karpenter and aws-node-termination-handler):

=========================================  ==========  =======================================
``detail-type``                            source      detail fields
=========================================  ==========  =======================================
``EC2 Spot Instance Interruption Warning``  aws.ec2     ``instance-id``, ``instance-action``
                                                       (terminate / stop / hibernate)
``EC2 Instance Rebalance Recommendation``   aws.ec2     ``instance-id``
``EC2 Instance State-change Notification``  aws.ec2     ``instance-id``, ``state``
``AWS Health Event``                        aws.health  ``service`` (EC2), ``eventTypeCategory``
                                                       (scheduledChange), ``eventTypeCode``,
                                                       ``startTime`` (RFC 1123, GMT),
                                                       ``affectedEntities[].entityValue``
=========================================  ==========  =======================================

Every event has ``version`` "0", ``id``, ``time`` (``yyyy-mm-ddThh:mm:ssZ``)
and ``resources``. The spot warning comes two minutes before the instance
stops, so its deadline is ``time`` + 120 s; hibernation gets no such warning
("the hibernation process begins immediately"), so its deadline is ``time``.
A scheduled change's deadline is its ``startTime``. State changes count only
for ``stopping``, ``stopped``, ``shutting-down`` and ``terminated`` (as
Karpenter reads them); ``pending``/``running`` and other sources or detail
types are *irrelevant*: parsed fine, no notice, the message can go.

A body wrapped by SNS (``"Type": "Notification"`` with the event in
``Message``) is unwrapped first, since EventBridge -> SNS -> SQS is a common
set-up. Anything that is not such an event raises :class:`MalformedEvent`,
which the SQS source counts and deletes; nothing here raises anything else.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

from spotpack.cloud.base import NOTICE_WINDOWS, InterruptionNotice, NoticeKind

MAX_BODY_CHARS = 1024 * 1024
"""Refuse larger bodies unread (SQS allows at most 1 MiB per message)."""

MAX_ENTITIES = 1000
"""Affected entities read from one Health event; more is not an event we know."""

SPOT_WARNING = "EC2 Spot Instance Interruption Warning"
REBALANCE = "EC2 Instance Rebalance Recommendation"
STATE_CHANGE = "EC2 Instance State-change Notification"
HEALTH = "AWS Health Event"

STOPPING_STATES = frozenset({"stopping", "stopped", "shutting-down", "terminated"})
"""States that mean the instance is going or gone (Karpenter's list)."""

AWS_WINDOW = NOTICE_WINDOWS["aws"]

_INSTANCE_ID = re.compile(r"^i-[0-9a-zA-Z]{1,32}$")


class MalformedEvent(ValueError):  # noqa: N818 - reads better at the call site
    """A message body that is not an EventBridge event we can read."""


def parse_body(body: object, receipt: str) -> list[InterruptionNotice]:
    """The notices in one SQS message body; [] when the event is not about interruptions."""
    event = _load_event(body)
    source = event.get("source")
    detail_type = event.get("detail-type")
    if not isinstance(source, str) or not isinstance(detail_type, str):
        raise MalformedEvent("not an EventBridge event: no source or detail-type")
    if source == "aws.ec2" and detail_type == SPOT_WARNING:
        return [_spot_warning(event, receipt)]
    if source == "aws.ec2" and detail_type == REBALANCE:
        return [_simple(event, receipt, "rebalance", None)]
    if source == "aws.ec2" and detail_type == STATE_CHANGE:
        return _state_change(event, receipt)
    if source == "aws.health" and detail_type == HEALTH:
        return _scheduled_change(event, receipt)
    return []


# --- the event kinds -------------------------------------------------------------------------


def _spot_warning(event: Mapping[str, Any], receipt: str) -> InterruptionNotice:
    at = _event_time(event)
    action = _detail(event).get("instance-action", "")
    if not isinstance(action, str):
        raise MalformedEvent("instance-action is not a string")
    deadline = at if action == "hibernate" else _later(at, AWS_WINDOW)
    return _simple(event, receipt, "spot-interruption", deadline, detail=action, at=at)


def _state_change(event: Mapping[str, Any], receipt: str) -> list[InterruptionNotice]:
    state = _detail(event).get("state")
    if not isinstance(state, str):
        raise MalformedEvent("state-change event without a state")
    if state.lower() not in STOPPING_STATES:
        return []
    at = _event_time(event)
    return [_simple(event, receipt, "state-change", at, detail=state.lower(), at=at)]


def _scheduled_change(event: Mapping[str, Any], receipt: str) -> list[InterruptionNotice]:
    detail = _detail(event)
    if detail.get("service") != "EC2" or detail.get("eventTypeCategory") != "scheduledChange":
        return []
    entities = detail.get("affectedEntities")
    if not isinstance(entities, list) or len(entities) > MAX_ENTITIES:
        raise MalformedEvent("scheduled change without a list of affected entities")
    at = _event_time(event)
    start = detail.get("startTime")
    deadline = _time_value(start, "startTime") if start is not None else None
    code = detail.get("eventTypeCode", "")
    notices = []
    for entity in entities:
        value = entity.get("entityValue") if isinstance(entity, Mapping) else None
        # Health events name other resources too (volumes, hosts): only instances count.
        if isinstance(value, str) and _INSTANCE_ID.match(value):
            notices.append(
                InterruptionNotice(
                    kind="scheduled-change",
                    instance_id=value,
                    time=at,
                    deadline=deadline,
                    receipt=receipt,
                    detail=code if isinstance(code, str) else "",
                    event_id=_event_id(event),
                )
            )
    return notices


def _simple(
    event: Mapping[str, Any],
    receipt: str,
    kind: NoticeKind,
    deadline: datetime | None,
    *,
    detail: str = "",
    at: datetime | None = None,
) -> InterruptionNotice:
    instance_id = _detail(event).get("instance-id")
    if not isinstance(instance_id, str) or not _INSTANCE_ID.match(instance_id):
        raise MalformedEvent(f"no valid instance-id ({str(instance_id)[:40]!r})")
    return InterruptionNotice(
        kind=kind,
        instance_id=instance_id,
        time=at or _event_time(event),
        deadline=deadline,
        receipt=receipt,
        detail=detail,
        event_id=_event_id(event),
    )


# --- fields ----------------------------------------------------------------------------------


def _load_event(body: object) -> Mapping[str, Any]:
    if not isinstance(body, str):
        raise MalformedEvent("body is not text")
    if len(body) > MAX_BODY_CHARS:
        raise MalformedEvent(f"body longer than {MAX_BODY_CHARS} characters")
    event = _json_object(body)
    if event.get("Type") == "Notification" and isinstance(event.get("Message"), str):
        event = _json_object(event["Message"])  # SNS envelope
    return event


def _json_object(text: str) -> Mapping[str, Any]:
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise MalformedEvent(f"not JSON ({type(exc).__name__})") from None
    if not isinstance(value, dict):
        raise MalformedEvent("not a JSON object")
    return value


def _detail(event: Mapping[str, Any]) -> Mapping[str, Any]:
    detail = event.get("detail")
    if not isinstance(detail, Mapping):
        raise MalformedEvent("no detail object")
    return detail


def _event_id(event: Mapping[str, Any]) -> str:
    value = event.get("id")
    return value if isinstance(value, str) else ""


def _event_time(event: Mapping[str, Any]) -> datetime:
    return _time_value(event.get("time"), "time")


def _time_value(value: object, name: str) -> datetime:
    """ISO 8601 (EventBridge ``time``) or RFC 1123 (Health ``startTime``), made UTC-aware."""
    if not isinstance(value, str) or not value.strip() or len(value) > 64:
        raise MalformedEvent(f"{name} is not a time")
    text = value.strip()
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        try:
            parsed = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError, OverflowError):
            raise MalformedEvent(f"{name} {text[:40]!r} is not a time") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except (OverflowError, ValueError):
        raise MalformedEvent(f"{name} {text[:40]!r} is out of range") from None


def _later(at: datetime, window: timedelta) -> datetime:
    try:
        return at + window
    except OverflowError:
        raise MalformedEvent(f"time {at.isoformat()} is out of range") from None


__all__ = [
    "HEALTH",
    "MAX_BODY_CHARS",
    "REBALANCE",
    "SPOT_WARNING",
    "STATE_CHANGE",
    "STOPPING_STATES",
    "MalformedEvent",
    "parse_body",
]
