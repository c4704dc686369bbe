package planb

import (
	"context"
	"errors"
	"fmt"
	"testing"
)

func TestMatrixErrorsCompareByCode(t *testing.T) {
	wrapped := fmt.Errorf("join: %w", Forbidden("you are not invited to %s", "!r:x"))
	if !errors.Is(wrapped, MForbidden) {
		t.Error("a wrapped M_FORBIDDEN is not MForbidden")
	}
	if errors.Is(wrapped, MNotFound) {
		t.Error("an M_FORBIDDEN is MNotFound")
	}
	if errors.Is(errors.New("forbidden"), MForbidden) {
		t.Error("a plain error is MForbidden")
	}
	if errors.Is(ErrNotFound, MNotFound) {
		t.Error("the store's ErrNotFound is a Matrix error")
	}
	tok := UnknownToken("gone")
	if !errors.Is(tok, MUnknownToken) || tok.Status != 401 || tok.Extra["soft_logout"] != false {
		t.Errorf("UnknownToken = %+v", tok)
	}
	if u := Unavailable(0, "x"); !errors.Is(u, MUnavailable) || u.Status != 503 {
		t.Errorf("Unavailable = %+v", u)
	}
}

func TestNoQuorum(t *testing.T) {
	answer, turned := NoQuorum(fmt.Errorf("append: %w", ErrNoQuorum))
	if !turned || !errors.Is(answer, MUnavailable) {
		t.Errorf("an engine failure: %v, turned %v; want a 503", answer, turned)
	}
	if e, ok := AsError(answer); !ok || e.RetryAfter <= 0 {
		t.Errorf("the 503 has no Retry-After: %+v", e)
	}
	forbidden := Forbidden("no")
	if answer, turned := NoQuorum(forbidden); turned || answer != error(forbidden) {
		t.Errorf("a Matrix error: %v, turned %v; want it as it is", answer, turned)
	}
	if answer, turned := NoQuorum(context.Canceled); turned || !errors.Is(answer, context.Canceled) {
		t.Errorf("a cancellation: %v, turned %v; want it as it is", answer, turned)
	}
}
