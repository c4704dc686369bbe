package e2e

import (
	"strings"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"
)

// TestDevices manages a user's devices through the spec's endpoints with
// mautrix: list, show, rename, delete one and delete several (both behind
// user-interactive auth with the password), and checks that a deleted
// device is logged out and that nobody touches another user's devices.
func TestDevices(t *testing.T) {
	srv := startServer(t)
	ctx := t.Context()
	alice := newUser(t, srv, "alice")
	bob := newUser(t, srv, "bob")
	login := func(name string) *mautrix.Client {
		t.Helper()
		cli := srv.client(t, "", "")
		resp, err := cli.Login(ctx, &mautrix.ReqLogin{Type: mautrix.AuthTypePassword, Password: password("alice"),
			Identifier: mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: "alice"}, InitialDeviceDisplayName: name})
		must(t, "log in as "+name, err)
		c := srv.client(t, resp.UserID, resp.AccessToken)
		c.DeviceID = resp.DeviceID
		return c
	}
	phone, laptop := login("phone"), login("laptop")

	ids := func() []string {
		t.Helper()
		resp, err := alice.GetDevicesInfo(ctx)
		must(t, "list devices", err)
		var out []string
		for _, d := range resp.Devices {
			out = append(out, string(d.DeviceID))
		}
		return out
	}
	if got := ids(); len(got) != 3 {
		t.Fatalf("devices %v, want 3", got)
	}

	d, err := alice.GetDeviceInfo(ctx, phone.DeviceID)
	must(t, "show the phone", err)
	if d.DisplayName != "phone" || d.DeviceID != phone.DeviceID {
		t.Fatalf("phone: %+v", d)
	}
	must(t, "rename the phone", alice.SetDeviceInfo(ctx, phone.DeviceID, &mautrix.ReqDeviceInfo{DisplayName: "old phone"}))
	if d, err := phone.GetDeviceInfo(ctx, phone.DeviceID); err != nil || d.DisplayName != "old phone" {
		t.Fatalf("after rename: %+v, %v", d, err)
	}
	_, err = alice.GetDeviceInfo(ctx, "NOSUCHDEVICE")
	checkErr(t, "show a device that does not exist", err, notFound)
	checkErr(t, "rename a device that does not exist", alice.SetDeviceInfo(ctx, "NOSUCHDEVICE", &mautrix.ReqDeviceInfo{DisplayName: "x"}), notFound)
	checkErr(t, "a display name of 300 bytes", alice.SetDeviceInfo(ctx, phone.DeviceID, &mautrix.ReqDeviceInfo{DisplayName: strings.Repeat("x", 300)}),
		want{400, "M_INVALID_PARAM"})
	_, err = bob.GetDeviceInfo(ctx, phone.DeviceID)
	checkErr(t, "bob looks at alice's phone", err, notFound)

	// Deleting needs the password: first the 401 that names the stage.
	r := srv.raw(t, "DELETE", "/_matrix/client/v3/devices/"+string(phone.DeviceID), alice.AccessToken, []byte(`{}`))
	session, _ := r.json["session"].(string)
	if r.status != 401 || session == "" || !strings.Contains(string(r.body), `"m.login.password"`) {
		t.Fatalf("delete without auth: %s, want 401 with a session and the password stage", r)
	}
	checkErr(t, "delete without auth (mautrix)", alice.DeleteDevice(ctx, phone.DeviceID, &mautrix.ReqDeleteDevice[any]{}), want{401, ""})
	auth := func(pw string) *mautrix.ReqUIAuthLogin {
		return &mautrix.ReqUIAuthLogin{BaseAuthData: mautrix.BaseAuthData{Type: mautrix.AuthTypePassword, Session: session},
			User: "alice", Password: pw}
	}
	// A failed stage is a 401 that restarts the flow, with M_FORBIDDEN.
	r = srv.raw(t, "DELETE", "/_matrix/client/v3/devices/"+string(phone.DeviceID), alice.AccessToken,
		[]byte(`{"auth":{"type":"m.login.password","session":"`+session+`","identifier":{"type":"m.id.user","user":"alice"},"password":"wrong"}}`))
	if r.status != 401 || r.errcode() != "M_FORBIDDEN" || r.json["session"] != session || len(uiaFlows(r)) == 0 || r.json["params"] == nil {
		t.Fatalf("delete with the wrong password: %s, want 401 M_FORBIDDEN with the session, flows and params", r)
	}
	checkErr(t, "delete with the wrong password (mautrix)", alice.DeleteDevice(ctx, phone.DeviceID, &mautrix.ReqDeleteDevice[any]{Auth: auth("wrong")}),
		want{401, "M_FORBIDDEN"})
	checkErr(t, "bob deletes alice's phone", bob.DeleteDevice(ctx, phone.DeviceID, &mautrix.ReqDeleteDevice[any]{Auth: auth(password("bob"))}),
		notFound)
	must(t, "delete the phone", alice.DeleteDevice(ctx, phone.DeviceID, &mautrix.ReqDeleteDevice[any]{Auth: auth(password("alice"))}))
	_, err = phone.Whoami(ctx)
	checkErr(t, "the deleted phone's token", err, want{401, "M_UNKNOWN_TOKEN"})
	if got := ids(); len(got) != 2 {
		t.Fatalf("devices after deleting the phone %v, want 2", got)
	}

	r = srv.raw(t, "POST", "/_matrix/client/v3/delete_devices", alice.AccessToken, []byte(`{}`))
	checkRaw(t, "delete_devices without devices", r, want{400, "M_MISSING_PARAM"})
	must(t, "delete the laptop and a device that does not exist", alice.DeleteDevices(ctx, &mautrix.ReqDeleteDevices[any]{
		Devices: []id.DeviceID{laptop.DeviceID, "NOSUCHDEVICE"}, Auth: auth(password("alice"))}))
	_, err = laptop.Whoami(ctx)
	checkErr(t, "the deleted laptop's token", err, want{401, "M_UNKNOWN_TOKEN"})
	if got := ids(); len(got) != 1 || got[0] != string(alice.DeviceID) {
		t.Fatalf("devices after delete_devices %v, want only %s", got, alice.DeviceID)
	}
	if _, err := bob.Whoami(ctx); err != nil {
		t.Fatalf("bob was logged out by alice's deletions: %v", err)
	}
}
