package homeserver

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/planb-chat/planb"
)

// Room tags (the spec's room tagging module) are the user's room account
// data of type m.tag, {"tags": {name: {"order": n}}}, changed one tag at a
// time by compare-and-set, so two devices tagging at once lose nothing.

// tagType is the account data type that holds a room's tags.
const tagType = "m.tag"

// maxTagName bounds a tag's name (Synapse's limit).
const maxTagName = 255

type tagContent struct {
	Tags map[string]json.RawMessage `json:"tags"`
}

// Tags answers GET /user/{userId}/rooms/{roomId}/tags.
func (s *Service) Tags(sess Session, userID, roomID string) (map[string]json.RawMessage, error) {
	if userID != sess.UserID {
		return nil, planb.Forbidden("you can only read your own tags")
	}
	if err := s.readable(readHistory, "tags"); err != nil {
		return nil, err
	}
	c := tagContent{Tags: map[string]json.RawMessage{}}
	if raw, err := s.model.AccountData(userID, roomID, tagType); err == nil {
		_ = json.Unmarshal(raw, &c)
	}
	if c.Tags == nil {
		c.Tags = map[string]json.RawMessage{}
	}
	return c.Tags, nil
}

// SetTag answers PUT /user/{userId}/rooms/{roomId}/tags/{tag} (body nil:
// DELETE, which removes the tag).
func (s *Service) SetTag(ctx context.Context, sess Session, userID, roomID, tag string, body json.RawMessage) error {
	if userID != sess.UserID {
		return planb.Forbidden("you can only tag rooms for yourself")
	}
	if !strings.HasPrefix(roomID, "!") {
		return planb.InvalidParam("invalid room ID %q", roomID)
	}
	if tag == "" || len(tag) > maxTagName {
		return planb.InvalidParam("a tag's name must be 1 to %d bytes", maxTagName)
	}
	if body != nil {
		var t struct {
			Order *json.RawMessage `json:"order"`
		}
		if err := json.Unmarshal(body, &t); err != nil {
			return planb.BadJSON("tag: %v", err)
		}
		if t.Order != nil {
			var f float64
			if err := json.Unmarshal(*t.Order, &f); err != nil {
				return planb.BadJSON("order must be a number")
			}
		}
	}
	return s.updateAccountData(ctx, userID, roomID, tagType, func(cur json.RawMessage) (json.RawMessage, error) {
		var c tagContent
		if len(cur) > 0 {
			if err := json.Unmarshal(cur, &c); err != nil {
				c = tagContent{} // undecodable tags are replaced
			}
		}
		if c.Tags == nil {
			c.Tags = map[string]json.RawMessage{}
		}
		if body == nil {
			delete(c.Tags, tag)
		} else {
			c.Tags[tag] = body
		}
		out, err := json.Marshal(c)
		if err != nil {
			return nil, fmt.Errorf("encode tags: %w", err)
		}
		if len(out) > planb.MaxEventBytes {
			return nil, planb.Errorf(planb.CodeTooLarge, 413, "the room's tags would be larger than %d bytes", planb.MaxEventBytes)
		}
		return out, nil
	})
}
