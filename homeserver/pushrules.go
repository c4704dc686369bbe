package homeserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/planb-chat/planb"
	"github.com/planb-chat/planb/pushrules"
)

// A user's push rules are their global account data of type m.push_rules
// in the replicated account-data bucket: what they stored of their own
// rules and of the server-default rules (pushrules.Stored). Every write is
// a compare-and-set on that key, so two writes at two data centers never
// lose each other; the node's model follows the bucket like any account
// data, which wakes the user's syncs, and /sync and /pushrules show the
// effective ruleset computed from it.

// storedPushRules reads the user's stored push rules from this node's model.
func (s *Service) storedPushRules(userID string) (*pushrules.Stored, error) {
	if err := s.readable(readHistory, "push_rules"); err != nil {
		return nil, err
	}
	b, err := s.model.AccountData(userID, "", pushrules.EventType)
	if err != nil && !errors.Is(err, planb.ErrNotFound) {
		return nil, s.storeUnavailable(err)
	}
	st, err := pushrules.Parse(b)
	if err != nil {
		return nil, fmt.Errorf("push rules of %s: %w", userID, err)
	}
	return st, nil
}

// PushRules returns the session user's effective push rules (GET
// /pushrules/global/).
func (s *Service) PushRules(sess Session) (pushrules.Ruleset, error) {
	st, err := s.storedPushRules(sess.UserID)
	if err != nil {
		return nil, err
	}
	return st.Effective(sess.UserID), nil
}

// PushRule returns one of the session user's rules (GET
// /pushrules/global/{kind}/{ruleId}); M_INVALID_PARAM for an unknown kind,
// M_NOT_FOUND for an unknown rule.
func (s *Service) PushRule(sess Session, kind, ruleID string) (pushrules.Rule, error) {
	if err := pushrules.CheckKind(kind); err != nil {
		return pushrules.Rule{}, err
	}
	st, err := s.storedPushRules(sess.UserID)
	if err != nil {
		return pushrules.Rule{}, err
	}
	return st.Find(sess.UserID, kind, ruleID)
}

// SetPushRule creates or replaces one of the user's rules (PUT
// /pushrules/global/{kind}/{ruleId}, see pushrules.Stored.Put).
func (s *Service) SetPushRule(ctx context.Context, sess Session, kind, ruleID, before, after string, body json.RawMessage) error {
	return s.updatePushRules(ctx, sess.UserID, kind, func(st *pushrules.Stored) error {
		return st.Put(kind, ruleID, body, before, after)
	})
}

// DeletePushRule deletes one of the user's rules (DELETE
// /pushrules/global/{kind}/{ruleId}).
func (s *Service) DeletePushRule(ctx context.Context, sess Session, kind, ruleID string) error {
	return s.updatePushRules(ctx, sess.UserID, kind, func(st *pushrules.Stored) error {
		return st.Delete(kind, ruleID)
	})
}

// SetPushRuleEnabled enables or disables a rule, the user's or a
// server-default one (PUT /pushrules/global/{kind}/{ruleId}/enabled).
func (s *Service) SetPushRuleEnabled(ctx context.Context, sess Session, kind, ruleID string, enabled bool) error {
	return s.updatePushRules(ctx, sess.UserID, kind, func(st *pushrules.Stored) error {
		return st.SetEnabled(sess.UserID, kind, ruleID, enabled)
	})
}

// SetPushRuleActions sets a rule's actions, the user's or a server-default
// one (PUT /pushrules/global/{kind}/{ruleId}/actions).
func (s *Service) SetPushRuleActions(ctx context.Context, sess Session, kind, ruleID string, actions json.RawMessage) error {
	return s.updatePushRules(ctx, sess.UserID, kind, func(st *pushrules.Stored) error {
		return st.SetActions(sess.UserID, kind, ruleID, actions)
	})
}

// updatePushRules applies fn, an edit of rules of kind, to the user's
// stored rules with compare-and-set and waits until this node's model has
// the result. The first read may come from a replica that lags; a
// conflict reads again from the bucket's leader.
func (s *Service) updatePushRules(ctx context.Context, userID, kind string, fn func(*pushrules.Stored) error) error {
	if err := pushrules.CheckKind(kind); err != nil {
		return err
	}
	return s.updateAccountData(ctx, userID, "", pushrules.EventType, func(cur json.RawMessage) (json.RawMessage, error) {
		st, err := pushrules.Parse(cur)
		if err != nil {
			return nil, fmt.Errorf("push rules of %s: %w", userID, err)
		}
		if err := fn(st); err != nil {
			return nil, err
		}
		return st.Marshal()
	})
}
