package receiver

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// signedChannel is ch-1 with token tok and sigSecret, its clock at testNow.
func signedChannel(t *testing.T) *Channel {
	c := testChannel()
	if err := c.SetSigningSecret(sigSecret); err != nil {
		t.Fatal(err)
	}
	c.Now = testNow
	return c
}

// request is a POST carrying pairs and body, as a client sends it.
func request(t *testing.T, url string, pairs []HeaderPair, body string) *http.Request {
	r, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pairs {
		r.Header.Add(p.Name, p.Value)
	}
	return r
}

type answer struct {
	status int
	header http.Header
	reason string
	body   string
}

func do(t *testing.T, r *http.Request) answer {
	t.Helper()
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header, envelopeReason(body), string(body)}
}

// A body with spacing and key order a re-serialisation would change: its signature
// only verifies over the raw bytes.
const oddBody = "{\"b\" : 2,\n  \"a\":[1.50, 1e2] }"

func TestTheHandlerAnswersWhatTheGatewayExpects(t *testing.T) {
	deliveries := make(chan Delivery, 10)
	var handleErr error
	var mu sync.Mutex
	endpoint := NewEndpoint(NewChannels(signedChannel(t)))
	server := httptest.NewServer(endpoint.Handler(func(r *http.Request, d Delivery) error {
		deliveries <- d
		mu.Lock()
		defer mu.Unlock()
		return handleErr
	}))
	defer server.Close()
	setHandleErr := func(err error) {
		mu.Lock()
		handleErr = err
		mu.Unlock()
	}

	good := signed(t, eventHeaders(), "ch-1-5", oddBody)
	a := do(t, request(t, server.URL, good, oddBody))
	if a.status != http.StatusNoContent || a.body != "" {
		t.Fatalf("%+v", a)
	}
	d := <-deliveries
	if string(d.Body) != oddBody || d.Notification.MessageNumber != 5 || !d.Observation.IsNew() {
		t.Fatalf("%+v", d)
	}
	// The same notification again: flagged, handed on, and still 204.
	if a := do(t, request(t, server.URL, good, oddBody)); a.status != http.StatusNoContent {
		t.Fatalf("%+v", a)
	}
	if d := <-deliveries; !d.Observation.IsDuplicate() {
		t.Fatalf("%+v", d.Observation)
	}
	// A gap: message 9 says 7 came before it, but 5 was the last one seen.
	gap := signed(t, with(eventHeaders(), HeaderMessageNumber, "9"), "ch-1-9", "")
	gap = with(gap, HeaderPreviousNumber, "7")
	if a := do(t, request(t, server.URL, gap, "")); a.status != http.StatusNoContent {
		t.Fatalf("%+v", a)
	}
	if d := <-deliveries; d.Observation.Gap == nil || *d.Observation.Gap != (Gap{7, 5}) {
		t.Fatalf("%+v", d.Observation)
	}

	// Invalid notifications: 400 in the error envelope with the reason, never handed on.
	for _, c := range []struct {
		pairs  []HeaderPair
		body   string
		reason string
	}{
		{good, oddBody + " ", ReasonSignatureMismatch},
		{with(good, HeaderChannelToken, "nope"), oddBody, ReasonTokenMismatch},
		{with(good, HeaderChannelID, "ch-2"), oddBody, ReasonChannelIDMismatch}, // not one of this endpoint's
		{without(good, HeaderResourceURI), oddBody, ReasonMissingHeader},
		{append(good, HeaderPair{"x-goog-channel-id", "ch-1"}), oddBody, ReasonMalformedHeader},
	} {
		a := do(t, request(t, server.URL, c.pairs, c.body))
		if a.status != http.StatusBadRequest || a.reason != c.reason ||
			!strings.HasPrefix(a.header.Get("Content-Type"), "application/json") {
			t.Errorf("expected 400 %s, got %+v", c.reason, a)
		}
	}
	select {
	case d := <-deliveries:
		t.Fatalf("an invalid notification was handed on: %+v", d)
	default:
	}

	// What the callback returns decides the answer.
	next := 20
	for _, c := range []struct {
		err    error
		status int
		reason string
	}{
		{errors.New("database down: secret detail"), http.StatusInternalServerError, "backendError"},
		{WithStatus(http.StatusServiceUnavailable, errors.New("busy")), http.StatusServiceUnavailable, "backendError"},
		{fmt.Errorf("wrapped: %w", WithStatus(http.StatusTooManyRequests, errors.New("slow down"))), http.StatusTooManyRequests, "rateLimitExceeded"},
		{ErrUnsubscribe, http.StatusGone, "gone"},
		{WithStatus(http.StatusUnprocessableEntity, errors.New("no")), http.StatusUnprocessableEntity, "error"},
	} {
		setHandleErr(c.err)
		next++
		n := fmt.Sprint(next)
		a := do(t, request(t, server.URL, signed(t, with(eventHeaders(), HeaderMessageNumber, n), "ch-1-"+n, ""), ""))
		<-deliveries
		if a.status != c.status || a.reason != c.reason || strings.Contains(a.body, "secret detail") {
			t.Errorf("%v: got %+v", c.err, a)
		}
	}
}

func TestTheHandlerRefusesWhatIsNotANotificationDelivery(t *testing.T) {
	var rejected []string
	var mu sync.Mutex
	endpoint := NewEndpoint(NewChannels(signedChannel(t)))
	endpoint.MaxBodyBytes = 64
	endpoint.OnReject = func(r *http.Request, err error) {
		mu.Lock()
		defer mu.Unlock()
		rejected = append(rejected, fmt.Sprint(Status(err)))
	}
	called := false
	server := httptest.NewServer(endpoint.Handler(func(r *http.Request, d Delivery) error {
		mu.Lock()
		defer mu.Unlock()
		called = true
		return nil
	}))
	defer server.Close()

	get, _ := http.NewRequest(http.MethodGet, server.URL, nil)
	if a := do(t, get); a.status != http.StatusMethodNotAllowed || a.header.Get("Allow") != "POST" || a.reason != "methodNotAllowed" {
		t.Fatalf("%+v", a)
	}
	big := strings.Repeat("x", 65)
	pairs := signed(t, eventHeaders(), "ch-1-5", big)
	// Refused from Content-Length, and when the length is not known beforehand.
	if a := do(t, request(t, server.URL, pairs, big)); a.status != http.StatusRequestEntityTooLarge || a.reason != "requestTooLarge" {
		t.Fatalf("%+v", a)
	}
	chunked := request(t, server.URL, pairs, "")
	chunked.Body = io.NopCloser(strings.NewReader(big))
	chunked.ContentLength = -1
	if a := do(t, chunked); a.status != http.StatusRequestEntityTooLarge {
		t.Fatalf("%+v", a)
	}
	// Exactly the limit is fine.
	limit := strings.Repeat("y", 64)
	if a := do(t, request(t, server.URL, signed(t, eventHeaders(), "ch-1-5", limit), limit)); a.status != http.StatusNoContent {
		t.Fatalf("%+v", a)
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(rejected, " ") != "405 413 413" || !called {
		t.Fatalf("rejected %v, called %v", rejected, called)
	}
}

func TestMiddlewarePutsTheDeliveryInTheContextAndKeepsTheBodyReadable(t *testing.T) {
	endpoint := NewEndpoint(NewChannels(signedChannel(t)))
	seen := make(chan string, 4)
	server := httptest.NewServer(endpoint.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d, ok := DeliveryFrom(r.Context())
		body, _ := io.ReadAll(r.Body)
		seen <- fmt.Sprintf("%v %d %s %s", ok, d.Notification.MessageNumber, d.Observation.Arrival, body)
		w.WriteHeader(http.StatusAccepted)
	})))
	defer server.Close()

	good := signed(t, eventHeaders(), "ch-1-5", oddBody)
	for _, want := range []string{"true 5 new " + oddBody, "true 5 duplicate " + oddBody} {
		if a := do(t, request(t, server.URL, good, oddBody)); a.status != http.StatusAccepted {
			t.Fatalf("%+v", a)
		}
		if got := <-seen; got != want {
			t.Fatalf("%q, want %q", got, want)
		}
	}
	if a := do(t, request(t, server.URL, good, "{}")); a.status != http.StatusBadRequest || a.reason != ReasonSignatureMismatch {
		t.Fatalf("%+v", a)
	}
	select {
	case got := <-seen:
		t.Fatalf("an invalid notification reached the next handler: %s", got)
	default:
	}
	if _, ok := DeliveryFrom(httptest.NewRequest(http.MethodPost, "/", nil).Context()); ok {
		t.Fatal("a delivery out of nowhere")
	}
}

// A raw request: header names as the sender spelt them, repeats included, reach the
// checks the way the Rust library sees them.
func TestHeaderSpellingAndRepeatsOverTheWire(t *testing.T) {
	endpoint := NewEndpoint(NewChannels(signedChannel(t)))
	server := httptest.NewServer(endpoint.Handler(nil))
	defer server.Close()
	raw := func(pairs []HeaderPair, body string) (int, string) {
		var b strings.Builder
		fmt.Fprintf(&b, "POST / HTTP/1.1\r\nHost: r\r\nConnection: close\r\nContent-Length: %d\r\n", len(body))
		for _, p := range pairs {
			fmt.Fprintf(&b, "%s: %s\r\n", p.Name, p.Value)
		}
		return exchangeRaw(t, server.Listener.Addr().String(), b.String()+"\r\n"+body)
	}
	good := signed(t, eventHeaders(), "ch-1-5", oddBody)
	var lower, upper []HeaderPair
	for _, p := range good {
		lower = append(lower, HeaderPair{strings.ToLower(p.Name), p.Value})
		upper = append(upper, HeaderPair{strings.ToUpper(p.Name), p.Value})
	}
	for _, pairs := range [][]HeaderPair{good, lower, upper} {
		if status, reason := raw(pairs, oddBody); status != http.StatusNoContent {
			t.Fatalf("%d %s", status, reason)
		}
	}
	for _, name := range []string{"X-GOOG-RESOURCE-STATE", "webhook-signature", "X-Watchwire-Metadata"} {
		repeated := append(append([]HeaderPair{}, good...), HeaderPair{name, "x"})
		status, reason := raw(repeated, oddBody)
		want := ReasonMalformedHeader
		if strings.HasPrefix(name, "webhook") {
			want = ReasonMalformedSignatureHeader
		}
		if status != http.StatusBadRequest || reason != want {
			t.Errorf("%s repeated: %d %s", name, status, reason)
		}
	}
	// A value that is not UTF-8 (obs-text, which net/http lets through).
	status, reason := raw(with(good, HeaderCursor, "c-\xff"), oddBody)
	if status != http.StatusBadRequest || reason != ReasonMalformedHeader {
		t.Errorf("%d %s", status, reason)
	}
}

func TestStatusAndRespond(t *testing.T) {
	for _, c := range []struct {
		err    error
		status int
	}{
		{nil, 204},
		{missingHeader(HeaderChannelID), 400},
		{fmt.Errorf("context: %w", missingHeader(HeaderChannelID)), 400},
		{ErrUnsubscribe, 410},
		{WithStatus(503, nil), 503},
		{WithStatus(0, nil), 500},
		{errors.New("x"), 500},
	} {
		if got := Status(c.err); got != c.status {
			t.Errorf("%v: %d, want %d", c.err, got, c.status)
		}
		w := httptest.NewRecorder()
		Respond(w, c.err)
		if w.Code != c.status {
			t.Errorf("%v: wrote %d", c.err, w.Code)
		}
		if c.err == nil {
			if w.Body.Len() != 0 {
				t.Error("204 with a body")
			}
			continue
		}
		var envelope struct {
			Error struct {
				Code    int    `json:"code"`
				Message string `json:"message"`
				Errors  []struct {
					Domain, Reason, Message string
				} `json:"errors"`
			} `json:"error"`
		}
		if err := json.Unmarshal(w.Body.Bytes(), &envelope); err != nil || envelope.Error.Code != c.status ||
			len(envelope.Error.Errors) != 1 || envelope.Error.Errors[0].Domain != "global" || envelope.Error.Errors[0].Reason == "" {
			t.Errorf("%v: %s", c.err, w.Body)
		}
	}
	w := httptest.NewRecorder()
	Respond(w, missingHeader(HeaderChannelID))
	if !bytes.Contains(w.Body.Bytes(), []byte(`"reason":"missingHeader","message":"header x-goog-channel-id is missing"`)) {
		t.Fatal(w.Body)
	}
}

func TestChannelsPickTheChannelAndTakeUpdatesWhileReceiving(t *testing.T) {
	channels := NewChannels(NewChannel("a").WithToken("ta"), NewChannel("b").WithToken("tb"))
	pairs := func(id, token, resource string) http.Header {
		return hdr(with(with(with(syncHeaders(), HeaderChannelID, id), HeaderChannelToken, token), HeaderResourceID, resource))
	}
	if _, err := channels.ReceiveAt(pairs("a", "ta", "rid-1"), nil, testNow()); err != nil {
		t.Fatal(err)
	}
	_, err := channels.ReceiveAt(pairs("b", "ta", "rid-1"), nil, testNow())
	wantError(t, err, ReasonTokenMismatch, HeaderChannelToken)
	_, err = channels.ReceiveAt(pairs("c", "tc", "rid-1"), nil, testNow())
	wantError(t, err, ReasonChannelIDMismatch, HeaderChannelID)
	// Headers that do not parse fail as such, before any channel is looked up.
	_, err = channels.ReceiveAt(hdr(without(with(syncHeaders(), HeaderChannelID, "c"), HeaderMessageNumber)), nil, testNow())
	wantError(t, err, ReasonMissingHeader, HeaderMessageNumber)
	// Get is a copy: changing it changes nothing held.
	got, _ := channels.Get("a")
	got.Token = str("changed")
	if _, err := channels.ReceiveAt(pairs("a", "ta", "rid-1"), nil, testNow()); err != nil {
		t.Fatal(err)
	}
	if err := channels.Update("zz", []byte(`{}`)); err == nil {
		t.Fatal("updated an unknown channel")
	}
	var ce *ChannelError
	if err := channels.Update("a", []byte(`{"resourceId": 1}`)); !errors.As(err, &ce) {
		t.Fatal(err)
	}

	// One goroutine takes the watch response while others receive.
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				_, err := channels.ReceiveAt(pairs("a", "ta", "rid-1"), nil, testNow())
				if err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	for i := 0; i < 50; i++ {
		if err := channels.Update("a", []byte(`{"resourceId": "rid-1", "expiration": "1893456000000"}`)); err != nil {
			t.Error(err)
		}
	}
	close(stop)
	wg.Wait()
	// Now the resource id is known and checked.
	_, err = channels.ReceiveAt(pairs("a", "ta", "rid-2"), nil, testNow())
	wantError(t, err, ReasonResourceIDMismatch, HeaderResourceID)
	// A response that renames the channel moves it.
	if err := channels.Update("b", []byte(`{"id": "b2"}`)); err != nil {
		t.Fatal(err)
	}
	if _, ok := channels.Get("b"); ok {
		t.Fatal("b is still there")
	}
	if c, ok := channels.Get("b2"); !ok || *c.Token != "tb" {
		t.Fatal(c, ok)
	}
	channels.Remove("b2")
	if _, ok := channels.Get("b2"); ok {
		t.Fatal("b2 is still there")
	}
	// Receive uses each channel's own clock.
	late := NewChannel("late")
	late.Now = func() time.Time { return time.Unix(1_893_456_001, 0) }
	channels.Add(late)
	_, err = channels.Receive(hdr(with(syncHeaders(), HeaderChannelID, "late")), nil)
	wantError(t, err, ReasonChannelExpired, "")
}

func TestAnEndpointWithoutATrackerOrChannels(t *testing.T) {
	e := &Endpoint{Channels: NewChannels(testChannel())}
	for i := 0; i < 2; i++ {
		r := request(t, "http://r/", syncHeaders(), "")
		d, err := e.Check(r)
		if err != nil || !d.Observation.IsNew() {
			t.Fatal(d, err)
		}
	}
	_, err := (&Endpoint{}).Check(request(t, "http://r/", syncHeaders(), ""))
	wantError(t, err, ReasonChannelIDMismatch, HeaderChannelID)
}

// What the callback did not handle comes again: the Handler retracts its number, so
// the retry is not flagged a duplicate. A duplicate stays one.
func TestTheHandlerRetractsWhatTheCallbackDidNotHandle(t *testing.T) {
	endpoint := NewEndpoint(NewChannels(testChannel()))
	var outcome func() error
	var seen Observation
	handler := endpoint.Handler(func(r *http.Request, d Delivery) error {
		seen = d.Observation
		return outcome()
	})
	deliver := func(number, previous uint64, result func() error) (int, Observation) {
		t.Helper()
		pairs := with(eventHeaders(), HeaderMessageNumber, fmt.Sprint(number))
		pairs = with(pairs, HeaderPreviousNumber, fmt.Sprint(previous))
		if previous == 0 {
			pairs = without(pairs, HeaderPreviousNumber)
		}
		outcome, seen = result, Observation{Arrival: -1}
		w := httptest.NewRecorder()
		handler.ServeHTTP(w, request(t, "http://r/", pairs, ""))
		return w.Code, seen
	}
	ok := func() error { return nil }
	fail := func(err error) func() error { return func() error { return err } }
	want := func(status int, o Observation, wantStatus int, wantArrival Arrival) {
		t.Helper()
		if status != wantStatus || o.Arrival != wantArrival || o.Gap != nil {
			t.Fatalf("got %d %+v, want %d %v", status, o, wantStatus, wantArrival)
		}
	}

	// The first notification is never handled; the retry is new both times.
	s, o := deliver(1, 0, fail(errors.New("database down")))
	want(s, o, http.StatusInternalServerError, New)
	s, o = deliver(1, 0, ok)
	want(s, o, http.StatusNoContent, New)
	// Failing on a duplicate takes nothing back: the earlier delivery was handled.
	s, o = deliver(1, 0, fail(errors.New("database down")))
	want(s, o, http.StatusInternalServerError, Duplicate)
	s, o = deliver(1, 0, ok)
	want(s, o, http.StatusNoContent, Duplicate)

	// Every answer but 2xx retracts; the retry sees 1 as the last number, so no gap.
	number := uint64(1)
	for _, err := range []error{
		WithStatus(http.StatusServiceUnavailable, errors.New("busy")),
		fmt.Errorf("wrapped: %w", WithStatus(http.StatusTooManyRequests, errors.New("slow down"))),
		WithStatus(http.StatusUnprocessableEntity, errors.New("no")),
		ErrUnsubscribe,
	} {
		s, o = deliver(number+1, number, fail(err))
		want(s, o, Status(err), New)
		s, o = deliver(number+1, number, ok)
		want(s, o, http.StatusNoContent, New)
		number++
	}
	// A 2xx from a *StatusError is handled: its repeat is a duplicate.
	s, o = deliver(number+1, number, fail(WithStatus(http.StatusAccepted, nil)))
	want(s, o, http.StatusAccepted, New)
	s, o = deliver(number+1, number, ok)
	want(s, o, http.StatusNoContent, Duplicate)
	number++

	// A panic (net/http would drop the connection: the gateway retries) retracts too.
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("the panic was swallowed")
			}
		}()
		deliver(number+1, number, func() error { panic("handler bug") })
	}()
	s, o = deliver(number+1, number, ok)
	want(s, o, http.StatusNoContent, New)
	number++

	// Out of order and not handled: out of order again, not a duplicate.
	s, o = deliver(number+5, number+4, ok)
	if s != http.StatusNoContent || o.Gap == nil || *o.Gap != (Gap{number + 4, number}) {
		t.Fatalf("%d %+v", s, o)
	}
	s, o = deliver(number+2, number+1, fail(errors.New("database down")))
	want(s, o, http.StatusInternalServerError, OutOfOrder)
	s, o = deliver(number+2, number+1, ok)
	want(s, o, http.StatusNoContent, OutOfOrder)
	s, o = deliver(number+2, number+1, ok)
	want(s, o, http.StatusNoContent, Duplicate)
}
