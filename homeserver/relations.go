package homeserver

import (
	"bytes"
	"net/http"

	json "github.com/segmentio/encoding/json"

	"github.com/planb-chat/planb"
	"github.com/planb-chat/planb/projection"
)

// Relations answers GET /rooms/{roomId}/relations/{eventId}[/{relType}[/{eventType}]],
// a history read.
func (s *Service) Relations(sess Session, q projection.RelationsQuery) (*projection.RelationsPage, error) {
	if err := s.readable(readHistory, "relations"); err != nil {
		return nil, err
	}
	v, err := s.model.Relations(sess.UserID, sess.DeviceID, q)
	return storeRead(s, v, err)
}

// Threads answers GET /rooms/{roomId}/threads, a history read.
func (s *Service) Threads(sess Session, roomID, from string, participated bool, limit int) (*projection.ThreadsPage, error) {
	if err := s.readable(readHistory, "threads"); err != nil {
		return nil, err
	}
	v, err := s.model.Threads(sess.UserID, sess.DeviceID, roomID, from, participated, limit)
	return storeRead(s, v, err)
}

// checkThread refuses, as the spec asks, a thread reply whose root is
// itself the child of a relation: threads do not nest (400 M_UNKNOWN, the
// spec names no better code). A root this node does not know yet passes.
func (s *Service) checkThread(roomID string, content json.RawMessage) error {
	if !bytes.Contains(content, []byte(`"m.relates_to"`)) {
		return nil
	}
	var c struct {
		R *struct {
			RelType string `json:"rel_type"`
			EventID string `json:"event_id"`
		} `json:"m.relates_to"`
	}
	if json.Unmarshal(content, &c) != nil || c.R == nil || c.R.RelType != projection.RelThread || c.R.EventID == "" {
		return nil
	}
	rel, err := s.model.RelTypeOf(roomID, c.R.EventID)
	if err != nil {
		return s.storeUnavailable(err)
	}
	if rel != "" {
		return planb.Errorf(planb.CodeUnknown, http.StatusBadRequest,
			"cannot start a thread from an event with a relation (%s is a %s)", c.R.EventID, rel)
	}
	return nil
}
