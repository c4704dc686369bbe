package homeserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/planb-chat/planb"
)

// Media is a stored upload.
type Media struct {
	ContentType string
	FileName    string
	Size        uint64
	Body        io.ReadCloser
}

// Upload stores media from r (at most MaxUploadBytes) and returns its
// mxc:// URI. The object store replicates it like every other write, so it
// is committed in a quorum before the client hears back.
func (s *Service) Upload(ctx context.Context, sess Session, contentType, fileName string, size int64, r io.Reader) (string, error) {
	id := planb.RandomString(18)
	if err := s.storeMedia(ctx, sess, id, contentType, fileName, size, r); err != nil {
		return "", err
	}
	return "mxc://" + s.cfg.ServerName + "/" + id, nil
}

// storeMedia stores the content of media ID id.
func (s *Service) storeMedia(ctx context.Context, sess Session, id, contentType, fileName string, size int64, r io.Reader) error {
	if size > s.cfg.MaxUploadBytes {
		return planb.Errorf(planb.CodeTooLarge, 413, "upload is larger than the limit of %d bytes", s.cfg.MaxUploadBytes)
	}
	if contentType == "" {
		contentType = "application/octet-stream"
	}
	if len(fileName) > 255 || strings.ContainsAny(fileName, "/\\\x00") {
		return planb.InvalidParam("invalid file name")
	}
	lr := &limitReader{r: r, left: s.cfg.MaxUploadBytes}
	headers := map[string][]string{
		"Content-Type": {contentType}, "X-Planb-Filename": {fileName}, "X-Planb-Uploader": {sess.UserID},
	}
	wctx, cancel := context.WithTimeout(ctx, s.cfg.WriteTimeout.Std()+time.Duration(size/(1<<20))*time.Second)
	defer cancel()
	if err := s.engine.PutObject(wctx, id, headers, lr); err != nil {
		if lr.over {
			return planb.Errorf(planb.CodeTooLarge, 413, "upload is larger than the limit of %d bytes", s.cfg.MaxUploadBytes)
		}
		return s.unavailable(fmt.Errorf("store media: %w", err))
	}
	return nil
}

// limitReader fails once more than left bytes were read.
type limitReader struct {
	r    io.Reader
	left int64
	over bool
}

var errTooLarge = errors.New("upload too large")

func (l *limitReader) Read(p []byte) (int, error) {
	n, err := l.r.Read(p)
	l.left -= int64(n)
	if l.left < 0 {
		l.over = true
		return n, errTooLarge
	}
	return n, err
}

// validMediaID rejects media IDs that cannot be object names.
func validMediaID(id string) bool {
	return id != "" && len(id) <= 255 && !strings.ContainsAny(id, "./\\ *>")
}

// Download opens stored media. Returns M_NOT_FOUND for unknown media or
// media of other servers. Media reserved for an asynchronous upload is
// waited for, up to wait (504 M_NOT_YET_UPLOADED after).
func (s *Service) Download(ctx context.Context, server, mediaID string, wait time.Duration) (*Media, error) {
	if server != s.cfg.ServerName || !validMediaID(mediaID) {
		return nil, planb.NotFound("media not found")
	}
	obj, err := s.engine.GetObject(ctx, mediaID)
	if errors.Is(err, planb.ErrNotFound) {
		if err := s.awaitUpload(ctx, mediaID, wait); err != nil {
			return nil, err
		}
		obj, err = s.engine.GetObject(ctx, mediaID)
	}
	if errors.Is(err, planb.ErrNotFound) {
		return nil, planb.NotFound("media not found")
	}
	if err != nil {
		return nil, s.unavailable(fmt.Errorf("read media: %w", err))
	}
	m := &Media{Body: obj.Body, Size: obj.Size, ContentType: "application/octet-stream"}
	if h := http.Header(obj.Headers); h != nil {
		if ct := h.Get("Content-Type"); ct != "" {
			m.ContentType = ct
		}
		m.FileName = h.Get("X-Planb-Filename")
	}
	return m, nil
}
