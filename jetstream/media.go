package jetstream

import (
	"context"
	"errors"
	"fmt"
	"io"

	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/planb-chat/planb"
)

// Object is a stored media object being read. The caller closes Body.
type Object struct {
	Size    uint64
	Headers map[string][]string
	Body    io.ReadCloser
}

// PutObject stores r under name in the media object store, replicated like
// every stream: it returns once the object is committed in a quorum.
func (e *Engine) PutObject(ctx context.Context, name string, headers map[string][]string, r io.Reader) error {
	if _, err := e.media.Put(ctx, natsjs.ObjectMeta{Name: name, Headers: headers}, r); err != nil {
		return fmt.Errorf("put object %s: %w", name, err)
	}
	return nil
}

// GetObject opens the stored object name. It returns planb.ErrNotFound
// (wrapped) when there is no such object.
func (e *Engine) GetObject(ctx context.Context, name string) (*Object, error) {
	obj, err := e.media.Get(ctx, name)
	if errors.Is(err, natsjs.ErrObjectNotFound) {
		return nil, fmt.Errorf("object %s: %w", name, planb.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get object %s: %w", name, err)
	}
	info, err := obj.Info()
	if err != nil {
		obj.Close()
		return nil, fmt.Errorf("object %s info: %w", name, err)
	}
	return &Object{Size: info.Size, Headers: info.Headers, Body: obj}, nil
}
