"""EventBridge interruption events -> notices; garbage never gets past a logged skip."""

from __future__ import annotations

import contextlib
import functools
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spotpack.cloud.notices import MalformedEvent, parse_body
from spotpack.cloud.sqs import SqsNoticeSource

AT = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
IID = "i-1234567890abcdef0"


def _event(detail_type: str, detail: Any, source: str = "aws.ec2", **extra: Any) -> str:
    return json.dumps(
        {
            "version": "0",
            "id": "7bf73129-1428-4cd3-a780-95db273d1602",
            "detail-type": detail_type,
            "source": source,
            "account": "123456789012",
            "time": "2024-05-06T07:08:09Z",
            "region": "us-east-1",
            "resources": [f"arn:aws:ec2:us-east-1:123456789012:instance/{IID}"],
            "detail": detail,
            **extra,
        }
    )


SPOT = "EC2 Spot Instance Interruption Warning"
REBALANCE = "EC2 Instance Rebalance Recommendation"
STATE = "EC2 Instance State-change Notification"
HEALTH = "AWS Health Event"


def _health(**detail: Any) -> str:
    base = {
        "service": "EC2",
        "eventTypeCategory": "scheduledChange",
        "eventTypeCode": "AWS_EC2_PERSISTENT_INSTANCE_RETIREMENT_SCHEDULED",
        "startTime": "Sat, 05 Jun 2024 15:10:09 GMT",
        "affectedEntities": [{"entityValue": IID}, {"entityValue": "vol-0abc"}],
    }
    return _event(HEALTH, {**base, **detail}, source="aws.health")


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            _event(SPOT, {"instance-id": IID, "instance-action": "terminate"}),
            [("spot-interruption", IID, AT + timedelta(minutes=2), "terminate")],
        ),
        (
            _event(SPOT, {"instance-id": IID, "instance-action": "stop"}),
            [("spot-interruption", IID, AT + timedelta(minutes=2), "stop")],
        ),
        (  # hibernation starts at once: no two-minute warning
            _event(SPOT, {"instance-id": IID, "instance-action": "hibernate"}),
            [("spot-interruption", IID, AT, "hibernate")],
        ),
        (_event(REBALANCE, {"instance-id": IID}), [("rebalance", IID, None, "")]),
        (
            _event(STATE, {"instance-id": IID, "state": "stopping"}),
            [("state-change", IID, AT, "stopping")],
        ),
        (
            _event(STATE, {"instance-id": IID, "state": "terminated"}),
            [("state-change", IID, AT, "terminated")],
        ),
        (_event(STATE, {"instance-id": IID, "state": "running"}), []),
        (_event(STATE, {"instance-id": IID, "state": "pending"}), []),
        (
            _health(),  # only the instance of the affected entities counts
            [
                (
                    "scheduled-change",
                    IID,
                    datetime(2024, 6, 5, 15, 10, 9, tzinfo=UTC),
                    "AWS_EC2_PERSISTENT_INSTANCE_RETIREMENT_SCHEDULED",
                )
            ],
        ),
        (_health(eventTypeCategory="issue"), []),
        (_health(service="RDS"), []),
        (_event("EC2 AMI State Change", {"ImageId": "ami-1"}), []),
        (_event(SPOT, {"instance-id": IID}, source="custom.app"), []),
        (  # wrapped by SNS on its way to SQS
            json.dumps(
                {
                    "Type": "Notification",
                    "Message": _event(REBALANCE, {"instance-id": IID}),
                }
            ),
            [("rebalance", IID, None, "")],
        ),
    ],
)
def test_eventbridge_events(body: str, expected: list[tuple[Any, ...]]) -> None:
    notices = parse_body(body, "receipt-1")
    assert [(n.kind, n.instance_id, n.deadline, n.detail) for n in notices] == expected
    assert all(n.receipt == "receipt-1" and n.time == AT for n in notices)
    assert all(n.event_id == "7bf73129-1428-4cd3-a780-95db273d1602" for n in notices)


@pytest.mark.parametrize(
    "body",
    [
        "",
        "not json",
        "[]",
        "null",
        '{"source": "aws.ec2"}',
        _event(SPOT, "not an object"),
        _event(SPOT, {"instance-action": "terminate"}),
        _event(SPOT, {"instance-id": "not-an-instance", "instance-action": "terminate"}),
        _event(SPOT, {"instance-id": IID, "instance-action": 7}),
        _event(STATE, {"instance-id": IID}),
        _event(SPOT, {"instance-id": IID, "instance-action": "terminate"}, time="yesterday"),
        _event(SPOT, {"instance-id": IID, "instance-action": "stop"}, time="9999-12-31T23:59:59Z"),
        _health(affectedEntities="i-1"),
        _health(startTime="sometime"),
        "x" * (1024 * 1024 + 1),
        "[" * 100_000,
    ],
)
def test_malformed_events(body: str) -> None:
    with pytest.raises(MalformedEvent):
        parse_body(body, "r")


class _StubSqs:
    """Stands in for the boto3 client: records deletes, answers receives with given bodies."""

    def __init__(self, bodies: list[Any]) -> None:
        self.messages = [
            {"MessageId": str(i), "ReceiptHandle": f"r-{i}", "Body": body}
            for i, body in enumerate(bodies)
        ]
        self.deleted: list[str] = []

    def receive_message(self, **_: Any) -> dict[str, Any]:
        out, self.messages = self.messages, []
        return {"Messages": out}

    def delete_message(self, **kwargs: str) -> dict[str, Any]:
        self.deleted.append(kwargs["ReceiptHandle"])
        return {}


@functools.cache
def _session() -> boto3.session.Session:
    """One session: botocore then loads SQS's model once, not once per example."""
    return boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    )


def _source(bodies: list[Any]) -> tuple[SqsNoticeSource, _StubSqs]:
    source = SqsNoticeSource(
        "https://sqs.us-east-1.amazonaws.com/123456789012/q", session=_session()
    )
    stub = _StubSqs(bodies)
    source.client = stub
    return source, stub


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=20,
)
_keys = st.sampled_from(
    [
        "source",
        "detail-type",
        "detail",
        "time",
        "instance-id",
        "state",
        "Type",
        "Message",
        "affectedEntities",
        "entityValue",
        "startTime",
        "service",
        "eventTypeCategory",
        "id",
    ]
)
_eventish = st.recursive(
    st.none()
    | st.text(max_size=30)
    | st.integers()
    | st.sampled_from(
        [
            "aws.ec2",
            "aws.health",
            SPOT,
            REBALANCE,
            STATE,
            HEALTH,
            "EC2",
            "scheduledChange",
            IID,
            "stopping",
            "2024-05-06T07:08:09Z",
            "Sat, 05 Jun 2024 15:10:09 GMT",
        ]
    ),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_keys, inner, max_size=6),
    max_leaves=25,
)
_bodies = st.one_of(
    st.text(max_size=200),
    st.binary(max_size=50),
    st.none(),
    _json.map(json.dumps),
    _eventish.map(json.dumps),
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_bodies, min_size=1, max_size=5))
def test_garbage_bodies_are_skipped_deleted_and_counted(bodies: list[Any]) -> None:
    source, stub = _source(bodies)
    notices = source.receive()
    stats = source.stats
    assert stats.received == len(bodies)
    assert stats.malformed + stats.ignored + len({n.receipt for n in notices}) == len(bodies)
    # Every message without a notice was deleted at once; the others wait for their ack.
    assert len(stub.deleted) == stats.malformed + stats.ignored
    for notice in notices:
        source.ack(notice)
    assert sorted(stub.deleted) == sorted(f"r-{i}" for i in range(len(bodies)))


@given(_bodies)
def test_parse_body_raises_nothing_but_malformed_event(body: Any) -> None:
    with contextlib.suppress(MalformedEvent):
        parse_body(body, "r")


def test_a_message_without_a_receipt_is_counted_not_raised() -> None:
    source, stub = _source([])
    stub.messages = [{"MessageId": "m", "Body": "{}"}]
    assert source.receive() == []
    assert source.stats.malformed == 1 and stub.deleted == []
