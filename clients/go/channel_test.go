package receiver

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

func testChannel() *Channel { return NewChannel("ch-1").WithToken("tok") }

// signed is pairs plus a signature over body under sigSecret, with the given id.
func signed(t *testing.T, pairs []HeaderPair, webhookID string, body string) []HeaderPair {
	ts := testNow().Unix()
	signature := mustSecret(t, sigSecret).Sign(webhookID, ts, []byte(body))
	pairs = with(pairs, "webhook-id", webhookID)
	pairs = with(pairs, "webhook-timestamp", strconv.FormatInt(ts, 10))
	return with(pairs, "webhook-signature", signature)
}

func receiveAt(c *Channel, pairs []HeaderPair, body string, now time.Time) (*Notification, error) {
	return c.ReceiveAt(hdr(pairs), []byte(body), now)
}

func TestAcceptsAMatchingNotification(t *testing.T) {
	n, err := receiveAt(testChannel(), syncHeaders(), "", testNow())
	if err != nil || n.ChannelID != "ch-1" || n.MessageNumber != 1 {
		t.Fatal(n, err)
	}
}

func TestRejectsAnotherChannelsNotification(t *testing.T) {
	_, err := receiveAt(NewChannel("ch-2"), syncHeaders(), "", testNow())
	wantError(t, err, ReasonChannelIDMismatch, HeaderChannelID)
	if e := asError(t, err); e.Expected != "ch-2" || e.Received != "ch-1" {
		t.Fatal(e.Expected, e.Received)
	}
}

func TestChecksTheTokenOnlyWhenTheChannelHasOne(t *testing.T) {
	for _, token := range []string{"tok2", "to", "", "TOK"} {
		_, err := receiveAt(testChannel(), with(syncHeaders(), HeaderChannelToken, token), "", testNow())
		wantError(t, err, ReasonTokenMismatch, HeaderChannelToken)
		if err.Error() != "channel token does not match" {
			t.Fatalf("the message may repeat a token: %v", err)
		}
	}
	_, err := receiveAt(testChannel(), without(syncHeaders(), HeaderChannelToken), "", testNow())
	wantError(t, err, ReasonMissingHeader, HeaderChannelToken)
	if _, err := receiveAt(NewChannel("ch-1"), with(syncHeaders(), HeaderChannelToken, "any"), "", testNow()); err != nil {
		t.Fatal(err)
	}
	// A channel whose token is "" expects an empty token, not none.
	_, err = receiveAt(NewChannel("ch-1").WithToken(""), without(syncHeaders(), HeaderChannelToken), "", testNow())
	wantError(t, err, ReasonMissingHeader, HeaderChannelToken)
}

func TestChecksTheResourceIDOnlyOnceKnown(t *testing.T) {
	if _, err := receiveAt(testChannel(), syncHeaders(), "", testNow()); err != nil {
		t.Fatal(err)
	}
	if _, err := receiveAt(testChannel().WithResourceID("rid-1"), syncHeaders(), "", testNow()); err != nil {
		t.Fatal(err)
	}
	_, err := receiveAt(testChannel().WithResourceID("rid-2"), syncHeaders(), "", testNow())
	wantError(t, err, ReasonResourceIDMismatch, HeaderResourceID)
	if e := asError(t, err); e.Expected != "rid-2" || e.Received != "rid-1" {
		t.Fatal(e.Expected, e.Received)
	}
}

func TestRejectsNotificationsAfterTheExpiration(t *testing.T) {
	// syncHeaders() expires at 1893456000 s; testNow() is before it.
	expiration := time.Unix(1_893_456_000, 0)
	if _, err := receiveAt(testChannel(), syncHeaders(), "", expiration); err != nil {
		t.Fatal("the expiration itself is still valid:", err)
	}
	_, err := receiveAt(testChannel(), syncHeaders(), "", expiration.Add(time.Nanosecond))
	wantError(t, err, ReasonChannelExpired, "")
	if e := asError(t, err); !e.Expiration.Equal(expiration) {
		t.Fatal(e.Expiration)
	}
	// The subscriber's own record counts too, even when the header is absent.
	earlier := testNow().Add(-time.Second)
	_, err = receiveAt(testChannel().WithExpiration(earlier), without(syncHeaders(), HeaderChannelExpiration), "", testNow())
	wantError(t, err, ReasonChannelExpired, "")
	if e := asError(t, err); !e.Expiration.Equal(earlier) {
		t.Fatal(e.Expiration)
	}
	// The earlier of the two is the one that counts.
	later := expiration.Add(time.Hour)
	_, err = receiveAt(testChannel().WithExpiration(later), syncHeaders(), "", expiration.Add(time.Second))
	if e := asError(t, err); !e.Expiration.Equal(expiration) {
		t.Fatal(e.Expiration)
	}
}

func TestRequiresAValidSignatureBoundToTheNotification(t *testing.T) {
	signing := testChannel()
	if err := signing.SetSigningSecret(sigSecret); err != nil {
		t.Fatal(err)
	}
	body := `{"k":1}`
	good := signed(t, eventHeaders(), "ch-1-5", body)
	if n, err := receiveAt(signing, good, body, testNow()); err != nil || n.MessageNumber != 5 {
		t.Fatal(n, err)
	}
	_, err := receiveAt(signing, good, "{}", testNow())
	wantError(t, err, ReasonSignatureMismatch, HeaderWebhookSignature)
	_, err = receiveAt(signing, eventHeaders(), body, testNow())
	wantError(t, err, ReasonMissingSignatureHeader, HeaderWebhookID)
	// A correctly signed body replayed under another message number.
	_, err = receiveAt(signing, with(good, HeaderMessageNumber, "6"), body, testNow())
	wantError(t, err, ReasonWebhookIDMismatch, HeaderWebhookID)
	if e := asError(t, err); e.Expected != "ch-1-6" || e.Received != "ch-1-5" {
		t.Fatal(e.Expected, e.Received)
	}
	_, err = receiveAt(signing, good, body, testNow().Add(301*time.Second))
	wantError(t, err, ReasonSignatureTimestampTooOld, HeaderWebhookTimestamp)
	// The channel's tolerance applies.
	signing.SignatureTolerance = time.Hour
	if _, err := receiveAt(signing, good, body, testNow().Add(3599*time.Second)); err != nil {
		t.Fatal(err)
	}
	// Without a secret, signature headers are not checked.
	if _, err := receiveAt(testChannel(), with(eventHeaders(), HeaderWebhookSignature, "v1,bogus"), body, testNow()); err != nil {
		t.Fatal(err)
	}
	signing.ClearSigningSecret()
	if _, err := receiveAt(signing, eventHeaders(), body, testNow()); err != nil || signing.SigningSecret() != nil {
		t.Fatal(err)
	}
}

// §11's order: parse, channel id, token, resource id, expiration, signature, webhook-id.
func TestChecksInTheDocumentedOrder(t *testing.T) {
	c := testChannel().WithResourceID("rid-1")
	if err := c.SetSigningSecret(sigSecret); err != nil {
		t.Fatal(err)
	}
	late := time.Unix(1_893_456_001, 0) // after the header's expiration
	bad := with(signed(t, eventHeaders(), "ch-1-5", ""), HeaderWebhookSignature, "v1,bogus")
	steps := []struct {
		pairs  []HeaderPair
		reason string
	}{
		{with(with(bad, HeaderChannelID, "ch-2"), HeaderMessageNumber, "x"), ReasonInvalidMessageNumber},
		{with(with(bad, HeaderChannelID, "ch-2"), HeaderChannelToken, "no"), ReasonChannelIDMismatch},
		{with(with(bad, HeaderChannelToken, "no"), HeaderResourceID, "rid-2"), ReasonTokenMismatch},
		{with(bad, HeaderResourceID, "rid-2"), ReasonResourceIDMismatch},
		{bad, ReasonChannelExpired},
	}
	for _, step := range steps {
		_, err := receiveAt(c, step.pairs, "", late)
		if e := asError(t, err); e.Reason() != step.reason {
			t.Errorf("expected %s, got %s", step.reason, e.Reason())
		}
	}
	_, err := receiveAt(c, bad, "", testNow())
	wantError(t, err, ReasonSignatureMismatch, HeaderWebhookSignature)
	// The signature is checked before the webhook-id it vouches for.
	_, err = receiveAt(c, with(bad, "webhook-id", "other"), "", testNow())
	wantError(t, err, ReasonSignatureMismatch, HeaderWebhookSignature)
	_, err = receiveAt(c, signed(t, eventHeaders(), "other", ""), "", testNow())
	wantError(t, err, ReasonWebhookIDMismatch, HeaderWebhookID)
	if _, err := receiveAt(c, signed(t, eventHeaders(), "ch-1-5", ""), "", testNow()); err != nil {
		t.Fatal(err)
	}
}

func TestReceiveReadsTheChannelsClock(t *testing.T) {
	c := testChannel()
	c.Now = func() time.Time { return time.Unix(1_893_456_001, 0) }
	_, err := c.Receive(hdr(syncHeaders()), nil)
	wantError(t, err, ReasonChannelExpired, "")
	c.Now = testNow
	if _, err := c.Receive(hdr(syncHeaders()), nil); err != nil {
		t.Fatal(err)
	}
	// Without a clock it is the real time: now is long before 2030.
	c.Now = nil
	if _, err := c.Receive(hdr(syncHeaders()), nil); err != nil {
		t.Fatal(err)
	}
}

func TestRejectsMalformedSecrets(t *testing.T) {
	c := NewChannel("c")
	err := c.SetSigningSecret("not-a-secret")
	var ce *ChannelError
	if !errors.As(err, &ce) || c.SigningSecret() != nil {
		t.Fatal(err)
	}
}

func TestBuildsAWatchBody(t *testing.T) {
	c := NewWebhookChannel("ch-1", "https://example.com/hook").WithToken("tok").
		WithExpiration(time.UnixMilli(1_893_456_000_000))
	if err := c.SetSigningSecret(sigSecret); err != nil {
		t.Fatal(err)
	}
	c.Params = map[string]string{"ttl": "3600"}
	want := map[string]interface{}{
		"id": "ch-1", "type": "web_hook", "address": "https://example.com/hook", "token": "tok",
		"expiration": "1893456000000", "params": map[string]interface{}{"ttl": "3600", "signingSecret": sigSecret},
	}
	if !reflect.DeepEqual(c.Body(), want) {
		t.Fatalf("%v", c.Body())
	}
	if c.Params["signingSecret"] != "" {
		t.Fatal("Body changed the channel's params")
	}
	if got := NewChannel("c").Body(); !reflect.DeepEqual(got, map[string]interface{}{"id": "c", "type": "web_hook"}) {
		t.Fatalf("%v", got)
	}
	if _, err := json.Marshal(c.Body()); err != nil {
		t.Fatal(err)
	}
}

func TestUpdatesFromAWatchResponseWithExpirationAsStringOrNumber(t *testing.T) {
	for _, expiration := range []string{`"1893456000000"`, `1893456000000`, `1893456000000.0`, `" 1893456000000.9 "`, `1.893456e12`} {
		c := NewWebhookChannel("ch-1", "https://example.com/hook").WithToken("tok")
		response := fmt.Sprintf(`{"kind": "api#channel", "id": "ch-1", "resourceId": "rid-1",
			"resourceUri": "http://gw/calendars/primary/events", "expiration": %s, "token": null}`, expiration)
		if err := c.Update([]byte(response)); err != nil {
			t.Fatal(expiration, err)
		}
		if *c.ResourceID != "rid-1" || *c.ResourceURI != "http://gw/calendars/primary/events" ||
			c.Expiration.UnixMilli() != 1_893_456_000_000 || *c.Token != "tok" || *c.Address != "https://example.com/hook" {
			t.Fatalf("%s: %+v", expiration, c)
		}
	}
	c := NewChannel("old")
	if err := c.Update([]byte(`{"id": "new", "token": "t2", "expiration": null}`)); err != nil || c.ID != "new" || *c.Token != "t2" || c.Expiration != nil {
		t.Fatal(c, err)
	}
	// Milliseconds before the epoch and at the edges of int64 are numbers too.
	for expiration, want := range map[string]int64{`"-5"`: -5, `"+5"`: 5, `-9223372036854775809`: -1 << 63} {
		c := NewChannel("c")
		err := c.Update([]byte(`{"expiration": ` + expiration + `}`))
		if want == -1<<63 {
			// Taken as a float it is -2^63 ms, which is out of the range of dates.
			var ce *ChannelError
			if !errors.As(err, &ce) || !strings.Contains(err.Error(), "out of range") {
				t.Fatal(expiration, err)
			}
			continue
		}
		if err != nil || c.Expiration.UnixMilli() != want {
			t.Fatal(expiration, err)
		}
	}
}

func TestABadWatchResponseChangesNothing(t *testing.T) {
	c := NewChannel("ch-1")
	for response, field := range map[string]string{
		`[]`:        "",
		`null`:      "",
		`{"a":1} x`: "",
		`{"resourceId": "rid", "expiration": "soon"}`:              "expiration",
		`{"resourceId": "rid", "expiration": "1e400"}`:             "expiration",
		`{"resourceId": "rid", "expiration": 1e19}`:                "expiration",
		`{"resourceId": "rid", "expiration": 9223372036854775808}`: "expiration",
		`{"resourceId": "rid", "expiration": "0x10"}`:              "expiration",
		`{"resourceId": "rid", "expiration": true}`:                "expiration",
		`{"resourceId": 7}`:                                        "resourceId",
		`{"resourceId": "rid", "id": ["x"]}`:                       "id",
	} {
		err := c.Update([]byte(response))
		var ce *ChannelError
		if !errors.As(err, &ce) || ce.Field != field {
			t.Errorf("%s: %v", response, err)
		}
	}
	if c.ResourceID != nil || c.Expiration != nil || c.ID != "ch-1" {
		t.Fatalf("%+v", c)
	}
}

func TestStringHidesSecrets(t *testing.T) {
	c := testChannel()
	if err := c.SetSigningSecret(sigSecret); err != nil {
		t.Fatal(err)
	}
	for _, shown := range []string{c.String(), fmt.Sprint(c), fmt.Sprintf("%v", c.SigningSecret())} {
		if strings.Contains(shown, `tok"`) || strings.Contains(shown, "whsec_") || strings.Contains(shown, "MfKQ") {
			t.Fatal(shown)
		}
	}
	if !strings.Contains(c.String(), "ch-1") {
		t.Fatal(c.String())
	}
}
