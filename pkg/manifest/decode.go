package manifest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	yaml3 "go.yaml.in/yaml/v3"
)

// maxNodes bounds the size of a manifest's node tree once aliases are
// expanded. A real manifest has well under a hundred nodes; the bound stops
// "billion laughs" alias bombs before the decoder expands them.
const maxNodes = 10000

// parseDocument parses data into a node tree without expanding aliases and
// decodes it onto m, returning the root mapping and every problem found.
// It is the only YAML decoding a manifest goes through: the node tree is
// checked and assigned in one walk, so what is validated is exactly what
// is used, and string values (env above all) keep the text written in the
// file instead of a number or boolean printed back.
func parseDocument(data []byte, m *Manifest) (*yaml3.Node, []Problem) {
	dec := yaml3.NewDecoder(bytes.NewReader(data))
	var doc yaml3.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, []Problem{{Field: FileField, Msg: "manifest is empty"}}
		}
		return nil, syntaxProblems(err)
	}
	var next yaml3.Node
	switch err := dec.Decode(&next); {
	case err == nil:
		return nil, []Problem{{Field: FileField, Line: next.Line, Msg: "manifest must be a single YAML document, found a second one"}}
	case !errors.Is(err, io.EOF):
		return nil, syntaxProblems(err)
	}

	root := &doc
	if root.Kind == yaml3.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if isNull(root) {
		return nil, []Problem{{Field: FileField, Msg: "manifest is empty"}}
	}
	if p, ok := checkExpansion(root); !ok {
		return nil, []Problem{p}
	}
	var d decoder
	d.value("", root, reflect.ValueOf(m).Elem())
	return root, d.problems
}

// checkExpansion counts the nodes root stands for with aliases expanded,
// without expanding them, and reports a tree that is too large or an
// anchor that contains itself.
func checkExpansion(root *yaml3.Node) (Problem, bool) {
	const inProgress = -1
	sizes := map[*yaml3.Node]int{}
	var cyclic *yaml3.Node
	var size func(n *yaml3.Node) int
	size = func(n *yaml3.Node) int {
		if n.Kind == yaml3.AliasNode && n.Alias != nil {
			n = n.Alias
		}
		switch s, seen := sizes[n]; {
		case seen && s == inProgress:
			cyclic = n
			return maxNodes + 1
		case seen:
			return s
		}
		sizes[n] = inProgress
		total := 1
		for _, child := range n.Content {
			// Saturate so exponential bombs cannot overflow the count.
			total = min(total+size(child), maxNodes+1)
		}
		sizes[n] = total
		return total
	}
	total := size(root)
	switch {
	case cyclic != nil:
		return Problem{Field: FileField, Line: cyclic.Line, Msg: fmt.Sprintf("anchor %q contains an alias to itself", cyclic.Anchor)}, false
	case total > maxNodes:
		return Problem{Field: FileField, Msg: fmt.Sprintf("document expands to more than %d YAML nodes (alias bomb?)", maxNodes)}, false
	}
	return Problem{}, true
}

var (
	durationType = reflect.TypeFor[Duration]()
	manifestType = reflect.TypeFor[Manifest]()
)

func valueOf(ptr any) reflect.Value { return reflect.ValueOf(ptr).Elem() }

// decoder walks a node tree beside the Go value it fills (field names are
// the json tags, the same names Hash and YAML write), collecting a Problem
// for every unknown key, duplicate key and value of the wrong kind instead
// of stopping at the first. Absent and null values keep the defaults
// already in the value, except env values, which have no default.
type decoder struct {
	problems []Problem
}

func (d *decoder) add(field string, n *yaml3.Node, format string, args ...any) {
	if field == "" {
		field = FileField
	}
	d.problems = append(d.problems, Problem{Field: field, Line: n.Line, Msg: fmt.Sprintf(format, args...)})
}

func (d *decoder) value(field string, n *yaml3.Node, v reflect.Value) {
	n = resolve(n)
	if isNull(n) {
		return
	}
	t := v.Type()
	if v.CanAddr() {
		if nd, ok := v.Addr().Interface().(nodeDecoder); ok {
			nd.decodeNode(d, field, n)
			return
		}
	}
	switch {
	case t == durationType:
		if dur, ok := d.duration(field, n); ok {
			v.SetInt(int64(dur))
		}
	case t.Kind() == reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(t.Elem()))
		}
		d.value(field, n, v.Elem())
	case t.Kind() == reflect.Struct:
		d.structFields(field, n, v)
	case t.Kind() == reflect.Map && t.Key().Kind() == reflect.String && t.Elem().Kind() == reflect.String:
		d.stringMap(field, n, v)
	case t.Kind() == reflect.String:
		if s, ok := d.text(field, n); ok {
			v.SetString(s)
		}
	case t.Kind() == reflect.Int:
		if i, ok := d.integer(field, n); ok {
			v.SetInt(i)
		}
	case t.Kind() == reflect.Float64:
		if f, ok := d.float(field, n); ok {
			v.SetFloat(f)
		}
	case t.Kind() == reflect.Bool:
		if b, ok := d.boolean(field, n); ok {
			v.SetBool(b)
		}
	case t.Kind() == reflect.Slice:
		d.list(field, n, v)
	default:
		// Only reachable if a field of a new kind is added to Manifest.
		d.add(field, n, "unsupported field type %s", t)
	}
}

// jsonFields maps the JSON names of struct type t's fields to their indexes.
func jsonFields(t reflect.Type) map[string]int {
	fields := make(map[string]int, t.NumField())
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if f.IsExported() && name != "" && name != "-" {
			fields[name] = i
		}
	}
	return fields
}

func (d *decoder) structFields(field string, n *yaml3.Node, v reflect.Value) {
	if n.Kind != yaml3.MappingNode {
		d.add(field, n, "must be a mapping of fields, got %s", describe(n))
		return
	}
	fields := jsonFields(v.Type())
	d.pairs(field, n, func(key string, keyNode, val *yaml3.Node) {
		path := join(field, key)
		if v.Type() == manifestType && key == "services" && namedForm(val) {
			d.namedServices(path, val, v.Addr().Interface().(*Manifest))
			return
		}
		i, ok := fields[key]
		if !ok {
			d.add(path, keyNode, "unknown field%s", suggest(key, fields))
			return
		}
		d.value(path, val, v.Field(i))
	})
}

// stringMap decodes services.env. Unlike other fields, a null value is an
// error: "KEY:" or "KEY: ~" most likely lost its value by mistake, and a
// silent empty string would hide that. An empty string is written "".
func (d *decoder) stringMap(field string, n *yaml3.Node, v reflect.Value) {
	if n.Kind != yaml3.MappingNode {
		d.add(field, n, "must be a mapping of names to strings, got %s", describe(n))
		return
	}
	d.pairs(field, n, func(key string, keyNode, val *yaml3.Node) {
		path := join(field, key)
		switch val = resolve(val); {
		case isNull(val):
			msg := fmt.Sprintf(`has no value (write %s: "" for an empty string)`, key)
			if val.Value != "" {
				msg = fmt.Sprintf(`has no value: %s is YAML's null (write %s: %q for the text, %[2]s: "" for an empty string)`, val.Value, key, val.Value)
			}
			d.problems = append(d.problems, Problem{Field: path, Line: keyNode.Line, Msg: msg})
			return
		case val.Kind != yaml3.ScalarNode:
			d.add(path, val, "must be a string, got %s", describe(val))
			return
		}
		s, ok := d.text(path, val)
		if !ok {
			return
		}
		if v.IsNil() {
			v.Set(reflect.MakeMap(v.Type()))
		}
		v.SetMapIndex(reflect.ValueOf(key), reflect.ValueOf(s))
	})
}

// text returns a scalar's text exactly as written (after YAML's own
// quoting and escapes), whatever type YAML would resolve it to: 1.10 stays
// "1.10" and on stays "on". An explicit tag other than !!str is refused
// rather than half-honoured: !!binary would otherwise mean decoded bytes
// in one tool and base64 text in another.
func (d *decoder) text(field string, n *yaml3.Node) (string, bool) {
	if n.Kind != yaml3.ScalarNode {
		d.add(field, n, "must be a string, got %s", describe(n))
		return "", false
	}
	if n.Style&yaml3.TaggedStyle != 0 && n.Tag != "!!str" {
		d.add(field, n, "must be plain text, got a value tagged %s (remove the tag; quote the text if needed)", n.Tag)
		return "", false
	}
	return n.Value, true
}

// pairs calls fn for each key of mapping n, reporting non-scalar, merge and
// duplicate keys instead.
func (d *decoder) pairs(field string, n *yaml3.Node, fn func(key string, keyNode, val *yaml3.Node)) {
	firstLine := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		keyNode, val := resolve(n.Content[i]), n.Content[i+1]
		switch {
		case keyNode.Kind != yaml3.ScalarNode:
			d.add(field, keyNode, "keys must be plain names, got %s", describe(keyNode))
			continue
		case keyNode.Tag == "!!merge":
			d.add(join(field, keyNode.Value), keyNode, "merge keys are not supported")
			continue
		}
		key := keyNode.Value
		if line, dup := firstLine[key]; dup {
			d.add(join(field, key), keyNode, "duplicate key (first set on line %d)", line)
			continue
		}
		firstLine[key] = keyNode.Line
		fn(key, keyNode, val)
	}
}

// boolean takes only YAML 1.2's true and false: yes, on and the like are
// text, and a quoted "true" is a string, not a boolean.
func (d *decoder) boolean(field string, n *yaml3.Node) (bool, bool) {
	if n.Kind == yaml3.ScalarNode && n.Tag == "!!bool" {
		switch strings.ToLower(n.Value) {
		case "true":
			return true, true
		case "false":
			return false, true
		}
	}
	d.add(field, n, "must be true or false, got %s", describe(n))
	return false, false
}

// list decodes a sequence; element i's problems name field[i].
func (d *decoder) list(field string, n *yaml3.Node, v reflect.Value) {
	if n.Kind != yaml3.SequenceNode {
		d.add(field, n, "must be a list, got %s", describe(n))
		return
	}
	out := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, el := range n.Content {
		if isNull(resolve(el)) {
			d.add(indexed(field, i), el, "must not be empty")
			continue
		}
		d.value(indexed(field, i), el, out.Index(i))
	}
	v.Set(out)
}

func indexed(field string, i int) string { return field + "[" + strconv.Itoa(i) + "]" }

func (d *decoder) integer(field string, n *yaml3.Node) (int64, bool) {
	if n.Kind == yaml3.ScalarNode {
		switch n.Tag {
		case "!!int":
			var i int64
			if err := n.Decode(&i); err == nil {
				return i, true
			}
			d.add(field, n, "must be a whole number, got %s (out of range)", describe(n))
			return 0, false
		case "!!float":
			// 3000.0 is a whole number; 3.5 is not.
			var f float64
			if err := n.Decode(&f); err == nil && f == math.Trunc(f) && math.Abs(f) < 1<<53 {
				return int64(f), true
			}
		}
	}
	d.add(field, n, "must be a whole number, got %s", describe(n))
	return 0, false
}

func (d *decoder) float(field string, n *yaml3.Node) (float64, bool) {
	if n.Kind == yaml3.ScalarNode && (n.Tag == "!!int" || n.Tag == "!!float") {
		var f float64
		if err := n.Decode(&f); err == nil && !math.IsInf(f, 0) && !math.IsNaN(f) {
			return f, true
		}
		d.add(field, n, "must be a finite number, got %s", describe(n))
		return 0, false
	}
	d.add(field, n, "must be a number, got %s", describe(n))
	return 0, false
}

// maxDurationSeconds is the longest duration time.Duration holds, in seconds.
const maxDurationSeconds = float64(math.MaxInt64 / int64(time.Second))

func (d *decoder) duration(field string, n *yaml3.Node) (time.Duration, bool) {
	if n.Kind == yaml3.ScalarNode {
		switch n.Tag {
		case "!!str":
			dur, err := time.ParseDuration(n.Value)
			if err != nil {
				d.add(field, n, "invalid duration %q (use e.g. \"5s\" or \"1m\")", n.Value)
				return 0, false
			}
			return dur, true
		case "!!int", "!!float": // a number of seconds
			secs, ok := d.float(field, n)
			if !ok {
				return 0, false
			}
			if math.Abs(secs) > maxDurationSeconds {
				d.add(field, n, "must be a duration such as \"5s\" or a number of seconds, got %s (out of range)", describe(n))
				return 0, false
			}
			return time.Duration(secs * float64(time.Second)), true
		}
	}
	d.add(field, n, "must be a duration such as \"5s\" or a number of seconds, got %s", describe(n))
	return 0, false
}

// describe names a node's kind and value for a problem message.
func describe(n *yaml3.Node) string {
	switch n.Kind {
	case yaml3.MappingNode:
		return "a mapping"
	case yaml3.SequenceNode:
		return "a list"
	case yaml3.ScalarNode:
		switch n.Tag {
		case "!!str":
			return fmt.Sprintf("string %q", n.Value)
		case "!!int", "!!float":
			return "number " + n.Value
		case "!!bool":
			return "boolean " + n.Value
		}
		return strconv.Quote(n.Value)
	}
	return "an unexpected YAML node"
}

// suggest returns a "did you mean" hint for a misspelt field name.
func suggest(key string, fields map[string]int) string {
	best, bestDist := "", 3 // more than two edits is not a typo
	for name := range fields {
		if strings.EqualFold(name, key) {
			return fmt.Sprintf(" (did you mean %q? field names are lower case)", name)
		}
		if d := editDistance(key, name); d < bestDist || d == bestDist && name < best {
			best, bestDist = name, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func resolve(n *yaml3.Node) *yaml3.Node {
	for n.Kind == yaml3.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml3.Node) bool {
	return n.Kind == 0 || n.Kind == yaml3.ScalarNode && n.Tag == "!!null"
}

func join(field, key string) string {
	if field == "" {
		return key
	}
	return field + "." + key
}

// lookup returns the value node at a dotted field path such as
// "services.canary.image" or "services.canary.steps[1].weight", or nil if
// the manifest does not set it.
func lookup(root *yaml3.Node, field string) *yaml3.Node {
	n := root
	for key := range strings.SplitSeq(field, ".") {
		key, index := splitIndex(key)
		if n == nil {
			return nil
		}
		n = resolve(n)
		if n.Kind != yaml3.MappingNode {
			return nil
		}
		var next *yaml3.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if resolve(n.Content[i]).Value == key {
				next = n.Content[i+1]
				break
			}
		}
		if next != nil && index >= 0 {
			if next = resolve(next); next.Kind != yaml3.SequenceNode || index >= len(next.Content) {
				return nil
			}
			next = next.Content[index]
		}
		n = next
	}
	if n == nil || isNull(resolve(n)) {
		return nil
	}
	return n
}

// splitIndex splits "steps[1]" into "steps" and 1; a key without an
// index gives -1.
func splitIndex(key string) (string, int) {
	name, rest, ok := strings.Cut(key, "[")
	if !ok || !strings.HasSuffix(rest, "]") {
		return key, -1
	}
	i, err := strconv.Atoi(strings.TrimSuffix(rest, "]"))
	if err != nil || i < 0 {
		return key, -1
	}
	return name, i
}

// yamlLine matches the position prefix of YAML parser errors.
var yamlLine = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// syntaxProblems turns a go.yaml.in/yaml/v3 parse error (decoding into a
// node tree reports nothing else) into a Problem, with the line where the
// error carries one.
func syntaxProblems(err error) []Problem {
	msg := err.Error()
	p := Problem{Field: FileField, Msg: strings.TrimPrefix(msg, "yaml: ")}
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		p.Line, _ = strconv.Atoi(m[1])
		p.Msg = m[2]
	}
	return []Problem{p}
}
