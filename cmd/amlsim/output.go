package main

import (
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// render writes v in the --output format: JSON, YAML of the same fields
// in the same order, TSV, or (table and any verb-specific format) what
// table writes.
func render(w io.Writer, format string, v any, table func(io.Writer) error) error {
	switch format {
	case outputJSON:
		return printJSON(w, v)
	case outputYAML:
		return printYAML(w, v)
	case outputTSV:
		return printTSV(w, v)
	}
	return table(w)
}

// printJSON writes v as indented JSON.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// printYAML writes v as YAML with the keys and order of its JSON: the
// JSON is read as a YAML node tree (JSON is YAML), which keeps the order,
// and its flow style is dropped for YAML's block style.
func printYAML(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return err
	}
	blockStyle(&doc)
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return err
	}
	return enc.Close()
}

// blockStyle clears the JSON styles of n and its children; the encoder
// then quotes only the strings that need it.
func blockStyle(n *yaml.Node) {
	n.Style = 0
	for _, c := range n.Content {
		blockStyle(c)
	}
}

// printTSV writes v as az's tsv does ("tab-separated values, with no
// keys", format-output-azure-cli.md): a list one line per element, an
// object one line of its scalar fields in their order (a map's in the
// order of its keys); nested objects and lists are left out, empty and
// null values are empty fields, so every line of a list has the same
// columns.
func printTSV(w io.Writer, v any) error {
	rv := reflect.ValueOf(v)
	var rows [][]string
	if rv.Kind() == reflect.Slice {
		for i := range rv.Len() {
			rows = append(rows, tsvRow(rv.Index(i)))
		}
	} else {
		rows = append(rows, tsvRow(rv))
	}
	for _, r := range rows {
		if _, err := fmt.Fprintln(w, strings.Join(r, "\t")); err != nil {
			return err
		}
	}
	return nil
}

// tsvRow is the fields of one object (or the one field of a scalar).
func tsvRow(v reflect.Value) []string {
	for v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface {
		if v.IsNil() {
			return []string{""}
		}
		v = v.Elem()
	}
	var row []string
	switch {
	case v.Kind() == reflect.Struct && v.Type() != timeType:
		for i := range v.NumField() {
			f := v.Type().Field(i)
			if !f.IsExported() || f.Tag.Get("json") == "-" {
				continue
			}
			if text, ok := tsvScalar(v.Field(i)); ok {
				row = append(row, text)
			}
		}
	case v.Kind() == reflect.Map:
		keys := v.MapKeys()
		slices.SortFunc(keys, func(a, b reflect.Value) int { return strings.Compare(fmt.Sprint(a), fmt.Sprint(b)) })
		for _, k := range keys {
			if text, ok := tsvScalar(v.MapIndex(k)); ok {
				row = append(row, text)
			}
		}
	default:
		text, _ := tsvScalar(v)
		row = append(row, text)
	}
	return row
}

var timeType = reflect.TypeFor[time.Time]()

// tsvScalar is the text of a scalar field as JSON gives it (times in RFC
// 3339), and false for a nested object or list.
func tsvScalar(v reflect.Value) (string, bool) {
	for v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface {
		if v.IsNil() {
			return "", true
		}
		v = v.Elem()
	}
	switch v.Kind() {
	case reflect.Struct:
		if t, ok := v.Interface().(time.Time); ok {
			return t.Format(time.RFC3339Nano), true
		}
		return "", false
	case reflect.Slice, reflect.Array, reflect.Map:
		return "", false
	}
	return fmt.Sprint(v.Interface()), true
}
