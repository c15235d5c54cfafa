package armtemplate

import (
	"bytes"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/tailscale/hujson"
)

// node is one JSON value of the template text with its position. Objects
// keep their members in template order.
type node struct {
	kind    byte // 'o' object, 'a' array, 's' string, 'n' number, 'b' bool, 'z' null
	str     string
	num     any // int64 or float64
	boolean bool
	keys    []string
	vals    []*node
	elems   []*node
	line    int
	col     int
}

// get returns the member named key, case-insensitively as ARM reads
// template properties.
func (n *node) get(key string) *node {
	if n == nil || n.kind != 'o' {
		return nil
	}
	for i, k := range n.keys {
		if k == key {
			return n.vals[i]
		}
	}
	for i, k := range n.keys {
		if strings.EqualFold(k, key) {
			return n.vals[i]
		}
	}
	return nil
}

// plain returns the JSON value without evaluating expressions.
func (n *node) plain() any {
	switch n.kind {
	case 'o':
		m := make(map[string]any, len(n.keys))
		for i, k := range n.keys {
			m[k] = n.vals[i].plain()
		}
		return m
	case 'a':
		a := make([]any, len(n.elems))
		for i, e := range n.elems {
			a[i] = e.plain()
		}
		return a
	case 's':
		return n.str
	case 'n':
		return n.num
	case 'b':
		return n.boolean
	}
	return nil
}

// lineIndex converts byte offsets of the original text into 1-based
// line and column numbers.
type lineIndex struct{ starts []int }

func newLineIndex(data []byte) lineIndex {
	starts := []int{0}
	for i, c := range data {
		if c == '\n' {
			starts = append(starts, i+1)
		}
	}
	return lineIndex{starts: starts}
}

func (li lineIndex) pos(off int) (line, col int) {
	lo, hi := 0, len(li.starts)-1
	for lo < hi {
		mid := (lo + hi + 1) / 2
		if li.starts[mid] <= off {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	return lo + 1, off - li.starts[lo] + 1
}

// parseJSON reads JSON with comments and trailing commas (what az sends:
// the template file's text as is) into a node tree. Offsets are those of
// the original text, so positions stay right with comments present.
func parseJSON(data []byte) (*node, error) {
	v, err := hujson.Parse(data)
	if err != nil {
		return nil, err
	}
	li := newLineIndex(data)
	n := convert(&v, li, 0)
	if bad := nonFinite(n); bad != nil {
		// JSON has no infinities: a number too large for a double (1e400)
		// is refused rather than carried as a value no encoder can write.
		return nil, fmt.Errorf("the number at line %d, column %d is out of range", bad.line, bad.col)
	}
	return n, nil
}

// nonFinite returns the first number under n that is not finite, or nil.
func nonFinite(n *node) *node {
	switch n.kind {
	case 'n':
		if f, ok := n.num.(float64); ok && (math.IsInf(f, 0) || math.IsNaN(f)) {
			return n
		}
	case 'o':
		for _, v := range n.vals {
			if bad := nonFinite(v); bad != nil {
				return bad
			}
		}
	case 'a':
		for _, e := range n.elems {
			if bad := nonFinite(e); bad != nil {
				return bad
			}
		}
	}
	return nil
}

// maxDepth bounds nesting so that hostile input cannot exhaust the stack.
const maxDepth = 512

func convert(v *hujson.Value, li lineIndex, depth int) *node {
	n := &node{}
	n.line, n.col = li.pos(v.StartOffset)
	if depth > maxDepth {
		n.kind = 'z'
		return n
	}
	switch t := v.Value.(type) {
	case *hujson.Object:
		n.kind = 'o'
		for i := range t.Members {
			m := &t.Members[i]
			name, _ := m.Name.Value.(hujson.Literal)
			n.keys = append(n.keys, name.String())
			n.vals = append(n.vals, convert(&m.Value, li, depth+1))
		}
	case *hujson.Array:
		n.kind = 'a'
		for i := range t.Elements {
			n.elems = append(n.elems, convert(&t.Elements[i], li, depth+1))
		}
	case hujson.Literal:
		switch t.Kind() {
		case '"':
			n.kind, n.str = 's', t.String()
		case 't', 'f':
			n.kind, n.boolean = 'b', t.Bool()
		case '0':
			n.kind, n.num = 'n', parseNumber(t)
		default:
			n.kind = 'z'
		}
	}
	return n
}

// parseNumber keeps integers as int64 (ARM's Integer) and other numbers as
// float64.
func parseNumber(b []byte) any {
	s := string(bytes.TrimSpace(b))
	if i, err := strconv.ParseInt(s, 10, 64); err == nil {
		return i
	}
	f, err := strconv.ParseFloat(s, 64)
	if err == nil && f == math.Trunc(f) && math.Abs(f) < 1<<53 && !strings.ContainsAny(s, ".eE") {
		return int64(f)
	}
	return f
}
