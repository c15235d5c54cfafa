package armtemplate

import (
	"reflect"
	"strings"
	"testing"
)

// union() of objects merges nested objects and replaces the rest
// (template-functions-object.md, union).
func TestUnionMergesNestedObjects(t *testing.T) {
	got, err := evalIn(t, phaseBody, `[union(json('{"a":{"x":1,"y":{"p":1}},"arr":[1,2],"s":"one"}'), json('{"a":{"y":{"q":2},"z":3},"arr":[3],"s":{"now":"object"}}'))]`)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"a":   map[string]any{"x": int64(1), "y": map[string]any{"p": int64(1), "q": int64(2)}, "z": int64(3)},
		"arr": []any{int64(3)},
		"s":   map[string]any{"now": "object"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("union = %#v, want %#v", got, want)
	}
}

func TestUTCNowStandardFormats(t *testing.T) {
	// The clock of evalIn: 2024-05-06 07:08:09 UTC, a Monday.
	tests := map[string]string{
		"d": "05/06/2024",
		"D": "Monday, 06 May 2024",
		"g": "05/06/2024 07:08",
		"G": "05/06/2024 07:08:09",
		"M": "May 06",
		"r": "Mon, 06 May 2024 07:08:09 GMT",
		"t": "07:08",
		"T": "07:08:09",
		"y": "2024 May",
		"u": "2024-05-06 07:08:09Z",
		"s": "2024-05-06T07:08:09",
		"o": "2024-05-06T07:08:09.0000000Z",
	}
	for f, want := range tests {
		got, err := evalIn(t, phaseParameters, "[utcNow('"+f+"')]")
		if err != nil || got != want {
			t.Errorf("utcNow('%s') = %v, %v; want %q", f, got, err, want)
		}
	}
	if _, err := evalIn(t, phaseParameters, "[utcNow('q')]"); err == nil || !strings.Contains(err.Error(), "not a supported") {
		t.Errorf("utcNow('q'): error %v, want an unsupported format error", err)
	}
}

func TestArithmeticOverflow(t *testing.T) {
	for _, e := range []string{
		"[add(9223372036854775807, 1)]",
		"[sub(-9223372036854775807, 2)]",
		"[mul(4611686018427387904, 2)]",
		"[mul(-1, sub(-9223372036854775807, 1))]",
		"[div(sub(-9223372036854775807, 1), -1)]",
	} {
		if v, err := evalIn(t, phaseBody, e); err == nil || !strings.Contains(err.Error(), "out of the range") {
			t.Errorf("%s = %v, %v; want an overflow error", e, v, err)
		}
	}
	if v, err := evalIn(t, phaseBody, "[add(9223372036854775806, 1)]"); err != nil || v != int64(9223372036854775807) {
		t.Errorf("add(max-1, 1) = %v, %v; want max int64", v, err)
	}
}

func TestRangeLimits(t *testing.T) {
	tests := []struct{ expr, want string }{
		{"[range(2147483640, 10)]", "must be no greater than 2147483647"},
		{"[range(0, 10001)]", "must be between 0 and 10000"},
		{"[range(0, 'x')]", "The provided value is of type 'String'"},
		{"[range('x', 1)]", "The provided value is of type 'String'"},
	}
	for _, tt := range tests {
		if _, err := evalIn(t, phaseBody, tt.expr); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want it to contain %q", tt.expr, err, tt.want)
		}
	}
	if v, err := evalIn(t, phaseBody, "[range(2147483637, 10)]"); err != nil || len(v.([]any)) != 10 {
		t.Errorf("range(2147483637, 10) = %v, %v; want 10 items", v, err)
	}
}

// json() of a number no double holds is an error, not a value that
// serializes to "".
func TestJSONNonFinite(t *testing.T) {
	if v, err := evalIn(t, phaseBody, "[json('1e400')]"); err == nil {
		t.Errorf("json('1e400') = %v, want an error", v)
	}
}

// ".a" and "[i]" chains count against the nesting limit.
func TestAccessorChainDepth(t *testing.T) {
	long := "[createObject()" + strings.Repeat(".a", maxExprDepth+1) + "]"
	if _, err := evalIn(t, phaseBody, long); err == nil || !strings.Contains(err.Error(), "nested too deeply") {
		t.Errorf("%d accessors: error %v, want 'nested too deeply'", maxExprDepth+1, err)
	}
	idx := "[createArray()" + strings.Repeat("[0]", maxExprDepth+1) + "]"
	if _, err := evalIn(t, phaseBody, idx); err == nil || !strings.Contains(err.Error(), "nested too deeply") {
		t.Errorf("%d indexes: error %v, want 'nested too deeply'", maxExprDepth+1, err)
	}
}
