package homeserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/planb-chat/planb"
	"github.com/planb-chat/planb/jetstream"
)

// Access and refresh tokens. A device has one access token; a client that
// asks for a refresh token at login or registration (spec: "Refreshing
// access tokens") also gets one, and its access token then expires after
// Config.RefreshableTokenLifetime. Both live in the tokens bucket as SHA-256
// hashes only; the device record names both, so logout and device deletion
// remove both.
// newSession creates (or takes over) a device and a fresh access token, and
// a refresh token when refresh is set.
func (s *Service) newSession(ctx context.Context, userID, deviceID, displayName string, refresh bool) (*LoginResponse, error) {
	if deviceID == "" {
		deviceID = planb.RandomLetters(10)
	}
	if len(deviceID) > 255 {
		return nil, planb.InvalidParam("device_id is too long")
	}
	dkey := deviceKey(userID, deviceID)
	if old, err := s.engine.Get(ctx, jetstream.BucketDevices, dkey); err == nil {
		var d device
		if json.Unmarshal(old.Value, &d) == nil {
			if displayName == "" {
				displayName = d.DisplayName
			}
			if err := s.dropTokens(ctx, d); err != nil {
				return nil, err
			}
		}
	}
	resp, d, err := s.issueTokens(ctx, userID, deviceID, refresh)
	if err != nil {
		return nil, err
	}
	d.DisplayName, d.CreatedTS = displayName, time.Now().UnixMilli()
	dev, _ := json.Marshal(d)
	if _, err := s.engine.Put(ctx, jetstream.BucketDevices, dkey, dev); err != nil {
		return nil, s.unavailable(err)
	}
	return resp, nil
}

// issueTokens stores a new access token (and refresh token) of a device
// and returns them with the device record's token fields filled in.
func (s *Service) issueTokens(ctx context.Context, userID, deviceID string, refresh bool) (*LoginResponse, device, error) {
	resp := &LoginResponse{UserID: userID, DeviceID: deviceID, HomeServer: s.cfg.ServerName}
	d := device{DeviceID: deviceID}
	sess := Session{UserID: userID, DeviceID: deviceID}
	if refresh {
		life := s.cfg.RefreshableTokenLifetime.Std()
		sess.ExpiresAt = time.Now().Add(life).UnixMilli()
		resp.ExpiresInMs = life.Milliseconds()
		resp.RefreshToken = "pbr_" + planb.RandomString(32)
		d.RefreshHash = tokenHash(resp.RefreshToken)
		b, _ := json.Marshal(Session{UserID: userID, DeviceID: deviceID, Refresh: true})
		if _, err := s.engine.Put(ctx, jetstream.BucketTokens, d.RefreshHash, b); err != nil {
			return nil, d, s.unavailable(err)
		}
	}
	resp.AccessToken = "pb_" + planb.RandomString(32) // 256 random bits
	d.TokenHash = tokenHash(resp.AccessToken)
	b, _ := json.Marshal(sess)
	if _, err := s.engine.Put(ctx, jetstream.BucketTokens, d.TokenHash, b); err != nil {
		return nil, d, s.unavailable(err)
	}
	return resp, d, nil
}

// dropTokens deletes a device's access and refresh tokens.
func (s *Service) dropTokens(ctx context.Context, d device) error {
	for _, h := range []string{d.TokenHash, d.RefreshHash} {
		if h == "" {
			continue
		}
		if err := s.engine.Delete(ctx, jetstream.BucketTokens, h); err != nil {
			return s.unavailable(err)
		}
		s.sessions.forget(h, time.Now())
	}
	return nil
}

// Refresh exchanges a refresh token for a new access token and refresh
// token (POST /refresh). The old refresh token is taken with
// compare-and-delete, so of two refreshes racing with one token exactly
// one succeeds; the old access token ends with it.
func (s *Service) Refresh(ctx context.Context, refreshToken string) (*LoginResponse, error) {
	unknown := planb.UnknownToken("unknown or used refresh token")
	if refreshToken == "" {
		return nil, planb.MissingParam("refresh_token is required")
	}
	hash := tokenHash(refreshToken)
	e, err := s.engine.GetLeader(ctx, jetstream.BucketTokens, hash)
	if errors.Is(err, planb.ErrNotFound) {
		return nil, unknown
	}
	if err != nil {
		return nil, s.unavailable(err)
	}
	var sess Session
	if err := json.Unmarshal(e.Value, &sess); err != nil {
		return nil, fmt.Errorf("decode refresh token: %w", err)
	}
	if !sess.Refresh {
		return nil, unknown // an access token is no refresh token
	}
	if err := s.engine.DeleteIf(ctx, jetstream.BucketTokens, hash, e.Revision); errors.Is(err, planb.ErrConflict) {
		return nil, unknown // another refresh took it
	} else if err != nil {
		return nil, s.unavailable(err)
	}
	s.sessions.forget(hash, time.Now())
	dkey := deviceKey(sess.UserID, sess.DeviceID)
	resp, nd, err := s.issueTokens(ctx, sess.UserID, sess.DeviceID, true)
	if err != nil {
		return nil, err
	}
	// Point the device at the new tokens with compare-and-set. A conflict
	// that left the device with this refresh token (a rename) is tried
	// again; a logout or a new login ends the refresh, and the new tokens
	// must not outlive the device.
	for attempt := 0; ; attempt++ {
		de, err := s.engine.GetLeader(ctx, jetstream.BucketDevices, dkey)
		var d device
		if err == nil {
			if uerr := json.Unmarshal(de.Value, &d); uerr != nil {
				err = fmt.Errorf("decode device: %w", uerr)
			}
		}
		if err == nil && d.RefreshHash != hash {
			err = unknown
		}
		if errors.Is(err, planb.ErrNotFound) {
			err = unknown // logged out meanwhile
		}
		if err == nil {
			old := d
			d.TokenHash, d.RefreshHash = nd.TokenHash, nd.RefreshHash
			b, _ := json.Marshal(d)
			_, err = s.engine.Update(ctx, jetstream.BucketDevices, dkey, b, de.Revision)
			if err == nil {
				old.RefreshHash = "" // taken above
				if err := s.dropTokens(ctx, old); err != nil {
					return nil, err
				}
				return &LoginResponse{AccessToken: resp.AccessToken, RefreshToken: resp.RefreshToken, ExpiresInMs: resp.ExpiresInMs}, nil
			}
			if errors.Is(err, planb.ErrConflict) && attempt < 5 {
				continue
			}
		}
		_ = s.dropTokens(ctx, nd)
		if errors.Is(err, planb.ErrConflict) || errors.Is(err, planb.MUnknownToken) {
			return nil, unknown
		}
		var pe *planb.Error
		if errors.As(err, &pe) {
			return nil, err
		}
		return nil, s.unavailable(err)
	}
}

// checkSession refuses refresh-token records and expired access tokens.
func checkSession(sess Session, now time.Time) (Session, error) {
	if sess.Refresh {
		return Session{}, planb.UnknownToken("a refresh token is not an access token")
	}
	if sess.ExpiresAt != 0 && now.UnixMilli() >= sess.ExpiresAt {
		e := planb.UnknownToken("the access token expired; refresh it")
		e.Extra["soft_logout"] = true // the device keeps its data: refresh, or log in again
		return Session{}, e
	}
	return sess, nil
}
