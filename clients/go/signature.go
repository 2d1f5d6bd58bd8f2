package receiver

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// DefaultSignatureTolerance is how far webhook-timestamp may be from the receiver's
// clock, either way, unless a Channel says otherwise.
const DefaultSignatureTolerance = 5 * time.Minute

const secretPrefix = "whsec_"

// SigningSecret is a decoded Standard Webhooks key ("whsec_" and the base64 of 24 to 64
// bytes). Its String method never shows the key.
type SigningSecret struct {
	key []byte
}

// ParseSigningSecret decodes a "whsec_…" secret.
func ParseSigningSecret(s string) (*SigningSecret, error) {
	if !strings.HasPrefix(s, secretPrefix) {
		return nil, fmt.Errorf("a signing secret must start with %q", secretPrefix)
	}
	key, ok := decodeBase64(s[len(secretPrefix):])
	if !ok {
		return nil, fmt.Errorf("a signing secret must be %q followed by base64", secretPrefix)
	}
	if len(key) < 24 || len(key) > 64 {
		return nil, fmt.Errorf("a signing secret must hold 24 to 64 bytes; this one holds %d", len(key))
	}
	return &SigningSecret{key: key}, nil
}

// String hides the key.
func (s *SigningSecret) String() string { return "SigningSecret(<redacted>)" }

// decodeBase64 decodes standard base64 with canonical padding and no line breaks
// (encoding/base64 skips CR and LF even in strict mode).
func decodeBase64(s string) ([]byte, bool) {
	if strings.ContainsAny(s, "\r\n") {
		return nil, false
	}
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	return b, err == nil
}

func (s *SigningSecret) mac(msgID string, timestamp int64, body []byte) []byte {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(msgID))
	m.Write([]byte("."))
	m.Write([]byte(strconv.FormatInt(timestamp, 10)))
	m.Write([]byte("."))
	m.Write(body)
	return m.Sum(nil)
}

// Sign is the "v1,<base64>" signature of one message, as a sender puts it in
// webhook-signature.
func (s *SigningSecret) Sign(msgID string, timestamp int64, body []byte) string {
	return "v1," + base64.StdEncoding.EncodeToString(s.mac(msgID, timestamp, body))
}

// Verify reports whether any "v1," entry of a space-separated webhook-signature value
// is the signature of this message. Every entry is compared, in constant time.
func (s *SigningSecret) Verify(msgID string, timestamp int64, body []byte, header string) bool {
	expected := s.mac(msgID, timestamp, body)
	found := 0
	for _, entry := range strings.Split(header, " ") {
		if !strings.HasPrefix(entry, "v1,") {
			continue
		}
		candidate, ok := decodeBase64(entry[len("v1,"):])
		if !ok {
			continue
		}
		found |= subtle.ConstantTimeCompare(candidate, expected)
	}
	return found == 1
}

// VerifySignature checks Standard Webhooks headers (names in any letter case) from any
// sender: webhook-signature holds a "v1," HMAC-SHA256 of
// "webhook-id.webhook-timestamp.body" under secret (any one of several space-separated
// entries, as during a key rotation), and webhook-timestamp is within tolerance of now,
// which bounds how long a captured request can be replayed. The error is an *Error
// with one of the signature reasons.
func VerifySignature(secret *SigningSecret, h http.Header, body []byte, now time.Time, tolerance time.Duration) error {
	if _, err := verifyPicked(secret, pick(h), body, now, tolerance); err != nil {
		return err
	}
	return nil
}

// verifyPicked is VerifySignature on picked headers; it returns the verified
// webhook-id.
func verifyPicked(secret *SigningSecret, p *picked, body []byte, now time.Time, tolerance time.Duration) (string, *Error) {
	required := func(name string) (string, *Error) {
		value, ok, problem := p.text(name)
		if problem != "" {
			return "", malformedSignatureHeader(name, problem)
		}
		if !ok {
			return "", missingSignatureHeader(name)
		}
		return value, nil
	}
	msgID, err := required(HeaderWebhookID)
	if err != nil {
		return "", err
	}
	timestampText, err := required(HeaderWebhookTimestamp)
	if err != nil {
		return "", err
	}
	signatures, err := required(HeaderWebhookSignature)
	if err != nil {
		return "", err
	}

	timestamp, ok := parseTimestamp(timestampText)
	if !ok {
		return "", malformedSignatureHeader(HeaderWebhookTimestamp,
			"is not a number of seconds since the Unix epoch")
	}
	nowSecs := now.Unix()
	toleranceSecs := uint64(tolerance / time.Second)
	if tolerance < 0 {
		toleranceSecs = 0
	}
	// The distance in uint64: no clock or header value can overflow it.
	if nowSecs > timestamp && uint64(nowSecs)-uint64(timestamp) > toleranceSecs {
		return "", &Error{reason: ReasonSignatureTimestampTooOld, header: HeaderWebhookTimestamp,
			message: fmt.Sprintf("webhook-timestamp %d is more than %d s before now (%d)",
				timestamp, toleranceSecs, nowSecs)}
	}
	if timestamp > nowSecs && uint64(timestamp)-uint64(nowSecs) > toleranceSecs {
		return "", &Error{reason: ReasonSignatureTimestampInFuture, header: HeaderWebhookTimestamp,
			message: fmt.Sprintf("webhook-timestamp %d is more than %d s after now (%d)",
				timestamp, toleranceSecs, nowSecs)}
	}
	if !secret.Verify(msgID, timestamp, body, signatures) {
		return "", &Error{reason: ReasonSignatureMismatch, header: HeaderWebhookSignature,
			message: "no signature in webhook-signature matches the body"}
	}
	return msgID, nil
}

// parseTimestamp parses decimal digits only (no sign) that fit an int64.
func parseTimestamp(s string) (int64, bool) {
	if s == "" {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	t, err := strconv.ParseInt(s, 10, 64)
	return t, err == nil
}
