// Package fault defines the one typed error that carries what a client should learn (its kind)
// from any step of the sign path to the transports. A kind's status is the reference's answer
// code: the HTTP server sends it, octez's socket transport maps it, and the audit journal and
// the metrics labels record it, as the reference's do.
package fault

import (
	"context"
	"errors"
)

// Kind classifies an error by what the client should learn from it.
type Kind int

const (
	// Internal is the zero kind: a failure of ours or of a backend (500).
	Internal Kind = iota
	BadRequest
	Unauthorized
	Forbidden
	NotFound
	Conflict
	TooLarge
	Unavailable
)

// Status returns the kind's status code (an HTTP code).
func (k Kind) Status() int { return kinds[k].status }

// ServerSide reports whether the kind is a failure of ours or of a backend (a 5xx status).
func (k Kind) ServerSide() bool { return k.Status() >= 500 }

// kinds are each kind's status and its words when an error has no message of its own.
var kinds = [...]struct {
	status int
	text   string
}{
	Internal:     {500, "Internal Server Error"},
	BadRequest:   {400, "Bad Request"},
	Unauthorized: {401, "Unauthorized"},
	Forbidden:    {403, "Forbidden"},
	NotFound:     {404, "Not Found"},
	Conflict:     {409, "Conflict"},
	TooLarge:     {413, "Request Entity Too Large"},
	Unavailable:  {503, "Service Unavailable"},
}

// Error is an error with a Kind. A client error's (4xx) Msg is what the client is told; a server
// error's (5xx) Msg and Err go to the log only, and the client is told Client.
type Error struct {
	Kind Kind
	Msg  string
	Err  error // optional cause, for logs; never shown to clients unless Msg is empty
	// Client is what a client is told of a server error (5xx): it names no path, host or
	// backend's own words. Empty: the kind of failure only, and the request id.
	Client string
}

// Safe returns a server error of kind k that tells the client msg and keeps cause for the log.
func Safe(k Kind, msg string, cause error) error {
	return &Error{Kind: k, Msg: msg, Err: cause, Client: msg}
}

func (e *Error) Error() string {
	if e.Msg != "" {
		return e.Msg
	}
	if e.Err != nil {
		return e.Err.Error()
	}
	return kinds[e.Kind].text
}

func (e *Error) Unwrap() error { return e.Err }

// New returns an error of kind k with message msg.
func New(k Kind, msg string) error { return &Error{Kind: k, Msg: msg} }

// Wrap returns err with kind k; its message is err's message.
func Wrap(k Kind, err error) error {
	if err == nil {
		return nil
	}
	return &Error{Kind: k, Err: err}
}

// KindOf returns the kind of the first *Error in err's chain, or Internal.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return Internal
}

// Status returns the HTTP status code for err.
func Status(err error) int { return KindOf(err).Status() }

// ClientMsg returns the Client message of the first *Error in err's chain that has one.
func ClientMsg(err error) (string, bool) {
	var e *Error
	for err != nil {
		if errors.As(err, &e) {
			if e.Client != "" {
				return e.Client, true
			}
			err = e.Err
			continue
		}
		break
	}
	return "", false
}

// Reasons are the short, stable words /healthz says of a failed readiness check: they name no
// path, host or backend's own words (those go to the log).
const (
	ReasonUnavailable = "unavailable" // the service cannot be reached, or did not answer in time
	ReasonCorrupt     = "corrupt"     // stored state cannot be read
	ReasonClosed      = "closed"      // shut down
	ReasonFailed      = "failed"      // anything else
)

// reasoned is an error with a Reason.
type reasoned struct {
	reason string
	err    error
}

func (r *reasoned) Error() string { return r.err.Error() }
func (r *reasoned) Unwrap() error { return r.err }

// WithReason returns err marked with reason (one of the Reason constants) for ReasonOf.
func WithReason(reason string, err error) error {
	if err == nil {
		return nil
	}
	return &reasoned{reason: reason, err: err}
}

// ReasonOf returns the reason a readiness check failed with err: the one WithReason marked in
// its chain, ReasonUnavailable for an Unavailable error or a deadline, else ReasonFailed.
func ReasonOf(err error) string {
	var r *reasoned
	switch {
	case errors.As(err, &r):
		return r.reason
	case KindOf(err) == Unavailable, errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return ReasonUnavailable
	}
	return ReasonFailed
}
