package sim

import (
	"errors"
	"fmt"
	"time"
)

// Kind classifies an error the way a client must react to it. The API maps
// each kind to one HTTP status (sim/api), and nothing else does.
type Kind int

const (
	KindInternal           Kind = iota // the simulator failed
	KindBadRequest                     // the request is malformed or invalid
	KindUnauthorized                   // no valid credentials
	KindForbidden                      // credentials valid, action not allowed
	KindNotFound                       // the resource does not exist
	KindConflict                       // the resource's state forbids the request
	KindQuota                          // a quota would be exceeded
	KindTooLarge                       // the request body is too large
	KindMethod                         // the verb is not allowed on this path
	KindUnavailable                    // a guest service behind the simulator does not answer
	KindMediaType                      // the request body is not JSON
	KindThrottled                      // too many requests: ARM's throttling
	KindServiceUnavailable             // the service is briefly unavailable
)

// Error is an error a client sees: an ARM error code and message.
type Error struct {
	Kind    Kind
	Code    string
	Message string
	Target  string
	// Details are the errors this one sums up (a failed deployment's
	// per-resource errors).
	Details []*Error `json:",omitempty"`
	// RetryAfter, when set, is the answer's Retry-After.
	RetryAfter time.Duration `json:"-"`
	// Fault is the ID of the fault rule that injected the error, if any.
	Fault string `json:"-"`
	// Inner is the innerError chain of Azure ML's service errors, the
	// outermost code first: {"code": "UserError", …, "innerError":
	// {"code": "Immutable", "innerError": {"code": "JobPropertyImmutable"}}}.
	Inner []string `json:",omitempty"`
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Errorf returns an *Error of kind with an ARM code and a formatted message.
func Errorf(kind Kind, code, format string, args ...any) *Error {
	return &Error{Kind: kind, Code: code, Message: fmt.Sprintf(format, args...)}
}

// AsError returns err as an *Error, wrapping unknown errors as internal
// ones so their text still reaches the client.
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	var a interface{ ARM() *Error }
	if errors.As(err, &a) {
		return a.ARM()
	}
	return &Error{Kind: KindInternal, Code: "InternalServerError", Message: err.Error()}
}

// ErrNotFound is returned when a record the service looks up is gone.
var ErrNotFound = errors.New("not found")

// IsKind reports whether err is an error of kind k; nil is of no kind.
func IsKind(err error, k Kind) bool { return err != nil && AsError(err).Kind == k }
