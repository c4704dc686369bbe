package jetstream

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
)

// Ephemeral messaging: core NATS publish/subscribe and request/reply over the
// engine's connection. Nothing here is stored or replicated; it carries
// signals (typing notifications, forwarded sends) whose loss a caller
// tolerates, and it reaches every node the cluster's routes reach.

// Subscription is an active subscription; Stop ends it.
type Subscription struct{ sub *nats.Subscription }

// Stop ends the subscription. Stopping twice is harmless.
func (s *Subscription) Stop() {
	if s != nil && s.sub != nil {
		_ = s.sub.Unsubscribe()
	}
}

// ErrNoResponder is returned by Request when nobody serves the subject or
// nobody answered before the context ended.
var ErrNoResponder = errors.New("no responder")

// Publish sends data to every subscriber of subject, without storing it.
func (e *Engine) Publish(subject string, data []byte) error {
	if err := e.nc.Publish(subject, data); err != nil {
		return fmt.Errorf("publish %s: %w", subject, err)
	}
	return nil
}

// Subscribe calls fn, on the connection's dispatch goroutine, for every
// message published to subject. fn must not block.
func (e *Engine) Subscribe(subject string, fn func(data []byte)) (*Subscription, error) {
	sub, err := e.nc.Subscribe(subject, func(m *nats.Msg) { fn(m.Data) })
	if err != nil {
		return nil, fmt.Errorf("subscribe %s: %w", subject, err)
	}
	return &Subscription{sub: sub}, nil
}

// Serve answers requests to subject: each request goes to one of the
// servers in queue and fn's result is its reply. fn runs on its own
// goroutine, so it may block.
func (e *Engine) Serve(subject, queue string, fn func(req []byte) []byte) (*Subscription, error) {
	sub, err := e.nc.QueueSubscribe(subject, queue, func(m *nats.Msg) {
		go func() { _ = m.Respond(fn(m.Data)) }()
	})
	if err != nil {
		return nil, fmt.Errorf("serve %s: %w", subject, err)
	}
	return &Subscription{sub: sub}, nil
}

// Request sends req to one server of subject and waits for its reply until
// ctx ends. It returns ErrNoResponder (wrapped) when nobody answered.
func (e *Engine) Request(ctx context.Context, subject string, req []byte) ([]byte, error) {
	m, err := e.nc.RequestWithContext(ctx, subject, req)
	if err != nil {
		return nil, fmt.Errorf("request %s: %w: %w", subject, ErrNoResponder, err)
	}
	return m.Data, nil
}
