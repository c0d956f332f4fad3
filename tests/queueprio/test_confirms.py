"""``DeferredConfirm``: publish now, read the broker's ack later. Units around a stand-in channel.

The happy path against the real broker is every submission in the suite; these cover what
RabbitMQ can't be made to do on demand: an ack dispatched before the wait, a nack, no ack.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pytest
from amqp.exceptions import MessageNacked

from queueprio.broker.confirms import DeferredConfirm


class FakeConnection:
    def __init__(self, channel: FakeChannel) -> None:
        self.channel = channel
        self.frames: list[tuple[str, int, bool]] = []  # what the broker will send, in order

    def drain_events(self, timeout: float | None = None) -> None:
        if not self.frames:
            raise TimeoutError("timed out")
        kind, tag, multiple = self.frames.pop(0)
        for handler in list(self.channel.events[kind]):
            handler(tag, multiple)


class FakeChannel:
    """The parts of a py-amqp channel on a ``confirm_publish`` connection that DeferredConfirm uses."""

    def __init__(self) -> None:
        self.events: defaultdict[str, set[Any]] = defaultdict(set)
        self.connection = FakeConnection(self)
        self._confirm_selected = False
        self.sent: list[Any] = []
        self.basic_publish = self.basic_publish_confirm

    def confirm_select(self) -> None:
        self.selected_by_us = True

    def _basic_publish(self, message: Any, **kwargs: Any) -> None:
        self.sent.append(message)

    def basic_publish_confirm(self, *args: Any, **kwargs: Any) -> None:
        raise AssertionError("the blocking publish must not be used inside the block")


def test_publishes_without_waiting_then_reads_the_ack() -> None:
    channel = FakeChannel()
    with DeferredConfirm(channel) as deferred:
        channel.basic_publish("m1", confirm_timeout=3)
    assert channel.sent == ["m1"]
    assert channel._confirm_selected  # the channel was put in confirm mode first
    assert channel.basic_publish == channel.basic_publish_confirm  # restored on leaving
    channel.connection.frames.append(("basic_ack", 1, False))
    deferred.wait(timeout=1)
    assert not channel.events["basic_ack"]
    assert not channel.events["basic_nack"]


def test_an_ack_dispatched_before_the_wait_still_counts() -> None:
    # Something else read from the connection (opening another channel) and dispatched the ack.
    channel = FakeChannel()
    with DeferredConfirm(channel) as deferred:
        channel.basic_publish("m1")
        channel.connection.frames.append(("basic_ack", 7, False))
        channel.connection.drain_events()
    deferred.wait(timeout=0.01)  # nothing left to read: must not block or time out


def test_a_nack_raises() -> None:
    channel = FakeChannel()
    with DeferredConfirm(channel) as deferred:
        channel.basic_publish("m1")
    channel.connection.frames.append(("basic_nack", 1, False))
    with pytest.raises(MessageNacked):
        deferred.wait(timeout=1)


def test_no_ack_in_time_raises_a_timeout() -> None:
    channel = FakeChannel()
    with DeferredConfirm(channel) as deferred:
        channel.basic_publish("m1")
    with pytest.raises(TimeoutError):
        deferred.wait(timeout=0.05)
    assert not channel.events["basic_ack"]  # not left behind on the pooled channel


def test_nothing_published__no_handler_stays_on_the_channel() -> None:
    channel = FakeChannel()
    with pytest.raises(RuntimeError), DeferredConfirm(channel):
        raise RuntimeError("the message could not be built")
    assert not channel.events["basic_ack"]
    assert not channel.events["basic_nack"]
    assert channel.basic_publish == channel.basic_publish_confirm


def test_a_channel_that_does_not_confirm_is_left_alone() -> None:
    channel = FakeChannel()
    channel.basic_publish = channel._basic_publish  # a connection without confirm_publish
    with DeferredConfirm(channel) as deferred:
        channel.basic_publish("m1")
    deferred.wait(timeout=0.01)
    assert channel.sent == ["m1"]
    assert not channel._confirm_selected
