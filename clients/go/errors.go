package receiver

import (
	"fmt"
	"time"
)

// The stable reason codes of an *Error, the same as the Rust library's
// NotificationError::reason() and the vectors in fixtures/notifications.
const (
	// A header every notification carries (or the token the channel expects) is absent.
	ReasonMissingHeader = "missingHeader"
	// A header is repeated, not UTF-8 text, or not in its format.
	ReasonMalformedHeader = "malformedHeader"
	// X-Goog-Message-Number is not a decimal number from 1 to 2^64-1.
	ReasonInvalidMessageNumber = "invalidMessageNumber"
	// X-Goog-Resource-State is none of the states of docs/api.md §4.
	ReasonUnknownState = "unknownState"
	// The notification is for another channel.
	ReasonChannelIDMismatch = "channelIdMismatch"
	// The token differs from the channel's.
	ReasonTokenMismatch = "tokenMismatch"
	// The resource id differs from the channel's.
	ReasonResourceIDMismatch = "resourceIdMismatch"
	// The notification arrived after the channel's expiration.
	ReasonChannelExpired = "channelExpired"
	// The signed webhook-id is not "<channel id>-<message number>" of these headers.
	ReasonWebhookIDMismatch = "webhookIdMismatch"
	// webhook-id, webhook-timestamp or webhook-signature is absent.
	ReasonMissingSignatureHeader = "missingSignatureHeader"
	// A signature header is repeated, not text, or (webhook-timestamp) not a number.
	ReasonMalformedSignatureHeader = "malformedSignatureHeader"
	// webhook-timestamp is further in the past than the tolerance.
	ReasonSignatureTimestampTooOld = "signatureTimestampTooOld"
	// webhook-timestamp is further in the future than the tolerance.
	ReasonSignatureTimestampInFuture = "signatureTimestampInFuture"
	// No v1 entry of webhook-signature is the HMAC of this id, timestamp and body.
	ReasonSignatureMismatch = "signatureMismatch"
)

// Error says why a request is not a valid notification for a channel. Reason gives a
// stable camelCase code (the Reason* constants) and Header the lower-case header the
// failure is about. Functions of this package return it as an error; get it back with
// errors.As.
type Error struct {
	reason  string
	header  string
	message string

	// Expected and Received are the channel's and the request's values for the
	// mismatch reasons (channelIdMismatch, resourceIdMismatch, webhookIdMismatch),
	// and the raw text for invalidMessageNumber and unknownState (in Received).
	// Tokens are never repeated here.
	Expected string
	Received string
	// Expiration is the expiration that passed, for channelExpired.
	Expiration time.Time
}

// Reason is the stable code of the failure, one of the Reason* constants.
func (e *Error) Reason() string { return e.reason }

// Header is the lower-case name of the header the failure is about, or "" when there
// is none (channelExpired).
func (e *Error) Header() string { return e.header }

// Error is a human-readable description of the failure.
func (e *Error) Error() string { return e.message }

// IsSignature reports whether the failure is about the Standard Webhooks signature
// headers (the reasons VerifySignature returns).
func (e *Error) IsSignature() bool {
	switch e.reason {
	case ReasonMissingSignatureHeader, ReasonMalformedSignatureHeader,
		ReasonSignatureTimestampTooOld, ReasonSignatureTimestampInFuture,
		ReasonSignatureMismatch:
		return true
	}
	return false
}

func missingHeader(name string) *Error {
	return &Error{reason: ReasonMissingHeader, header: name,
		message: fmt.Sprintf("header %s is missing", name)}
}

func malformedHeader(name, why string) *Error {
	return &Error{reason: ReasonMalformedHeader, header: name,
		message: fmt.Sprintf("header %s %s", name, why)}
}

func missingSignatureHeader(name string) *Error {
	return &Error{reason: ReasonMissingSignatureHeader, header: name,
		message: fmt.Sprintf("signature header %s is missing", name)}
}

func malformedSignatureHeader(name, why string) *Error {
	return &Error{reason: ReasonMalformedSignatureHeader, header: name,
		message: fmt.Sprintf("signature header %s %s", name, why)}
}

func mismatch(reason, header, what, expected, received string) *Error {
	return &Error{reason: reason, header: header, Expected: expected, Received: received,
		message: fmt.Sprintf("notification is for %s %q, not %q", what, received, expected)}
}

// A ChannelError says why a Channel could not be configured or updated from a watch
// response.
type ChannelError struct {
	// Field is the watch response field at fault, or "" (a bad signing secret, or a
	// response that is not a JSON object).
	Field   string
	message string
}

func (e *ChannelError) Error() string { return e.message }
