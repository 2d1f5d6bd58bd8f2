package receiver

import (
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"
)

func parse(t *testing.T, pairs []HeaderPair) *Notification {
	t.Helper()
	n, err := ParseNotification(hdr(pairs))
	if err != nil {
		t.Fatalf("unexpected error: %v", err)
	}
	return n
}

func TestParsesASyncMessage(t *testing.T) {
	n := parse(t, syncHeaders())
	if n.ChannelID != "ch-1" || n.MessageNumber != 1 || !n.IsSync() || n.ResourceID != "rid-1" ||
		n.ResourceURI != "http://127.0.0.1:8080/calendars/primary/events" {
		t.Fatalf("%+v", n)
	}
	if *n.Token != "tok" || n.ChannelExpiration.Unix() != 1_893_456_000 || *n.Cursor != "c-0" {
		t.Fatalf("%+v", n)
	}
	if n.PreviousNumber != nil || len(n.Changed) != 0 || n.Changed == nil || n.Metadata != nil {
		t.Fatalf("%+v", n)
	}
}

func TestParsesEveryExtensionHeader(t *testing.T) {
	n := parse(t, eventHeaders())
	if n.MessageNumber != 5 || n.State != StateUpdate || n.IsSync() {
		t.Fatalf("%+v", n)
	}
	if !reflect.DeepEqual(n.Changed, []string{"content", "properties"}) {
		t.Fatalf("changed %q", n.Changed)
	}
	if *n.EventResource != "/calendars/primary/events/e1" || *n.Cursor != "c-9" || *n.PreviousNumber != 3 {
		t.Fatalf("%+v", n)
	}
	if n.Metadata["request_id"] != "r-1" {
		t.Fatalf("metadata %v", n.Metadata)
	}
}

func TestKeepsAdminStyleStateNames(t *testing.T) {
	if n := parse(t, with(eventHeaders(), HeaderResourceState, "CREATE_USER")); n.State != "CREATE_USER" {
		t.Fatalf("state %q", n.State)
	}
	for _, s := range []string{"sync", "exists", "not_exists", "add", "remove", "update", "trash",
		"untrash", "change", "CREATE_USER", "X", "A1_B2", "A" + strings.Repeat("B", 63)} {
		if state, ok := ParseState(s); !ok || string(state) != s {
			t.Errorf("%q: %q %v", s, state, ok)
		}
	}
}

func TestNamesEachMissingRequiredHeader(t *testing.T) {
	for _, name := range []string{HeaderChannelID, HeaderMessageNumber, HeaderResourceState, HeaderResourceID, HeaderResourceURI} {
		_, err := ParseNotification(hdr(without(syncHeaders(), name)))
		wantError(t, err, ReasonMissingHeader, name)
	}
	// In the order of the checks: the channel id is looked at first.
	_, err := ParseNotification(http.Header{})
	wantError(t, err, ReasonMissingHeader, HeaderChannelID)
}

func TestOptionalHeadersMayBeAbsent(t *testing.T) {
	h := eventHeaders()
	for _, name := range []string{HeaderChannelToken, HeaderChannelExpiration, HeaderChanged,
		HeaderEventResource, HeaderCursor, HeaderPreviousNumber, HeaderMetadata} {
		h = without(h, name)
	}
	n := parse(t, h)
	if n.Token != nil || n.ChannelExpiration != nil || n.PreviousNumber != nil || n.Metadata != nil ||
		n.EventResource != nil || n.Cursor != nil || len(n.Changed) != 0 {
		t.Fatalf("%+v", n)
	}
}

func TestAnEmptyTokenIsPresent(t *testing.T) {
	n := parse(t, with(syncHeaders(), HeaderChannelToken, ""))
	if n.Token == nil || *n.Token != "" {
		t.Fatalf("token %v", n.Token)
	}
}

func TestRejectsUnparsableMessageNumbers(t *testing.T) {
	for _, bad := range []string{"", "0", "-1", "+2", "1.0", "0x10", "one", "18446744073709551616", "1 2", "١"} {
		_, err := ParseNotification(hdr(with(syncHeaders(), HeaderMessageNumber, bad)))
		wantError(t, err, ReasonInvalidMessageNumber, HeaderMessageNumber)
		if e := asError(t, err); e.Received != bad {
			t.Errorf("%q: received %q", bad, e.Received)
		}
	}
	if n := parse(t, with(eventHeaders(), HeaderMessageNumber, "18446744073709551615")); n.MessageNumber != 1<<64-1 {
		t.Fatalf("%d", n.MessageNumber)
	}
	if n := parse(t, with(syncHeaders(), HeaderMessageNumber, "007")); n.MessageNumber != 7 {
		t.Fatalf("%d", n.MessageNumber)
	}
}

func TestRejectsUnknownStates(t *testing.T) {
	for _, bad := range []string{"", "Exists", "SYNC ING", "created", "deleted", "exists,sync", "_X", "1ABC",
		"a_b", "A" + strings.Repeat("B", 64)} {
		_, err := ParseNotification(hdr(with(syncHeaders(), HeaderResourceState, bad)))
		wantError(t, err, ReasonUnknownState, HeaderResourceState)
	}
}

func TestRejectsMalformedOptionalHeaders(t *testing.T) {
	cases := []HeaderPair{
		{HeaderChannelExpiration, "1893456000000"},
		{HeaderChannelExpiration, "2030-01-01T00:00:00Z"},
		{HeaderChanged, "content,,parents"},
		{HeaderChanged, "a b"},
		{HeaderChanged, strings.Repeat("a", 65)},
		{HeaderPreviousNumber, "five"},
		{HeaderPreviousNumber, "0"},
		{HeaderPreviousNumber, "5"}, // not below the message number 5
		{HeaderPreviousNumber, "-1"},
		{HeaderMetadata, "[1,2]"},
		{HeaderMetadata, "{not json"},
		{HeaderMetadata, "null"},
		{HeaderMetadata, `{"a":1} {"b":2}`},
	}
	for _, c := range cases {
		_, err := ParseNotification(hdr(with(eventHeaders(), c.Name, c.Value)))
		wantError(t, err, ReasonMalformedHeader, c.Name)
	}
}

func TestAPreviousNumberOnSyncIsMalformed(t *testing.T) {
	_, err := ParseNotification(hdr(with(syncHeaders(), HeaderPreviousNumber, "1")))
	wantError(t, err, ReasonMalformedHeader, HeaderPreviousNumber)
}

func TestChangedTokensAreTrimmedAndAnEmptyHeaderIsAnEmptyList(t *testing.T) {
	if n := parse(t, with(eventHeaders(), HeaderChanged, "")); n.Changed == nil || len(n.Changed) != 0 {
		t.Fatalf("%q", n.Changed)
	}
	if n := parse(t, with(eventHeaders(), HeaderChanged, "a , b\t,c-_9")); !reflect.DeepEqual(n.Changed, []string{"a", "b", "c-_9"}) {
		t.Fatalf("%q", n.Changed)
	}
}

func TestARepeatedHeaderIsMalformedNotFirstWins(t *testing.T) {
	repeated := append(syncHeaders(), HeaderPair{"X-Goog-Channel-ID", "ch-2"})
	_, err := ParseNotification(hdr(repeated))
	wantError(t, err, ReasonMalformedHeader, HeaderChannelID)
	if !strings.Contains(err.Error(), reasonRepeated) {
		t.Fatal(err)
	}
	// The same value twice is no less ambiguous.
	_, err = ParseNotification(hdr(append(syncHeaders(), HeaderPair{"x-goog-message-number", "1"})))
	wantError(t, err, ReasonMalformedHeader, HeaderMessageNumber)
	// As net/http keeps a repeated header: two values of one canonical key.
	h := http.Header{}
	for _, p := range syncHeaders() {
		h.Add(p.Name, p.Value)
	}
	h.Add("x-goog-resource-id", "rid-2")
	if len(h.Values("X-Goog-Resource-Id")) != 2 {
		t.Fatal("net/http keeps both values under one key")
	}
	_, err = ParseNotification(h)
	wantError(t, err, ReasonMalformedHeader, HeaderResourceID)
	// A repeated header the parser never reads is not an error.
	n := parse(t, append(syncHeaders(), HeaderPair{"X-Other", "a"}, HeaderPair{"x-other", "b"}))
	if n.ChannelID != "ch-1" {
		t.Fatal(n.ChannelID)
	}
}

func TestANonTextValueIsMalformed(t *testing.T) {
	_, err := ParseNotification(hdr(with(syncHeaders(), HeaderResourceURI, "\xc3\x28")))
	wantError(t, err, ReasonMalformedHeader, HeaderResourceURI)
	if !strings.Contains(err.Error(), reasonNotText) {
		t.Fatal(err)
	}
	// Non-ASCII UTF-8 is text.
	if n := parse(t, with(syncHeaders(), HeaderResourceURI, "http://gw/caf\u00e9")); n.ResourceURI != "http://gw/café" {
		t.Fatal(n.ResourceURI)
	}
}

func TestHeaderNamesAreCaseInsensitiveInASCIIOnly(t *testing.T) {
	variants := []func(string) string{
		func(s string) string { return s },
		strings.ToUpper,
		strings.ToLower,
		func(s string) string {
			b := []byte(s)
			for i := range b {
				if i%2 == 0 {
					b[i] = byte(strings.ToUpper(string(b[i]))[0])
				} else {
					b[i] = lowerASCII(b[i])
				}
			}
			return string(b)
		},
	}
	expected := parse(t, eventHeaders())
	for _, variant := range variants {
		var renamed []HeaderPair
		canonical := http.Header{}
		for _, p := range eventHeaders() {
			renamed = append(renamed, HeaderPair{variant(p.Name), p.Value})
			canonical.Add(variant(p.Name), p.Value)
		}
		for _, h := range []http.Header{hdr(renamed), canonical} {
			got, err := ParseNotification(h)
			if err != nil || !reflect.DeepEqual(got, expected) {
				t.Fatalf("%v: %+v %v", h, got, err)
			}
		}
	}
	// "\u212a" (KELVIN SIGN) folds to "k" in Unicode, but a header name is ASCII.
	kelvin := with(syncHeaders(), "X-Goog-Channel-To\u212aen", "tok")
	n := parse(t, without(kelvin, HeaderChannelToken))
	if n.Token != nil {
		t.Fatalf("a Unicode case fold matched a header name: %v", *n.Token)
	}
}

func TestValuesLoseSurroundingBlanksOnly(t *testing.T) {
	n := parse(t, with(syncHeaders(), HeaderCursor, " \t c 1 \t"))
	if *n.Cursor != "c 1" {
		t.Fatalf("%q", *n.Cursor)
	}
	if n := parse(t, with(syncHeaders(), HeaderMessageNumber, " \t7 ")); n.MessageNumber != 7 {
		t.Fatal(n.MessageNumber)
	}
}

func TestMetadataKeepsEveryDigitAndRefusesWhatTheRustParserRefuses(t *testing.T) {
	big := "555555555555555555555555555555555555555555555555551.5"
	n := parse(t, with(eventHeaders(), HeaderMetadata, `{"n":`+big+`,"s":"Zo\u00eb \ud83d\udc31","a":[1,{"b":null}],"k":1,"k":2}`))
	if n.Metadata["n"] != json.Number(big) {
		t.Fatalf("%#v", n.Metadata["n"])
	}
	if n.Metadata["s"] != "Zoë 🐱" || n.Metadata["k"] != json.Number("2") {
		t.Fatalf("%#v", n.Metadata)
	}
	for _, bad := range []string{
		`{"n":1e400}`,                  // beyond a float64
		`{"n":-1e309}`,                 // beyond a float64
		`{"s":"\ud800"}`,               // a lone leading surrogate
		`{"s":"\udc00\ud800"}`,         // a trailing surrogate first
		`{"s":"\ud800\u0041"}`,         // a leading surrogate without its pair
		`{"s":"x\ud83d"}`,              // at the end of the string
		deepMetadata(maxJSONDepth + 1), // nested deeper than the Rust parser goes
	} {
		_, err := ParseNotification(hdr(with(eventHeaders(), HeaderMetadata, bad)))
		wantError(t, err, ReasonMalformedHeader, HeaderMetadata)
	}
	for _, good := range []string{`{"n":1e-400}`, `{"s":"\\ud800"}`, `{"s":"\ud83d\udc31"}`, deepMetadata(maxJSONDepth), ` {} `} {
		parse(t, with(eventHeaders(), HeaderMetadata, good))
	}
}

// deepMetadata is an object whose nesting is depth levels, itself included.
func deepMetadata(depth int) string {
	return `{"a":` + strings.Repeat("[", depth-1) + strings.Repeat("]", depth-1) + "}"
}

func TestChannelExpirationIsAnIMFFixdate(t *testing.T) {
	// Google's documented example.
	got, ok := parseHTTPDate("Tue, 19 Nov 2013 01:13:52 GMT")
	if !ok || got.UnixMilli() != 1_384_823_632_000 {
		t.Fatal(got, ok)
	}
	// Every weekday, month, leap day and single-digit field over several centuries,
	// as net/http formats them.
	for ms := int64(0); ms < 8_000_000_000_000; ms += 86_400_000*3 + 3_723_000 {
		want := time.UnixMilli(ms).UTC()
		got, ok := parseHTTPDate(want.Format(http.TimeFormat))
		if !ok || got.Unix() != want.Unix() {
			t.Fatalf("%s: %v %v", want.Format(http.TimeFormat), got, ok)
		}
	}
}

// The Rust library parses with chrono's "%a, %d %b %Y %H:%M:%S GMT", which is more
// lenient than RFC 9110; the same strings must give the same answers here.
func TestChannelExpirationParsesWhatTheRustLibraryParses(t *testing.T) {
	want := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, s := range []string{
		"Tue, 01 Jan 2030 00:00:00 GMT",
		"TUE, 01 JAN 2030 00:00:00 GMT",
		"tue, 1 jan 2030 0:0:0 GMT",
		"Tue,01 Jan 2030 00:00:00GMT",
		"Tue,   01  Jan   2030   00:00:00   GMT",
		"Tue, 01Jan2030 00:00:00 GMT",
		"Tue, 01 Jan +2030 00:00:00 GMT",
		" \u00a0Tue, 01 Jan 2030 00:00:00 GMT\u3000",
	} {
		if got, ok := parseHTTPDate(s); !ok || !got.Equal(want) {
			t.Errorf("%q: %v %v", s, got, ok)
		}
	}
	for _, s := range []string{
		"", "2013-11-19T01:13:52Z", "Wed, 01 Jan 2030 00:00:00 GMT", // another weekday
		"Tue, 30 Feb 2030 00:00:00 GMT", "Tue, 00 Jan 2030 00:00:00 GMT", "Tue, 32 Jan 2030 00:00:00 GMT",
		"Tue, 01 Jan 2030 24:00:00 GMT", "Tue, 01 Jan 2030 00:60:00 GMT", "Tue, 01 Jan 2030 00:00:61 GMT",
		"Tue, 01 Jan 2030 00:00:00 UTC", "Tue, 01 Jan 2030 00:00:00 gmt", "Tue, 01 Jan 2030 00:00:00 GMT x",
		"Tuesday, 01 Jan 2030 00:00:00 GMT", "Tue 01 Jan 2030 00:00:00 GMT", "Tue, 001 Jan 2030 00:00:00 GMT",
		"Tue, 01 Jan 20300 00:00:00 GMT", "Tue, 01 Jan - 2030 00:00:00 GMT", "Tue, 01 Jan 2030 00:00:00.5 GMT",
		"Fri, 01 Jan +262143 00:00:00 GMT", // beyond the dates chrono holds
	} {
		if got, ok := parseHTTPDate(s); ok {
			t.Errorf("%q parsed as %v", s, got)
		}
	}
	// Year 99 is year 99, and signed years work both ways.
	if got, ok := parseHTTPDate("Thu, 01 Jan 99 00:00:00 GMT"); !ok || got.Year() != 99 {
		t.Errorf("%v %v", got, ok)
	}
	if got, ok := parseHTTPDate("Fri, 01 Jan -0001 00:00:00 GMT"); !ok || got.Year() != -1 {
		t.Errorf("%v %v", got, ok)
	}
	// Second 60 is a leap second: after second 59, before the next minute.
	leap, ok := parseHTTPDate("Tue, 31 Dec 2030 23:59:60 GMT")
	end := time.Date(2030, 12, 31, 23, 59, 59, 0, time.UTC)
	if !ok || !leap.After(end.Add(999*time.Millisecond)) || !leap.Before(end.Add(time.Second)) {
		t.Errorf("%v %v", leap, ok)
	}
}
