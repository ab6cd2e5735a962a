"""Spot interruption notices from an SQS queue fed by EventBridge (a ``NoticeSource``).

The queue is the one Karpenter and aws-node-termination-handler use: an
EventBridge rule matching the four events of :mod:`spotpack.cloud.notices`
sends them to SQS; we long-poll it. A message is deleted when every notice it
produced has been acknowledged (a Health event may name several instances),
so a provisioner that crashes mid-way sees the unhandled ones again once the
visibility timeout ends.

A message we cannot read is *poison*: it would come back forever. It is
logged, counted and deleted at once; so are events that are not about
interruptions (a ``running`` state change). Neither ever raises out of
:meth:`SqsNoticeSource.receive`; only the queue being unreachable does, as a
:class:`~spotpack.errors.CloudError`.

IAM: ``sqs:ReceiveMessage``, ``sqs:DeleteMessage`` on the queue.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import boto3

from spotpack.cloud.aws_errors import client_config, translated
from spotpack.cloud.base import InterruptionNotice
from spotpack.cloud.notices import MalformedEvent, parse_body
from spotpack.errors import CloudError

log = logging.getLogger(__name__)

MAX_MESSAGES = 10
"""ReceiveMessage returns at most ten messages per call."""

MAX_WAIT_SECONDS = 20
"""The longest long poll SQS allows."""


@dataclass
class NoticeStats:
    """What the source has seen, for metrics and tests."""

    received: int = 0
    notices: int = 0
    ignored: int = 0
    malformed: int = 0
    deleted: int = 0
    delete_failures: int = 0


class SqsNoticeSource:
    """Long-polls one SQS queue and turns its EventBridge events into notices."""

    def __init__(
        self,
        queue_url: str,
        *,
        endpoint_url: str | None = None,
        session: boto3.session.Session | None = None,
        region: str | None = None,
        max_attempts: int = 3,
        connect_timeout: float = 5.0,
        read_timeout: float = MAX_WAIT_SECONDS + 10.0,
    ) -> None:
        self.queue_url = queue_url
        self.stats = NoticeStats()
        self._lock = threading.Lock()
        self._pending: dict[str, int] = {}
        config = client_config(
            max_attempts=max_attempts, connect_timeout=connect_timeout, read_timeout=read_timeout
        )
        with translated("SQS", "creating the client"):
            self.client: Any = (session or boto3.session.Session()).client(
                "sqs",
                region_name=region or _queue_region(queue_url),
                endpoint_url=endpoint_url,
                config=config,
            )

    def close(self) -> None:
        self.client.close()

    def receive(
        self, max_messages: int = MAX_MESSAGES, wait_seconds: float = MAX_WAIT_SECONDS
    ) -> list[InterruptionNotice]:
        """Notices from up to ``max_messages`` messages (1-10), long-polling up to 20 s."""
        count = min(max(int(max_messages), 1), MAX_MESSAGES)
        wait = min(max(int(wait_seconds), 0), MAX_WAIT_SECONDS)
        with translated("SQS", "ReceiveMessage"):
            response = self.client.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=count,
                WaitTimeSeconds=wait,
                AttributeNames=["SentTimestamp", "ApproximateReceiveCount"],
            )
        notices: list[InterruptionNotice] = []
        for message in response.get("Messages") or []:
            notices.extend(self._handle(message))
        return notices

    def _handle(self, message: Mapping[str, Any]) -> list[InterruptionNotice]:
        self.stats.received += 1
        receipt = message.get("ReceiptHandle")
        message_id = str(message.get("MessageId", ""))
        if not isinstance(receipt, str) or not receipt:
            self.stats.malformed += 1
            log.warning("SQS message without a receipt handle", extra={"message_id": message_id})
            return []
        try:
            notices = parse_body(message.get("Body"), receipt)
        except MalformedEvent as exc:
            self.stats.malformed += 1
            log.warning(
                "deleting an unreadable interruption message",
                extra={"message_id": message_id, "problem": str(exc)},
            )
            self._delete(receipt, message_id)
            return []
        if not notices:
            self.stats.ignored += 1
            log.debug("deleting an event that is not an interruption", extra={"id": message_id})
            self._delete(receipt, message_id)
            return []
        with self._lock:
            self._pending[receipt] = len(notices)
        self.stats.notices += len(notices)
        return notices

    def ack(self, notice: InterruptionNotice) -> None:
        """Handled: delete its message once every notice of that message is handled."""
        with self._lock:
            left = self._pending.get(notice.receipt, 1) - 1
            if left > 0:
                self._pending[notice.receipt] = left
                return
            self._pending.pop(notice.receipt, None)
        self._delete(notice.receipt, notice.event_id, raise_errors=True)

    def _delete(self, receipt: str, what: str, *, raise_errors: bool = False) -> None:
        try:
            with translated("SQS", "DeleteMessage"):
                self.client.delete_message(QueueUrl=self.queue_url, ReceiptHandle=receipt)
        except CloudError as exc:
            self.stats.delete_failures += 1
            # A stale receipt (the visibility timeout ended, the message went to
            # another receive) is harmless: the message comes back and is seen again.
            if raise_errors and exc.code != "ReceiptHandleIsInvalid":
                raise
            log.warning("cannot delete an SQS message", extra={"id": what, "problem": str(exc)})
            return
        self.stats.deleted += 1


def _queue_region(queue_url: str) -> str | None:
    """The region in a queue URL (``https://sqs.<region>.amazonaws.com/...``), else None."""
    host = queue_url.split("://", 1)[-1].split("/", 1)[0]
    parts = host.split(".")
    if len(parts) >= 3 and parts[0] == "sqs":
        return parts[1]
    return None


__all__ = ["MAX_MESSAGES", "MAX_WAIT_SECONDS", "NoticeStats", "SqsNoticeSource"]
