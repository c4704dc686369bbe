package homeserver

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"golang.org/x/crypto/argon2"

	"github.com/planb-chat/planb"
	"github.com/planb-chat/planb/jetstream"
	"github.com/planb-chat/planb/projection"
)

// account is the record of one user in the accounts bucket.
type account struct {
	UserID       string `json:"user_id"`
	PasswordHash string `json:"password_hash"`
	DisplayName  string `json:"displayname,omitempty"`
	AvatarURL    string `json:"avatar_url,omitempty"`
	CreatedTS    int64  `json:"created_ts"`
	Deactivated  bool   `json:"deactivated,omitempty"`
}

// Session is what an access token stands for.
type Session struct {
	UserID   string `json:"user_id"`
	DeviceID string `json:"device_id"`
	// ExpiresAt (Unix ms) ends an access token that came with a refresh
	// token; 0: the token lives until logout.
	ExpiresAt int64 `json:"expires_at,omitempty"`
	// Refresh marks the record of a refresh token, which is no access
	// token.
	Refresh bool `json:"refresh,omitempty"`
}

// device is the record of one device in the devices bucket.
type device struct {
	DeviceID    string `json:"device_id"`
	DisplayName string `json:"display_name,omitempty"`
	TokenHash   string `json:"token_hash"`
	RefreshHash string `json:"refresh_hash,omitempty"`
	CreatedTS   int64  `json:"created_ts"`
}

// Argon2id parameters (OWASP's minimum recommendation: 19 MiB, 2 passes).
const (
	argonTime    = 2
	argonMemory  = 19 * 1024
	argonThreads = 1
	argonKeyLen  = 32
)

// hashPassword returns a PHC-formatted argon2id hash.
func hashPassword(pw string) string {
	salt := []byte(planb.RandomString(16))
	sum := argon2.IDKey([]byte(pw), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	return fmt.Sprintf("$argon2id$v=19$m=%d,t=%d,p=%d$%s$%s", argonMemory, argonTime, argonThreads,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(sum))
}

// checkPassword reports whether pw matches a hash made by hashPassword.
func checkPassword(hash, pw string) bool {
	f := strings.Split(hash, "$")
	if len(f) != 6 || f[1] != "argon2id" {
		return false
	}
	var m, t uint32
	var p uint8
	if _, err := fmt.Sscanf(f[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil {
		return false
	}
	salt, err1 := base64.RawStdEncoding.DecodeString(f[4])
	want, err2 := base64.RawStdEncoding.DecodeString(f[5])
	if err1 != nil || err2 != nil {
		return false
	}
	got := argon2.IDKey([]byte(pw), salt, t, m, p, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1
}

func tokenHash(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

// localpartOf returns the localpart of a user given as "@local:server" or
// "local"; it fails for users of other servers.
func (s *Service) localpartOf(user string) (string, error) {
	if !strings.HasPrefix(user, "@") {
		return strings.ToLower(user), nil
	}
	_, local, server, err := planb.SplitID(user)
	if err != nil || server != s.cfg.ServerName {
		return "", planb.Forbidden("unknown user %s", user)
	}
	return strings.ToLower(local), nil // every planb localpart is lower case
}

func (s *Service) getAccount(ctx context.Context, local string) (*account, uint64, error) {
	e, err := s.engine.Get(ctx, jetstream.BucketAccounts, jetstream.KeyPart(local))
	if err != nil {
		return nil, 0, err
	}
	var a account
	if err := json.Unmarshal(e.Value, &a); err != nil {
		return nil, 0, fmt.Errorf("decode account %s: %w", local, err)
	}
	return &a, e.Revision, nil
}

// UsernameAvailable answers GET /register/available.
func (s *Service) UsernameAvailable(ctx context.Context, local string) error {
	if !planb.ValidLocalpart(local) {
		return planb.Errorf(planb.CodeInvalidUsername, 400, "user names may contain only a-z, 0-9 and ._=-/+")
	}
	if local == s.cfg.ServerNoticesUser {
		return planb.Errorf(planb.CodeExclusive, 400, "user name %s is reserved for server notices", local)
	}
	_, _, err := s.getAccount(ctx, local)
	switch {
	case err == nil:
		return planb.Errorf(planb.CodeUserInUse, 400, "user name %s is taken", local)
	case errors.Is(err, planb.ErrNotFound):
		return nil
	default:
		return s.unavailable(err)
	}
}

// RegisterRequest is the body of POST /register.
type RegisterRequest struct {
	Auth                     json.RawMessage `json:"auth"`
	Username                 string          `json:"username"`
	Password                 string          `json:"password"`
	DeviceID                 string          `json:"device_id"`
	InitialDeviceDisplayName string          `json:"initial_device_display_name"`
	InhibitLogin             bool            `json:"inhibit_login"`
	RefreshToken             bool            `json:"refresh_token"`
}

// LoginResponse is the body returned by /login and /register.
type LoginResponse struct {
	UserID       string `json:"user_id"`
	AccessToken  string `json:"access_token,omitempty"`
	RefreshToken string `json:"refresh_token,omitempty"`
	ExpiresInMs  int64  `json:"expires_in_ms,omitempty"`
	DeviceID     string `json:"device_id,omitempty"`
	HomeServer   string `json:"home_server,omitempty"`
}

// uiaRequired is the 401 user-interactive-auth response naming the flows.
func uiaRequired(session string, stages ...string) *planb.Error {
	flows := []map[string]any{}
	for _, st := range stages {
		flows = append(flows, map[string]any{"stages": []string{st}})
	}
	return &planb.Error{Status: http.StatusUnauthorized, Extra: map[string]any{
		"flows": flows, "params": map[string]any{}, "session": session}}
}

// Register creates an account (POST /register).
func (s *Service) Register(ctx context.Context, req RegisterRequest) (*LoginResponse, error) {
	var stages []string
	if s.cfg.OpenRegistration {
		stages = append(stages, "m.login.dummy")
	}
	if len(s.cfg.RegistrationTokens) > 0 {
		stages = append(stages, "m.login.registration_token")
	}
	if len(stages) == 0 {
		return nil, planb.Forbidden("registration is disabled on this server; ask an operator for an account")
	}
	var auth struct {
		Type    string `json:"type"`
		Session string `json:"session"`
		Token   string `json:"token"`
	}
	if len(req.Auth) > 0 && string(req.Auth) != "null" {
		if err := json.Unmarshal(req.Auth, &auth); err != nil {
			return nil, planb.BadJSON("auth: %v", err)
		}
	}
	switch {
	case auth.Type == "m.login.dummy" && s.cfg.OpenRegistration:
	case auth.Type == "m.login.registration_token" && len(s.cfg.RegistrationTokens) > 0:
		ok := false
		for _, t := range s.cfg.RegistrationTokens {
			if subtle.ConstantTimeCompare([]byte(t), []byte(auth.Token)) == 1 {
				ok = true
			}
		}
		if !ok {
			e := uiaRequired(auth.Session, stages...)
			e.Code, e.Message = planb.CodeForbidden, "invalid registration token"
			return nil, e
		}
	default:
		session := auth.Session
		if session == "" {
			session = planb.RandomString(12)
		}
		return nil, uiaRequired(session, stages...)
	}
	// User IDs are lower case: a name given with capitals is folded, as
	// Synapse does, so "Alice" registers @alice.
	local := strings.ToLower(req.Username)
	if local == "" {
		local = strings.ToLower(planb.RandomLetters(10))
	}
	if !planb.ValidLocalpart(local) {
		return nil, planb.Errorf(planb.CodeInvalidUsername, 400, "user names may contain only a-z, 0-9 and ._=-/+")
	}
	if local == s.cfg.ServerNoticesUser {
		return nil, planb.Errorf(planb.CodeExclusive, 400, "user name %s is reserved for server notices", local)
	}
	if len(req.Password) == 0 {
		return nil, planb.MissingParam("password is required")
	}
	if len(req.Password) > 512 {
		return nil, planb.InvalidParam("password is too long")
	}
	userID := planb.UserID(local, s.cfg.ServerName)
	if len(userID) > planb.MaxIDLength {
		return nil, planb.Errorf(planb.CodeInvalidUsername, 400, "user name is too long")
	}
	a := account{UserID: userID, PasswordHash: hashPassword(req.Password), CreatedTS: time.Now().UnixMilli()}
	b, _ := json.Marshal(a)
	if _, err := s.engine.Create(ctx, jetstream.BucketAccounts, jetstream.KeyPart(local), b); err != nil {
		if errors.Is(err, planb.ErrExists) {
			return nil, planb.Errorf(planb.CodeUserInUse, 400, "user name %s is taken", local)
		}
		return nil, s.unavailable(err)
	}
	if req.InhibitLogin {
		return &LoginResponse{UserID: userID, HomeServer: s.cfg.ServerName}, nil
	}
	return s.newSession(ctx, userID, req.DeviceID, req.InitialDeviceDisplayName, req.RefreshToken)
}

// LoginRequest is the body of POST /login.
type LoginRequest struct {
	Type       string `json:"type"`
	Identifier *struct {
		Type string `json:"type"`
		User string `json:"user"`
	} `json:"identifier"`
	User                     string `json:"user"`
	Password                 string `json:"password"`
	DeviceID                 string `json:"device_id"`
	InitialDeviceDisplayName string `json:"initial_device_display_name"`
	RefreshToken             bool   `json:"refresh_token"`
}

// Login checks a password and issues a token (POST /login).
func (s *Service) Login(ctx context.Context, req LoginRequest) (*LoginResponse, error) {
	if req.Type != "m.login.password" {
		return nil, planb.Errorf(planb.CodeUnknown, 400, "unsupported login type %q", req.Type)
	}
	user := req.User
	if req.Identifier != nil {
		if req.Identifier.Type != "m.id.user" {
			return nil, planb.Errorf(planb.CodeUnknown, 400, "unsupported identifier type %q", req.Identifier.Type)
		}
		user = req.Identifier.User
	}
	if user == "" {
		return nil, planb.MissingParam("identifier.user is required")
	}
	a, err := s.checkCredentials(ctx, user, req.Password)
	if err != nil {
		return nil, err
	}
	return s.newSession(ctx, a.UserID, req.DeviceID, req.InitialDeviceDisplayName, req.RefreshToken)
}

func (s *Service) checkCredentials(ctx context.Context, user, password string) (*account, error) {
	bad := planb.Forbidden("invalid user name or password")
	local, err := s.localpartOf(user)
	if err != nil {
		return nil, bad
	}
	a, _, err := s.getAccount(ctx, local)
	if errors.Is(err, planb.ErrNotFound) {
		checkPassword(hashPassword("x"), password) // spend similar time either way
		return nil, bad
	}
	if err != nil {
		return nil, s.unavailable(err)
	}
	if !checkPassword(a.PasswordHash, password) {
		return nil, bad
	}
	if a.Deactivated {
		return nil, planb.Errorf(planb.CodeUserDeactivated, 403, "this account has been deactivated")
	}
	return a, nil
}

// PasswordRequest is the body of POST /account/password.
type PasswordRequest struct {
	NewPassword   string  `json:"new_password"`
	LogoutDevices *bool   `json:"logout_devices"`
	Auth          *UIAuth `json:"auth"`
}

// UIAuth is the auth dict of user-interactive authentication; planb offers
// one stage, the account's password.
type UIAuth struct {
	Type       string `json:"type"`
	Session    string `json:"session"`
	Password   string `json:"password"`
	User       string `json:"user"`
	Identifier *struct {
		Type string `json:"type"`
		User string `json:"user"`
	} `json:"identifier"`
}

// confirmPassword checks that auth proves the session's user knows their
// password. Without it (or with another stage) it answers the 401 that
// starts user-interactive auth.
func (s *Service) confirmPassword(ctx context.Context, sess Session, auth *UIAuth) error {
	if auth == nil || auth.Type != "m.login.password" {
		session := planb.RandomString(12)
		if auth != nil && auth.Session != "" {
			session = auth.Session
		}
		return uiaRequired(session, "m.login.password")
	}
	user := auth.User
	if auth.Identifier != nil {
		user = auth.Identifier.User
	}
	if user == "" {
		user = sess.UserID
	}
	a, err := s.checkCredentials(ctx, user, auth.Password)
	if e, ok := planb.AsError(err); ok && e.Code == planb.CodeForbidden {
		// A failed stage answers like the start of the flow, with the
		// error added, so that the client can retry it (spec: "User-
		// interactive authentication API").
		session := auth.Session
		if session == "" {
			session = planb.RandomString(12)
		}
		uia := uiaRequired(session, "m.login.password")
		uia.Code, uia.Message = e.Code, e.Message
		return uia
	}
	if err != nil {
		return err
	}
	if a.UserID != sess.UserID {
		return planb.Forbidden("the password given is not that of %s", sess.UserID)
	}
	return nil
}

// ChangePassword changes the password after user-interactive auth with the
// current password.
func (s *Service) ChangePassword(ctx context.Context, sess Session, req PasswordRequest) error {
	if err := s.confirmPassword(ctx, sess, req.Auth); err != nil {
		return err
	}
	if req.NewPassword == "" {
		return planb.MissingParam("new_password is required")
	}
	if len(req.NewPassword) > 512 {
		return planb.InvalidParam("password is too long")
	}
	if _, err := s.updateAccount(ctx, sess.UserID, func(a *account) { a.PasswordHash = hashPassword(req.NewPassword) }); err != nil {
		return err
	}
	if req.LogoutDevices == nil || *req.LogoutDevices {
		if err := s.LogoutAll(ctx, sess.UserID, sess.DeviceID); err != nil {
			return err
		}
		// Also those of devices already gone: only pushers set with this
		// session's token survive.
		return s.deletePushers(ctx, sess.UserID, func(p pusher) bool { return p.DeviceID != sess.DeviceID })
	}
	return nil
}

// Deactivate closes the session's account for good (POST
// /account/deactivate), after user-interactive auth with its password: the
// account is marked deactivated first (so no new login or registration of
// the name can succeed from then on), then it leaves every room it is in or
// invited to, and every device is logged out. A retry after a failure part
// way finds the account deactivated and finishes the rest.
func (s *Service) Deactivate(ctx context.Context, sess Session, auth *UIAuth) error {
	if err := s.confirmPassword(ctx, sess, auth); err != nil {
		return err
	}
	if _, err := s.updateAccount(ctx, sess.UserID, func(a *account) { a.Deactivated = true }); err != nil {
		return err
	}
	for _, room := range s.model.PendingRooms(sess.UserID) {
		if err := s.Leave(ctx, sess, room, "account deactivated"); err != nil && !errors.Is(err, planb.MForbidden) {
			return fmt.Errorf("leave %s: %w", room, err)
		}
	}
	return s.LogoutAll(ctx, sess.UserID, "")
}

// updateAccount applies fn to the account with compare-and-set and
// returns the account's new revision.
func (s *Service) updateAccount(ctx context.Context, userID string, fn func(*account)) (uint64, error) {
	local, err := s.localpartOf(userID)
	if err != nil {
		return 0, err
	}
	return updateRecord(ctx, s, jetstream.BucketAccounts, jetstream.KeyPart(local), planb.NotFound("no such user %s", userID), fn)
}

// updateRecord applies fn to the JSON record at key of bucket with
// compare-and-set, reading it again from the bucket's leader when another
// write came first, and returns the record's new revision. A missing
// record is answered with missing.
func updateRecord[T any](ctx context.Context, s *Service, bucket, key string, missing error, fn func(*T)) (uint64, error) {
	for range 10 {
		e, err := s.engine.GetLeader(ctx, bucket, key)
		if errors.Is(err, planb.ErrNotFound) {
			return 0, missing
		}
		if err != nil {
			return 0, s.unavailable(err)
		}
		var v T
		if err := json.Unmarshal(e.Value, &v); err != nil {
			return 0, fmt.Errorf("decode %s record: %w", bucket, err)
		}
		fn(&v)
		b, _ := json.Marshal(v)
		rev, err := s.engine.Update(ctx, bucket, key, b, e.Revision)
		if errors.Is(err, planb.ErrConflict) {
			continue
		}
		if err != nil {
			return 0, s.unavailable(err)
		}
		return rev, nil
	}
	return 0, s.unavailable(fmt.Errorf("%s record kept changing", bucket))
}

// Profile returns a user's display name and avatar URL.
func (s *Service) Profile(ctx context.Context, userID string) (displayName, avatarURL string, err error) {
	local, err := s.localpartOf(userID)
	if err != nil {
		return "", "", planb.NotFound("no such user %s", userID)
	}
	a, _, err := s.getAccount(ctx, local)
	if errors.Is(err, planb.ErrNotFound) {
		return "", "", planb.NotFound("no such user %s", userID)
	}
	if err != nil {
		return "", "", s.unavailable(err)
	}
	return a.DisplayName, a.AvatarURL, nil
}

// SetProfile sets the display name or avatar URL (field "displayname" or
// "avatar_url") and updates the user's member event in every joined room.
func (s *Service) SetProfile(ctx context.Context, sess Session, userID, field, value string) error {
	if userID != sess.UserID {
		return planb.Forbidden("you can only change your own profile")
	}
	if len(value) > 1024 {
		return planb.InvalidParam("%s is too long", field)
	}
	rev, err := s.updateAccount(ctx, userID, func(a *account) {
		if field == "displayname" {
			a.DisplayName = value
		} else {
			a.AvatarURL = value
		}
	})
	if err != nil {
		return err
	}
	// The user directory searches the profile as this node's read models
	// have it: let the user find their new name here at once.
	s.awaitModel(ctx, projection.Token{Accounts: rev}, "profile")
	for _, roomID := range s.model.JoinedRooms(userID) {
		_, err := s.commit(ctx, roomID, nil, func(b *builder) error {
			cur := b.state.Get(planb.TypeMember, userID)
			if cur == nil || cur.Membership() != planb.MembershipJoin {
				return nil // left meanwhile: nothing to update
			}
			var c map[string]any
			if err := json.Unmarshal(cur.Content, &c); err != nil {
				return fmt.Errorf("decode member content: %w", err)
			}
			if value == "" {
				delete(c, field)
			} else {
				c[field] = value
			}
			_, err := b.add(userID, planb.TypeMember, planb.StrPtr(userID), c, "")
			return err
		})
		if err != nil && !errors.Is(err, errSkip) {
			return err
		}
	}
	return nil
}
