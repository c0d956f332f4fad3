"""Publisher confirms for a batch: publish everything, then wait for the broker's acks once.

py-amqp's ``confirm_publish`` waits for each message's ack before sending the next one, so a
batch pays one network round trip (and one broker disk write) per message. Here the channel is
put in confirm mode by hand, every publish gets the next delivery tag, and the acks — which
RabbitMQ may send out of order and several at a time (``multiple``) — are collected at the end.
A tag that was nacked or not confirmed before the timeout means that message may be lost.
"""

from __future__ import annotations

import time
from typing import Any

from amqp.exceptions import MessageNacked


class ConfirmTracker:
    """Count the delivery tags published on ``channel`` and collect their acks and nacks."""

    def __init__(self, channel: Any) -> None:
        self.channel = channel
        self.next_tag = 1
        self.pending: set[int] = set()
        self.nacked: set[int] = set()
        channel.confirm_select()
        channel.events["basic_ack"].add(self._on_ack)
        channel.events["basic_nack"].add(self._on_nack)
        publish = channel.basic_publish

        def counting_publish(*args: Any, **kwargs: Any) -> Any:
            # RabbitMQ numbers the messages of a confirm-mode channel 1, 2, 3, …
            self.pending.add(self.next_tag)
            self.next_tag += 1
            return publish(*args, **kwargs)

        channel.basic_publish = counting_publish

    def _settle(self, tag: int, multiple: bool) -> set[int]:
        settled = {t for t in self.pending if t <= tag} if multiple else {tag} & self.pending
        self.pending -= settled
        return settled

    def _on_ack(self, tag: int, multiple: bool) -> None:
        self._settle(tag, multiple)

    def _on_nack(self, tag: int, multiple: bool) -> None:
        self.nacked |= self._settle(tag, multiple)

    def wait(self, connection: Any, timeout: float) -> None:
        """Drain the connection until every tag is settled or ``timeout`` seconds passed."""
        deadline = time.monotonic() + timeout
        while self.pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            try:
                connection.drain_events(timeout=remaining)
            except TimeoutError:
                return

    def confirmed(self, first: int, end: int) -> bool:
        """Were the tags ``first`` … ``end - 1`` all acked?"""
        return not any(tag in self.pending or tag in self.nacked for tag in range(first, end))


class DeferredConfirm:
    """Publish on a confirming py-amqp channel now, and collect the broker's ack later.

    py-amqp's ``basic_publish_confirm`` sends a message and then blocks for its ack. A
    submission uses the time in between: its message goes out inside the ledger transaction,
    the commit runs while RabbitMQ stores the message, and only then does the submitter wait
    for the ack (:meth:`wait`). The ack is collected by an event handler, not by waiting for
    the frame itself: anything else that reads from the connection in between (opening the
    task-sent event's channel, say) dispatches it, and a one-shot wait would miss it. Nothing
    else may publish on the channel in between, so any ack that comes is ours (the task-sent
    event goes out on a channel of its own: ``queueprio.events``). On a channel that doesn't
    confirm, publishing is unchanged and :meth:`wait` returns at once.
    """

    def __init__(self, channel: Any) -> None:
        self.channel = channel
        self.unacked = 0
        self.nacked = False
        confirming = getattr(channel, "basic_publish_confirm", None)
        self.deferring = confirming is not None and channel.basic_publish == confirming

    def __enter__(self) -> DeferredConfirm:
        if self.deferring:
            self.channel.basic_publish = self._publish
            self.channel.events["basic_ack"].add(self._on_ack)
            self.channel.events["basic_nack"].add(self._on_nack)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.deferring:
            self.channel.basic_publish = self.channel.basic_publish_confirm
            if not self.unacked:  # nothing sent (or already acked): don't stay on the pooled channel
                self._unsubscribe()

    def _unsubscribe(self) -> None:
        self.channel.events["basic_ack"].discard(self._on_ack)
        self.channel.events["basic_nack"].discard(self._on_nack)

    def _publish(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.pop("confirm_timeout", None)
        channel = self.channel
        if not channel._confirm_selected:
            channel._confirm_selected = True
            channel.confirm_select()
        result = channel._basic_publish(*args, **kwargs)
        self.unacked += 1
        return result

    def _on_ack(self, tag: int, multiple: bool) -> None:
        self.unacked = 0 if multiple else max(0, self.unacked - 1)

    def _on_nack(self, tag: int, multiple: bool) -> None:
        self.nacked = True
        self._on_ack(tag, multiple)

    def wait(self, timeout: float) -> None:
        """Until what was published in the block is settled: ``MessageNacked`` on a nack,
        ``TimeoutError`` when ``timeout`` seconds pass without the ack (the channel is then out
        of step: discard its connection)."""
        deadline = time.monotonic() + timeout
        try:
            while self.unacked:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"RabbitMQ did not confirm the message within {timeout:g}s")
                self.channel.connection.drain_events(timeout=remaining)
        finally:
            self.unacked = 0
            self._unsubscribe()
        if self.nacked:
            raise MessageNacked("RabbitMQ refused the message (basic.nack)")
