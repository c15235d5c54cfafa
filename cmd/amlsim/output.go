package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

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
// object one line of its scalar fields in order; nested objects and lists
// are left out, null is empty.
func printTSV(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.UseNumber()
	var rows [][]string
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	switch tok {
	case json.Delim('['):
		for dec.More() {
			row, err := tsvRow(dec)
			if err != nil {
				return err
			}
			rows = append(rows, row)
		}
	case json.Delim('{'):
		row, err := tsvFields(dec)
		if err != nil {
			return err
		}
		rows = append(rows, row)
	default:
		rows = append(rows, []string{scalarText(tok)})
	}
	for _, r := range rows {
		if _, err := fmt.Fprintln(w, strings.Join(r, "\t")); err != nil {
			return err
		}
	}
	return nil
}

// tsvRow reads one element of a list: an object's scalar fields, or a
// scalar.
func tsvRow(dec *json.Decoder) ([]string, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch tok {
	case json.Delim('{'):
		return tsvFields(dec)
	case json.Delim('['):
		return nil, skipRest(dec)
	}
	return []string{scalarText(tok)}, nil
}

// tsvFields reads the rest of an object whose '{' was read.
func tsvFields(dec *json.Decoder) ([]string, error) {
	var row []string
	for dec.More() {
		if _, err := dec.Token(); err != nil { // the key
			return nil, err
		}
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		if d, ok := tok.(json.Delim); ok && (d == '{' || d == '[') {
			if err := skipRest(dec); err != nil {
				return nil, err
			}
			continue
		}
		row = append(row, scalarText(tok))
	}
	_, err := dec.Token() // '}'
	return row, err
}

// skipRest reads to the end of the object or list whose opening was read.
func skipRest(dec *json.Decoder) error {
	for depth := 1; depth > 0; {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			depth++
		case json.Delim('}'), json.Delim(']'):
			depth--
		}
	}
	return nil
}

func scalarText(tok json.Token) string {
	switch t := tok.(type) {
	case nil:
		return ""
	case string:
		return t
	case bool:
		return fmt.Sprint(t)
	case json.Number:
		return t.String()
	}
	return fmt.Sprint(tok)
}
