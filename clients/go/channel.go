package receiver

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Channel is a watch channel as its subscriber keeps it: what to send in the watch
// request, and what every notification on it must match.
//
// Fields left nil are not checked: a channel without a token accepts any token, and
// the resource id is only compared once known (the sync message may arrive before
// the watch response that carries it).
//
// A Channel is not synchronised: do not change it while another goroutine receives
// with it. Channels holds channels for concurrent use.
type Channel struct {
	ID    string
	Token *string
	// Address is where notifications are sent; needed only to build a watch body.
	Address     *string
	ResourceID  *string
	ResourceURI *string
	Expiration  *time.Time
	// Params are extra "params" of the watch body, such as "ttl" (the signing secret
	// is added from SetSigningSecret).
	Params map[string]string
	// SignatureTolerance is how far a signature's timestamp may be from the
	// receiver's clock, in whole seconds; zero means DefaultSignatureTolerance. (Any
	// duration under a second requires the very second.)
	SignatureTolerance time.Duration
	// Now is the clock Receive reads; nil means time.Now. Tests set it.
	Now func() time.Time

	secretText string
	secret     *SigningSecret
}

// NewChannel is a channel known only by its id.
func NewChannel(id string) *Channel {
	return &Channel{ID: id}
}

// NewWebhookChannel is a web-hook channel to be created at address (like channel.py's
// new_webhook_channel).
func NewWebhookChannel(id, address string) *Channel {
	return &Channel{ID: id, Address: &address}
}

// WithToken sets the token every notification must carry, and returns c.
func (c *Channel) WithToken(token string) *Channel {
	c.Token = &token
	return c
}

// WithResourceID sets the resource id every notification must name, and returns c.
func (c *Channel) WithResourceID(resourceID string) *Channel {
	c.ResourceID = &resourceID
	return c
}

// WithExpiration sets when the channel expires, and returns c.
func (c *Channel) WithExpiration(expiration time.Time) *Channel {
	c.Expiration = &expiration
	return c
}

// SetSigningSecret sets the "whsec_…" secret notifications must be signed with
// (docs/api.md §10.3); with one, every notification must carry a valid signature.
// The error is a *ChannelError; on error nothing changes.
func (c *Channel) SetSigningSecret(secret string) error {
	key, err := ParseSigningSecret(secret)
	if err != nil {
		return &ChannelError{message: "invalid signing secret: " + err.Error()}
	}
	c.secretText, c.secret = secret, key
	return nil
}

// ClearSigningSecret removes the signing secret: signatures are no longer checked.
func (c *Channel) ClearSigningSecret() {
	c.secretText, c.secret = "", nil
}

// SigningSecret is the channel's signing secret, or nil.
func (c *Channel) SigningSecret() *SigningSecret { return c.secret }

// String shows the channel without its token or secret.
func (c *Channel) String() string {
	redacted := func(set bool) string {
		if set {
			return "<redacted>"
		}
		return "none"
	}
	return fmt.Sprintf("Channel{ID: %q, Token: %s, SigningSecret: %s}",
		c.ID, redacted(c.Token != nil), redacted(c.secret != nil))
}

// Body is the JSON object of a watch request for this channel (like channel.py's
// body()): "id", "type", and whichever of "address", "token", "expiration" (ms as a
// string), "params" (with "signingSecret"), "resourceId", "resourceUri" are set.
// Marshal it with encoding/json.
func (c *Channel) Body() map[string]interface{} {
	body := map[string]interface{}{"id": c.ID, "type": "web_hook"}
	for field, value := range map[string]*string{
		"address": c.Address, "token": c.Token, "resourceId": c.ResourceID, "resourceUri": c.ResourceURI,
	} {
		if value != nil {
			body[field] = *value
		}
	}
	if c.Expiration != nil {
		body["expiration"] = strconv.FormatInt(c.Expiration.UnixMilli(), 10)
	}
	params := map[string]interface{}{}
	for k, v := range c.Params {
		params[k] = v
	}
	if c.secret != nil {
		params["signingSecret"] = c.secretText
	}
	if len(params) > 0 {
		body["params"] = params
	}
	return body
}

// Update takes what the gateway assigned from a watch response, the JSON text of its
// body (like channel.py's update()): "id", "token", "address", "resourceId",
// "resourceUri" and "expiration" (ms since the epoch as a string or a number, as
// clients differ). Absent and null fields leave the channel as it was. The error is a
// *ChannelError; on error nothing changes.
func (c *Channel) Update(response []byte) error {
	decoder := json.NewDecoder(bytes.NewReader(response))
	decoder.UseNumber()
	var fields map[string]interface{}
	if !json.Valid(response) || decoder.Decode(&fields) != nil || fields == nil {
		return &ChannelError{message: "watch response is not a JSON object"}
	}
	invalid := func(field, reason string) error {
		return &ChannelError{Field: field, message: fmt.Sprintf("watch response field %q: %s", field, reason)}
	}
	text := map[string]*string{}
	for _, field := range []string{"id", "token", "address", "resourceId", "resourceUri"} {
		switch value := fields[field].(type) {
		case nil:
		case string:
			text[field] = &value
		default:
			return invalid(field, "must be a string")
		}
	}
	var expiration *time.Time
	if value, present := fields["expiration"]; present && value != nil {
		ms, reason := parseExpiration(value)
		if reason != "" {
			return invalid("expiration", reason)
		}
		t := time.UnixMilli(ms).UTC()
		if t.Year() < minYear || t.Year() > maxYear {
			return invalid("expiration", fmt.Sprintf("%d ms is out of range", ms))
		}
		expiration = &t
	}

	if id := text["id"]; id != nil {
		c.ID = *id
	}
	for field, slot := range map[string]**string{
		"token": &c.Token, "address": &c.Address, "resourceId": &c.ResourceID, "resourceUri": &c.ResourceURI,
	} {
		if value := text[field]; value != nil {
			*slot = value
		}
	}
	if expiration != nil {
		c.Expiration = expiration
	}
	return nil
}

// parseExpiration reads ms since the epoch from a JSON string or number, as the
// gateway does for watch requests: an integer, or a finite float (truncated) that fits
// an int64.
func parseExpiration(value interface{}) (int64, string) {
	tooBig := "expiration does not fit a signed 64-bit number of milliseconds"
	switch value := value.(type) {
	case string:
		t := strings.TrimSpace(value)
		if ms, err := strconv.ParseInt(t, 10, 64); err == nil {
			return ms, ""
		}
		if t != "" && strings.Trim(t, "0123456789+-.eE") == "" {
			if f, err := strconv.ParseFloat(t, 64); err == nil {
				if ms, ok := floatMillis(f); ok {
					return ms, ""
				}
				return 0, tooBig
			}
		}
		return 0, fmt.Sprintf("expiration %q is not a number of milliseconds since the Unix epoch", value)
	case json.Number:
		if ms, err := strconv.ParseInt(string(value), 10, 64); err == nil {
			return ms, ""
		}
		// A float, or an integer beyond int64 (taken as a float, like serde_json): a
		// positive one is at least 2^63 then, so too big.
		f, err := strconv.ParseFloat(string(value), 64)
		if ms, ok := floatMillis(f); err == nil && ok {
			return ms, ""
		}
		return 0, tooBig
	}
	return 0, "expiration must be a number of milliseconds since the Unix epoch, as a string or a number"
}

func floatMillis(f float64) (int64, bool) {
	// float64(math.MaxInt64) rounds up to 2^63, which does not fit; hence the strict
	// bound.
	if math.IsNaN(f) || math.IsInf(f, 0) || f < math.MinInt64 || f >= math.MaxInt64 {
		return 0, false
	}
	return int64(math.Trunc(f)), true
}

// Receive validates a request as a notification on this channel, at the channel's
// clock (Now). See ReceiveAt.
func (c *Channel) Receive(h http.Header, body []byte) (*Notification, error) {
	now := time.Now
	if c.Now != nil {
		now = c.Now
	}
	return c.ReceiveAt(h, body, now())
}

// ReceiveAt validates a request (headers in any letter case, and the raw body bytes)
// as a notification on this channel at time now, in this order: the headers parse
// (ParseNotification); the channel id is this one; the token matches when the channel
// has one (in constant time); the resource id matches when known; neither the
// notification's nor the channel's expiration has passed; and, when the channel has a
// signing secret, the signature verifies within the tolerance and its webhook-id is
// "<channel id>-<message number>". The error is an *Error.
func (c *Channel) ReceiveAt(h http.Header, body []byte, now time.Time) (*Notification, error) {
	n, err := c.receive(pick(h), body, now)
	if err != nil {
		return nil, err
	}
	return n, nil
}

func (c *Channel) receive(p *picked, body []byte, now time.Time) (*Notification, *Error) {
	n, err := parsePicked(p)
	if err != nil {
		return nil, err
	}
	if err := c.check(n, now); err != nil {
		return nil, err
	}
	if c.secret != nil {
		tolerance := c.SignatureTolerance
		if tolerance == 0 {
			tolerance = DefaultSignatureTolerance
		}
		webhookID, err := verifyPicked(c.secret, p, body, now, tolerance)
		if err != nil {
			return nil, err
		}
		expected := fmt.Sprintf("%s-%d", n.ChannelID, n.MessageNumber)
		if webhookID != expected {
			return nil, &Error{reason: ReasonWebhookIDMismatch, header: HeaderWebhookID,
				Expected: expected, Received: webhookID,
				message: fmt.Sprintf("webhook-id %q does not name this notification (%q)", webhookID, expected)}
		}
	}
	return n, nil
}

func (c *Channel) check(n *Notification, now time.Time) *Error {
	if n.ChannelID != c.ID {
		return mismatch(ReasonChannelIDMismatch, HeaderChannelID, "channel", c.ID, n.ChannelID)
	}
	if c.Token != nil {
		if n.Token == nil {
			return missingHeader(HeaderChannelToken)
		}
		if subtle.ConstantTimeCompare([]byte(*n.Token), []byte(*c.Token)) != 1 {
			return &Error{reason: ReasonTokenMismatch, header: HeaderChannelToken,
				message: "channel token does not match"}
		}
	}
	if c.ResourceID != nil && n.ResourceID != *c.ResourceID {
		return mismatch(ReasonResourceIDMismatch, HeaderResourceID, "resource id", *c.ResourceID, n.ResourceID)
	}
	var earliest *time.Time
	for _, e := range []*time.Time{n.ChannelExpiration, c.Expiration} {
		if e != nil && (earliest == nil || e.Before(*earliest)) {
			earliest = e
		}
	}
	if earliest != nil && now.After(*earliest) {
		return &Error{reason: ReasonChannelExpired, Expiration: *earliest,
			message: "channel expired at " + earliest.UTC().Format(time.RFC3339Nano)}
	}
	return nil
}
