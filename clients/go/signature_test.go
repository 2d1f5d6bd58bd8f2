package receiver

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A 24-byte key; the HMAC itself is checked against the Standard Webhooks vector below.
const (
	sigSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	sigMsgID  = "ch-1-2"
	sigTS     = int64(1_700_000_000)
	sigBody   = `{"k":1}`
)

func mustSecret(t *testing.T, s string) *SigningSecret {
	t.Helper()
	secret, err := ParseSigningSecret(s)
	if err != nil {
		t.Fatal(err)
	}
	return secret
}

func goodSig(t *testing.T) string {
	return mustSecret(t, sigSecret).Sign(sigMsgID, sigTS, []byte(sigBody))
}

func sigHeaders(signature string) []HeaderPair {
	return []HeaderPair{
		{"webhook-id", sigMsgID},
		{"webhook-timestamp", strconv.FormatInt(sigTS, 10)},
		{"webhook-signature", signature},
	}
}

func verifyAt(t *testing.T, pairs []HeaderPair, now int64) error {
	return VerifySignature(mustSecret(t, sigSecret), hdr(pairs), []byte(sigBody), time.Unix(now, 0), DefaultSignatureTolerance)
}

func TestMatchesThePublishedStandardWebhooksVector(t *testing.T) {
	secret := mustSecret(t, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	const id, ts, body = "msg_p5jXN8AQM9LWM0D4loKWxJek", int64(1614265330), `{"test": 2432232314}`
	const sig = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
	if got := secret.Sign(id, ts, []byte(body)); got != sig {
		t.Fatalf("signed as %s", got)
	}
	if !secret.Verify(id, ts, []byte(body), sig) || !secret.Verify(id, ts, []byte(body), "v1,bm90IGl0 "+sig) {
		t.Fatal("the vector does not verify")
	}
	if secret.Verify(id, ts+1, []byte(body), sig) || secret.Verify(id, ts, []byte("{}"), sig) {
		t.Fatal("a changed timestamp or body verifies")
	}
}

func TestAcceptsAValidSignature(t *testing.T) {
	if err := verifyAt(t, sigHeaders(goodSig(t)), sigTS); err != nil {
		t.Fatal(err)
	}
}

func TestAcceptsAnyOfSeveralSignaturesDuringAKeyRotation(t *testing.T) {
	other := mustSecret(t, "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").Sign(sigMsgID, sigTS, []byte(sigBody))
	good := goodSig(t)
	for _, header := range []string{other + " " + good, good + " " + other, "v0,abc " + good, good + "  " + other} {
		if err := verifyAt(t, sigHeaders(header), sigTS); err != nil {
			t.Errorf("%q: %v", header, err)
		}
	}
	wantError(t, verifyAt(t, sigHeaders(other), sigTS), ReasonSignatureMismatch, HeaderWebhookSignature)
	// Entries are separated by single spaces, as the gateway sends them.
	wantError(t, verifyAt(t, sigHeaders(other+"\t"+good), sigTS), ReasonSignatureMismatch, HeaderWebhookSignature)
}

func TestRejectsAChangedBodyIDOrUnknownScheme(t *testing.T) {
	err := VerifySignature(mustSecret(t, sigSecret), hdr(sigHeaders(goodSig(t))), []byte("{}"), time.Unix(sigTS, 0), DefaultSignatureTolerance)
	wantError(t, err, ReasonSignatureMismatch, HeaderWebhookSignature)
	wantError(t, verifyAt(t, with(sigHeaders(goodSig(t)), "webhook-id", "msg_other"), sigTS), ReasonSignatureMismatch, HeaderWebhookSignature)
	wantError(t, verifyAt(t, sigHeaders(strings.Replace(goodSig(t), "v1,", "v2,", 1)), sigTS), ReasonSignatureMismatch, HeaderWebhookSignature)
	wantError(t, verifyAt(t, sigHeaders("v1,not base64!"), sigTS), ReasonSignatureMismatch, HeaderWebhookSignature)
	// The base64 must be canonical: unpadded, or with a line break, it is not the signature.
	wantError(t, verifyAt(t, sigHeaders(strings.TrimRight(goodSig(t), "=")), sigTS), ReasonSignatureMismatch, HeaderWebhookSignature)
	sig := goodSig(t)
	wantError(t, verifyAt(t, sigHeaders(sig[:10]+"\n"+sig[10:]), sigTS), ReasonSignatureMismatch, HeaderWebhookSignature)
}

func TestEnforcesTheTimestampToleranceBothWays(t *testing.T) {
	h := sigHeaders(goodSig(t))
	for _, now := range []int64{sigTS + 300, sigTS - 300} {
		if err := verifyAt(t, h, now); err != nil {
			t.Errorf("at %d: %v", now, err)
		}
	}
	wantError(t, verifyAt(t, h, sigTS+301), ReasonSignatureTimestampTooOld, HeaderWebhookTimestamp)
	wantError(t, verifyAt(t, h, sigTS-301), ReasonSignatureTimestampInFuture, HeaderWebhookTimestamp)
	// Fractions of the clock's second do not count: only whole seconds are compared.
	if err := VerifySignature(mustSecret(t, sigSecret), hdr(h), []byte(sigBody), time.Unix(sigTS+300, 999_999_999), DefaultSignatureTolerance); err != nil {
		t.Fatal(err)
	}
	wide := VerifySignature(mustSecret(t, sigSecret), hdr(h), []byte(sigBody), time.Unix(sigTS+3600, 0), time.Hour)
	if wide != nil {
		t.Fatal(wide)
	}
	// A tolerance under a second requires the very second.
	if err := VerifySignature(mustSecret(t, sigSecret), hdr(h), []byte(sigBody), time.Unix(sigTS, 0), time.Nanosecond); err != nil {
		t.Fatal(err)
	}
	err := VerifySignature(mustSecret(t, sigSecret), hdr(h), []byte(sigBody), time.Unix(sigTS+1, 0), time.Nanosecond)
	wantError(t, err, ReasonSignatureTimestampTooOld, HeaderWebhookTimestamp)
}

func TestNamesMissingAndMalformedSignatureHeaders(t *testing.T) {
	for i, name := range []string{HeaderWebhookID, HeaderWebhookTimestamp, HeaderWebhookSignature} {
		h := sigHeaders(goodSig(t))
		h = append(h[:i:i], h[i+1:]...)
		wantError(t, verifyAt(t, h, sigTS), ReasonMissingSignatureHeader, name)
	}
	for _, bad := range []string{"", "-1614265330", "+1614265330", "1614265330.0", "soon", "99999999999999999999"} {
		h := with(sigHeaders(goodSig(t)), "webhook-timestamp", bad)
		wantError(t, verifyAt(t, h, sigTS), ReasonMalformedSignatureHeader, HeaderWebhookTimestamp)
	}
	repeated := append(sigHeaders(goodSig(t)), HeaderPair{"Webhook-Signature", goodSig(t)})
	wantError(t, verifyAt(t, repeated, sigTS), ReasonMalformedSignatureHeader, HeaderWebhookSignature)
	notText := with(sigHeaders(goodSig(t)), "webhook-id", "\xff")
	wantError(t, verifyAt(t, notText, sigTS), ReasonMalformedSignatureHeader, HeaderWebhookID)
}

func TestSignatureHeaderNamesAreCaseInsensitive(t *testing.T) {
	canonical := http.Header{}
	for _, p := range sigHeaders(goodSig(t)) {
		canonical.Add(strings.ToUpper(p.Name), p.Value)
	}
	if err := VerifySignature(mustSecret(t, sigSecret), canonical, []byte(sigBody), time.Unix(sigTS, 0), DefaultSignatureTolerance); err != nil {
		t.Fatal(err)
	}
}

func TestExtremeClocksDoNotOverflow(t *testing.T) {
	h := hdr(sigHeaders(goodSig(t)))
	longest := time.Duration(1<<63 - 1) // about 292 years
	if err := VerifySignature(mustSecret(t, sigSecret), h, []byte(sigBody), time.Unix(sigTS, 0).Add(longest), longest); err != nil {
		t.Fatal(err)
	}
	err := VerifySignature(mustSecret(t, sigSecret), h, []byte(sigBody), time.Unix(1<<62, 0), longest)
	wantError(t, err, ReasonSignatureTimestampTooOld, HeaderWebhookTimestamp)
	err = VerifySignature(mustSecret(t, sigSecret), h, []byte(sigBody), time.Unix(-1<<62, 0), DefaultSignatureTolerance)
	wantError(t, err, ReasonSignatureTimestampInFuture, HeaderWebhookTimestamp)
	// The largest timestamp against the earliest clock: the difference exceeds int64.
	maxStamp := with(sigHeaders(goodSig(t)), "webhook-timestamp", "9223372036854775807")
	err = VerifySignature(mustSecret(t, sigSecret), hdr(maxStamp), []byte(sigBody), time.Unix(-1<<62, 0), longest)
	wantError(t, err, ReasonSignatureTimestampInFuture, HeaderWebhookTimestamp)
	zeroStamp := with(sigHeaders(goodSig(t)), "webhook-timestamp", "0")
	err = VerifySignature(mustSecret(t, sigSecret), hdr(zeroStamp), []byte(sigBody), time.Unix(1<<62, 0), longest)
	wantError(t, err, ReasonSignatureTimestampTooOld, HeaderWebhookTimestamp)
}

func TestParsesSigningSecrets(t *testing.T) {
	for _, bad := range []string{
		"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", // no prefix
		"whsec_!!!",                        // not base64
		"whsec_AAAA",                       // 3 bytes
		"whsec_" + strings.Repeat("A", 88), // 66 bytes
		"whsec_AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA",  // unpadded
		"whsec_AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyB=", // non-zero trailing bits
		"whsec_AQIDBAUGBwgJCgsMDQ4PEBES\nExQVFhcYGRobHB0eHyA=",
	} {
		if _, err := ParseSigningSecret(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
	secret := mustSecret(t, "whsec_AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=")
	if len(secret.key) != 32 || strings.Contains(secret.String(), "AQID") {
		t.Fatal(secret)
	}
}
