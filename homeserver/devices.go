package homeserver

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/planb-chat/planb"
	"github.com/planb-chat/planb/jetstream"
)

// A device is one login of a user: its record in the replicated devices
// bucket (user.device) holds its display name and the hash of its access
// token. Deleting it logs it out everywhere at once.

// Logout deletes the session's token and device (POST /logout).
func (s *Service) Logout(ctx context.Context, sess Session) error {
	return s.deleteDevice(ctx, sess.UserID, sess.DeviceID)
}

func (s *Service) deleteDevice(ctx context.Context, userID, deviceID string) error {
	dkey := deviceKey(userID, deviceID)
	e, err := s.engine.Get(ctx, jetstream.BucketDevices, dkey)
	if errors.Is(err, planb.ErrNotFound) {
		return nil
	}
	if err != nil {
		return s.unavailable(err)
	}
	var d device
	if json.Unmarshal(e.Value, &d) == nil {
		if err := s.dropTokens(ctx, d); err != nil {
			return err
		}
	}
	// Before the device record: a retry after a failure here finds the
	// device again and deletes what is left.
	if err := s.deletePushers(ctx, userID, func(p pusher) bool { return p.DeviceID == deviceID }); err != nil {
		return err
	}
	if err := s.engine.Delete(ctx, jetstream.BucketDevices, dkey); err != nil {
		return s.unavailable(err)
	}
	if err := s.engine.PurgeToDevice(ctx, userID, deviceID, 0); err != nil {
		return s.unavailable(err)
	}
	return s.deleteDeviceKeys(ctx, userID, deviceID)
}

// Devices returns the user's devices.
func (s *Service) Devices(ctx context.Context, userID string) ([]map[string]any, error) {
	keys, err := s.engine.Keys(ctx, jetstream.BucketDevices, jetstream.KeyPart(userID)+".*")
	if err != nil {
		return nil, s.unavailable(err)
	}
	out := []map[string]any{}
	for _, k := range keys {
		e, err := s.engine.Get(ctx, jetstream.BucketDevices, k)
		if err != nil {
			continue // deleted meanwhile
		}
		var d device
		if json.Unmarshal(e.Value, &d) == nil {
			out = append(out, d.public())
		}
	}
	return out, nil
}

// LogoutAll deletes every device of the user except keep (POST /logout/all
// passes keep = "").
func (s *Service) LogoutAll(ctx context.Context, userID, keep string) error {
	devs, err := s.Devices(ctx, userID)
	if err != nil {
		return err
	}
	for _, d := range devs {
		id, _ := d["device_id"].(string)
		if id == keep {
			continue
		}
		if err := s.deleteDevice(ctx, userID, id); err != nil {
			return err
		}
	}
	return nil
}

// deviceKey is the devices-bucket key of a user's device.
func deviceKey(userID, deviceID string) string {
	return jetstream.KeyPart(userID) + "." + jetstream.KeyPart(deviceID)
}

// Device returns one of the user's devices (GET /devices/{deviceId}).
func (s *Service) Device(ctx context.Context, userID, deviceID string) (map[string]any, error) {
	e, err := s.engine.Get(ctx, jetstream.BucketDevices, deviceKey(userID, deviceID))
	if errors.Is(err, planb.ErrNotFound) {
		return nil, planb.NotFound("no device %s", deviceID)
	}
	if err != nil {
		return nil, s.unavailable(err)
	}
	var d device
	if err := json.Unmarshal(e.Value, &d); err != nil {
		return nil, s.unavailable(err)
	}
	return d.public(), nil
}

// public is the device as the spec's Device object shows it.
func (d device) public() map[string]any {
	m := map[string]any{"device_id": d.DeviceID}
	if d.DisplayName != "" {
		m["display_name"] = d.DisplayName
	}
	return m
}

// maxDeviceName bounds a device's display name.
const maxDeviceName = 256

// RenameDevice sets a device's display name (PUT /devices/{deviceId}).
func (s *Service) RenameDevice(ctx context.Context, userID, deviceID, name string) error {
	if len(name) > maxDeviceName {
		return planb.InvalidParam("display_name is longer than %d bytes", maxDeviceName)
	}
	// Compare-and-set: a login that replaced the device's token meanwhile
	// is read again, never undone.
	_, err := updateRecord(ctx, s, jetstream.BucketDevices, deviceKey(userID, deviceID), planb.NotFound("no device %s", deviceID),
		func(d *device) { d.DisplayName = name })
	return err
}

// maxDeleteDevices bounds one POST /delete_devices.
const maxDeleteDevices = 1000

// DeleteDevices deletes devices of the session's user after
// user-interactive auth with the password (DELETE /devices/{deviceId},
// POST /delete_devices). Devices that do not exist are ignored, as the
// spec asks; the session's own device may be among them.
func (s *Service) DeleteDevices(ctx context.Context, sess Session, ids []string, auth *UIAuth) error {
	if len(ids) > maxDeleteDevices {
		return planb.InvalidParam("at most %d devices at once", maxDeleteDevices)
	}
	if err := s.confirmPassword(ctx, sess, auth); err != nil {
		return err
	}
	for _, id := range ids {
		if id == "" {
			continue
		}
		if err := s.deleteDevice(ctx, sess.UserID, id); err != nil {
			return err
		}
	}
	return nil
}
