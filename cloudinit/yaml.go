package cloudinit

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// marshalYAML encodes v, a tree of the document structs below, with yaml.v3.
//
// It builds the yaml.Node tree itself instead of handing v to yaml.Marshal
// or Node.Encode, for two reasons found by FuzzUserData and TestNastyStrings:
//
//   - yaml.v3 (v3.0.1) writes a string made only of line breaks ("\n",
//     "\n\n") as a literal block that reads back as "" or does not parse at
//     all; Node.Encode goes through that same text, so it loses the value
//     before any style can be chosen.
//   - yaml.v3 leaves a string unquoted whenever YAML 1.2 reads it back as a
//     string, but cloud-init parses with PyYAML, a YAML 1.1 parser, which
//     reads some such plain scalars differently ("=" is a "value" tag its
//     safe loader refuses).
//
// So every string value is a double-quoted scalar, in which the emitter
// escapes line breaks and anything non-printable, except plain multi-line
// text such as a PEM key (literalOK), which goes in a literal block. A string
// that is not UTF-8 is tagged !!binary (base64), as yaml.Marshal would do.
func marshalYAML(v any) ([]byte, error) {
	n, err := toNode(reflect.ValueOf(v))
	if err != nil {
		return nil, fmt.Errorf("cloudinit: encoding YAML: %w", err)
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(n); err != nil {
		return nil, fmt.Errorf("cloudinit: encoding YAML: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("cloudinit: encoding YAML: %w", err)
	}
	return buf.Bytes(), nil
}

// toNode converts the kinds of value the documents use: structs with yaml
// tags (name and omitempty only), slices, maps with string keys (sorted),
// strings, bools and ints.
func toNode(v reflect.Value) (*yaml.Node, error) {
	switch v.Kind() {
	case reflect.Struct:
		n := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			name, opts, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
			if name == "" || name == "-" {
				return nil, fmt.Errorf("field %s.%s has no yaml name", t.Name(), t.Field(i).Name)
			}
			fv := v.Field(i)
			if opts == "omitempty" && isEmpty(fv) {
				continue
			}
			val, err := toNode(fv)
			if err != nil {
				return nil, err
			}
			n.Content = append(n.Content, keyNode(name), val)
		}
		return n, nil
	case reflect.Slice:
		n := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		for i := 0; i < v.Len(); i++ {
			c, err := toNode(v.Index(i))
			if err != nil {
				return nil, err
			}
			n.Content = append(n.Content, c)
		}
		return n, nil
	case reflect.Map:
		if v.Type().Key().Kind() != reflect.String {
			return nil, fmt.Errorf("map key type %s", v.Type().Key())
		}
		keys := make([]string, 0, v.Len())
		for _, k := range v.MapKeys() {
			keys = append(keys, k.String())
		}
		sort.Strings(keys)
		n := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		for _, k := range keys {
			c, err := toNode(v.MapIndex(reflect.ValueOf(k).Convert(v.Type().Key())))
			if err != nil {
				return nil, err
			}
			n.Content = append(n.Content, keyNode(k), c)
		}
		return n, nil
	case reflect.String:
		return stringNode(v.String()), nil
	case reflect.Bool:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: strconv.FormatBool(v.Bool())}, nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.FormatInt(v.Int(), 10)}, nil
	}
	return nil, fmt.Errorf("cannot encode a %s", v.Type())
}

func isEmpty(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Slice, reflect.Map, reflect.String:
		return v.Len() == 0
	}
	return v.IsZero()
}

// stringNode is a string value, quoted as marshalYAML describes.
func stringNode(s string) *yaml.Node {
	switch {
	case !utf8.ValidString(s):
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!binary", Value: base64.StdEncoding.EncodeToString([]byte(s))}
	case literalOK(s):
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s, Style: yaml.LiteralStyle}
	}
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s, Style: yaml.DoubleQuotedStyle}
}

// keyNode is a mapping key: plain when it is a simple word, like the
// documents' own field names, and quoted like any string otherwise.
func keyNode(s string) *yaml.Node {
	if plainKeyOK(s) {
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s}
	}
	n := stringNode(s)
	if n.Style == yaml.LiteralStyle {
		n.Style = yaml.DoubleQuotedStyle
	}
	return n
}

// plainKeyOK reports whether s is a word that YAML 1.1 and 1.2 both read as a
// string when unquoted.
func plainKeyOK(s string) bool {
	if !plainKeyRE.MatchString(s) {
		return false
	}
	switch strings.ToLower(s) {
	case "y", "yes", "n", "no", "on", "off", "true", "false", "null":
		return false
	}
	return true
}

var plainKeyRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9]*(?:[_-][A-Za-z0-9]+)*$`)

// literalOK reports whether s can go in a literal block ("|") and read back
// exactly: non-empty lines of printable ASCII without leading or trailing
// blanks, each ending in a newline.
func literalOK(s string) bool {
	if len(s) < 2 || !strings.HasSuffix(s, "\n") {
		return false
	}
	for _, line := range strings.Split(s[:len(s)-1], "\n") {
		if line == "" || line[0] == ' ' || line[0] == '\t' || line[len(line)-1] == ' ' || line[len(line)-1] == '\t' {
			return false
		}
		for i := 0; i < len(line); i++ {
			if line[i] < 0x20 || line[i] > 0x7e {
				return false
			}
		}
	}
	return true
}
