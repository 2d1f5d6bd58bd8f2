package receiver

import (
	"errors"
	"net/http"
	"testing"
	"time"
)

// nowMs is a moment before the test channels expire (2023-11-14T22:13:20Z).
const nowMs = 1_700_000_000_000

func testNow() time.Time { return time.UnixMilli(nowMs) }

// syncHeaders is a sync message on channel ch-1 (token tok), as the gateway sends it.
func syncHeaders() []HeaderPair {
	return []HeaderPair{
		{"X-Goog-Channel-ID", "ch-1"},
		{"X-Goog-Channel-Token", "tok"},
		{"X-Goog-Channel-Expiration", "Tue, 01 Jan 2030 00:00:00 GMT"},
		{"X-Goog-Resource-ID", "rid-1"},
		{"X-Goog-Resource-URI", "http://127.0.0.1:8080/calendars/primary/events"},
		{"X-Goog-Resource-State", "sync"},
		{"X-Goog-Message-Number", "1"},
		{"X-Watchwire-Event-Resource", "/calendars/primary/events"},
		{"X-Watchwire-Cursor", "c-0"},
	}
}

// eventHeaders is message 5 (after 3) on channel ch-1, with every optional header.
func eventHeaders() []HeaderPair {
	h := with(syncHeaders(), HeaderResourceState, "update")
	h = with(h, HeaderMessageNumber, "5")
	h = with(h, HeaderPreviousNumber, "3")
	h = with(h, HeaderCursor, "c-9")
	h = with(h, HeaderEventResource, "/calendars/primary/events/e1")
	h = with(h, HeaderChanged, "content,properties")
	return with(h, HeaderMetadata, `{"request_id":"r-1"}`)
}

// with is pairs with name (any case) set to value, replacing any value it had.
func with(pairs []HeaderPair, name, value string) []HeaderPair {
	return append(without(pairs, name), HeaderPair{name, value})
}

// without is pairs without name (any case).
func without(pairs []HeaderPair, name string) []HeaderPair {
	var out []HeaderPair
	for _, p := range pairs {
		if !equalFoldASCII(p.Name, name) {
			out = append(out, p)
		}
	}
	return out
}

func hdr(pairs []HeaderPair) http.Header { return HeaderFromPairs(pairs) }

// asError is err as an *Error, failing the test when it is something else.
func asError(t *testing.T, err error) *Error {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("expected an *Error, got %T %v", err, err)
	}
	return e
}

// wantError checks err's reason and header.
func wantError(t *testing.T, err error, reason, header string) {
	t.Helper()
	e := asError(t, err)
	if e.Reason() != reason || e.Header() != header {
		t.Fatalf("expected %s on %q, got %s on %q (%v)", reason, header, e.Reason(), e.Header(), e)
	}
}

func str(s string) *string { return &s }
