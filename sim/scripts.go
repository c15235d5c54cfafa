package sim

import (
	"encoding/base64"
	"fmt"
	"math"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Script sources, as the API spells them.
const (
	SourceInline           = "inline"
	SourceWorkspaceStorage = "workspaceStorage"
)

// ScriptKind says when a setup script runs.
type ScriptKind string

const (
	// Creation runs once, when the instance is created.
	Creation ScriptKind = "creation"
	// Startup runs at every start, the first included.
	Startup ScriptKind = "startup"
)

// Script is a setup script of an instance, validated.
type Script struct {
	Kind   ScriptKind `json:"kind"`
	Source string     `json:"source"`
	// Data is the script itself, for inline scripts.
	Data []byte `json:"data,omitempty"`
	// Path is the script's path in the workspace share, for
	// workspaceStorage scripts, with forward slashes.
	Path string `json:"path,omitempty"`
	// Arguments is scriptArguments as given; Args is it split as a shell
	// splits words (quotes honoured, nothing expanded).
	Arguments string   `json:"arguments,omitempty"`
	Args      []string `json:"args,omitempty"`
	// Timeout is a duration as the `timeout` command takes it ("10m").
	Timeout string `json:"timeout,omitempty"`
	// Missing, when set, says why the script cannot be found: a
	// workspaceStorage path not in the share, inline data that is not
	// base64, a source that is a URL. Azure accepts such a request and
	// fails the create (or start) in the VM with SetupScriptsError
	// (Azure/azure-sdk-for-go#18017, Azure/azure-cli#31838); so does
	// amlsim, without giving the script to the guest.
	Missing string `json:"missing,omitempty"`
}

// ScriptRequest is a setup script as a request gives it.
type ScriptRequest struct {
	ScriptSource    string
	ScriptData      string
	ScriptArguments string
	Timeout         string
}

// timeoutRE is the duration grammar of coreutils' timeout: a non-negative
// number with an optional unit s, m, h or d.
var timeoutRE = regexp.MustCompile(`^([0-9]+(\.[0-9]*)?|\.[0-9]+)[smhd]?$`)

func scriptError(kind ScriptKind, format string, args ...any) error {
	return Errorf(KindBadRequest, "InvalidSetupScript", "The %s script is invalid: %s", kind, fmt.Sprintf(format, args...))
}

// parseScript validates a script request against the workspace share.
// What Azure refuses up front is an error; what it only finds in the VM
// (a script that cannot be found) gives a Script with Missing set.
func parseScript(kind ScriptKind, req ScriptRequest, share string) (*Script, error) {
	sc := &Script{Kind: kind, Arguments: req.ScriptArguments, Timeout: req.Timeout}
	if strings.TrimSpace(req.ScriptData) == "" {
		// Azure/data-product-analytics#141.
		return nil, Errorf(KindBadRequest, "UserError", "%sScript.scriptData cannot be null or empty.", kind)
	}
	switch {
	case strings.EqualFold(req.ScriptSource, SourceInline):
		sc.Source = SourceInline
		data, err := base64.StdEncoding.DecodeString(strings.TrimSpace(req.ScriptData))
		if err != nil {
			sc.Missing = fmt.Sprintf("inline scriptData is not base64 (%v)", err)
		}
		sc.Data = data
	case strings.EqualFold(req.ScriptSource, SourceWorkspaceStorage):
		sc.Source = SourceWorkspaceStorage
		p, err := sharePath(req.ScriptData, share)
		if err != nil {
			sc.Path, sc.Missing = req.ScriptData, err.Error()
		}
		if err == nil {
			sc.Path = p
		}
	case req.ScriptSource == "":
		return nil, scriptError(kind, "scriptSource is required (inline or workspaceStorage).")
	default:
		// A URL, say: the file is not in the share the VM reads.
		sc.Source, sc.Path = req.ScriptSource, req.ScriptData
		sc.Missing = fmt.Sprintf("scriptSource '%s' is not one of inline, workspaceStorage", req.ScriptSource)
	}
	if sc.Timeout != "" && !timeoutRE.MatchString(sc.Timeout) {
		return nil, scriptError(kind, "timeout '%s' is not a duration such as 30s, 10m or 1h.", sc.Timeout)
	}
	// The guest's timeout command would take more, but amlsim waits for
	// the script on the host: a duration beyond maxScriptTimeout would
	// overflow that wait.
	if d := TimeoutDuration(sc.Timeout); d > maxScriptTimeout || d < 0 {
		return nil, scriptError(kind, "timeout '%s' is longer than %d days.", sc.Timeout, int(maxScriptTimeout.Hours()/24))
	}
	args, err := SplitArgs(req.ScriptArguments)
	if err != nil {
		return nil, scriptError(kind, "scriptArguments: %v.", err)
	}
	sc.Args = args
	return sc, nil
}

// sharePath checks a workspaceStorage script path: relative, inside the
// share even after symlinks, and an existing regular file.
func sharePath(p, share string) (string, error) {
	p = strings.TrimSpace(strings.ReplaceAll(p, "\\", "/"))
	if p == "" {
		return "", fmt.Errorf("scriptData must name the script's path in the workspace file share")
	}
	if strings.HasPrefix(p, "/") || filepath.IsAbs(p) {
		return "", fmt.Errorf("the path '%s' must be relative to the workspace file share", p)
	}
	clean := path.Clean(p)
	if clean == ".." || strings.HasPrefix(clean, "../") {
		return "", fmt.Errorf("the path '%s' leaves the workspace file share", p)
	}
	if !utf8.ValidString(clean) || strings.ContainsRune(clean, 0) {
		return "", fmt.Errorf("the path '%s' is not valid UTF-8", p)
	}
	root, err := filepath.EvalSymlinks(share)
	if err != nil {
		return "", fmt.Errorf("the workspace file share is not available: %v", err)
	}
	real, err := filepath.EvalSymlinks(filepath.Join(root, filepath.FromSlash(clean)))
	if err != nil {
		return "", fmt.Errorf("the script '%s' does not exist in the workspace file share", clean)
	}
	if rel, err := filepath.Rel(root, real); err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return "", fmt.Errorf("the path '%s' leaves the workspace file share through a symbolic link", clean)
	}
	fi, err := os.Stat(real)
	if err != nil || !fi.Mode().IsRegular() {
		return "", fmt.Errorf("the script '%s' is not a regular file", clean)
	}
	return clean, nil
}

// SplitArgs splits s into words as a POSIX shell does, honouring single
// quotes, double quotes and backslashes, but expanding nothing.
func SplitArgs(s string) ([]string, error) {
	var args []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n':
			if inWord {
				args = append(args, cur.String())
				cur.Reset()
				inWord = false
			}
		case c == '\'':
			inWord = true
			end := strings.IndexByte(s[i+1:], '\'')
			if end < 0 {
				return nil, fmt.Errorf("unterminated single quote")
			}
			cur.WriteString(s[i+1 : i+1+end])
			i += end + 1
		case c == '"':
			inWord = true
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) && strings.IndexByte("\"\\$`\n", s[i+1]) >= 0 {
					i++
				}
				cur.WriteByte(s[i])
			}
			if i >= len(s) {
				return nil, fmt.Errorf("unterminated double quote")
			}
		case c == '\\':
			inWord = true
			if i+1 < len(s) {
				i++
				if s[i] != '\n' {
					cur.WriteByte(s[i])
				}
			}
		default:
			inWord = true
			cur.WriteByte(c)
		}
	}
	if inWord {
		args = append(args, cur.String())
	}
	if strings.ContainsRune(strings.Join(args, ""), 0) {
		return nil, fmt.Errorf("arguments cannot contain NUL bytes")
	}
	return args, nil
}

// ShareTag is the virtio-fs tag of the workspace file share.
const ShareTag = "amlsim-code"

// ScriptRun is the outcome of one run of a setup script.
type ScriptRun struct {
	Kind     ScriptKind    `json:"kind"`
	ExitCode int           `json:"exitCode"`
	TimedOut bool          `json:"timedOut"`
	Duration time.Duration `json:"duration"`
	// Log is the run's output file, relative to the workspace share when
	// it is there (Logs/<name>/creation_<time>.txt), else a guest path.
	Log string `json:"log"`
	// HostLog is the same file on the simulator's machine, when the share
	// is there.
	HostLog string `json:"hostLog,omitempty"`
	// Tail is the end of the output, kept for failures.
	Tail string `json:"tail,omitempty"`
}

// SetupError is returned when a setup script fails, times out or cannot
// be found; the instance is then SetupFailed and its VM kept for
// inspection.
type SetupError struct {
	Run ScriptRun
	// Instance and Missing are set for a script that cannot be found
	// (Script.Missing).
	Instance string
	Missing  *Script
}

func (e *SetupError) Error() string { return e.ARM().Message }

// ARM is the error clients see. A script that cannot be found gets
// Azure's SetupScriptsError, word for word (Azure/azure-cli#31838), with
// the path the VM would have looked at.
func (e *SetupError) ARM() *Error {
	if sc := e.Missing; sc != nil {
		where := path.Join("/mnt/batch/tasks/shared/LS_root/mounts/clusters", strings.ToLower(e.Instance), "code", sc.Path)
		if sc.Source == SourceInline {
			where = path.Join("/mnt/batch/tasks/shared/LS_root/mounts/clusters", strings.ToLower(e.Instance), "code/Users", string(sc.Kind)+".sh")
		}
		return Errorf(KindConflict, "SetupScriptsError",
			"The specified Azure ML Compute Instance %s user script setup failed with error: \"User specified setup script file not found. Details - SetupScriptsError: User specified setup script file not found. : %s\" (amlsim: the %s script: %s)",
			e.Instance, where, sc.Kind, sc.Missing)
	}
	r := e.Run
	what := fmt.Sprintf("exited with code %d", r.ExitCode)
	code := "SetupScriptFailed"
	if r.TimedOut {
		what, code = "timed out", "SetupScriptTimedOut"
	}
	msg := fmt.Sprintf("The %s script %s after %s. Its output is in %s of the workspace file share.", r.Kind, what, r.Duration.Round(100*time.Millisecond), r.Log)
	if r.HostLog != "" {
		msg = strings.TrimSuffix(msg, ".") + " (" + r.HostLog + " on this machine)."
	}
	if r.Tail != "" {
		msg += " Last lines:\n" + r.Tail
	}
	return &Error{Kind: KindConflict, Code: code, Message: msg}
}

// maxScriptTimeout is the longest setup-script timeout accepted.
const maxScriptTimeout = 365 * 24 * time.Hour

// TimeoutDuration parses a timeout as the `timeout` command does; zero
// means none. A duration too long for time.Duration is -1.
func TimeoutDuration(s string) time.Duration {
	if s == "" || !timeoutRE.MatchString(s) {
		return 0
	}
	unit := time.Second
	switch s[len(s)-1] {
	case 's':
		s = s[:len(s)-1]
	case 'm':
		unit, s = time.Minute, s[:len(s)-1]
	case 'h':
		unit, s = time.Hour, s[:len(s)-1]
	case 'd':
		unit, s = 24*time.Hour, s[:len(s)-1]
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0
	}
	if f*float64(unit) >= math.MaxInt64 {
		return -1
	}
	return time.Duration(f * float64(unit))
}
