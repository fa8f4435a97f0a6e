package fault

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
)

// TestClientMsg: only a Client message is offered to a client, found through wrapping.
func TestClientMsg(t *testing.T) {
	t.Parallel()
	hidden := &Error{Kind: Unavailable, Msg: "dial tcp 10.0.0.1:6732: connection refused"}
	if _, ok := ClientMsg(hidden); ok {
		t.Fatal("a message not marked public was offered")
	}
	public := &Error{Kind: Unavailable, Msg: "threshold key: 1 of 2", Err: hidden, Client: "threshold key: 1 of 2"}
	if msg, ok := ClientMsg(fmt.Errorf("signing: %w", public)); !ok || msg != "threshold key: 1 of 2" {
		t.Fatalf("%q %v", msg, ok)
	}
	if msg, ok := ClientMsg(&Error{Kind: Internal, Msg: "outer", Err: public}); !ok || msg != "threshold key: 1 of 2" {
		t.Fatalf("through a private wrapper: %q %v", msg, ok)
	}
	if _, ok := ClientMsg(errors.New("plain")); ok {
		t.Fatal("a plain error was offered")
	}
}

// TestReasonOf: a readiness check's reason is the one marked in the error's chain, else
// unavailable for an Unavailable error or a deadline, else failed; never the error's text.
func TestReasonOf(t *testing.T) {
	t.Parallel()
	secret := errors.New("open /var/lib/signatory/watermark_v2/NetX.json: permission denied")
	for _, c := range []struct {
		err  error
		want string
	}{
		{WithReason(ReasonCorrupt, secret), ReasonCorrupt},
		{&Error{Kind: Internal, Msg: "x", Err: WithReason(ReasonCorrupt, secret)}, ReasonCorrupt},
		{WithReason(ReasonClosed, New(Unavailable, "closed")), ReasonClosed},
		{New(Unavailable, "down"), ReasonUnavailable},
		{fmt.Errorf("ping: %w", context.DeadlineExceeded), ReasonUnavailable},
		{secret, ReasonFailed},
	} {
		if got := ReasonOf(c.err); got != c.want {
			t.Errorf("ReasonOf(%v) = %q, want %q", c.err, got, c.want)
		}
	}
	if WithReason(ReasonCorrupt, nil) != nil {
		t.Fatal("WithReason(nil) is not nil")
	}
	if k := KindOf(WithReason(ReasonClosed, New(Unavailable, "closed"))); k != Unavailable {
		t.Fatalf("kind through a reason: %v", k)
	}
}

// TestStatus: each kind's status is the HTTP code the reference answers with, and its words
// net/http's.
func TestStatus(t *testing.T) {
	for k, want := range map[Kind]int{Internal: http.StatusInternalServerError, BadRequest: http.StatusBadRequest,
		Unauthorized: http.StatusUnauthorized, Forbidden: http.StatusForbidden, NotFound: http.StatusNotFound,
		Conflict: http.StatusConflict, TooLarge: http.StatusRequestEntityTooLarge, Unavailable: http.StatusServiceUnavailable} {
		if k.Status() != want || (&Error{Kind: k}).Error() != http.StatusText(want) || k.ServerSide() != (want >= 500) {
			t.Errorf("kind %d: status %d, text %q; want %d, %q", k, k.Status(), (&Error{Kind: k}).Error(), want, http.StatusText(want))
		}
	}
}
