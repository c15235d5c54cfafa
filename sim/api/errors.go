package api

import (
	"encoding/json"
	"math"
	"net/http"
	"strconv"

	"github.com/amlsim/amlsim/sim"
)

// statusOf maps an error kind to its HTTP status: the one place where the
// simulator's errors become HTTP.
var statusOf = map[sim.Kind]int{
	sim.KindInternal:     http.StatusInternalServerError,
	sim.KindBadRequest:   http.StatusBadRequest,
	sim.KindUnauthorized: http.StatusUnauthorized,
	sim.KindForbidden:    http.StatusForbidden,
	sim.KindNotFound:     http.StatusNotFound,
	sim.KindConflict:     http.StatusConflict,
	sim.KindQuota:        http.StatusBadRequest,
	sim.KindTooLarge:     http.StatusRequestEntityTooLarge,
	sim.KindMethod:       http.StatusMethodNotAllowed,
	sim.KindUnavailable:  http.StatusBadGateway,
	sim.KindMediaType:    http.StatusUnsupportedMediaType,
	// ARM's throttling: 429 with Retry-After in seconds
	// (request-limits-and-throttling.md).
	sim.KindThrottled:          http.StatusTooManyRequests,
	sim.KindServiceUnavailable: http.StatusServiceUnavailable,
}

// armError is the ARM error body.
type armError struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string        `json:"code"`
	Message string        `json:"message"`
	Target  string        `json:"target,omitempty"`
	Details []errorDetail `json:"details,omitempty"`
	// InnerError is Azure ML's chain of more specific codes.
	InnerError *innerError `json:"innerError,omitempty"`
}

type innerError struct {
	Code       string      `json:"code"`
	InnerError *innerError `json:"innerError,omitempty"`
}

func detailOf(e *sim.Error) errorDetail {
	d := errorDetail{Code: e.Code, Message: e.Message, Target: e.Target}
	for _, sub := range e.Details {
		d.Details = append(d.Details, detailOf(sub))
	}
	for i := len(e.Inner) - 1; i >= 0; i-- {
		d.InnerError = &innerError{Code: e.Inner[i], InnerError: d.InnerError}
	}
	return d
}

// writeError writes err as an ARM error response.
func writeError(w http.ResponseWriter, err error) {
	e := sim.AsError(err)
	status, ok := statusOf[e.Kind]
	if !ok {
		status = http.StatusInternalServerError
	}
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(e.RetryAfter.Seconds()))))
	}
	if e.Kind == sim.KindUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer authorization_uri="https://login.microsoftonline.com/common", error="invalid_token"`)
	}
	writeJSON(w, status, armError{Error: detailOf(e)})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	if v != nil {
		json.NewEncoder(w).Encode(v)
	}
}
