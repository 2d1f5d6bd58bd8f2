package receiver

import (
	"sort"
	"sync"
)

// Arrival is how a notification's message number relates to those seen before on its
// channel.
type Arrival int

const (
	// New is higher than every number seen on the channel (or the first one seen).
	New Arrival = iota
	// Duplicate is a number already seen: a retry or a replay of a notification
	// already handled. Acknowledge it (2xx) and do nothing else.
	Duplicate
	// OutOfOrder is lower than the highest number seen, and not remembered as seen.
	// Numbers below the tracker's window are reported here, since whether they were
	// seen is forgotten.
	OutOfOrder
)

func (a Arrival) String() string {
	switch a {
	case New:
		return "new"
	case Duplicate:
		return "duplicate"
	case OutOfOrder:
		return "out of order"
	}
	return "unknown"
}

// Gap says that a new notification's X-Watchwire-Previous-Number is not the last
// number seen: the notifications in between never arrived (yet). Backfill from the
// changeset with the notification's cursor.
type Gap struct {
	// PreviousNumber is what the sender says came before this notification.
	PreviousNumber uint64
	// LastSeen is what the tracker saw last on the channel.
	LastSeen uint64
}

// Observation is the tracker's verdict on one notification.
type Observation struct {
	Arrival Arrival
	// Gap is nil unless the notification is New and a gap precedes it.
	Gap *Gap
}

func (o Observation) IsNew() bool        { return o.Arrival == New }
func (o Observation) IsDuplicate() bool  { return o.Arrival == Duplicate }
func (o Observation) IsOutOfOrder() bool { return o.Arrival == OutOfOrder }

const (
	// DefaultWindow is how many message numbers a Tracker remembers per channel.
	DefaultWindow = 256
	// DefaultMaxChannels is how many channels a Tracker remembers.
	DefaultMaxChannels = 4096
)

// Tracker classifies notifications per channel as new, duplicate or out of order, and
// flags gaps. Memory is bounded: per channel the window highest message numbers seen,
// and at most maxChannels channels (the least recently seen is forgotten first). It
// is safe for concurrent use, and the zero Tracker is ready to use with the default
// limits.
//
// A channel id reused for a new channel (after channels.stop) starts again at message
// number 1; call Forget when creating it.
type Tracker struct {
	mu          sync.Mutex
	channels    map[string]*history
	window      int
	maxChannels int
	// clock counts observations; it orders channels by when they were last seen.
	clock uint64
}

type history struct {
	// recent holds the highest numbers seen, ascending, at most window of them.
	recent   []uint64
	lastUsed uint64
}

// NewTracker is a tracker with DefaultWindow and DefaultMaxChannels.
func NewTracker() *Tracker {
	return NewTrackerWithLimits(DefaultWindow, DefaultMaxChannels)
}

// NewTrackerWithLimits is a tracker remembering window numbers per channel and
// maxChannels channels (each at least 1).
func NewTrackerWithLimits(window, maxChannels int) *Tracker {
	if window < 1 {
		window = 1
	}
	if maxChannels < 1 {
		maxChannels = 1
	}
	return &Tracker{channels: map[string]*history{}, window: window, maxChannels: maxChannels}
}

// Observe records a notification and classifies it.
func (t *Tracker) Observe(n *Notification) Observation {
	return t.ObserveNumber(n.ChannelID, n.MessageNumber, n.PreviousNumber)
}

// ObserveNumber records number on channelID, with the sender's previous number if
// known (nil otherwise).
func (t *Tracker) ObserveNumber(channelID string, number uint64, previousNumber *uint64) Observation {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.channels == nil {
		t.channels = map[string]*history{}
	}
	if t.window < 1 {
		t.window = DefaultWindow
	}
	if t.maxChannels < 1 {
		t.maxChannels = DefaultMaxChannels
	}
	t.clock++
	h, known := t.channels[channelID]
	if !known {
		if len(t.channels) >= t.maxChannels {
			t.evictLeastRecentlySeen()
		}
		h = &history{}
		t.channels[channelID] = h
	}
	h.lastUsed = t.clock

	at := sort.Search(len(h.recent), func(i int) bool { return h.recent[i] >= number })
	seen := at < len(h.recent) && h.recent[at] == number
	var observation Observation
	switch {
	case len(h.recent) == 0:
		// With no history there is nothing to compare a previous number with.
		observation = Observation{Arrival: New}
	case number > h.recent[len(h.recent)-1]:
		observation = Observation{Arrival: New}
		highest := h.recent[len(h.recent)-1]
		if previousNumber != nil && *previousNumber != highest {
			observation.Gap = &Gap{PreviousNumber: *previousNumber, LastSeen: highest}
		}
	case seen:
		return Observation{Arrival: Duplicate}
	default:
		observation = Observation{Arrival: OutOfOrder}
	}
	h.recent = append(h.recent, 0)
	copy(h.recent[at+1:], h.recent[at:])
	h.recent[at] = number
	if len(h.recent) > t.window {
		h.recent = append(h.recent[:0], h.recent[1:]...)
	}
	return observation
}

// Retract takes back the record of number on channelID, after handling a New or
// OutOfOrder notification failed and the sender is told to try again (5xx): its retry
// is then New again instead of a Duplicate, and the last number seen (what a Gap
// compares with) is what it was before. Never retract a Duplicate: its number was
// recorded by an earlier delivery. A number that pushed an older one out of the window
// does not bring it back. It does nothing for a number or channel not remembered, and
// does not count as seeing the channel. Endpoint.Handler does it when the callback
// fails.
func (t *Tracker) Retract(channelID string, number uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	h, known := t.channels[channelID]
	if !known {
		return
	}
	at := sort.Search(len(h.recent), func(i int) bool { return h.recent[i] >= number })
	if at < len(h.recent) && h.recent[at] == number {
		h.recent = append(h.recent[:at], h.recent[at+1:]...)
	}
}

// Forget drops a channel's history.
func (t *Tracker) Forget(channelID string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.channels, channelID)
}

// ChannelCount is how many channels are remembered.
func (t *Tracker) ChannelCount() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.channels)
}

func (t *Tracker) evictLeastRecentlySeen() {
	oldest, found := "", false
	var oldestUse uint64
	for id, h := range t.channels {
		if !found || h.lastUsed < oldestUse {
			oldest, oldestUse, found = id, h.lastUsed, true
		}
	}
	if found {
		delete(t.channels, oldest)
	}
}
