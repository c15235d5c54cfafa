package main

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
)

// Exit statuses scripts can rely on (documented in the README).
const (
	exitOK          = 0 // success
	exitFailed      = 1 // the server refused the request, or the operation failed
	exitUsage       = 2 // bad flags or arguments; nothing was sent
	exitNotFound    = 3 // the instance (or workspace, location) does not exist
	exitConflict    = 4 // the instance's state forbids it, or the name is taken
	exitQuota       = 5 // a vCPU quota would be exceeded
	exitAuth        = 6 // the token was refused
	exitUnreachable = 7 // the server could not be reached (or its CA is missing)
)

// cliError is an error the CLI reports as one line `amlsim: CODE: message`
// and exits with status.
type cliError struct {
	Status  int    // exit status
	Code    string // ARM error code, or a CLI code such as UsageError
	Message string
}

func (e *cliError) Error() string { return e.Code + ": " + e.Message }

// usageErrorf is a usage error: wrong flags or arguments.
func usageErrorf(format string, args ...any) error {
	return &cliError{Status: exitUsage, Code: "UsageError", Message: fmt.Sprintf(format, args...)}
}

// apiError is an ARM error answered by the server.
func apiError(httpStatus int, code, message string) error {
	if code == "" {
		code = http.StatusText(httpStatus)
	}
	return &cliError{Status: exitStatusOf(httpStatus, code), Code: code, Message: message}
}

// exitStatusOf maps an HTTP status and ARM code to an exit status.
func exitStatusOf(httpStatus int, code string) int {
	switch {
	case code == "QuotaExceeded":
		return exitQuota
	case httpStatus == http.StatusNotFound:
		return exitNotFound
	case httpStatus == http.StatusConflict, strings.Contains(code, "ComputeInstanceOnlyAllowedIn"):
		// A start of a running instance is accepted and fails in its
		// operation, as on Azure: still a state that forbids it.
		return exitConflict
	case httpStatus == http.StatusUnauthorized || httpStatus == http.StatusForbidden:
		return exitAuth
	}
	return exitFailed
}

// report prints err as the CLI's one error line and returns the exit status.
func report(err error) int {
	if err == nil {
		return exitOK
	}
	var ec *exitCodeError
	if errors.As(err, &ec) {
		return ec.code
	}
	var ce *cliError
	if errors.As(err, &ce) {
		fmt.Fprintf(os.Stderr, "amlsim: %s: %s\n", ce.Code, oneLine(ce.Message))
		return ce.Status
	}
	fmt.Fprintf(os.Stderr, "amlsim: %s\n", oneLine(err.Error()))
	return exitFailed
}

// oneLine folds a multi-line message onto one line, so every error is one
// line a script can grep.
func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " ")), " ")
}
