package api

import (
	"bytes"

	"github.com/tailscale/hujson"
)

// standardizeLenient turns a deployment request body into standard JSON.
// ARM reads these bodies with Json.NET, which takes comments, trailing
// commas and unquoted property names, and az relies on it: its
// JsonCTemplatePolicy sends `{"properties": {…, "mode": "Incremental",
// template:<the template file's text>}}` (azure-cli, command_modules/
// resource/custom.py, in Debian's 2.45). Comments and trailing commas are
// hujson's to remove; a bare identifier before a colon is quoted here.
func standardizeLenient(b []byte) ([]byte, error) {
	return hujson.Standardize(quoteBareKeys(b))
}

// quoteBareKeys quotes the identifiers ([A-Za-z_$][A-Za-z0-9_$]*) that
// stand, outside strings and comments, where a property name goes: before
// a colon. Everything else is copied as it is.
func quoteBareKeys(b []byte) []byte {
	var out bytes.Buffer
	out.Grow(len(b) + 16)
	for i := 0; i < len(b); {
		c := b[i]
		switch {
		case c == '"':
			j := i + 1
			for j < len(b) && b[j] != '"' {
				if b[j] == '\\' {
					j++
				}
				j++
			}
			j = min(j+1, len(b))
			out.Write(b[i:j])
			i = j
		case c == '/' && i+1 < len(b) && b[i+1] == '/':
			j := bytes.IndexByte(b[i:], '\n')
			if j < 0 {
				j = len(b) - i
			}
			out.Write(b[i : i+j])
			i += j
		case c == '/' && i+1 < len(b) && b[i+1] == '*':
			j := bytes.Index(b[i+2:], []byte("*/"))
			end := len(b)
			if j >= 0 {
				end = i + 2 + j + 2
			}
			out.Write(b[i:end])
			i = end
		case isIdentStart(c):
			j := i + 1
			for j < len(b) && isIdentPart(b[j]) {
				j++
			}
			if k := skipSpace(b, j); k < len(b) && b[k] == ':' {
				out.WriteByte('"')
				out.Write(b[i:j])
				out.WriteByte('"')
			} else {
				out.Write(b[i:j])
			}
			i = j
		default:
			out.WriteByte(c)
			i++
		}
	}
	return out.Bytes()
}

func isIdentStart(c byte) bool {
	return c == '_' || c == '$' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

func isIdentPart(c byte) bool { return isIdentStart(c) || c >= '0' && c <= '9' }

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\r' || b[i] == '\n') {
		i++
	}
	return i
}
