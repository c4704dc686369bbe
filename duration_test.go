package planb

import (
	"encoding/json"
	"testing"
	"time"
)

func TestDurationSpelledAsGoDuration(t *testing.T) {
	var v struct {
		D Duration `json:"d"`
	}
	if err := json.Unmarshal([]byte(`{"d":"1m30s"}`), &v); err != nil || v.D.Std() != 90*time.Second {
		t.Fatalf("decode: %v, %v", v.D, err)
	}
	b, err := json.Marshal(v)
	if err != nil || string(b) != `{"d":"1m30s"}` {
		t.Fatalf("encode: %s, %v", b, err)
	}
	if err := json.Unmarshal([]byte(`{"d":"soon"}`), &v); err == nil {
		t.Fatal("a word accepted as a duration")
	}
	if err := json.Unmarshal([]byte(`{"d":15}`), &v); err == nil {
		t.Fatal("a bare number accepted as a duration (ambiguous unit)")
	}
	var d Duration
	if err := d.Set("0"); err != nil || d != 0 {
		t.Fatalf("Set(0) = %v, %v", d, err)
	}
}
