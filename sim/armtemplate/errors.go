package armtemplate

import (
	"errors"
	"fmt"
)

// Error codes ARM answers with. Each is the "code" of the ARM error body.
const (
	// CodeInvalidTemplate is the code of template validation and
	// evaluation failures (real ARM bodies such as
	// {"error":{"code":"InvalidTemplate","message":"Deployment template
	// validation failed: …"}} in Azure/azure-quickstart-templates#1241).
	CodeInvalidTemplate = "InvalidTemplate"
	// CodeOutputEvaluationFailed is the code ARM gives when an output cannot
	// be evaluated after the resources were deployed (recorded in
	// ArmExpressionEvaluatorTests_String.cs of Kingsland.ArmLinter, a
	// third-party linter whose tests hold outputs its authors got from
	// ARM: "(Code:DeploymentOutputEvaluationFailed)").
	CodeOutputEvaluationFailed = "DeploymentOutputEvaluationFailed"
	// CodeRequestContentTooLarge is the code for a request body over
	// MaxRequestSize (Azure/bicep-registry-modules#2358,
	// Azure/azure-api-management-devops-resource-kit#594).
	CodeRequestContentTooLarge = "RequestContentTooLarge"
)

// Error is an ARM template error: what the server puts in the ARM error body
// {"error":{"code":Code,"message":Message}}. Line and Column are 1-based and
// locate the JSON value in the template text the error is about; they are 0
// when ARM reports no position (ARM then sends lineNumber 0 too, see
// microsoft/vscode-azurearmtools#493).
type Error struct {
	Code    string
	Message string
	Line    int
	Column  int

	cause error // ErrUnsupported, or nil
}

// Unwrap returns ErrUnsupported for features the engine lacks, else nil.
func (e *Error) Unwrap() error { return e.cause }

func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s: %s (line %d, column %d)", e.Code, e.Message, e.Line, e.Column)
	}
	return e.Code + ": " + e.Message
}

// ErrUnsupported is wrapped by errors for template features this engine
// does not implement (languageVersion 2.0, symbolic resources,
// user-defined functions, nested deployments, extension resources) and
// for templates over the simulator's evaluation budget. errors.Is(err, ErrUnsupported) tells them
// from templates ARM itself would reject.
var ErrUnsupported = errors.New("not supported by the simulator")

// validationFailed wraps an inner message the way ARM reports template
// validation failures: "Deployment template validation failed: '<inner>'."
// (e.g. Azure/azure-cli#6677, akshata29/entaoai#15).
func validationFailed(line, col int, format string, args ...any) *Error {
	return &Error{
		Code:    CodeInvalidTemplate,
		Message: "Deployment template validation failed: '" + fmt.Sprintf(format, args...) + "'.",
		Line:    line,
		Column:  col,
	}
}

// exprError is an error raised while parsing or evaluating one expression;
// callers wrap it with the name and position of the template element.
type exprError struct {
	msg string
}

func (e *exprError) Error() string { return e.msg }

func exprErrorf(format string, args ...any) error {
	return &exprError{msg: fmt.Sprintf(format, args...)}
}

// usageSuffix ends ARM's expression error messages.
const usageSuffix = " Please see https://aka.ms/arm-template-expressions for usage details."

func unsupported(format string, args ...any) *Error {
	return &Error{Code: CodeInvalidTemplate, Message: fmt.Sprintf(format, args...), cause: ErrUnsupported}
}
