package receiver

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"
)

// The test vectors shared with the Rust library and the other receiver packages
// (format in their README.md), read where they live: never a copy.
const vectorDir = "../../fixtures/notifications"

type vector struct {
	path             string
	Description      string          `json:"description"`
	EmittedByGateway bool            `json:"emittedByGateway"`
	Channel          vectorChannel   `json:"channel"`
	NowMs            int64           `json:"nowMs"`
	Headers          [][2]string     `json:"headers"`
	Body             string          `json:"body"`
	Expect           json.RawMessage `json:"expect"`
}

type vectorChannel struct {
	ID            string  `json:"id"`
	Token         *string `json:"token"`
	ResourceID    *string `json:"resourceId"`
	Expiration    *string `json:"expiration"`
	SigningSecret *string `json:"signingSecret"`
}

type expectation struct {
	Notification json.RawMessage `json:"notification"`
	Error        *struct {
		Reason string  `json:"reason"`
		Header *string `json:"header"`
	} `json:"error"`
}

func strict(data []byte, into interface{}) error {
	d := json.NewDecoder(bytes.NewReader(data))
	d.DisallowUnknownFields()
	d.UseNumber()
	return d.Decode(into)
}

func loadVectors(t *testing.T) []vector {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(vectorDir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(paths)
	if len(paths) < 40 {
		t.Fatalf("expected the full set of vectors in %s, found %d files", vectorDir, len(paths))
	}
	var vectors []vector
	for _, path := range paths {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var v vector
		if err := strict(data, &v); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		v.path = filepath.Base(path)
		vectors = append(vectors, v)
	}
	return vectors
}

func (v vector) expectation(t *testing.T) expectation {
	t.Helper()
	var e expectation
	if err := strict(v.Expect, &e); err != nil {
		t.Fatalf("%s: expect: %v", v.path, err)
	}
	if (e.Notification == nil) == (e.Error == nil) {
		t.Fatalf("%s: expect must hold exactly one of notification and error", v.path)
	}
	return e
}

func (v vector) pairs() []HeaderPair {
	pairs := make([]HeaderPair, len(v.Headers))
	for i, h := range v.Headers {
		pairs[i] = HeaderPair{h[0], h[1]}
	}
	return pairs
}

// channel is what the subscriber knows, set up as the Rust test does: the expiration
// through Update, as from a watch response.
func (v vector) channel(t *testing.T) *Channel {
	t.Helper()
	c := NewChannel(v.Channel.ID)
	c.Token = v.Channel.Token
	c.ResourceID = v.Channel.ResourceID
	response, _ := json.Marshal(map[string]interface{}{"expiration": v.Channel.Expiration})
	if err := c.Update(response); err != nil {
		t.Fatalf("%s: %v", v.path, err)
	}
	if v.Channel.SigningSecret != nil {
		if err := c.SetSigningSecret(*v.Channel.SigningSecret); err != nil {
			t.Fatalf("%s: %v", v.path, err)
		}
	}
	return c
}

func (v vector) now() time.Time { return time.UnixMilli(v.NowMs) }

// asExpected is a notification in the vectors' expect.notification shape.
func asExpected(n *Notification) map[string]interface{} {
	var expiration interface{}
	if n.ChannelExpiration != nil {
		expiration = n.ChannelExpiration.UnixMilli()
	}
	var metadata interface{}
	if n.Metadata != nil {
		metadata = n.Metadata
	}
	return map[string]interface{}{
		"channelId":           n.ChannelID,
		"messageNumber":       n.MessageNumber,
		"state":               string(n.State),
		"resourceId":          n.ResourceID,
		"resourceUri":         n.ResourceURI,
		"channelExpirationMs": expiration,
		"token":               n.Token,
		"changed":             n.Changed,
		"eventResource":       n.EventResource,
		"cursor":              n.Cursor,
		"previousNumber":      n.PreviousNumber,
		"metadata":            metadata,
	}
}

// sameJSON compares two values by their JSON form, numbers by their text.
func sameJSON(a, b interface{}) (bool, string, string) {
	norm := func(v interface{}) (interface{}, string) {
		data, err := json.Marshal(v)
		if err != nil {
			return nil, err.Error()
		}
		var out interface{}
		d := json.NewDecoder(bytes.NewReader(data))
		d.UseNumber()
		if err := d.Decode(&out); err != nil {
			return nil, err.Error()
		}
		return out, string(data)
	}
	na, ta := norm(a)
	nb, tb := norm(b)
	return reflect.DeepEqual(na, nb), ta, tb
}

// problem says what went wrong with one vector's result, or "" when it is what the
// vector expects.
func (v vector) problem(t *testing.T, n *Notification, err error) string {
	t.Helper()
	e := v.expectation(t)
	if e.Error != nil {
		var got *Error
		if !errors.As(err, &got) {
			return fmt.Sprintf("expected error %s (%v), got %v %v", e.Error.Reason, deref(e.Error.Header), n, err)
		}
		header := ""
		if e.Error.Header != nil {
			header = *e.Error.Header
		}
		if got.Reason() != e.Error.Reason || got.Header() != header {
			return fmt.Sprintf("expected %s on %q, got %s on %q (%v)%s",
				e.Error.Reason, header, got.Reason(), got.Header(), got, v.signHint(got))
		}
		return ""
	}
	if err != nil {
		var got *Error
		errors.As(err, &got)
		return fmt.Sprintf("expected a notification, got %v%s", err, v.signHint(got))
	}
	var expected interface{}
	d := json.NewDecoder(bytes.NewReader(e.Notification))
	d.UseNumber()
	if err := d.Decode(&expected); err != nil {
		t.Fatal(err)
	}
	if same, got, want := sameJSON(asExpected(n), expected); !same {
		return fmt.Sprintf("notification differs:\n got  %s\n want %s", got, want)
	}
	return ""
}

func deref(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}

// signHint says what the signature of an edited vector should be.
func (v vector) signHint(err *Error) string {
	if err == nil || err.Reason() != ReasonSignatureMismatch || v.Channel.SigningSecret == nil {
		return ""
	}
	secret, perr := ParseSigningSecret(*v.Channel.SigningSecret)
	if perr != nil {
		return ""
	}
	h := HeaderFromPairs(v.pairs())
	p := pick(h)
	id, _, _ := p.text(HeaderWebhookID)
	ts, _, _ := p.text(HeaderWebhookTimestamp)
	stamp, ok := parseTimestamp(ts)
	if !ok {
		return ""
	}
	return "; the body signs as " + secret.Sign(id, stamp, []byte(v.Body))
}

func TestEveryVectorFromPairsAndFromACanonicalHeader(t *testing.T) {
	for _, v := range loadVectors(t) {
		c := v.channel(t)
		body := []byte(v.Body)
		// As given (names in their spelling), and as net/http stores a request's
		// headers (canonical names, repeats as several values of one key).
		canonical := http.Header{}
		for _, p := range v.pairs() {
			canonical.Add(p.Name, p.Value)
		}
		for source, h := range map[string]http.Header{"pairs": HeaderFromPairs(v.pairs()), "http.Header": canonical} {
			n, err := c.ReceiveAt(h, body, v.now())
			if problem := v.problem(t, n, err); problem != "" {
				t.Errorf("%s (%s; %s): %s", v.path, source, v.Description, problem)
			}
		}
		// The same through Channels, which picks the channel by the id the headers name.
		channels := NewChannels(c)
		n, err := channels.ReceiveAt(HeaderFromPairs(v.pairs()), body, v.now())
		if problem := v.problem(t, n, err); problem != "" {
			t.Errorf("%s (Channels; %s): %s", v.path, v.Description, problem)
		}
	}
}

// Every vector as raw bytes on a socket to a net/http server running an Endpoint:
// header names exactly as in the vector, repeats included, and what the server
// answers is what Status says for the vector's outcome.
func TestEveryVectorThroughTheNetHTTPAdapterOnARealListener(t *testing.T) {
	vectors := loadVectors(t)
	channels := NewChannels()
	deliveries := make(chan Delivery, 1)
	endpoint := NewEndpoint(channels)
	server := httptest.NewServer(endpoint.Handler(func(r *http.Request, d Delivery) error {
		deliveries <- d
		return nil
	}))
	defer server.Close()

	for _, v := range vectors {
		c := v.channel(t)
		now := v.now()
		c.Now = func() time.Time { return now }
		channels.Add(c)
		endpoint.Tracker = NewTracker()

		var raw strings.Builder
		fmt.Fprintf(&raw, "POST /notifications HTTP/1.1\r\nHost: receiver.test\r\nContent-Length: %d\r\n", len(v.Body))
		for _, h := range v.Headers {
			fmt.Fprintf(&raw, "%s: %s\r\n", h[0], h[1])
		}
		raw.WriteString("Connection: close\r\n\r\n")
		raw.WriteString(v.Body)
		status, reason := exchangeRaw(t, server.Listener.Addr().String(), raw.String())
		// The handler runs before the answer is written, so a delivery is here by now.
		var delivered *Delivery
		select {
		case d := <-deliveries:
			delivered = &d
		default:
		}

		e := v.expectation(t)
		if e.Error != nil {
			if status != http.StatusBadRequest || reason != e.Error.Reason {
				t.Errorf("%s: expected 400 %s, got %d %q", v.path, e.Error.Reason, status, reason)
			}
			if delivered != nil {
				t.Errorf("%s: an invalid notification reached the handler", v.path)
			}
		} else {
			if status != http.StatusNoContent || delivered == nil {
				t.Errorf("%s: expected 204 and a delivery, got %d %q", v.path, status, reason)
				continue
			}
			if problem := v.problem(t, delivered.Notification, nil); problem != "" {
				t.Errorf("%s: %s", v.path, problem)
			}
			if string(delivered.Body) != v.Body || !delivered.Observation.IsNew() {
				t.Errorf("%s: body %q, observation %v", v.path, delivered.Body, delivered.Observation)
			}
		}
		channels.Remove(c.ID)
	}
}

// exchangeRaw writes one raw request and returns the status and the envelope's reason.
func exchangeRaw(t *testing.T, addr, request string) (int, string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(conn, request); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, envelopeReason(body)
}

func envelopeReason(body []byte) string {
	var envelope struct {
		Error struct {
			Code   int `json:"code"`
			Errors []struct {
				Reason string `json:"reason"`
			} `json:"errors"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &envelope) != nil || len(envelope.Error.Errors) != 1 {
		return ""
	}
	return envelope.Error.Errors[0].Reason
}

func TestVectorsCoverEveryReasonAndEveryState(t *testing.T) {
	reasons := map[string]bool{}
	states := map[string]bool{}
	for _, v := range loadVectors(t) {
		e := v.expectation(t)
		if e.Error != nil {
			reasons[e.Error.Reason] = true
			continue
		}
		var n struct {
			State string `json:"state"`
		}
		if err := json.Unmarshal(e.Notification, &n); err != nil {
			t.Fatal(err)
		}
		states[n.State] = true
	}
	all := []string{
		ReasonMissingHeader, ReasonMalformedHeader, ReasonInvalidMessageNumber, ReasonUnknownState,
		ReasonChannelIDMismatch, ReasonTokenMismatch, ReasonResourceIDMismatch, ReasonChannelExpired,
		ReasonWebhookIDMismatch, ReasonMissingSignatureHeader, ReasonMalformedSignatureHeader,
		ReasonSignatureTimestampTooOld, ReasonSignatureTimestampInFuture, ReasonSignatureMismatch,
	}
	for _, r := range all {
		if !reasons[r] {
			t.Errorf("no vector has reason %s", r)
		}
		delete(reasons, r)
	}
	for r := range reasons {
		t.Errorf("a vector has reason %q, which this package does not know", r)
	}
	for _, s := range strings.Fields("sync exists not_exists add remove update trash untrash change CREATE_USER") {
		if !states[s] {
			t.Errorf("no valid vector has state %s", s)
		}
	}
}
