package httpapi

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/planb-chat/planb"
	"github.com/planb-chat/planb/homeserver"
)

// bodyRequest returns a POST request carrying body.
func bodyRequest(body []byte) *http.Request {
	return httptest.NewRequest(http.MethodPost, "/_matrix/client/v3/createRoom", bytes.NewReader(body))
}

// checkBodyError fails unless err is a client error readBody or decode may
// return: a *planb.Error with a 4xx status and one of the body codes.
func checkBodyError(t *testing.T, what string, body []byte, err error) *planb.Error {
	t.Helper()
	e, ok := planb.AsError(err)
	if !ok {
		t.Fatalf("%s(%q): error %v (%T) is not a *planb.Error", what, body, err, err)
	}
	if e.Status < 400 || e.Status > 499 {
		t.Fatalf("%s(%q): status %d is not 4xx (%v)", what, body, e.Status, e)
	}
	switch e.Code {
	case planb.CodeNotJSON, planb.CodeBadJSON, planb.CodeTooLarge:
	default:
		t.Fatalf("%s(%q): code %s, want M_NOT_JSON, M_BAD_JSON or M_TOO_LARGE", what, body, e.Code)
	}
	return e
}

// jsonSpace reports whether b holds only the whitespace JSON allows
// between tokens (RFC 8259: space, tab, line feed, carriage return).
func jsonSpace(b []byte) bool {
	return len(bytes.TrimLeft(b, " \t\n\r")) == 0
}

// FuzzReadBody checks readBody and decode on arbitrary bodies: they never
// panic, fail only with 4xx body errors, accept only JSON (or an empty
// body, read as {}), and decode accepts only JSON objects.
func FuzzReadBody(f *testing.F) {
	for _, s := range []string{
		``, ` `, "\n\t", `{}`, `[]`, `null`, `"x"`, `1`, `{`, `}`, `{"a":1}{}`, `{"a":1} `,
		`{"name":"room","topic":"t","invite":["@b:hs"],"preset":"public_chat","is_direct":true}`,
		`{"name":1}`, `{"invite":"@b:hs"}`, `{"initial_state":[{"type":"m.room.topic","state_key":"","content":{"topic":"x"}}]}`,
		`{"creation_content":{"m.federate":false},"power_level_content_override":{"users":{"@a:hs":100}}}`,
		`{"a":1e400}`, `{"a":"\ud800"}`, "{\"a\":\"\xff\"}", `{"a":` + strings.Repeat("[", 200) + strings.Repeat("]", 200) + `}`,
		"\xef\xbb\xbf{}", `{"__proto__":{}}`, `{"name":null,"invite":null}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		raw, err := readBody(bodyRequest(body))
		if err != nil {
			checkBodyError(t, "readBody", body, err)
			if raw != nil {
				t.Fatalf("readBody(%q) returned a body with an error", body)
			}
		} else {
			if !json.Valid(raw) {
				t.Fatalf("readBody(%q) returned invalid JSON %q", body, raw)
			}
			if !json.Valid(body) && !jsonSpace(body) {
				t.Fatalf("readBody(%q) accepted a body that is not JSON, as %q", body, raw)
			}
		}

		var req homeserver.CreateRoomRequest
		errCreate := decode(bodyRequest(body), &req)
		var m map[string]any
		errMap := decode(bodyRequest(body), &m)
		for _, e := range []error{errCreate, errMap} {
			if e != nil {
				checkBodyError(t, "decode", body, e)
			}
		}
		if err != nil && (errCreate == nil || errMap == nil) {
			t.Fatalf("decode(%q) succeeded where readBody failed with %v", body, err)
		}
		if errMap == nil {
			if m == nil {
				t.Fatalf("decode(%q) into a map left it nil", body)
			}
			if rest := bytes.TrimLeft(raw, " \t\n\r"); len(rest) == 0 || rest[0] != '{' {
				t.Fatalf("decode(%q) accepted a body that is not an object", body)
			}
		}
	})
}

func TestReadBodyLimits(t *testing.T) {
	// Exactly maxBody bytes of JSON is accepted.
	pad := maxBody - len(`{"a":""}`)
	ok := []byte(`{"a":"` + strings.Repeat("x", pad) + `"}`)
	if raw, err := readBody(bodyRequest(ok)); err != nil || len(raw) != maxBody {
		t.Fatalf("readBody of %d bytes: %d bytes, %v", len(ok), len(raw), err)
	}
	// One byte more is M_TOO_LARGE, whatever it holds.
	for _, big := range [][]byte{append(bytes.Clone(ok), ' '), bytes.Repeat([]byte("x"), maxBody+1)} {
		_, err := readBody(bodyRequest(big))
		if e := checkBodyError(t, "readBody", big[:16], err); e.Code != planb.CodeTooLarge || e.Status != http.StatusRequestEntityTooLarge {
			t.Errorf("body of %d bytes: %s/%d, want M_TOO_LARGE/413", len(big), e.Code, e.Status)
		}
	}
}

func TestReadBodyCodes(t *testing.T) {
	for _, c := range []struct {
		body string
		want planb.ErrCode // "" for success
	}{
		{``, ""},
		{" \r\n\t", ""},
		{`{}`, ""},
		{`{"name":"x"}`, ""},
		{`not json`, planb.CodeNotJSON},
		{`{`, planb.CodeNotJSON},
		{`{"a":1}{}`, planb.CodeNotJSON},
		{"\xef\xbb\xbf{}", planb.CodeNotJSON}, // a byte order mark is not JSON
		{`[]`, planb.CodeBadJSON},
		{`"x"`, planb.CodeBadJSON},
		{`null`, planb.CodeBadJSON},
		{`{"name":1}`, planb.CodeBadJSON},
		{`{"invite":"@b:hs"}`, planb.CodeBadJSON},
	} {
		var req homeserver.CreateRoomRequest
		err := decode(bodyRequest([]byte(c.body)), &req)
		if c.want == "" {
			if err != nil {
				t.Errorf("decode(%q): %v", c.body, err)
			}
			continue
		}
		if e := checkBodyError(t, "decode", []byte(c.body), err); e.Code != c.want || e.Status != http.StatusBadRequest {
			t.Errorf("decode(%q) = %s/%d, want %s/400", c.body, e.Code, e.Status, c.want)
		}
	}
}

// Only JSON's four whitespace characters may stand for an empty body;
// other characters that strings.TrimSpace removes (form feed, vertical tab,
// NEL, no-break space, the Unicode spaces) make the body not JSON.
func TestReadBodyRejectsNonJSONWhitespace(t *testing.T) {
	for _, body := range []string{"\f", "\v", " \f\n", "\u0085", "\u00a0", "\u2028", "\u3000"} {
		raw, err := readBody(bodyRequest([]byte(body)))
		if err == nil {
			t.Errorf("readBody(%q) = %s, want M_NOT_JSON", body, raw)
			continue
		}
		if e := checkBodyError(t, "readBody", []byte(body), err); e.Code != planb.CodeNotJSON {
			t.Errorf("readBody(%q) = %s, want M_NOT_JSON", body, e.Code)
		}
	}
}
