package receiver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
)

// DefaultMaxBodyBytes is the largest notification body an Endpoint reads unless told
// otherwise: the gateway's default request limit (--max-body-bytes), which bounds
// every event's data.
const DefaultMaxBodyBytes = 1 << 20

// Delivery is a valid notification as an Endpoint hands it on.
type Delivery struct {
	Notification *Notification
	// Observation is the Tracker's verdict: a Duplicate was handled before (a retry or
	// a replay); answer 2xx and do nothing else.
	Observation Observation
	// Body is the raw request body, exactly the bytes that were signed (the event's
	// data as published; empty for the sync).
	Body []byte
}

// Endpoint is the net/http side of a notification address: it reads the raw body
// (up to MaxBodyBytes), validates the request against the channel it names in
// Channels, observes it with Tracker, and answers what the gateway expects
// (docs/api.md §4): 204 for a valid notification, also a flagged one; 400 with the
// reason for an invalid one; 405 for anything but POST; 413 for a body over the limit.
//
// Use Handler for a callback per notification, Middleware to put the Delivery in the
// request's context for another handler, or Check from any framework that gives an
// *http.Request.
type Endpoint struct {
	Channels *Channels
	// Tracker flags duplicates, out-of-order numbers and gaps; nil tracks nothing
	// (every Observation is New). NewEndpoint sets one.
	Tracker *Tracker
	// MaxBodyBytes bounds the body read; zero means DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// OnReject, if set, is told about every request Check refuses (for logging).
	OnReject func(r *http.Request, err error)
}

// NewEndpoint is an Endpoint for channels with its own Tracker.
func NewEndpoint(channels *Channels) *Endpoint {
	return &Endpoint{Channels: channels, Tracker: NewTracker()}
}

// Check reads r's body and validates it as a notification. The error is a
// *StatusError for a request that is not a notification delivery at all (method, body
// size, unreadable body) and an *Error for an invalid notification; Status and Respond
// turn either into the answer.
func (e *Endpoint) Check(r *http.Request) (Delivery, error) {
	d, err := e.check(r)
	if err != nil && e.OnReject != nil {
		e.OnReject(r, err)
	}
	return d, err
}

func (e *Endpoint) check(r *http.Request) (Delivery, error) {
	if r.Method != http.MethodPost {
		return Delivery{}, &StatusError{Code: http.StatusMethodNotAllowed, Reason: "methodNotAllowed",
			Err: errors.New("notifications are delivered with POST")}
	}
	limit := e.MaxBodyBytes
	if limit <= 0 {
		limit = DefaultMaxBodyBytes
	}
	tooLarge := &StatusError{Code: http.StatusRequestEntityTooLarge, Reason: "requestTooLarge",
		Err: fmt.Errorf("the body is larger than %d bytes", limit)}
	if r.ContentLength > limit {
		return Delivery{}, tooLarge
	}
	var body []byte
	if r.Body != nil {
		var err error
		body, err = io.ReadAll(io.LimitReader(r.Body, limit+1))
		if err != nil {
			return Delivery{}, &StatusError{Code: http.StatusBadRequest, Reason: "badRequest",
				Err: fmt.Errorf("reading the body: %w", err)}
		}
		if int64(len(body)) > limit {
			return Delivery{}, tooLarge
		}
	}
	n, err := e.Channels.Receive(r.Header, body)
	if err != nil {
		return Delivery{}, err
	}
	d := Delivery{Notification: n, Observation: Observation{Arrival: New}, Body: body}
	if e.Tracker != nil {
		d.Observation = e.Tracker.Observe(n)
	}
	return d, nil
}

// Handler is an http.Handler that calls handle with every valid notification,
// flagged ones included (look at d.Observation), and answers Status of what handle
// returns: 204 for nil, 500 (the gateway retries) for an error, or the status of a
// *StatusError (WithStatus; ErrUnsubscribe answers 410 and ends the channel). When
// handle answers other than 2xx, or panics, the Tracker retracts the notification's
// number (unless it was a Duplicate), so that the gateway's retry is New again.
func (e *Endpoint) Handler(handle func(r *http.Request, d Delivery) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d, err := e.Check(r)
		if err == nil && handle != nil {
			err = e.call(handle, r, d)
		}
		Respond(w, err)
	})
}

// call runs handle, and takes d back from the Tracker unless handle returns nil or an
// error answered 2xx.
func (e *Endpoint) call(handle func(r *http.Request, d Delivery) error, r *http.Request, d Delivery) (err error) {
	returned := false
	defer func() {
		if status := Status(err); !returned || status < 200 || status > 299 {
			e.retract(d)
		}
	}()
	err = handle(r, d)
	returned = true
	return err
}

// retract takes back the record of a notification that was not handled: it will come
// again. A Duplicate was recorded by an earlier delivery and stays.
func (e *Endpoint) retract(d Delivery) {
	if e.Tracker != nil && d.Notification != nil && !d.Observation.IsDuplicate() {
		e.Tracker.Retract(d.Notification.ChannelID, d.Notification.MessageNumber)
	}
}

type deliveryKey struct{}

// Middleware answers invalid requests itself and passes valid notifications on to
// next, with the Delivery in the request's context (DeliveryFrom) and the body
// readable again. next answers; a handler that writes nothing answers 200, which the
// gateway takes as delivered. A next handler that fails and answers 5xx should first
// call e.Tracker.Retract with the notification's channel id and number (unless the
// Delivery is a Duplicate), or the gateway's retry would be flagged a Duplicate.
func (e *Endpoint) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d, err := e.Check(r)
		if err != nil {
			Respond(w, err)
			return
		}
		r = r.WithContext(context.WithValue(r.Context(), deliveryKey{}, d))
		r.Body = io.NopCloser(bytes.NewReader(d.Body))
		next.ServeHTTP(w, r)
	})
}

// DeliveryFrom is the Delivery that Middleware put in a request's context.
func DeliveryFrom(ctx context.Context) (Delivery, bool) {
	d, ok := ctx.Value(deliveryKey{}).(Delivery)
	return d, ok
}

// StatusError is an error that says which HTTP status to answer.
type StatusError struct {
	Code int
	// Reason is the camelCase code of the error envelope; empty means one derived from
	// Code.
	Reason string
	Err    error
}

func (e *StatusError) Error() string {
	if e.Err == nil {
		return http.StatusText(e.Code)
	}
	return e.Err.Error()
}

func (e *StatusError) Unwrap() error { return e.Err }

// WithStatus wraps err so that Status answers code: for example 503 to be asked again
// later, or a 4xx to fail the notification for good.
func WithStatus(code int, err error) error {
	return &StatusError{Code: code, Err: err}
}

// ErrUnsubscribe, returned from a Handler's callback, answers 410 Gone: the gateway
// removes the channel and sends nothing more on it.
var ErrUnsubscribe error = &StatusError{Code: http.StatusGone, Reason: "gone",
	Err: errors.New("the receiver no longer wants this channel")}

// Status is the HTTP status to answer for the outcome of receiving a notification, as
// the Rust library's `watchwire receive` decides it: 204 for nil (a valid notification,
// whether new, a duplicate or out of order); 400 for an *Error (the gateway fails that
// notification for good and moves on); a *StatusError's code; and 500 for any other
// error, which the gateway retries with backoff.
func Status(err error) int {
	var invalid *Error
	var status *StatusError
	switch {
	case err == nil:
		return http.StatusNoContent
	case errors.As(err, &status):
		if status.Code < 100 || status.Code > 999 {
			return http.StatusInternalServerError
		}
		return status.Code
	case errors.As(err, &invalid):
		return http.StatusBadRequest
	}
	return http.StatusInternalServerError
}

// Respond writes the answer for err: 204 with no body for nil, otherwise Status(err)
// with the gateway's error envelope,
// {"error": {"code", "message", "errors": [{"domain", "reason", "message"}]}}, whose
// reason is the *Error's reason code. The message of an error that is neither an
// *Error nor a *StatusError is not sent (it may hold internal details).
func Respond(w http.ResponseWriter, err error) {
	status := Status(err)
	if err == nil {
		w.WriteHeader(status)
		return
	}
	reason, message := "backendError", "the receiver could not handle the notification"
	var invalid *Error
	var custom *StatusError
	switch {
	case errors.As(err, &custom):
		reason, message = custom.Reason, custom.Error()
		if reason == "" {
			reason = defaultReason(custom.Code)
		}
	case errors.As(err, &invalid):
		reason, message = invalid.Reason(), invalid.Error()
	}
	type item struct {
		Domain  string `json:"domain"`
		Reason  string `json:"reason"`
		Message string `json:"message"`
	}
	type body struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
		Errors  []item `json:"errors"`
	}
	envelope, _ := json.Marshal(map[string]body{"error": {Code: status, Message: message,
		Errors: []item{{Domain: "global", Reason: reason, Message: message}}}})
	if status == http.StatusMethodNotAllowed {
		w.Header().Set("Allow", http.MethodPost)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(envelope)
}

func defaultReason(code int) string {
	switch code {
	case http.StatusBadRequest:
		return "badRequest"
	case http.StatusGone:
		return "gone"
	case http.StatusTooManyRequests:
		return "rateLimitExceeded"
	case http.StatusServiceUnavailable:
		return "backendError"
	}
	if code >= 500 {
		return "backendError"
	}
	return "error"
}
