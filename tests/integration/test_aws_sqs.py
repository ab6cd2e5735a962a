"""Interruption notices from a real SQS queue (moto's server mode) in EventBridge's format.

The message bodies are written here from AWS's documented event examples (EC2
user guide: spot interruption warning, rebalance recommendation, state-change
notification; AWS Health user guide: scheduled change), not produced by
EventBridge itself: moto's EventBridge-to-SQS path is not what is under test.
"""

from __future__ import annotations

import functools
import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest

from spotpack.cloud.base import InterruptionNotice
from spotpack.cloud.sqs import SqsNoticeSource
from tests.integration.moto_server import REGION, Moto, isolate_aws_env, running_moto

pytestmark = pytest.mark.integration

WAIT_LIMIT = 10.0  # seconds any loop below may spend collecting messages


@functools.cache
def _session() -> boto3.session.Session:
    return boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION
    )


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Moto]:
    with running_moto(tmp_path_factory.mktemp("moto-sqs")) as server:
        yield server


@pytest.fixture(autouse=True)
def _aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate_aws_env(monkeypatch, tmp_path)


@pytest.fixture
def sqs(moto: Moto) -> Any:
    return _session().client("sqs", endpoint_url=moto.url)


def _queue(sqs: Any, visibility: int = 30) -> str:
    name = f"interruptions-{uuid.uuid4().hex[:8]}"
    url: str = sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": str(visibility)})[
        "QueueUrl"
    ]
    return url


def _source(moto: Moto, queue_url: str) -> SqsNoticeSource:
    return SqsNoticeSource(queue_url, endpoint_url=moto.url, session=_session(), region=REGION)


def _event(detail_type: str, source: str, detail: dict[str, Any], **extra: Any) -> str:
    return json.dumps(
        {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": detail_type,
            "source": source,
            "account": "123456789012",
            "time": "2024-05-06T07:08:09Z",
            "region": REGION,
            "resources": [f"arn:aws:ec2:{REGION}:123456789012:instance/i-0aaaaaaaaaaaaaaa1"],
            "detail": detail,
            **extra,
        }
    )


SPOT = _event(
    "EC2 Spot Instance Interruption Warning",
    "aws.ec2",
    {"instance-id": "i-0aaaaaaaaaaaaaaa1", "instance-action": "terminate"},
)
REBALANCE = _event(
    "EC2 Instance Rebalance Recommendation", "aws.ec2", {"instance-id": "i-0bbbbbbbbbbbbbbb2"}
)
STOPPING = _event(
    "EC2 Instance State-change Notification",
    "aws.ec2",
    {"instance-id": "i-0ccccccccccccccc3", "state": "shutting-down"},
)
RUNNING = _event(
    "EC2 Instance State-change Notification",
    "aws.ec2",
    {"instance-id": "i-0ccccccccccccccc3", "state": "running"},
)
HEALTH = _event(
    "AWS Health Event",
    "aws.health",
    {
        "eventArn": "arn:aws:health:us-east-1::event/EC2/AWS_EC2_INSTANCE_RETIREMENT_SCHEDULED/x",
        "service": "EC2",
        "eventTypeCode": "AWS_EC2_INSTANCE_RETIREMENT_SCHEDULED",
        "eventTypeCategory": "scheduledChange",
        "startTime": "Tue, 07 May 2024 10:00:00 GMT",
        "eventDescription": [{"language": "en_US", "latestDescription": "retiring"}],
        "affectedEntities": [
            {"entityValue": "i-0ddddddddddddddd4"},
            {"entityValue": "i-0eeeeeeeeeeeeeee5"},
        ],
    },
)
SNS_WRAPPED = json.dumps(
    {
        "Type": "Notification",
        "MessageId": str(uuid.uuid4()),
        "TopicArn": "arn:aws:sns:us-east-1:123456789012:interruptions",
        "Message": _event(
            "EC2 Spot Instance Interruption Warning",
            "aws.ec2",
            {"instance-id": "i-0fffffffffffffff6", "instance-action": "stop"},
        ),
    }
)


def _drain(source: SqsNoticeSource, expect_messages: int) -> list[InterruptionNotice]:
    """Receive until ``expect_messages`` messages were seen, within WAIT_LIMIT."""
    notices: list[InterruptionNotice] = []
    deadline = time.monotonic() + WAIT_LIMIT
    while source.stats.received < expect_messages and time.monotonic() < deadline:
        notices.extend(source.receive(max_messages=10, wait_seconds=1))
    return notices


def _left(sqs: Any, queue_url: str) -> int:
    attrs = sqs.get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]) + int(
        attrs["ApproximateNumberOfMessagesNotVisible"]
    )


def test_events_are_received_parsed_and_deleted_on_ack(moto: Moto, sqs: Any) -> None:
    url = _queue(sqs)
    for body in (SPOT, REBALANCE, STOPPING, HEALTH, SNS_WRAPPED):
        sqs.send_message(QueueUrl=url, MessageBody=body)
    source = _source(moto, url)

    notices = _drain(source, 5)
    by_instance = {n.instance_id: n for n in notices}
    assert len(notices) == 6 == len(by_instance)
    at = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)

    spot = by_instance["i-0aaaaaaaaaaaaaaa1"]
    assert (spot.kind, spot.detail, spot.time) == ("spot-interruption", "terminate", at)
    assert spot.deadline == at + timedelta(seconds=120)
    rebalance = by_instance["i-0bbbbbbbbbbbbbbb2"]
    assert (rebalance.kind, rebalance.deadline) == ("rebalance", None)
    stopping = by_instance["i-0ccccccccccccccc3"]
    assert (stopping.kind, stopping.detail, stopping.deadline) == (
        "state-change",
        "shutting-down",
        at,
    )
    retired = [by_instance["i-0ddddddddddddddd4"], by_instance["i-0eeeeeeeeeeeeeee5"]]
    assert {n.kind for n in retired} == {"scheduled-change"}
    assert {n.deadline for n in retired} == {datetime(2024, 5, 7, 10, 0, tzinfo=UTC)}
    assert retired[0].receipt == retired[1].receipt  # one message, two notices
    assert by_instance["i-0fffffffffffffff6"].detail == "stop"

    assert (source.stats.notices, source.stats.malformed, source.stats.ignored) == (6, 0, 0)
    assert _left(sqs, url) == 5  # all in flight, none deleted before the ack

    # The Health message goes only when both of its notices are handled.
    source.ack(retired[0])
    assert _left(sqs, url) == 5
    for notice in notices:
        if notice is not retired[0]:
            source.ack(notice)
    assert _left(sqs, url) == 0
    assert source.stats.deleted == 5


def test_malformed_and_irrelevant_messages_are_deleted_and_counted(
    moto: Moto, sqs: Any, caplog: pytest.LogCaptureFixture
) -> None:
    url = _queue(sqs)
    bodies = ["this is not json", '{"detail-type": 3}', "[1, 2, 3]", RUNNING, SPOT]
    for body in bodies:
        sqs.send_message(QueueUrl=url, MessageBody=body)
    source = _source(moto, url)

    with caplog.at_level("WARNING", logger="spotpack.cloud.sqs"):
        notices = _drain(source, len(bodies))
    assert [n.instance_id for n in notices] == ["i-0aaaaaaaaaaaaaaa1"]
    assert (source.stats.malformed, source.stats.ignored) == (3, 1)
    assert sum("unreadable interruption message" in r.getMessage() for r in caplog.records) == 3
    assert _left(sqs, url) == 1  # only the real notice is still in flight
    source.ack(notices[0])
    assert _left(sqs, url) == 0


def test_an_unacked_notice_comes_back_after_the_visibility_timeout(moto: Moto, sqs: Any) -> None:
    """A provisioner that dies before handling a notice sees it again after restarting."""
    url = _queue(sqs, visibility=1)
    sqs.send_message(QueueUrl=url, MessageBody=SPOT)
    first = _source(moto, url)
    assert [n.instance_id for n in _drain(first, 1)] == ["i-0aaaaaaaaaaaaaaa1"]

    restarted = _source(moto, url)  # the first one "died" without acking
    again: list[InterruptionNotice] = []
    deadline = time.monotonic() + WAIT_LIMIT
    while not again and time.monotonic() < deadline:
        again = restarted.receive(max_messages=1, wait_seconds=1)
    assert [n.instance_id for n in again] == ["i-0aaaaaaaaaaaaaaa1"]
    restarted.ack(again[0])
    assert _left(sqs, url) == 0


def test_acking_with_a_stale_receipt_is_harmless(moto: Moto, sqs: Any) -> None:
    url = _queue(sqs)
    sqs.send_message(QueueUrl=url, MessageBody=SPOT)
    source = _source(moto, url)
    (notice,) = _drain(source, 1)
    source.ack(notice)
    source.ack(notice)  # already deleted: moto (like SQS) accepts it; we would only log
    assert _left(sqs, url) == 0
    source.ack(
        InterruptionNotice("rebalance", "i-0aaaaaaaaaaaaaaa1", notice.time, None, "not-a-receipt")
    )  # an invalid receipt handle is logged, not raised
    assert source.stats.delete_failures == 1
