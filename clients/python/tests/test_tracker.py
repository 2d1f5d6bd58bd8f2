"""The tracker: duplicates, out-of-order numbers and gaps, in bounded memory, as the Rust
library's tracker tests."""

from __future__ import annotations

import random
from typing import List

from conftest import event_headers

from watchwire_receiver import Arrival, Gap, Notification, Observation, Tracker

NEW, DUP, OOO = Arrival.NEW, Arrival.DUPLICATE, Arrival.OUT_OF_ORDER


def arrivals(tracker: Tracker, numbers: List[int]) -> List[Arrival]:
    return [tracker.observe_number("ch", n).arrival for n in numbers]


def test_classifies_new_duplicate_and_out_of_order() -> None:
    assert arrivals(Tracker(), [1, 3, 3, 7, 5, 5, 1, 8]) == [NEW, NEW, DUP, NEW, OOO, DUP, DUP, NEW]


def test_channels_are_independent() -> None:
    tracker = Tracker()
    assert tracker.observe_number("a", 5).is_new
    assert tracker.observe_number("b", 1).is_new
    assert tracker.observe_number("b", 5).is_new
    assert tracker.observe_number("a", 5).is_duplicate


def test_flags_a_gap_when_the_previous_number_is_not_the_last_seen() -> None:
    tracker = Tracker()
    assert tracker.observe_number("ch", 1).gap is None
    assert tracker.observe_number("ch", 4, 1).gap is None
    skipped = tracker.observe_number("ch", 9, 6)
    assert skipped.is_new
    assert skipped.gap == Gap(previous_number=6, last_seen=4)
    # The late one is out of order, and no gap is reported for it.
    assert tracker.observe_number("ch", 6, 4) == Observation(OOO, None)


def test_no_gap_without_history() -> None:
    assert Tracker().observe_number("ch", 9, 6) == Observation(NEW, None)


def test_observes_notifications() -> None:
    tracker = Tracker()
    n = Notification.from_headers(event_headers())  # number 5, previous 3
    assert tracker.observe(n) == Observation(NEW)
    assert tracker.observe(n).is_duplicate
    assert tracker.observe_number("ch-1", 9, 7).gap == Gap(previous_number=7, last_seen=5)


def test_remembers_a_bounded_window_per_channel() -> None:
    tracker = Tracker(window=3, max_channels=10)
    arrivals(tracker, [1, 2, 3, 4])
    assert tracker.observe_number("ch", 2).is_duplicate
    # 1 fell out of the window: it can only be reported as out of order.
    assert tracker.observe_number("ch", 1).is_out_of_order
    assert tracker.recent("ch") == [2, 3, 4]


def test_forgets_the_least_recently_seen_channel_first() -> None:
    tracker = Tracker(window=8, max_channels=2)
    tracker.observe_number("a", 1)
    tracker.observe_number("b", 1)
    tracker.observe_number("a", 2)
    tracker.observe_number("c", 1)  # evicts b
    assert tracker.channel_count() == 2
    assert tracker.observe_number("a", 2).is_duplicate
    assert tracker.observe_number("b", 1).is_new, "b was forgotten"


def test_a_duplicate_counts_as_seeing_its_channel() -> None:
    tracker = Tracker(max_channels=2)
    tracker.observe_number("a", 1)
    tracker.observe_number("b", 1)
    assert tracker.observe_number("a", 1).is_duplicate  # a is now the most recent
    tracker.observe_number("c", 1)  # evicts b, not a
    assert tracker.observe_number("a", 1).is_duplicate


def test_forget_starts_a_channel_over() -> None:
    tracker = Tracker()
    tracker.observe_number("ch", 5)
    tracker.forget("ch")
    assert tracker.observe_number("ch", 1).is_new


def test_retract_makes_a_number_unseen() -> None:
    tracker = Tracker()
    arrivals(tracker, [1, 2, 3])
    tracker.retract("ch", 3)
    assert tracker.observe_number("ch", 3, 2) == Observation(NEW, None)
    tracker.retract("ch", 2)
    assert tracker.observe_number("ch", 2).is_out_of_order
    tracker.retract("nobody", 1)
    tracker.retract("ch", 99)
    assert tracker.recent("ch") == [1, 2, 3]


def test_limits_are_at_least_one() -> None:
    tracker = Tracker(window=0, max_channels=0)
    assert (tracker.window, tracker.max_channels) == (1, 1)
    tracker.observe_number("a", 1)
    tracker.observe_number("a", 2)
    assert tracker.recent("a") == [2]


def test_agrees_with_a_plain_model_on_random_arrivals() -> None:
    """Against an unbounded model: within the window, the tracker is exact."""
    rnd = random.Random(24)
    for _ in range(200):
        tracker = Tracker(window=16)
        seen: List[int] = []
        for _ in range(60):
            number = rnd.randint(1, 40)
            got = tracker.observe_number("ch", number).arrival
            window = sorted(set(seen))[-16:]
            if not seen or number > max(seen):
                expected = NEW
            elif number in window:
                expected = DUP
            else:
                expected = OOO
            assert got == expected, (seen, number)
            seen.append(number)
        assert len(tracker.recent("ch")) <= 16
