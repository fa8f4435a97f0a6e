package fault

import (
	"errors"
	"fmt"
	"testing"
)

// TestPublicMsg: only a message marked Public is offered to a client, found through wrapping.
func TestPublicMsg(t *testing.T) {
	t.Parallel()
	hidden := &Error{Kind: Unavailable, Msg: "dial tcp 10.0.0.1:6732: connection refused"}
	if _, ok := PublicMsg(hidden); ok {
		t.Fatal("a message not marked public was offered")
	}
	public := &Error{Kind: Unavailable, Msg: "threshold key: 1 of 2", Err: hidden, Public: true}
	if msg, ok := PublicMsg(fmt.Errorf("signing: %w", public)); !ok || msg != "threshold key: 1 of 2" {
		t.Fatalf("%q %v", msg, ok)
	}
	if msg, ok := PublicMsg(&Error{Kind: Internal, Msg: "outer", Err: public}); !ok || msg != "threshold key: 1 of 2" {
		t.Fatalf("through a private wrapper: %q %v", msg, ok)
	}
	if _, ok := PublicMsg(errors.New("plain")); ok {
		t.Fatal("a plain error was offered")
	}
}
