package api

import (
	"bytes"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// MaxBodyBytes bounds the body of a control API request. The largest body
// today is a ChaosRequest of a few dozen bytes.
const MaxBodyBytes = 64 << 10

// BodyTimeout bounds how long reading a request body may take: a client
// that sends its body a byte at a time would otherwise hold the handler
// (and its goroutine) for as long as it likes. The server has no
// ReadTimeout, which would also cut the streamed answers of deploy and
// promote; the deadline is set for the body only. A variable for tests.
var BodyTimeout = 10 * time.Second

// maxDepth bounds how deeply a request body may nest objects and arrays.
const maxDepth = 32

// Limits of GET /v1/history?limit=N.
const (
	DefaultHistoryLimit = 200
	MaxHistoryLimit     = 10000
)

// RequestError is a request the daemon refuses to act on: Status is the
// HTTP status to answer (400, or 413 for a body over MaxBodyBytes) and Msg
// says what is wrong, naming the request and the field.
type RequestError struct {
	Status int
	Msg    string
}

func (e *RequestError) Error() string { return e.Msg }

func badRequest(format string, args ...any) *RequestError {
	return &RequestError{Status: http.StatusBadRequest, Msg: fmt.Sprintf(format, args...)}
}

// DecodeBody decodes the JSON body of r into v (a non-nil pointer),
// strictly: the body is at most MaxBodyBytes, valid UTF-8, exactly one JSON
// value with nothing after it, and every field is one of v's, spelled
// exactly (encoding/json would also take "Mode" for "mode"), given once,
// nested at most 32 deep, of the right type, and not null unless v's field
// can hold nil. Any failure is a *RequestError whose message starts with
// the request's name, the last element of its path:
//
//	chaos: unknown field "durration"
//	chaos: field duration: want number, got string
//	chaos: request body larger than 65536 bytes        (status 413)
func DecodeBody(w http.ResponseWriter, r *http.Request, v any) error {
	name := requestName(r.URL.Path)
	if r.Body == nil {
		return badRequest("%s: empty request body: want a JSON object", name)
	}
	// Not every ResponseWriter supports deadlines (httptest's does not);
	// the server's do.
	// The deadline is lifted once the body is read, for the streamed
	// answer; after a failed read it stays, so that the server's own
	// draining of the rest cannot wait on the client either.
	rc := http.NewResponseController(w)
	deadline := rc.SetReadDeadline(time.Now().Add(BodyTimeout)) == nil
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err == nil && deadline {
		_ = rc.SetReadDeadline(time.Time{})
	}
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return &RequestError{Status: http.StatusRequestEntityTooLarge, Msg: fmt.Sprintf("%s: request body larger than %d bytes", name, tooBig.Limit)}
		}
		return badRequest("%s: read request body: %v", name, err)
	}
	return decodeStrict(name, b, v)
}

func requestName(p string) string {
	if b := path.Base(p); b != "/" && b != "." && b != "" {
		return b
	}
	return "request"
}

// decodeStrict is DecodeBody after the body is read.
func decodeStrict(name string, b []byte, v any) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return &RequestError{Status: http.StatusInternalServerError, Msg: fmt.Sprintf("%s: DecodeBody needs a non-nil pointer, got %T", name, v)}
	}
	if !utf8.Valid(b) {
		return badRequest("%s: request body is not valid UTF-8", name)
	}
	if len(bytes.Trim(b, " \t\r\n")) == 0 {
		return badRequest("%s: empty request body: want %s", name, article(wantOf(rv.Type().Elem())))
	}
	// First pass: the shape (syntax, duplicates, exact names, nulls,
	// depth, trailing data), which encoding/json does not check.
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := walk(dec, rv.Type().Elem(), "", 0); err != nil {
		return badRequest("%s: %s", name, err)
	}
	end := dec.InputOffset()
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return badRequest("%s: unexpected data after the JSON value, which ends at byte %d", name, end)
	}
	// Second pass: the values, into v.
	dec = json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badRequest("%s: %s", name, describeDecodeError(err))
	}
	return nil
}

func describeDecodeError(err error) string {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te):
		if te.Field == "" {
			return "want " + article(wantOf(te.Type)) + ", got " + gotOf(te.Value)
		}
		return "field " + te.Field + ": want " + wantOf(te.Type) + ", got " + gotOf(te.Value)
	case errors.As(err, &se):
		return fmt.Sprintf("invalid JSON at byte %d: %s", se.Offset, se)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return "invalid JSON: the body ends in the middle of a value"
	}
	msg := strings.TrimPrefix(err.Error(), "json: ")
	return msg
}

// walk checks the JSON value at dec's position against type t (nil: any
// value). path names the value in messages ("" for the whole body).
func walk(dec *json.Decoder, t reflect.Type, path string, depth int) error {
	tok, err := dec.Token()
	if err != nil {
		return syntaxError(err)
	}
	if tok == nil {
		// Before indirect: a null is fine for a pointer.
		if it := indirect(t); t != nil && it != nil && !nullable(t) {
			return mismatch(path, t, "null")
		}
		return nil
	}
	t = indirect(t)
	delim, isDelim := tok.(json.Delim)
	if !isDelim {
		return nil // scalars: the decoder checks their types
	}
	if depth >= maxDepth {
		return fmt.Errorf("%snested more than %d deep", at(path), maxDepth)
	}
	switch delim {
	case '{':
		var fields map[string]reflect.Type
		var elem reflect.Type
		switch {
		case t == nil || t.Kind() == reflect.Interface:
		case t.Kind() == reflect.Struct:
			fields = structFields(t)
		case t.Kind() == reflect.Map:
			elem = t.Elem()
		default:
			return mismatch(path, t, "object")
		}
		seen := map[string]bool{}
		for dec.More() {
			kt, err := dec.Token()
			if err != nil {
				return syntaxError(err)
			}
			key, _ := kt.(string)
			child := key
			if path != "" {
				child = path + "." + key
			}
			if seen[key] {
				return fmt.Errorf("duplicate field %q", child)
			}
			seen[key] = true
			ct := elem
			if fields != nil {
				var ok bool
				if ct, ok = fields[key]; !ok {
					for known := range fields {
						if strings.EqualFold(known, key) {
							return fmt.Errorf("unknown field %q (names are case-sensitive: did you mean %q?)", child, known)
						}
					}
					return fmt.Errorf("unknown field %q", child)
				}
			}
			if err := walk(dec, ct, child, depth+1); err != nil {
				return err
			}
		}
	case '[':
		var elem reflect.Type
		switch {
		case t == nil || t.Kind() == reflect.Interface:
		case t.Kind() == reflect.Slice || t.Kind() == reflect.Array:
			elem = t.Elem()
		default:
			return mismatch(path, t, "array")
		}
		for i := 0; dec.More(); i++ {
			if err := walk(dec, elem, path+"["+strconv.Itoa(i)+"]", depth+1); err != nil {
				return err
			}
		}
	}
	if _, err := dec.Token(); err != nil { // the closing delimiter
		return syntaxError(err)
	}
	return nil
}

func syntaxError(err error) error {
	var se *json.SyntaxError
	switch {
	case errors.As(err, &se):
		return fmt.Errorf("invalid JSON at byte %d: %s", se.Offset, se)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return errors.New("invalid JSON: the body ends in the middle of a value")
	}
	return fmt.Errorf("invalid JSON: %w", err)
}

func at(path string) string {
	if path == "" {
		return ""
	}
	return "field " + path + ": "
}

func mismatch(path string, t reflect.Type, got string) error {
	if path == "" {
		return fmt.Errorf("want %s, got %s", article(wantOf(t)), got)
	}
	return fmt.Errorf("field %s: want %s, got %s", path, wantOf(t), got)
}

var (
	jsonUnmarshaler = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// indirect strips pointers from t; nil when values of t decode themselves
// (json.Unmarshaler, encoding.TextUnmarshaler), whose shape walk leaves to
// them.
func indirect(t reflect.Type) reflect.Type {
	for t != nil {
		if pt := reflect.PointerTo(t); pt.Implements(jsonUnmarshaler) || pt.Implements(textUnmarshaler) {
			return nil
		}
		if t.Kind() != reflect.Pointer {
			return t
		}
		t = t.Elem()
	}
	return nil
}

// nullable reports whether a JSON null means something for t (it is a
// no-op for every other kind, which hides mistakes).
func nullable(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Pointer, reflect.Interface, reflect.Map, reflect.Slice:
		return true
	}
	return false
}

// wantOf names the JSON type that decodes into t.
func wantOf(t reflect.Type) string {
	if t == nil {
		return "value"
	}
	if it := indirect(t); it != nil {
		t = it
	}
	switch t.Kind() {
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return "integer"
	case reflect.Float32, reflect.Float64:
		return "number"
	case reflect.String:
		return "string"
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			return "string (base64)"
		}
		return "array"
	case reflect.Array:
		return "array"
	case reflect.Struct, reflect.Map:
		return "object"
	}
	return "value"
}

func article(want string) string {
	switch want {
	case "object", "array", "integer":
		return "a JSON " + want
	}
	return "a " + want
}

// gotOf rewords encoding/json's description of a value ("bool", "number
// 1.5") in JSON's terms.
func gotOf(v string) string {
	if v == "bool" {
		return "boolean"
	}
	return v
}

var fieldCache sync.Map // reflect.Type → map[string]reflect.Type

// structFields lists the JSON names of struct t's fields and their types,
// as encoding/json sees them: exported fields by their json tag name or Go
// name, "-" left out, untagged embedded structs' fields promoted (shallower
// names win).
func structFields(t reflect.Type) map[string]reflect.Type {
	if f, ok := fieldCache.Load(t); ok {
		return f.(map[string]reflect.Type)
	}
	fields := map[string]reflect.Type{}
	addFields(fields, t, 0)
	fieldCache.Store(t, fields)
	return fields
}

func addFields(fields map[string]reflect.Type, t reflect.Type, depth int) {
	var embedded []reflect.Type
	for i := range t.NumField() {
		sf := t.Field(i)
		tag := sf.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if sf.Anonymous && name == "" {
			et := sf.Type
			if et.Kind() == reflect.Pointer {
				et = et.Elem()
			}
			if et.Kind() == reflect.Struct {
				embedded = append(embedded, et)
				continue
			}
		}
		if !sf.IsExported() {
			continue
		}
		if name == "" {
			name = sf.Name
		}
		if _, dup := fields[name]; !dup {
			fields[name] = sf.Type
		}
	}
	if depth < maxDepth {
		for _, et := range embedded {
			addFields(fields, et, depth+1)
		}
	}
}

// ParseLimit reads the limit parameter of a query such as
// /v1/history?limit=N: def when q is empty, else a whole number from 1 to
// max written in digits only. Anything else is a *RequestError (400).
func ParseLimit(q string, def, max int) (int, error) {
	if q == "" {
		return def, nil
	}
	if strings.Trim(q, "0123456789") != "" {
		return 0, badRequest("limit: want a whole number from 1 to %d, got %s", max, quoteShort(q))
	}
	n, err := strconv.ParseUint(q, 10, 63)
	switch {
	case err != nil || n > uint64(max):
		return 0, badRequest("limit: at most %d records per request, got %s", max, quoteShort(q))
	case n < 1:
		return 0, badRequest("limit: want a whole number from 1 to %d, got %s", max, quoteShort(q))
	}
	return int(n), nil
}

// quoteShort quotes s for a message, cut to 32 bytes.
func quoteShort(s string) string {
	if len(s) > 32 {
		return strconv.Quote(s[:32]) + "..."
	}
	return strconv.Quote(s)
}
