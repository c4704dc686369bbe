package homeserver

import (
	"time"

	"github.com/planb-chat/planb"
)

// Endpoint is one data center's client-facing base URL.
type Endpoint struct {
	Name    string `json:"name"`
	BaseURL string `json:"base_url"`
}

// Config is the homeserver's behaviour. Its JSON names are those of the
// node's configuration file (package node embeds it); an option is one
// field here, its default in DefaultConfig, and its flag in cmd/planb.
type Config struct {
	// ServerName is the Matrix server name (the part after ':' in IDs).
	ServerName string `json:"server_name"`
	// PublicBaseURL is this node's client URL (m.homeserver in
	// well-known); empty: taken from the request.
	PublicBaseURL string `json:"public_url,omitempty"`
	// DataCenter names this node's data center.
	DataCenter string `json:"datacenter"`
	// Endpoints lists every data center's client URL.
	Endpoints []Endpoint `json:"datacenters,omitempty"`
	// OpenRegistration lets anyone register with m.login.dummy.
	OpenRegistration bool `json:"open_registration"`
	// RegistrationTokens allow registration with m.login.registration_token.
	RegistrationTokens []string `json:"registration_tokens,omitempty"`
	// AdminTokens authorise the admin API (/_planb/admin/v1/...).
	AdminTokens []string `json:"admin_tokens,omitempty"`
	// MaxUploadBytes limits media uploads.
	MaxUploadBytes int64 `json:"max_upload_bytes"`
	// WriteTimeout bounds how long a write waits for a quorum (an
	// election after a data center is lost takes 4–9 s).
	WriteTimeout planb.Duration `json:"write_timeout"`
	// PresenceTimeout is how long after their last activity (a sync, a
	// presence update) a user who is online or unavailable is set offline.
	PresenceTimeout planb.Duration `json:"presence_timeout"`
	// RefreshableTokenLifetime is how long an access token that came with
	// a refresh token lives (tokens without one live until logout).
	RefreshableTokenLifetime planb.Duration `json:"refreshable_token_lifetime"`
	// ServerNoticesUser is the localpart of the user that sends server
	// notices (the notices about incidents); nobody can register it.
	ServerNoticesUser string `json:"server_notices_user"`
}

// DefaultConfig returns the defaults of every option.
func DefaultConfig() Config {
	return Config{
		ServerName:      "localhost",
		DataCenter:      "dc1",
		MaxUploadBytes:  50 << 20,
		WriteTimeout:    planb.Duration(10 * time.Second),
		PresenceTimeout: planb.Duration(5 * time.Minute),

		RefreshableTokenLifetime: planb.Duration(5 * time.Minute),
		ServerNoticesUser:        "notices",
	}
}
