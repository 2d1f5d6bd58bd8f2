"""Per-channel de-duplication and ordering checks (docs/api.md §1, §5, §11): delivery is at least
once and in order per channel, so a receiver sees a duplicate only after a retry or a
replay, and a number below the highest only if something went wrong."""

from __future__ import annotations

import bisect
import enum
from collections import OrderedDict
from dataclasses import dataclass
from typing import List, Optional

from .notification import Notification

#: Message numbers remembered per channel, by default.
DEFAULT_WINDOW = 256
#: Channels remembered, by default.
DEFAULT_MAX_CHANNELS = 4096


class Arrival(enum.Enum):
    """How a notification's message number relates to those seen before on its channel."""

    #: Higher than every number seen on the channel (or the first one seen).
    NEW = "new"
    #: A number already seen: a retry or a replay of a notification already handled.
    DUPLICATE = "duplicate"
    #: Lower than the highest number seen, and not remembered as seen. Numbers below the
    #: tracker's window are reported here, since whether they were seen is forgotten.
    OUT_OF_ORDER = "outOfOrder"


@dataclass(frozen=True)
class Gap:
    """A new notification whose `X-Watchwire-Previous-Number` is not the last number seen:
    the notifications in between never arrived (yet)."""

    #: What the sender says came before this notification.
    previous_number: int
    #: What the tracker saw last on the channel.
    last_seen: int


@dataclass(frozen=True)
class Observation:
    """The tracker's verdict on one notification."""

    arrival: Arrival
    gap: Optional[Gap] = None

    @property
    def is_new(self) -> bool:
        return self.arrival is Arrival.NEW

    @property
    def is_duplicate(self) -> bool:
        return self.arrival is Arrival.DUPLICATE

    @property
    def is_out_of_order(self) -> bool:
        return self.arrival is Arrival.OUT_OF_ORDER


class Tracker:
    """Classifies notifications per channel as new, duplicate or out of order, and flags
    gaps. Memory is bounded: per channel the `window` highest message numbers seen, and
    at most `max_channels` channels (the least recently seen is forgotten first).

    Not synchronised: share one behind a lock (`Receiver` does). A channel id reused for
    a new channel (after `channels.stop`) starts again at message number 1; call
    `forget` when creating it."""

    def __init__(self, window: int = DEFAULT_WINDOW, max_channels: int = DEFAULT_MAX_CHANNELS) -> None:
        self.window = max(int(window), 1)
        self.max_channels = max(int(max_channels), 1)
        # Channel id -> the highest numbers seen, ascending; least recently seen first.
        self._channels: OrderedDict[str, List[int]] = OrderedDict()

    def observe(self, notification: Notification) -> Observation:
        """Records a notification and classifies it."""
        return self.observe_number(
            notification.channel_id, notification.message_number, notification.previous_number
        )

    def observe_number(
        self, channel_id: str, number: int, previous_number: Optional[int] = None
    ) -> Observation:
        """Records `number` on `channel_id`, with the sender's previous number if known."""
        recent = self._channels.get(channel_id)
        if recent is None:
            if len(self._channels) >= self.max_channels:
                self._channels.popitem(last=False)
            recent = self._channels[channel_id] = []
        else:
            self._channels.move_to_end(channel_id)

        at = bisect.bisect_left(recent, number)
        seen = at < len(recent) and recent[at] == number
        if not recent:
            # With no history there is nothing to compare a previous number with.
            observation = Observation(Arrival.NEW)
        elif number > recent[-1]:
            highest = recent[-1]
            gap = None
            if previous_number is not None and previous_number != highest:
                gap = Gap(previous_number=previous_number, last_seen=highest)
            observation = Observation(Arrival.NEW, gap)
        elif seen:
            return Observation(Arrival.DUPLICATE)
        else:
            observation = Observation(Arrival.OUT_OF_ORDER)
        recent.insert(at, number)
        if len(recent) > self.window:
            del recent[0]
        return observation

    def retract(self, channel_id: str, number: int) -> None:
        """Takes back the record of `number` on `channel_id`, after handling a new or
        out-of-order notification failed and the sender is told to try again (5xx): its
        retry is then new again instead of a duplicate. Never retract a duplicate: its
        number was recorded by an earlier delivery. A number that pushed an older one out
        of the window does not bring it back. (`Receiver` does it when a handler raises or
        answers other than 2xx.)"""
        recent = self._channels.get(channel_id)
        if recent is None:
            return
        at = bisect.bisect_left(recent, number)
        if at < len(recent) and recent[at] == number:
            del recent[at]

    def forget(self, channel_id: str) -> None:
        """Forgets a channel's history."""
        self._channels.pop(channel_id, None)

    def channel_count(self) -> int:
        """How many channels are remembered."""
        return len(self._channels)

    def recent(self, channel_id: str) -> List[int]:
        """The numbers remembered for `channel_id`, ascending (a copy)."""
        return list(self._channels.get(channel_id, ()))
