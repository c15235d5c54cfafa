package armtemplate

import (
	"bytes"
	"encoding/json"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"
)

// Values during evaluation are a closed set of Go types, as JSON decodes:
// string, int64 (ARM's Integer), float64 (only from JSON literals that are
// not integers), bool, nil, []any and map[string]any. normalize converts
// what callers hand in (float64 or json.Number from encoding/json, int)
// into that set.
func normalize(v any) any {
	switch t := v.(type) {
	case nil, string, bool, int64:
		return t
	case int:
		return int64(t)
	case int32:
		return int64(t)
	case float64:
		if t == math.Trunc(t) && math.Abs(t) <= 1<<53 {
			return int64(t)
		}
		return t
	case json.Number:
		if i, err := t.Int64(); err == nil {
			return i
		}
		f, _ := t.Float64()
		return f
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = normalize(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, e := range t {
			out[k] = normalize(e)
		}
		return out
	case []string:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = e
		}
		return out
	case map[string]string:
		out := make(map[string]any, len(t))
		for k, e := range t {
			out[k] = e
		}
		return out
	}
	// Anything else goes through JSON.
	b, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	var out any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if dec.Decode(&out) != nil {
		return nil
	}
	return normalize(out)
}

// typeName is the name ARM gives a value's type in its messages ("The
// provided value is of type 'Integer'", as recorded in the tests of
// Kingsland.ArmLinter, a third-party linter whose tests hold outputs its
// authors got from ARM).
func typeName(v any) string {
	switch v.(type) {
	case string:
		return "String"
	case int64:
		return "Integer"
	case float64:
		return "Float"
	case bool:
		return "Boolean"
	case []any:
		return "Array"
	case map[string]any:
		return "Object"
	case nil:
		return "Null"
	}
	return "Unknown"
}

// lookup reads an object property case-insensitively, as ARM does.
func lookup(m map[string]any, key string) (any, bool) {
	if v, ok := m[key]; ok {
		return v, true
	}
	for k, v := range m {
		if strings.EqualFold(k, key) {
			return v, true
		}
	}
	return nil, false
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// compactJSON serializes like Newtonsoft's Formatting.None: no spaces, no
// HTML escaping.
func compactJSON(v any) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return ""
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// stringify converts a value to text the way ARM's string() and concat()
// do: strings as they are, integers in decimal, booleans as .NET prints
// them ("True"/"False"), null as "", arrays and objects as compact JSON.
func stringify(v any) string {
	switch t := v.(type) {
	case string:
		return t
	case int64:
		return strconv.FormatInt(t, 10)
	case float64:
		return strconv.FormatFloat(t, 'f', -1, 64)
	case bool:
		if t {
			return "True"
		}
		return "False"
	case nil:
		return ""
	}
	return compactJSON(v)
}

// deepEqual compares two values as ARM's equals(): same type and same
// content; strings compare case-sensitively.
func deepEqual(a, b any) bool {
	return reflect.DeepEqual(normalize(a), normalize(b))
}

// deepCopy copies arrays and objects, so that values handed out
// (parameters(), variables(), Plan.Parameters) share nothing with the
// plan's caches and callers may modify them.
func deepCopy(v any) any {
	switch t := v.(type) {
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = deepCopy(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, e := range t {
			out[k] = deepCopy(e)
		}
		return out
	}
	return v
}

func isEmpty(v any) bool {
	switch t := v.(type) {
	case nil:
		return true
	case string:
		return t == ""
	case []any:
		return len(t) == 0
	case map[string]any:
		return len(t) == 0
	}
	return false
}
