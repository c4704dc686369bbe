package homeserver

import "github.com/planb-chat/planb/projection"

// Search answers POST /search (category room_events) for the session's
// user. It is a history read: a cut-off node still answers from what it
// has applied. Errors: M_INVALID_PARAM or M_BAD_JSON for a bad request or
// a term too broad to search, 503 when the store cannot be read.
func (s *Service) Search(sess Session, q projection.SearchRequest) (*projection.SearchResults, error) {
	if err := s.readable(readHistory, "search"); err != nil {
		return nil, err
	}
	q.User, q.Device = sess.UserID, sess.DeviceID
	v, err := s.model.Search(q)
	return storeRead(s, v, err)
}
