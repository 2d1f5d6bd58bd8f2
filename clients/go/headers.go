package receiver

import (
	"net/http"
	"strings"
	"unicode/utf8"
)

// Header names of a notification (docs/api.md §4, §10), in lower case. Lookups ignore
// letter case, so these match however a sender or http.Header spells them.
const (
	HeaderChannelID         = "x-goog-channel-id"
	HeaderChannelToken      = "x-goog-channel-token"
	HeaderChannelExpiration = "x-goog-channel-expiration"
	HeaderResourceID        = "x-goog-resource-id"
	HeaderResourceURI       = "x-goog-resource-uri"
	HeaderResourceState     = "x-goog-resource-state"
	HeaderMessageNumber     = "x-goog-message-number"
	HeaderChanged           = "x-goog-changed"

	// HeaderEventResource is the canonical path the event was published on.
	HeaderEventResource = "x-watchwire-event-resource"
	// HeaderCursor is the event's position in the gateway's log (for the sync: where
	// the channel's coverage starts).
	HeaderCursor = "x-watchwire-cursor"
	// HeaderPreviousNumber is the message number sent before this one on the channel.
	HeaderPreviousNumber = "x-watchwire-previous-number"
	// HeaderMetadata is the event's metadata as compact JSON.
	HeaderMetadata = "x-watchwire-metadata"

	// Standard Webhooks signature headers.
	HeaderWebhookID        = "webhook-id"
	HeaderWebhookTimestamp = "webhook-timestamp"
	HeaderWebhookSignature = "webhook-signature"
)

// notificationHeaders is every header a notification may carry, in the order of the
// §4 table, signature headers last.
var notificationHeaders = []string{
	HeaderChannelID,
	HeaderChannelToken,
	HeaderChannelExpiration,
	HeaderResourceID,
	HeaderResourceURI,
	HeaderResourceState,
	HeaderMessageNumber,
	HeaderChanged,
	HeaderEventResource,
	HeaderCursor,
	HeaderPreviousNumber,
	HeaderMetadata,
	HeaderWebhookID,
	HeaderWebhookTimestamp,
	HeaderWebhookSignature,
}

// Why a present header cannot be used (the text of a malformedHeader error).
const (
	reasonRepeated = "appears more than once"
	reasonNotText  = "is not UTF-8 text"
)

// A HeaderPair is one request header as it arrived, for sources other than net/http.
type HeaderPair struct {
	Name  string
	Value string
}

// HeaderFromPairs builds an http.Header from header pairs without canonicalising the
// names, so that every pair stays one value: a name that appears twice (in any letter
// case) is then seen as repeated, exactly as in the pairs.
func HeaderFromPairs(pairs []HeaderPair) http.Header {
	h := make(http.Header, len(pairs))
	for _, p := range pairs {
		h[p.Name] = append(h[p.Name], p.Value)
	}
	return h
}

// picked holds the values of the notification headers found in an http.Header.
// Names match in any ASCII letter case, and a name with two or more values, under one
// key or several keys that differ in case, is repeated: ambiguous, so no value of it is
// trusted. (net/http keeps a repeated request header as several values of one key.)
type picked struct {
	values [15]string
	counts [15]int
}

func pick(h http.Header) *picked {
	p := &picked{}
	for name, values := range h {
		i := headerIndex(name)
		if i < 0 || len(values) == 0 {
			continue
		}
		if p.counts[i] == 0 {
			p.values[i] = values[0]
		}
		p.counts[i] += len(values)
	}
	return p
}

// headerIndex is the position of name (any ASCII letter case) in notificationHeaders,
// or -1.
func headerIndex(name string) int {
	for i, known := range notificationHeaders {
		if equalFoldASCII(known, name) {
			return i
		}
	}
	return -1
}

// equalFoldASCII compares ASCII letters without regard to case and every other byte
// exactly. (strings.EqualFold also folds Unicode: it would take "\u212a" for "k".)
func equalFoldASCII(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if lowerASCII(a[i]) != lowerASCII(b[i]) {
			return false
		}
	}
	return true
}

func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + ('a' - 'A')
	}
	return c
}

// text is the value of name with surrounding blanks (space, tab) removed. ok is false
// when the header is absent; problem is reasonRepeated or reasonNotText when it cannot
// be used.
func (p *picked) text(name string) (value string, ok bool, problem string) {
	i := headerIndex(name)
	switch {
	case p.counts[i] == 0:
		return "", false, ""
	case p.counts[i] > 1:
		return "", true, reasonRepeated
	case !utf8.ValidString(p.values[i]):
		return "", true, reasonNotText
	}
	return strings.Trim(p.values[i], " \t"), true, ""
}
