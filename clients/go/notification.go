package receiver

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// State is the value of X-Goog-Resource-State, in its wire spelling.
type State string

// The states of docs/api.md §4. Besides these, an Admin-style event name such as
// "CREATE_USER" (an upper-case letter, then up to 63 upper-case letters, digits or _)
// is a state too.
const (
	StateSync      State = "sync"
	StateExists    State = "exists"
	StateNotExists State = "not_exists"
	StateAdd       State = "add"
	StateRemove    State = "remove"
	StateUpdate    State = "update"
	StateTrash     State = "trash"
	StateUntrash   State = "untrash"
	StateChange    State = "change"
)

// ParseState reports whether s is a state of docs/api.md §4.
func ParseState(s string) (State, bool) {
	switch State(s) {
	case StateSync, StateExists, StateNotExists, StateAdd, StateRemove, StateUpdate,
		StateTrash, StateUntrash, StateChange:
		return State(s), true
	}
	if isEventName(s) {
		return State(s), true
	}
	return "", false
}

// isEventName matches [A-Z][A-Z0-9_]{0,63}.
func isEventName(s string) bool {
	if s == "" || len(s) > 64 || s[0] < 'A' || s[0] > 'Z' {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !('A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// isChangedToken matches [A-Za-z0-9_-]{1,64}.
func isChangedToken(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// Notification is one notification, as its headers describe it. Optional headers
// that are absent are nil.
type Notification struct {
	// ChannelID is X-Goog-Channel-ID.
	ChannelID string
	// MessageNumber is X-Goog-Message-Number: 1 for the sync, strictly larger
	// afterwards, the same on every retry and replay.
	MessageNumber uint64
	// State is X-Goog-Resource-State.
	State State
	// ResourceID is X-Goog-Resource-ID: opaque, the same for every channel on one
	// resource.
	ResourceID string
	// ResourceURI is X-Goog-Resource-URI.
	ResourceURI string
	// ChannelExpiration is X-Goog-Channel-Expiration; nil for channels that never
	// expire.
	ChannelExpiration *time.Time
	// Token is X-Goog-Channel-Token, when the channel has one.
	Token *string
	// Changed is X-Goog-Changed split at commas; empty when absent.
	Changed []string
	// EventResource is X-Watchwire-Event-Resource: the path the event was published on.
	EventResource *string
	// Cursor is X-Watchwire-Cursor: the event's position in the gateway's log (for the
	// sync, where the channel's coverage starts).
	Cursor *string
	// PreviousNumber is X-Watchwire-Previous-Number: the message number sent before
	// this one on the channel; absent on the sync and from senders other than
	// watchwire.
	PreviousNumber *uint64
	// Metadata is X-Watchwire-Metadata, the publisher's metadata object. Its numbers
	// are json.Number, so that none loses a digit.
	Metadata map[string]interface{}
}

// IsSync reports whether this is the sync message that opens a channel.
func (n *Notification) IsSync() bool { return n.State == StateSync }

// ParseNotification parses notification headers (names in any letter case) without
// checking them against a channel: every required header present, the number and
// state well formed, the optional headers in their formats. Channel.Receive is the
// call that also authenticates. The error is an *Error.
func ParseNotification(h http.Header) (*Notification, error) {
	n, err := parsePicked(pick(h))
	if err != nil {
		return nil, err
	}
	return n, nil
}

func parsePicked(p *picked) (*Notification, *Error) {
	optional := func(name string) (string, bool, *Error) {
		value, ok, problem := p.text(name)
		if problem != "" {
			return "", false, malformedHeader(name, problem)
		}
		return value, ok, nil
	}
	required := func(name string) (string, *Error) {
		value, ok, err := optional(name)
		if err == nil && !ok {
			err = missingHeader(name)
		}
		return value, err
	}

	n := &Notification{Changed: []string{}}
	var err *Error
	if n.ChannelID, err = required(HeaderChannelID); err != nil {
		return nil, err
	}
	number, err := required(HeaderMessageNumber)
	if err != nil {
		return nil, err
	}
	var ok bool
	if n.MessageNumber, ok = parseNumber(number); !ok {
		return nil, &Error{reason: ReasonInvalidMessageNumber, header: HeaderMessageNumber,
			Received: number,
			message:  fmt.Sprintf("message number %q is not a positive decimal integer", number)}
	}
	state, err := required(HeaderResourceState)
	if err != nil {
		return nil, err
	}
	if n.State, ok = ParseState(state); !ok {
		return nil, &Error{reason: ReasonUnknownState, header: HeaderResourceState,
			Received: state, message: fmt.Sprintf("resource state %q is not a known state", state)}
	}
	if n.ResourceID, err = required(HeaderResourceID); err != nil {
		return nil, err
	}
	if n.ResourceURI, err = required(HeaderResourceURI); err != nil {
		return nil, err
	}

	value, present, err := optional(HeaderChannelToken)
	if err != nil {
		return nil, err
	}
	if present {
		token := value // value is reused below
		n.Token = &token
	}
	if value, present, err = optional(HeaderChannelExpiration); err != nil {
		return nil, err
	}
	if present {
		expiration, ok := parseHTTPDate(value)
		if !ok {
			return nil, malformedHeader(HeaderChannelExpiration, "is not an IMF-fixdate")
		}
		n.ChannelExpiration = &expiration
	}
	if value, present, err = optional(HeaderChanged); err != nil {
		return nil, err
	}
	if present {
		if n.Changed, ok = parseChanged(value); !ok {
			return nil, malformedHeader(HeaderChanged,
				"is not a comma-separated list of [A-Za-z0-9_-]{1,64}")
		}
	}
	if value, present, err = optional(HeaderEventResource); err != nil {
		return nil, err
	}
	if present {
		eventResource := value
		n.EventResource = &eventResource
	}
	if value, present, err = optional(HeaderCursor); err != nil {
		return nil, err
	}
	if present {
		cursor := value
		n.Cursor = &cursor
	}
	if value, present, err = optional(HeaderPreviousNumber); err != nil {
		return nil, err
	}
	if present {
		previous, ok := parseNumber(value)
		if !ok || previous >= n.MessageNumber {
			return nil, malformedHeader(HeaderPreviousNumber,
				"is not a positive decimal integer below the message number")
		}
		n.PreviousNumber = &previous
	}
	if value, present, err = optional(HeaderMetadata); err != nil {
		return nil, err
	}
	if present {
		if n.Metadata, ok = parseMetadata(value); !ok {
			return nil, malformedHeader(HeaderMetadata, "is not a JSON object")
		}
	}
	return n, nil
}

// parseNumber parses a message number: decimal digits only (no sign), at least 1.
func parseNumber(s string) (uint64, bool) {
	if s == "" {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseUint(s, 10, 64)
	return n, err == nil && n >= 1
}

// parseChanged splits "content,properties"; an empty value is an empty list.
func parseChanged(s string) ([]string, bool) {
	if s == "" {
		return []string{}, true
	}
	items := strings.Split(s, ",")
	for i, item := range items {
		items[i] = strings.Trim(item, " \t")
		if !isChangedToken(items[i]) {
			return nil, false
		}
	}
	return items, true
}
