package manifest

import (
	"bytes"
	"encoding/json"
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
// checks it against the Manifest schema, returning the root mapping and
// every problem found.
func parseDocument(data []byte) (*yaml3.Node, []Problem) {
	dec := yaml3.NewDecoder(bytes.NewReader(data))
	var doc yaml3.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, []Problem{{Field: FileField, Msg: "manifest is empty"}}
		}
		return nil, decodeProblems(err)
	}
	var next yaml3.Node
	switch err := dec.Decode(&next); {
	case err == nil:
		return nil, []Problem{{Field: FileField, Line: next.Line, Msg: "manifest must be a single YAML document, found a second one"}}
	case !errors.Is(err, io.EOF):
		return nil, decodeProblems(err)
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
	var c schemaChecker
	c.value("", root, reflect.TypeFor[Manifest]())
	return root, c.problems
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

var durationType = reflect.TypeFor[Duration]()

// schemaChecker walks a node tree beside the Go type it will be decoded
// into, collecting a Problem for every unknown key, duplicate key and value
// of the wrong kind. Absent and null values are fine: they keep defaults.
type schemaChecker struct {
	problems []Problem
}

func (c *schemaChecker) add(field string, n *yaml3.Node, format string, args ...any) {
	if field == "" {
		field = FileField
	}
	c.problems = append(c.problems, Problem{Field: field, Line: n.Line, Msg: fmt.Sprintf(format, args...)})
}

func (c *schemaChecker) value(field string, n *yaml3.Node, t reflect.Type) {
	n = resolve(n)
	if isNull(n) {
		return
	}
	switch {
	case t == durationType:
		c.duration(field, n)
	case t.Kind() == reflect.Pointer:
		c.value(field, n, t.Elem())
	case t.Kind() == reflect.Struct:
		c.structFields(field, n, t)
	case t.Kind() == reflect.Map:
		c.stringMap(field, n)
	case t.Kind() == reflect.String:
		// Numbers and booleans are accepted: the decoder turns them into
		// their text (so env: {WORKERS: 4} works).
		if n.Kind != yaml3.ScalarNode {
			c.add(field, n, "must be a string, got %s", describe(n))
		}
	case t.Kind() == reflect.Int:
		c.integer(field, n)
	case t.Kind() == reflect.Float64:
		c.float(field, n)
	default:
		// Only reachable if a field of a new kind is added to Manifest.
		c.add(field, n, "unsupported field type %s", t)
	}
}

// jsonFields maps the JSON names of t's fields to their types.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	fields := make(map[string]reflect.Type, t.NumField())
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if f.IsExported() && name != "" && name != "-" {
			fields[name] = f.Type
		}
	}
	return fields
}

func (c *schemaChecker) structFields(field string, n *yaml3.Node, t reflect.Type) {
	if n.Kind != yaml3.MappingNode {
		c.add(field, n, "must be a mapping of fields, got %s", describe(n))
		return
	}
	fields := jsonFields(t)
	c.pairs(field, n, func(key string, keyNode, val *yaml3.Node) {
		path := join(field, key)
		ft, ok := fields[key]
		if !ok {
			c.add(path, keyNode, "unknown field%s", suggest(key, fields))
			return
		}
		c.value(path, val, ft)
	})
}

func (c *schemaChecker) stringMap(field string, n *yaml3.Node) {
	if n.Kind != yaml3.MappingNode {
		c.add(field, n, "must be a mapping of names to strings, got %s", describe(n))
		return
	}
	c.pairs(field, n, func(key string, _, val *yaml3.Node) {
		if val = resolve(val); val.Kind != yaml3.ScalarNode {
			c.add(join(field, key), val, "must be a string, got %s", describe(val))
		}
	})
}

// pairs calls fn for each key of mapping n, reporting non-scalar, merge and
// duplicate keys instead.
func (c *schemaChecker) pairs(field string, n *yaml3.Node, fn func(key string, keyNode, val *yaml3.Node)) {
	firstLine := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		keyNode, val := resolve(n.Content[i]), n.Content[i+1]
		switch {
		case keyNode.Kind != yaml3.ScalarNode:
			c.add(field, keyNode, "keys must be plain names, got %s", describe(keyNode))
			continue
		case keyNode.Tag == "!!merge":
			c.add(join(field, keyNode.Value), keyNode, "merge keys are not supported")
			continue
		}
		key := keyNode.Value
		if line, dup := firstLine[key]; dup {
			c.add(join(field, key), keyNode, "duplicate key (first set on line %d)", line)
			continue
		}
		firstLine[key] = keyNode.Line
		fn(key, keyNode, val)
	}
}

func (c *schemaChecker) integer(field string, n *yaml3.Node) {
	if n.Kind == yaml3.ScalarNode {
		switch n.Tag {
		case "!!int":
			var i int64
			if err := n.Decode(&i); err == nil {
				return
			}
			c.add(field, n, "must be a whole number, got %s (out of range)", describe(n))
			return
		case "!!float":
			var f float64
			// JSON decoding accepts 3000.0 for an int but not 3.5.
			if err := n.Decode(&f); err == nil && f == math.Trunc(f) && math.Abs(f) < 1<<53 {
				return
			}
		}
	}
	c.add(field, n, "must be a whole number, got %s", describe(n))
}

func (c *schemaChecker) float(field string, n *yaml3.Node) {
	if n.Kind == yaml3.ScalarNode && (n.Tag == "!!int" || n.Tag == "!!float") {
		var f float64
		if err := n.Decode(&f); err == nil && !math.IsInf(f, 0) && !math.IsNaN(f) {
			return
		}
		c.add(field, n, "must be a finite number, got %s", describe(n))
		return
	}
	c.add(field, n, "must be a number, got %s", describe(n))
}

func (c *schemaChecker) duration(field string, n *yaml3.Node) {
	if n.Kind == yaml3.ScalarNode {
		switch n.Tag {
		case "!!str":
			if _, err := time.ParseDuration(n.Value); err != nil {
				c.add(field, n, "invalid duration %q (use e.g. \"5s\" or \"1m\")", n.Value)
			}
			return
		case "!!int", "!!float":
			c.float(field, n) // a number of seconds
			return
		}
	}
	c.add(field, n, "must be a duration such as \"5s\" or a number of seconds, got %s", describe(n))
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
func suggest(key string, fields map[string]reflect.Type) string {
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
// "services.canary.image", or nil if the manifest does not set it.
func lookup(root *yaml3.Node, field string) *yaml3.Node {
	n := root
	for key := range strings.SplitSeq(field, ".") {
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
		n = next
	}
	if n == nil || isNull(resolve(n)) {
		return nil
	}
	return n
}

// yamlLine matches the position prefix of YAML parser errors.
var yamlLine = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// yamlDuplicate matches the strict decoder's duplicate-key error.
var yamlDuplicate = regexp.MustCompile(`^key (".*") already set in map$`)

// jsonUnknownField matches encoding/json's DisallowUnknownFields error.
var jsonUnknownField = regexp.MustCompile(`^json: unknown field "(.*)"$`)

// decodeProblems turns a YAML or JSON decoding error from
// sigs.k8s.io/yaml or go.yaml.in/yaml/v3 into Problems, with a field path
// or a line where the error carries one.
func decodeProblems(err error) []Problem {
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) {
		field := typeErr.Field
		if field == "" {
			field = FileField
		}
		return []Problem{{Field: field, Msg: fmt.Sprintf("must be %s, got %s", jsonKind(typeErr.Type), typeErr.Value)}}
	}
	var syntaxErr *json.SyntaxError
	if errors.As(err, &syntaxErr) {
		return []Problem{{Field: FileField, Msg: "malformed document: " + syntaxErr.Error()}}
	}

	msg := err.Error()
	// sigs.k8s.io/yaml wraps errors in these prefixes; they say nothing to
	// someone editing a YAML file.
	for _, prefix := range []string{"error converting YAML to JSON: ", "error unmarshaling JSON: ", "while decoding JSON: "} {
		msg = strings.TrimPrefix(msg, prefix)
	}
	if m := jsonUnknownField.FindStringSubmatch(msg); m != nil {
		// encoding/json does not say where the field was; the schema check
		// normally reports it with its full path before decoding.
		return []Problem{{Field: m[1], Msg: "unknown field"}}
	}
	// "yaml: unmarshal errors:" is followed by one "line N: ..." per error.
	if rest, ok := strings.CutPrefix(msg, "yaml: unmarshal errors:\n"); ok {
		var ps []Problem
		for line := range strings.SplitSeq(rest, "\n") {
			ps = append(ps, yamlProblem(strings.TrimSpace(line)))
		}
		return ps
	}
	return []Problem{yamlProblem(msg)}
}

func yamlProblem(msg string) Problem {
	p := Problem{Field: FileField, Msg: strings.TrimPrefix(msg, "yaml: ")}
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		p.Line, _ = strconv.Atoi(m[1])
		p.Msg = m[2]
	}
	if m := yamlDuplicate.FindStringSubmatch(p.Msg); m != nil {
		p.Msg = "duplicate key " + m[1]
	}
	return p
}

// jsonKind names the kind of value a Go type accepts.
func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Int, reflect.Int64:
		return "a whole number"
	case reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Map:
		return "a mapping of names to strings"
	case reflect.Struct, reflect.Pointer:
		return "a mapping of fields"
	}
	return t.String()
}
