package homeserver

import (
	"time"

	"github.com/planb-chat/planb"
	"github.com/planb-chat/planb/projection"
)

// The read policy. Every read of the read model goes through readable, so
// what a node cut off from the quorum answers is decided here:
//
//   - readLive reads (/sync) claim "this is everything up to now" and let a
//     client wait for more. A cut-off node does not hear what the other
//     data centers commit, so such an answer would be silently stale: it is
//     refused with 503 M_UNAVAILABLE and Retry-After, and planb's clients and
//     load balancers go to another data center.
//   - readHistory reads (/messages, /context, /event, /state, /members,
//     /joined_rooms, account data) return committed records that do not
//     change once written. A cut-off node still serves them from its model:
//     what it returns is true, it may only lack the last moments' records,
//     and an island that can still show a conversation's history is worth
//     more than one that shows nothing.
//
// Every read is counted in planb_reads_total by read and outcome (ok,
// served_cut_off, refused_cut_off, refused_broken_link).
type readKind int

const (
	readHistory readKind = iota
	readLive
)

// readable applies the read policy to the read named name.
func (s *Service) readable(kind readKind, name string) error {
	if s.isCutOff() {
		if kind == readLive {
			s.m.reads.WithLabelValues(name, "refused_cut_off").Inc()
			return s.refuseCutOff()
		}
		s.m.reads.WithLabelValues(name, "served_cut_off").Inc()
		return nil
	}
	if kind == readLive && s.brokenLink() != "" {
		s.m.reads.WithLabelValues(name, "refused_broken_link").Inc()
		return s.refuseCutOff()
	}
	s.m.reads.WithLabelValues(name, "ok").Inc()
	return nil
}

// storeUnavailable is the answer when this node cannot read its read
// model store (a damaged file, a failing disk): the client is better off
// at another data center, whose store is its own.
func (s *Service) storeUnavailable(err error) error {
	if e, ok := planb.AsError(err); ok {
		return e
	}
	s.log.Error("read model store", "err", err)
	return planb.Unavailable(2*time.Second, "this node cannot read its read models right now; retry at another data center")
}

// storeRead passes a model's answer through, turning a failure to read the
// store (any error that is not a Matrix error) into storeUnavailable.
func storeRead[T any](s *Service, v T, err error) (T, error) {
	if err == nil {
		return v, nil
	}
	var zero T
	return zero, s.storeUnavailable(err)
}

// JoinedRooms answers GET /joined_rooms.
func (s *Service) JoinedRooms(sess Session) ([]string, error) {
	if err := s.readable(readHistory, "joined_rooms"); err != nil {
		return nil, err
	}
	return s.model.JoinedRooms(sess.UserID), nil
}

// Messages answers GET /rooms/{roomId}/messages.
func (s *Service) Messages(sess Session, roomID, from, to string, backwards bool, limit int, f *projection.RoomEventFilter) (*projection.Page, error) {
	if err := s.readable(readHistory, "messages"); err != nil {
		return nil, err
	}
	v, err := s.model.Messages(sess.UserID, sess.DeviceID, roomID, from, to, backwards, limit, f)
	return storeRead(s, v, err)
}

// EventContext answers GET /rooms/{roomId}/context/{eventId}.
func (s *Service) EventContext(sess Session, roomID, eventID string, limit int, f *projection.RoomEventFilter) (*projection.ContextResult, error) {
	if err := s.readable(readHistory, "context"); err != nil {
		return nil, err
	}
	v, err := s.model.Context(sess.UserID, sess.DeviceID, roomID, eventID, limit, f)
	return storeRead(s, v, err)
}

// Event answers GET /rooms/{roomId}/event/{eventId}.
func (s *Service) Event(sess Session, roomID, eventID string) (*projection.ClientEvent, error) {
	if err := s.readable(readHistory, "event"); err != nil {
		return nil, err
	}
	v, err := s.model.Event(sess.UserID, sess.DeviceID, roomID, eventID)
	return storeRead(s, v, err)
}

// State answers GET /rooms/{roomId}/state.
func (s *Service) State(sess Session, roomID string) ([]projection.ClientEvent, error) {
	if err := s.readable(readHistory, "state"); err != nil {
		return nil, err
	}
	v, err := s.model.State(sess.UserID, roomID)
	return storeRead(s, v, err)
}

// StateEvent answers GET /rooms/{roomId}/state/{eventType}/{stateKey}.
func (s *Service) StateEvent(sess Session, roomID, eventType, stateKey string) (*projection.ClientEvent, error) {
	if err := s.readable(readHistory, "state_event"); err != nil {
		return nil, err
	}
	v, err := s.model.StateEvent(sess.UserID, roomID, eventType, stateKey)
	return storeRead(s, v, err)
}

// Members answers GET /rooms/{roomId}/members.
func (s *Service) Members(sess Session, roomID, at, membership, notMembership string) ([]projection.ClientEvent, error) {
	if err := s.readable(readHistory, "members"); err != nil {
		return nil, err
	}
	v, err := s.model.Members(sess.UserID, roomID, at, membership, notMembership)
	return storeRead(s, v, err)
}

// JoinedMembers answers GET /rooms/{roomId}/joined_members.
func (s *Service) JoinedMembers(sess Session, roomID string) (map[string]projection.JoinedMember, error) {
	if err := s.readable(readHistory, "joined_members"); err != nil {
		return nil, err
	}
	v, err := s.model.JoinedMembers(sess.UserID, roomID)
	return storeRead(s, v, err)
}
