package api

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"
)

// nested exercises what ChaosRequest does not have: nesting, maps, slices,
// pointers, embedding and a type that decodes itself.
type nested struct {
	Name    string            `json:"name"`
	Count   int               `json:"count,omitempty"`
	Ratio   *float64          `json:"ratio,omitempty"`
	Tags    []string          `json:"tags,omitempty"`
	Labels  map[string]string `json:"labels,omitempty"`
	Inner   *innerPart        `json:"inner,omitempty"`
	Grid    [2]int            `json:"grid"`
	When    time.Time         `json:"when"`
	Skipped string            `json:"-"`
	Any     any               `json:"any,omitempty"`
	embedded
}

type innerPart struct {
	Flag  bool   `json:"flag"`
	Items []item `json:"items,omitempty"`
}

type item struct {
	ID uint8 `json:"id"`
}

type embedded struct {
	Extra string `json:"extra,omitempty"`
}

func post(path, body string) *http.Request {
	return httptest.NewRequest(http.MethodPost, "http://swiftdeployd"+path, strings.NewReader(body))
}

func TestDecodeBodyChaos(t *testing.T) {
	tests := []struct {
		name   string
		body   string
		want   ChaosRequest
		status int    // 0: accepted
		msg    string // the whole message
	}{
		{"slow", `{"mode":"slow","duration":1.5}`, ChaosRequest{Mode: "slow", Duration: 1.5}, 0, ""},
		{"error with track", ` {"mode": "error", "rate": 0.5, "track": "canary"}` + "\n", ChaosRequest{Mode: "error", Rate: 0.5, Track: "canary"}, 0, ""},
		{"recover", `{"mode":"recover"}`, ChaosRequest{Mode: "recover"}, 0, ""},
		{"empty object", `{}`, ChaosRequest{}, 0, ""},

		{"unknown field", `{"mode":"slow","durration":1}`, ChaosRequest{}, 400, `chaos: unknown field "durration"`},
		{"wrong case", `{"Mode":"slow"}`, ChaosRequest{}, 400, `chaos: unknown field "Mode" (names are case-sensitive: did you mean "mode"?)`},
		{"kelvin sign folding", `{"mode":"slow","trac\u212a":"canary"}`, ChaosRequest{}, 400, `chaos: unknown field "trac` + "\u212a" + `" (names are case-sensitive: did you mean "track"?)`},
		{"string for number", `{"mode":"slow","duration":"1s"}`, ChaosRequest{}, 400, `chaos: field duration: want number, got string`},
		{"number for string", `{"mode":5}`, ChaosRequest{}, 400, `chaos: field mode: want string, got number`},
		{"bool for number", `{"rate":true}`, ChaosRequest{}, 400, `chaos: field rate: want number, got boolean`},
		{"object for string", `{"mode":{"x":1}}`, ChaosRequest{}, 400, `chaos: field mode: want string, got object`},
		{"array for number", `{"duration":[1]}`, ChaosRequest{}, 400, `chaos: field duration: want number, got array`},
		{"null for string", `{"mode":null}`, ChaosRequest{}, 400, `chaos: field mode: want string, got null`},
		{"number out of range", `{"duration":1e400}`, ChaosRequest{}, 400, `chaos: field duration: want number, got number 1e400`},
		{"duplicate field", `{"mode":"recover","mode":"slow"}`, ChaosRequest{}, 400, `chaos: duplicate field "mode"`},
		{"array body", `[{"mode":"slow"}]`, ChaosRequest{}, 400, `chaos: want a JSON object, got array`},
		{"number body", `5`, ChaosRequest{}, 400, `chaos: want a JSON object, got number`},
		{"string body", `"slow"`, ChaosRequest{}, 400, `chaos: want a JSON object, got string`},
		{"null body", `null`, ChaosRequest{}, 400, `chaos: want a JSON object, got null`},
		{"empty body", ``, ChaosRequest{}, 400, `chaos: empty request body: want a JSON object`},
		{"blank body", " \n\t", ChaosRequest{}, 400, `chaos: empty request body: want a JSON object`},
		{"trailing object", `{"mode":"slow"}{"mode":"error"}`, ChaosRequest{}, 400, `chaos: unexpected data after the JSON value, which ends at byte 15`},
		{"trailing garbage", `{"mode":"slow"} x`, ChaosRequest{}, 400, `chaos: unexpected data after the JSON value, which ends at byte 15`},
		{"truncated", `{"mode":"sl`, ChaosRequest{}, 400, `chaos: invalid JSON: the body ends in the middle of a value`},
		{"truncated after key", `{"mode"`, ChaosRequest{}, 400, `chaos: invalid JSON: the body ends in the middle of a value`},
		{"syntax error", `{"mode" "slow"}`, ChaosRequest{}, 400, `chaos: invalid JSON at byte 8: invalid character '"' after object key`},
		{"single quotes", `{'mode':'slow'}`, ChaosRequest{}, 400, `chaos: invalid JSON at byte 1: invalid character '\''`},
		{"invalid UTF-8", "{\"mode\":\"sl\xffow\"}", ChaosRequest{}, 400, `chaos: request body is not valid UTF-8`},
		{"too large", `{"mode":"slow","track":"` + strings.Repeat("x", MaxBodyBytes) + `"}`, ChaosRequest{}, 413, `chaos: request body larger than 65536 bytes`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got ChaosRequest
			rec := httptest.NewRecorder()
			err := DecodeBody(rec, post(PathChaos, tt.body), &got)
			if tt.status == 0 {
				if err != nil {
					t.Fatalf("DecodeBody(%s): %v", tt.body, err)
				}
				if got != tt.want {
					t.Errorf("DecodeBody(%s) = %+v, want %+v", tt.body, got, tt.want)
				}
				return
			}
			var re *RequestError
			if !errors.As(err, &re) {
				t.Fatalf("DecodeBody(%.80s) = %v, want a *RequestError", tt.body, err)
			}
			if re.Status != tt.status || re.Msg != tt.msg {
				t.Errorf("DecodeBody(%.80s):\n got %d %s\nwant %d %s", tt.body, re.Status, re.Msg, tt.status, tt.msg)
			}
		})
	}
}

func TestDecodeBodyBoundary(t *testing.T) {
	// Exactly MaxBodyBytes is accepted, one more is not.
	pad := MaxBodyBytes - len(`{"mode":"slow","track":""}`)
	body := `{"mode":"slow","track":"` + strings.Repeat("x", pad) + `"}`
	var c ChaosRequest
	if err := DecodeBody(httptest.NewRecorder(), post(PathChaos, body), &c); err != nil || len(c.Track) != pad {
		t.Fatalf("body of exactly %d bytes: %v", len(body), err)
	}
	var re *RequestError
	err := DecodeBody(httptest.NewRecorder(), post(PathChaos, body+" "), &c)
	if !errors.As(err, &re) || re.Status != http.StatusRequestEntityTooLarge {
		t.Fatalf("body of %d bytes: %v", len(body)+1, err)
	}
	// Whitespace padding counts too: the limit is on bytes read.
	err = DecodeBody(httptest.NewRecorder(), post(PathChaos, `{"mode":"slow"}`+strings.Repeat(" ", MaxBodyBytes)), &c)
	if !errors.As(err, &re) || re.Status != http.StatusRequestEntityTooLarge {
		t.Fatalf("padded body: %v", err)
	}
}

func TestDecodeBodyNested(t *testing.T) {
	okBody := `{"name":"n","count":3,"ratio":0.5,"tags":["a","b"],"labels":{"k":"v"},` +
		`"inner":{"flag":true,"items":[{"id":1},{"id":255}]},"grid":[1,2],"when":"2026-05-06T12:00:00Z","any":{"x":[null,1]},"extra":"e"}`
	var n nested
	if err := DecodeBody(httptest.NewRecorder(), post("/v1/thing", okBody), &n); err != nil {
		t.Fatalf("valid nested body: %v", err)
	}
	if n.Inner == nil || len(n.Inner.Items) != 2 || n.Inner.Items[1].ID != 255 || n.Extra != "e" || n.Grid != [2]int{1, 2} || !n.When.Equal(time.Date(2026, 5, 6, 12, 0, 0, 0, time.UTC)) {
		t.Errorf("decoded %+v", n)
	}
	// null is fine where Go has a nil.
	if err := DecodeBody(httptest.NewRecorder(), post("/v1/thing", `{"ratio":null,"tags":null,"labels":null,"inner":null,"any":null}`), &n); err != nil {
		t.Errorf("nulls for nilable fields: %v", err)
	}
	tests := []struct{ body, msg string }{
		{`{"inner":{"flag":true,"flagg":false}}`, `thing: unknown field "inner.flagg"`},
		{`{"inner":{"items":[{"id":1},{"ID":2}]}}`, `thing: unknown field "inner.items[1].ID" (names are case-sensitive: did you mean "id"?)`},
		{`{"inner":{"items":[{"id":1,"id":2}]}}`, `thing: duplicate field "inner.items[0].id"`},
		{`{"labels":{"k":"v","k":"w"}}`, `thing: duplicate field "labels.k"`},
		{`{"inner":{"items":[{"id":256}]}}`, `thing: field inner.items.id: want integer, got number 256`},
		{`{"count":1.5}`, `thing: field count: want integer, got number 1.5`},
		{`{"inner":{"flag":null}}`, `thing: field inner.flag: want boolean, got null`},
		{`{"grid":null}`, `thing: field grid: want array, got null`},
		{`{"grid":{"a":1}}`, `thing: field grid: want array, got object`},
		{`{"tags":"a"}`, `thing: field tags: want array, got string`},
		{`{"tags":{"a":1}}`, `thing: field tags: want array, got object`},
		{`{"inner":[true]}`, `thing: field inner: want object, got array`},
		{`{"when":"yesterday"}`, `thing: parsing time "yesterday" as "2006-01-02T15:04:05Z07:00": cannot parse "yesterday" as "2006"`},
		{`{"Skipped":"x"}`, `thing: unknown field "Skipped"`},
		{`{"-":"x"}`, `thing: unknown field "-"`},
		{`{"embedded":{"extra":"x"}}`, `thing: unknown field "embedded"`},
		{`{"any":` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `}`, `thing: field any[0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0]: nested more than 32 deep`},
	}
	for _, tt := range tests {
		var n nested
		err := DecodeBody(httptest.NewRecorder(), post("/v1/thing", tt.body), &n)
		var re *RequestError
		if !errors.As(err, &re) || re.Status != 400 || re.Msg != tt.msg {
			t.Errorf("DecodeBody(%s):\n got %v\nwant %s", tt.body, err, tt.msg)
		}
	}
}

func TestDecodeBodyMisuse(t *testing.T) {
	var c ChaosRequest
	err := DecodeBody(httptest.NewRecorder(), post(PathChaos, `{}`), c)
	var re *RequestError
	if !errors.As(err, &re) || re.Status != http.StatusInternalServerError {
		t.Errorf("non-pointer: %v", err)
	}
	r := post("/", `{}`)
	r.Body = nil
	if err := DecodeBody(httptest.NewRecorder(), r, &c); err == nil || err.Error() != "request: empty request body: want a JSON object" {
		t.Errorf("nil body: %v", err)
	}
}

func TestParseLimit(t *testing.T) {
	tests := []struct {
		q    string
		want int
		msg  string
	}{
		{"", DefaultHistoryLimit, ""},
		{"1", 1, ""},
		{"50", 50, ""},
		{"010", 10, ""},
		{"10000", 10000, ""},
		{"10001", 0, "limit: at most 10000 records per request, got \"10001\""},
		{"99999999999999999999999", 0, "limit: at most 10000 records per request, got \"99999999999999999999999\""},
		{"0", 0, "limit: want a whole number from 1 to 10000, got \"0\""},
		{"-5", 0, "limit: want a whole number from 1 to 10000, got \"-5\""},
		{"+5", 0, "limit: want a whole number from 1 to 10000, got \"+5\""},
		{" 5", 0, "limit: want a whole number from 1 to 10000, got \" 5\""},
		{"5.0", 0, "limit: want a whole number from 1 to 10000, got \"5.0\""},
		{"1e3", 0, "limit: want a whole number from 1 to 10000, got \"1e3\""},
		{"ten", 0, "limit: want a whole number from 1 to 10000, got \"ten\""},
		{strings.Repeat("x", 40), 0, "limit: want a whole number from 1 to 10000, got \"" + strings.Repeat("x", 32) + "\"..."},
	}
	for _, tt := range tests {
		got, err := ParseLimit(tt.q, DefaultHistoryLimit, MaxHistoryLimit)
		if tt.msg == "" {
			if err != nil || got != tt.want {
				t.Errorf("ParseLimit(%q) = %d, %v; want %d", tt.q, got, err, tt.want)
			}
			continue
		}
		var re *RequestError
		if !errors.As(err, &re) || re.Status != http.StatusBadRequest || re.Msg != tt.msg {
			t.Errorf("ParseLimit(%q) = %d, %v; want 400 %q", tt.q, got, err, tt.msg)
		}
	}
}

func TestStructFields(t *testing.T) {
	got := structFields(reflectTypeOf[nested]())
	for _, name := range []string{"name", "count", "ratio", "tags", "labels", "inner", "grid", "when", "any", "extra"} {
		if _, ok := got[name]; !ok {
			t.Errorf("field %q missing from %v", name, got)
		}
	}
	for _, name := range []string{"Skipped", "-", "embedded", "Name"} {
		if _, ok := got[name]; ok {
			t.Errorf("field %q should not be there", name)
		}
	}
}

func reflectTypeOf[T any]() reflect.Type { return reflect.TypeFor[T]() }
