package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
)

// FuzzDecodeBody feeds arbitrary bodies to DecodeBody for every request
// body type (ChaosRequest is the only one in the API so far; nested stands
// for richer ones) and checks that it never panics, that a refusal is a
// *RequestError with 400 or 413 naming the request, and that an accepted
// body round-trips: encoding/json alone decodes it to the same value, and
// that value's encoding is accepted again and encodes the same.
func FuzzDecodeBody(f *testing.F) {
	for _, s := range []string{
		`{"mode":"slow","duration":1.5}`,
		`{"mode":"error","rate":0.5,"track":"canary"}`,
		`{"mode":"recover"}`,
		`{}`,
		`{"mode":"slow","durration":1}`,
		`{"Mode":"slow"}`,
		`{"mode":"recover","mode":"slow"}`,
		`{"mode":null}`,
		`{"duration":"1s"}`,
		`{"duration":1e400}`,
		`{"mode":"slow"} x`,
		`[{"mode":"slow"}]`,
		"{\"mode\":\"sl\xffow\"}",
		`{"name":"n","count":3,"ratio":0.5,"tags":["a"],"labels":{"k":"v"},"inner":{"flag":true,"items":[{"id":1}]},"grid":[1,2],"when":"2026-05-06T12:00:00Z","any":{"x":[null,1,"s",true]},"extra":"e"}`,
		`{"inner":{"items":[{"id":256}]}}`,
		`{"any":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}`,
		`{"ratio":-0,"count":-0,"any":-0.0}`,
		`{"name":"\ud800\u00e9\\n"}`,
		``,
		`null`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		checkDecode[ChaosRequest](t, PathChaos, body)
		checkDecode[nested](t, "/v1/thing", body)
	})
}

func checkDecode[T any](t *testing.T, path string, body []byte) {
	name := path[strings.LastIndexByte(path, '/')+1:]
	var v T
	err := decodeHTTP(path, body, &v)
	if err != nil {
		var re *RequestError
		if !errors.As(err, &re) {
			t.Fatalf("%T: error %v is not a *RequestError", v, err)
		}
		if !strings.HasPrefix(re.Msg, name+": ") || len(re.Msg) == len(name)+2 {
			t.Fatalf("%T: message %q does not name the request", v, re.Msg)
		}
		switch {
		case re.Status == http.StatusRequestEntityTooLarge && len(body) > MaxBodyBytes:
		case re.Status == http.StatusBadRequest && len(body) <= MaxBodyBytes:
		default:
			t.Fatalf("%T: status %d for a body of %d bytes: %s", v, re.Status, len(body), re.Msg)
		}
		return
	}
	if len(body) > MaxBodyBytes {
		t.Fatalf("%T: accepted a body of %d bytes", v, len(body))
	}
	if !json.Valid(body) {
		t.Fatalf("%T: accepted invalid JSON %q", v, body)
	}
	// encoding/json alone decodes the same value: DecodeBody only refuses more.
	var std T
	if err := json.Unmarshal(body, &std); err != nil {
		t.Fatalf("%T: accepted %q, which encoding/json refuses: %v", v, body, err)
	}
	if !reflect.DeepEqual(v, std) {
		t.Fatalf("%T: decoded %q to %+v, encoding/json to %+v", v, body, v, std)
	}
	// Round trip.
	enc, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("%T: re-encode %+v: %v", v, v, err)
	}
	var again T
	if err := decodeHTTP(path, enc, &again); err != nil {
		t.Fatalf("%T: accepted %q but refuses its re-encoding %s: %v", v, body, enc, err)
	}
	// The values may differ where omitempty drops an empty map or slice
	// (it comes back nil); their encodings may not.
	enc2, err := json.Marshal(again)
	if err != nil || !bytes.Equal(enc, enc2) {
		t.Fatalf("%T: %q decoded to %+v, encoded as %s, decoded to %+v, encoded as %s (%v)", v, body, v, enc, again, enc2, err)
	}
}

func decodeHTTP(path string, body []byte, v any) error {
	r := httptest.NewRequest(http.MethodPost, "http://swiftdeployd"+path, bytes.NewReader(body))
	return DecodeBody(httptest.NewRecorder(), r, v)
}
