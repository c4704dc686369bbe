package homeserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/planb-chat/planb"
	"github.com/planb-chat/planb/jetstream"
)

// Asynchronous uploads (spec v1.7, MSC2246): a client reserves a media ID
// first (POST /_matrix/media/v1/create), sends the mxc:// URI in a message,
// and uploads the content afterwards (PUT /_matrix/media/v3/upload/{server}/
// {mediaId}). The reservation is a replicated key in media_pending, so any
// node of any data center takes the upload; it expires after
// MediaPendingWindow. Downloads of a reserved ID wait for the upload.

// pendingMedia is a reserved media ID.
type pendingMedia struct {
	Uploader  string `json:"uploader"`
	ExpiresAt int64  `json:"expires_at"` // Unix ms
	Uploading bool   `json:"uploading,omitempty"`
}

// CreateMedia reserves a media ID for an upload to come and returns its
// mxc:// URI and when the reservation expires (Unix ms).
func (s *Service) CreateMedia(ctx context.Context, sess Session) (string, int64, error) {
	id := planb.RandomString(18)
	expires := time.Now().Add(jetstream.MediaPendingWindow).UnixMilli()
	b, _ := json.Marshal(pendingMedia{Uploader: sess.UserID, ExpiresAt: expires})
	if _, err := s.engine.Create(ctx, jetstream.BucketMediaPending, id, b); err != nil {
		return "", 0, s.unavailable(fmt.Errorf("reserve media ID: %w", err))
	}
	return "mxc://" + s.cfg.ServerName + "/" + id, expires, nil
}

// UploadReserved stores the content of a reserved media ID. Only the user
// who reserved it may upload, once: a second upload is 409
// M_CANNOT_OVERWRITE_MEDIA, also when two race (the reservation is marked
// with compare-and-set before the content is stored).
func (s *Service) UploadReserved(ctx context.Context, sess Session, server, mediaID, contentType, fileName string, size int64, r io.Reader) error {
	if server != s.cfg.ServerName || !validMediaID(mediaID) {
		return planb.NotFound("media not found")
	}
	e, err := s.engine.GetLeader(ctx, jetstream.BucketMediaPending, mediaID)
	if errors.Is(err, planb.ErrNotFound) {
		if s.mediaExists(ctx, mediaID) {
			return cannotOverwrite()
		}
		return planb.NotFound("media ID %s was not reserved, or its reservation expired", mediaID)
	}
	if err != nil {
		return s.unavailable(err)
	}
	var p pendingMedia
	if err := json.Unmarshal(e.Value, &p); err != nil {
		return s.unavailable(fmt.Errorf("decode media reservation: %w", err))
	}
	switch {
	case p.Uploader != sess.UserID:
		return planb.Forbidden("media ID %s was reserved by another user", mediaID)
	case p.Uploading:
		return cannotOverwrite()
	case time.Now().UnixMilli() > p.ExpiresAt:
		return planb.NotFound("the reservation of media ID %s expired", mediaID)
	}
	p.Uploading = true
	b, _ := json.Marshal(p)
	rev, err := s.engine.Update(ctx, jetstream.BucketMediaPending, mediaID, b, e.Revision)
	if errors.Is(err, planb.ErrConflict) {
		return cannotOverwrite()
	}
	if err != nil {
		return s.unavailable(err)
	}
	if err := s.storeMedia(ctx, sess, mediaID, contentType, fileName, size, r); err != nil {
		// Let the client try again: the content was not stored.
		p.Uploading = false
		b, _ := json.Marshal(p)
		if _, uerr := s.engine.Update(ctx, jetstream.BucketMediaPending, mediaID, b, rev); uerr != nil {
			s.log.Warn("reopening a media reservation after a failed upload", "media", mediaID, "err", uerr)
		}
		return err
	}
	// The reservation has done its work; it would expire by itself anyway.
	if err := s.engine.Delete(ctx, jetstream.BucketMediaPending, mediaID); err != nil {
		s.log.Debug("dropping a used media reservation", "media", mediaID, "err", err)
	}
	return nil
}

func cannotOverwrite() error {
	return planb.Errorf(planb.CodeCannotOverwriteMedia, 409, "this media ID already has content")
}

// maxMediaWait bounds how long a download waits for a reserved upload.
const maxMediaWait = 60 * time.Second

// awaitUpload waits up to timeout for the content of a reserved media ID.
// It returns nil when the content may be there now, M_NOT_FOUND when the ID
// was never reserved, and 504 M_NOT_YET_UPLOADED when the wait ran out.
func (s *Service) awaitUpload(ctx context.Context, mediaID string, timeout time.Duration) error {
	deadline := time.Now().Add(min(timeout, maxMediaWait))
	for {
		_, err := s.engine.Get(ctx, jetstream.BucketMediaPending, mediaID)
		if errors.Is(err, planb.ErrNotFound) {
			return nil // uploaded meanwhile (the reservation is dropped), or never reserved
		}
		if err != nil {
			return s.unavailable(err)
		}
		if time.Now().After(deadline) {
			return planb.Errorf(planb.CodeNotYetUploaded, 504, "media %s has not been uploaded yet", mediaID)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
		if s.mediaExists(ctx, mediaID) {
			return nil
		}
	}
}

// mediaExists reports whether content is stored under mediaID.
func (s *Service) mediaExists(ctx context.Context, mediaID string) bool {
	obj, err := s.engine.GetObject(ctx, mediaID)
	if err != nil {
		return false
	}
	obj.Body.Close()
	return true
}
