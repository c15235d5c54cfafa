package api

import (
	"encoding/json"
	"errors"
	"io"
	"maps"
	"mime"
	"net/http"
	"os"
	"slices"
	"strings"
	"unicode"

	"github.com/amlsim/amlsim/sim"
)

// Request bodies as ARM reads them: JSON only, within its size and tag
// limits, with its errors.

// decode reads a JSON body into v, with the errors ARM gives: a body that
// is not application/json is a 415 UnsupportedMediaType (Azure/azure-cli#10143:
// "The content media type '<null>' is not supported. Only
// 'application/json' is supported.").
func decode(r *request, v any) error {
	if ct := r.Header.Get("Content-Type"); !isJSON(ct) {
		if ct == "" {
			ct = "<null>"
		}
		return sim.Errorf(sim.KindMediaType, "UnsupportedMediaType",
			"The content media type '%s' is not supported. Only 'application/json' is supported.", ct)
	}
	b, err := readBody(r, MaxBody)
	if err != nil {
		return err
	}
	if len(strings.TrimSpace(string(b))) == 0 {
		return sim.Errorf(sim.KindBadRequest, "InvalidRequestContent", "The request content was null or empty.")
	}
	if err := json.Unmarshal(b, v); err != nil {
		return sim.Errorf(sim.KindBadRequest, "InvalidRequestContent", "The request content was invalid and could not be deserialized: '%v'.", err)
	}
	return nil
}

// readBody reads a request's body, whose reader allows limit bytes.
func readBody(r *request, limit int64) ([]byte, error) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, sim.Errorf(sim.KindTooLarge, "RequestEntityTooLarge", "The request body is larger than the %d bytes allowed.", limit)
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return nil, sim.Errorf(sim.KindBadRequest, "InvalidRequestContent", "The request content was not received in time: the client stopped sending it.")
		}
		return nil, sim.Errorf(sim.KindBadRequest, "InvalidRequestContent", "The request content could not be read: %v.", err)
	}
	return b, nil
}

// isJSON reports whether a Content-Type names JSON: application/json,
// with parameters such as charset or not.
func isJSON(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && mt == "application/json"
}

// ARM's limits on tags (MicrosoftDocs tag-resources.md: "a maximum of 50
// tag name-value pairs", "The tag name has a limit of 512 characters and
// the tag value has a limit of 256 characters"; azure-resource-manager-rpc:
// "The tag name cannot include: '<', '>', '%', '&', '\\', '?', '/', and any
// control characters").
const (
	maxTags        = 50
	maxTagName     = 512
	maxTagValue    = 256
	tagNameIllegal = "<>%&\\?/"
)

// checkTags refuses tags ARM refuses, with its codes and messages (the
// value's from a real response, Azure-Samples/azure-search-openai-demo#1997;
// the others as Azure/azure-powershell's Az.Migrate repeats them).
func checkTags(tags map[string]string) error {
	if len(tags) > maxTags {
		return sim.Errorf(sim.KindBadRequest, "InvalidTags",
			"Too many tags specified. Requested tag count - '%d'. Maximum number of tags allowed - '%d'.", len(tags), maxTags)
	}
	for _, name := range slices.Sorted(maps.Keys(tags)) {
		value := tags[name]
		switch {
		case strings.TrimSpace(name) == "":
			return sim.Errorf(sim.KindBadRequest, "InvalidTagName",
				"The tag name must be non-null, non-empty and non-whitespace only. Please provide an actual value.")
		case len([]rune(name)) > maxTagName:
			return sim.Errorf(sim.KindBadRequest, "InvalidTagName",
				"Tag key too large. Following tag name '%s' exceeded the maximum length. Maximum allowed length for tag name - '%d' characters.", name, maxTagName)
		case strings.ContainsAny(name, tagNameIllegal) || strings.ContainsFunc(name, unicode.IsControl):
			return sim.Errorf(sim.KindBadRequest, "InvalidTagNameCharacters",
				"The tag names '%s' have reserved characters '<,>,%%,&,\\,?,/' or control characters.", name)
		case len([]rune(value)) > maxTagValue:
			return sim.Errorf(sim.KindBadRequest, "InvalidTagValueLength",
				"Tag value too large.  Following tag value '%s' exceeded the maximum length. Maximum allowed length for tag value - '%d' characters.", value, maxTagValue)
		}
	}
	return nil
}
