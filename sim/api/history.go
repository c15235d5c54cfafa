package api

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/amlsim/amlsim/sim"
)

// What azure-ai-ml's jobs.stream reads besides ARM (1.4.0,
// operations/_job_operations.py and _job_ops_helper.py): the workspace's
// discoveryUrl, fetched without a token, whose "api" is the base URL of
// run history; run history's RunDetails of the job, polled every few
// seconds; and each URL in its logFiles, fetched without a token, so each
// carries its own signature (Azure's are blob SAS URLs). amlsim serves
// all three itself.

// DiscoveryPath is the workspace's discoveryUrl path.
const DiscoveryPath = "/discovery"

// HistoryPrefix starts run history's paths:
// /history/v1.0/subscriptions/{sub}/resourceGroups/{rg}/providers/
// Microsoft.MachineLearningServices/workspaces/{ws}/runs/{run}/details.
const HistoryPrefix = "/history/v1.0/"

// JobLogsPrefix starts the signed URLs of the jobs' logs:
// /amlsim/joblogs/{rg}/{ws}/{job}/{file}?se=EXPIRY&sig=HMAC.
const JobLogsPrefix = "/amlsim/joblogs/"

// logURLLifetime is how long a log URL in RunDetails works.
const logURLLifetime = 24 * time.Hour

// serveDiscovery answers the discovery document: every service key
// points at amlsim (how-to-manage-rest.md lists the keys; the api key is
// what azure-ai-ml reads).
func (s *Server) serveDiscovery(w http.ResponseWriter, hr *http.Request) error {
	base := "https://" + hr.Host
	doc := map[string]string{}
	for _, k := range []string{"api", "catalog", "experimentation", "gallery", "history", "hyperdrive", "labeling", "modelmanagement", "pipelines", "studiocoreservices"} {
		doc[k] = base
	}
	writeJSON(w, http.StatusOK, doc)
	return nil
}

// workspaceEndpoints are the workspace properties that point clients at
// services besides ARM, all on amlsim's base URL.
func workspaceEndpoints(base, sub string, ws sim.Workspace) map[string]any {
	host := strings.TrimPrefix(base, "https://")
	return map[string]any{
		"discoveryUrl":      base + DiscoveryPath,
		"workspaceId":       ws.ID(),
		"mlFlowTrackingUri": "azureml://" + host + "/mlflow/v1.0/subscriptions/" + sub + "/resourceGroups/" + ws.ResourceGroup + "/providers/" + Provider + "/workspaces/" + ws.Name,
	}
}

// serveHistory answers run history's RunDetails of a job.
func (s *Server) serveHistory(w http.ResponseWriter, hr *http.Request, who sim.Principal, actions *[]string) error {
	segs := strings.Split(strings.Trim(strings.TrimPrefix(hr.URL.Path, HistoryPrefix), "/"), "/")
	pattern := []string{"subscriptions", "{sub}", "resourceGroups", "{rg}", "providers", Provider, "workspaces", "{ws}", "runs", "{run}", "details"}
	vars, ok := matchSegments(pattern, segs)
	if !ok || hr.Method != http.MethodGet {
		return sim.Errorf(sim.KindNotFound, "NotFound", "The requested path '%s' was not found.", hr.URL.Path)
	}
	if !strings.EqualFold(vars["sub"], s.sub()) {
		return sim.Errorf(sim.KindNotFound, "SubscriptionNotFound", "The subscription '%s' could not be found.", vars["sub"])
	}
	*actions = []string{ActJobRead}
	scope := "/subscriptions/" + s.sub() + "/resourceGroups/" + vars["rg"] + "/providers/" + Provider + "/workspaces/" + vars["ws"]
	if err := s.svc.Authorize(who, ActJobRead, scope); err != nil {
		return err
	}
	ref := sim.WorkspaceRef{ResourceGroup: vars["rg"], Name: vars["ws"]}
	job, err := s.svc.Job(ref, vars["run"])
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, s.runDetails("https://"+hr.Host, job))
	return nil
}

// runDetails is run history's RunDetails (azure-ai-ml's runhistory
// models): what stream reads is status, logFiles, warnings and error.
func (s *Server) runDetails(base string, j sim.Job) map[string]any {
	d := map[string]any{
		"runId":          j.Name,
		"target":         j.Compute,
		"status":         string(j.Status),
		"createdTimeUtc": j.CreatedOn,
		"properties":     map[string]any{},
		"inputDatasets":  []any{},
		"outputDatasets": []any{},
		"logFiles":       map[string]string{},
	}
	if !j.StartTime.IsZero() {
		d["startTimeUtc"] = j.StartTime
		d["logFiles"] = map[string]string{sim.StdLog: s.logURL(base, j, sim.StdLog)}
	}
	if !j.EndTime.IsZero() {
		d["endTimeUtc"] = j.EndTime
	}
	var warnings []map[string]string
	for _, m := range j.Warnings {
		warnings = append(warnings, map[string]string{"source": "amlsim", "message": m})
	}
	d["warnings"] = warnings
	if j.Error != nil {
		d["error"] = map[string]any{"error": map[string]any{"code": j.Error.Code, "message": j.Error.Message}}
	}
	return d
}

// logURL is a signed URL of one of a job's logs.
func (s *Server) logURL(base string, j sim.Job, file string) string {
	p := JobLogsPrefix + url.PathEscape(j.Workspace.ResourceGroup) + "/" + url.PathEscape(j.Workspace.Name) + "/" + url.PathEscape(j.Name) + "/" + file
	se := strconv.FormatInt(s.svc.Now().Add(logURLLifetime).Unix(), 10)
	return base + p + "?" + url.Values{"se": {se}, "sig": {s.logSignature(p, se, j.ID)}}.Encode()
}

// logSignature signs a log path, its expiry and the job's ID (a job made
// again under the name is another) with the server's key, made afresh at
// each start (the URLs of an earlier run stop working, as a SAS expires).
func (s *Server) logSignature(p, se, id string) string {
	m := hmac.New(sha256.New, s.logKey)
	m.Write([]byte(p + "\n" + se + "\n" + id))
	return hex.EncodeToString(m.Sum(nil))
}

func newLogKey() []byte {
	k := make([]byte, 32)
	rand.Read(k)
	return k
}

// serveJobLog answers a signed log URL with the log as text/plain.
func (s *Server) serveJobLog(w http.ResponseWriter, hr *http.Request) error {
	// Blob storage's answer to a bad or expired SAS.
	denied := sim.Errorf(sim.KindForbidden, "AuthenticationFailed", "Server failed to authenticate the request. Make sure the value of Authorization header is formed correctly including the signature.")
	rest := strings.TrimPrefix(hr.URL.Path, JobLogsPrefix)
	parts := strings.SplitN(rest, "/", 4)
	if len(parts) != 4 || path.Clean(parts[3]) != parts[3] || strings.HasPrefix(parts[3], "..") {
		return denied
	}
	job, err := s.svc.Job(sim.WorkspaceRef{ResourceGroup: parts[0], Name: parts[1]}, parts[2])
	if err != nil {
		return denied
	}
	q := hr.URL.Query()
	se, sig := q.Get("se"), q.Get("sig")
	exp, err := strconv.ParseInt(se, 10, 64)
	want := s.logSignature(hr.URL.EscapedPath(), se, job.ID)
	if err != nil || !hmac.Equal([]byte(sig), []byte(want)) || s.svc.Now().Unix() > exp {
		return denied
	}
	f, err := os.Open(filepath.Join(s.svc.LogDir(job), filepath.FromSlash(parts[3])))
	if err != nil {
		return sim.Errorf(sim.KindNotFound, "BlobNotFound", "The specified blob does not exist.")
	}
	defer f.Close()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	io.Copy(w, f)
	return nil
}
