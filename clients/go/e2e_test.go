package receiver

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// timeout is long enough for a loaded CI machine; a passing run takes about a second.
const timeout = 30 * time.Second

// gateway is a `watchwire serve` child process.
type gateway struct {
	url    string
	cmd    *exec.Cmd
	stderr *lockedBuffer
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startGateway runs $WATCHWIRE_BIN serve as tests/common/process.rs does and waits for
// its listening line. The test is skipped without WATCHWIRE_BIN, except under CI.
func startGateway(t *testing.T) *gateway {
	t.Helper()
	bin := os.Getenv("WATCHWIRE_BIN")
	if bin == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("CI is set, so the end-to-end test must run; WATCHWIRE_BIN (the watchwire binary) is not set")
		}
		t.Skip("the end-to-end test did not run: set WATCHWIRE_BIN to a watchwire binary (cargo test does)")
	}
	cmd := exec.Command(bin, "serve", "--dev", "--listen", "127.0.0.1:0", "--data-dir", t.TempDir(),
		"--log", "warn", "--retry-schedule", "20ms,40ms")
	g := &gateway{cmd: cmd, stderr: &lockedBuffer{}}
	cmd.Stderr = g.stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", bin, err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	urls := make(chan string, 1)
	go func() {
		scanner := bufio.NewScanner(stdout)
		for scanner.Scan() {
			if url := strings.TrimPrefix(scanner.Text(), "watchwire listening on "); url != scanner.Text() {
				urls <- strings.TrimSpace(url)
			}
		}
		close(urls)
	}()
	select {
	case url, ok := <-urls:
		if !ok {
			t.Fatalf("the gateway exited without saying where it listens; stderr:\n%s", g.stderr)
		}
		g.url = url
	case <-time.After(timeout):
		t.Fatalf("the gateway said nothing within %v; stderr:\n%s", timeout, g.stderr)
	}
	return g
}

// rawJSON is a request body sent as it is.
type rawJSON string

// call sends a JSON request to the gateway and decodes its JSON answer.
func (g *gateway) call(t *testing.T, method, path string, body interface{}, want int) map[string]interface{} {
	t.Helper()
	data, err := json.Marshal(body)
	if raw, ok := body.(rawJSON); ok {
		data, err = []byte(raw), nil
	}
	if err != nil {
		t.Fatal(err)
	}
	r, err := http.NewRequest(method, g.url+path, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	r.Header.Set("Content-Type", "application/json")
	client := &http.Client{Timeout: timeout}
	resp, err := client.Do(r)
	if err != nil {
		t.Fatalf("%s %s: %v; stderr:\n%s", method, path, err, g.stderr)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("%s %s: %d %s (wanted %d)", method, path, resp.StatusCode, answer, want)
	}
	var out map[string]interface{}
	if len(answer) > 0 {
		if err := json.Unmarshal(answer, &out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, path, err, answer)
		}
	}
	return out
}

// received is what the app saw: each valid notification and what it answered.
type received struct {
	number   uint64
	state    State
	previous *uint64
	arrival  Arrival
	gap      *Gap
	body     string
	cursor   string
	metadata map[string]interface{}
}

// A real gateway delivers signed notifications to an app built on Endpoint; a replay
// is flagged as duplicates and still answered 204.
func TestEndToEndWithARunningGateway(t *testing.T) {
	gw := startGateway(t)
	const secret = "whsec_AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA="

	// The app: one channel, held before watch is called (the sync may come first).
	channels := NewChannels()
	endpoint := NewEndpoint(channels)
	events := make(chan received, 64)
	rejected := make(chan error, 64)
	endpoint.OnReject = func(r *http.Request, err error) { rejected <- err }
	handler := endpoint.Handler(func(r *http.Request, d Delivery) error {
		cursor := ""
		if d.Notification.Cursor != nil {
			cursor = *d.Notification.Cursor
		}
		events <- received{number: d.Notification.MessageNumber, state: d.Notification.State,
			previous: d.Notification.PreviousNumber, arrival: d.Observation.Arrival, gap: d.Observation.Gap,
			body: string(d.Body), cursor: cursor, metadata: d.Notification.Metadata}
		return nil
	})
	statuses := make(chan int, 64)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		recorder := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		handler.ServeHTTP(recorder, r)
		statuses <- recorder.status
	}))
	defer app.Close()

	channel := NewWebhookChannel("go-e2e-1", app.URL+"/notifications").WithToken("go-token")
	if err := channel.SetSigningSecret(secret); err != nil {
		t.Fatal(err)
	}
	channels.Add(channel)
	watch := gw.call(t, http.MethodPost, "/calendar/v3/calendars/primary/events/watch", channel.Body(), http.StatusOK)
	response, _ := json.Marshal(watch)
	if err := channels.Update(channel.ID, response); err != nil {
		t.Fatal(err)
	}
	held, _ := channels.Get(channel.ID)
	if held.ResourceID == nil || held.Expiration == nil || *held.ResourceID != watch["resourceId"] {
		t.Fatalf("the watch response was not taken: %+v", held)
	}

	// Bodies with spacing a re-serialisation would change: signatures are over bytes.
	bodies := []string{`{"n": 1,  "who":"Zoë"}`, `[1, 2.50, 1e2]`, `{"n":3}`}
	// Written out by hand: encoding/json would compact the data.
	var batch []string
	for i, body := range bodies {
		batch = append(batch, fmt.Sprintf(`{"resource": "/calendars/primary/events", "state": "exists", "data": %s, "metadata": {"i": %d}}`, body, i))
	}
	gw.call(t, http.MethodPost, "/v1/events", rawJSON("["+strings.Join(batch, ", ")+"]"), http.StatusOK)

	next := func(what string) received {
		t.Helper()
		select {
		case r := <-events:
			if status := <-statuses; status != http.StatusNoContent {
				t.Fatalf("%s: the app answered %d", what, status)
			}
			return r
		case err := <-rejected:
			t.Fatalf("%s: the app rejected a notification: %v", what, err)
		case <-time.After(timeout):
			t.Fatalf("%s: nothing arrived within %v; gateway stderr:\n%s", what, timeout, gw.stderr)
		}
		return received{}
	}

	sync := next("the sync")
	if sync.number != 1 || sync.state != StateSync || sync.arrival != New || sync.body != "" || sync.cursor == "" {
		t.Fatalf("sync: %+v", sync)
	}
	var cursors []string
	for i, body := range bodies {
		r := next(fmt.Sprintf("event %d", i))
		want := uint64(i + 2)
		if r.number != want || r.state != StateExists || r.arrival != New || r.gap != nil ||
			r.previous == nil || *r.previous != want-1 || r.body != body || r.metadata["i"] != json.Number(fmt.Sprint(i)) {
			t.Fatalf("event %d: %+v (previous %v)", i, r, r.previous)
		}
		cursors = append(cursors, r.cursor)
	}

	// Replay everything after the sync's cursor: the same numbers again, flagged as
	// duplicates, and still answered 204 so that the gateway moves on.
	replay := gw.call(t, http.MethodPost, "/v1/channels/go-e2e-1/replay", map[string]string{"since": sync.cursor}, http.StatusAccepted)
	if replay["replaying"] != true {
		t.Fatalf("replay: %v", replay)
	}
	for i, body := range bodies {
		r := next(fmt.Sprintf("replayed event %d", i))
		if r.number != uint64(i+2) || r.arrival != Duplicate || r.body != body || r.cursor != cursors[i] {
			t.Fatalf("replayed event %d: %+v", i, r)
		}
	}

	// After the replay, delivery carries on with new events, new again.
	gw.call(t, http.MethodPost, "/v1/events", map[string]interface{}{"resource": "/calendars/primary/events/e9",
		"state": "not_exists"}, http.StatusOK)
	if r := next("the event after the replay"); r.number != 5 || r.arrival != New || r.state != StateNotExists || r.gap != nil {
		t.Fatalf("%+v", r)
	}
	select {
	case err := <-rejected:
		t.Fatalf("the app rejected a notification: %v", err)
	default:
	}
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(status int) {
	r.status = status
	r.ResponseWriter.WriteHeader(status)
}
