package api_test

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/amlsim/amlsim/sim"
	"github.com/amlsim/amlsim/sim/amlsimtest"
	"github.com/amlsim/amlsim/sim/api"
)

const computePath = "/subscriptions/" + sub + "/resourceGroups/" + rg + "/providers/Microsoft.MachineLearningServices/workspaces/" + ws + "/computes/"

// send sends a request with the test token and a Content-Type of one's
// choosing ("" sends none), and decodes an ARM error body if any.
func (e *env) send(method, path, contentType, body string) (int, string, string) {
	e.t.Helper()
	resp := e.rawType(method, path, e.token, contentType, body)
	var armErr struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	raw, _ := io.ReadAll(resp.Body)
	json.Unmarshal(raw, &armErr)
	return resp.StatusCode, armErr.Error.Code, armErr.Error.Message
}

const ciBody = `{"properties":{"computeType":"ComputeInstance","properties":{"vmSize":"Standard_D1_v2"}}%s}`

// A body that is not JSON gets ARM's 415 (Azure/azure-cli#10143) and
// creates nothing; JSON with a charset is JSON.
func TestContentType(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	body := fmt.Sprintf(ciBody, "")
	for ct, want := range map[string]string{
		"text/plain": "The content media type 'text/plain' is not supported. Only 'application/json' is supported.",
		"":           "The content media type '<null>' is not supported. Only 'application/json' is supported.",
	} {
		status, code, msg := e.send("PUT", computePath+"ci-ct?api-version=2024-10-01", ct, body)
		if status != http.StatusUnsupportedMediaType || code != "UnsupportedMediaType" || msg != want {
			t.Errorf("Content-Type %q: %d %s %q, want 415 UnsupportedMediaType %q", ct, status, code, msg, want)
		}
	}
	if status, _, _ := e.send("GET", computePath+"ci-ct?api-version=2024-10-01", "", ""); status != http.StatusNotFound {
		t.Errorf("after the refusals GET = %d, want 404", status)
	}
	if status, code, msg := e.send("PUT", computePath+"ci-ct?api-version=2024-10-01", "application/json; charset=utf-8", body); status != http.StatusCreated {
		t.Errorf("application/json; charset=utf-8: %d %s %s, want 201", status, code, msg)
	}
}

// ARM's tag limits, on computes and workspaces; a refused PUT changes
// nothing.
func TestTagLimits(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	many := map[string]string{}
	for i := range 51 {
		many[fmt.Sprintf("t%02d", i)] = "v"
	}
	fifty := map[string]string{}
	for i := range 50 {
		fifty[fmt.Sprintf("t%02d", i)] = strings.Repeat("v", 256)
	}
	fifty[strings.Repeat("n", 512)] = "v"
	delete(fifty, "t00")
	for _, c := range []struct {
		what string
		tags map[string]string
		code string
		msg  string
	}{
		{"51 tags", many, "InvalidTags", "Too many tags specified. Requested tag count - '51'. Maximum number of tags allowed - '50'."},
		{"a 513-character name", map[string]string{strings.Repeat("n", 513): "v"}, "InvalidTagName", "Maximum allowed length for tag name - '512' characters."},
		{"a 257-character value", map[string]string{"k": strings.Repeat("v", 257)}, "InvalidTagValueLength", "Tag value too large.  Following tag value"},
		{"a slash in a name", map[string]string{"a/b": "v"}, "InvalidTagNameCharacters", "have reserved characters"},
		{"an empty name", map[string]string{" ": "v"}, "InvalidTagName", "non-whitespace"},
	} {
		tags, _ := json.Marshal(c.tags)
		status, code, msg := e.send("PUT", computePath+"ci-tags?api-version=2024-10-01", "application/json", fmt.Sprintf(ciBody, `,"tags":`+string(tags)))
		if status != http.StatusBadRequest || code != c.code || !strings.Contains(msg, c.msg) {
			t.Errorf("%s: %d %s %q, want 400 %s containing %q", c.what, status, code, msg, c.code, c.msg)
		}
		wsPath := "/subscriptions/" + sub + "/resourceGroups/" + rg + "/providers/Microsoft.MachineLearningServices/workspaces/ws-tags?api-version=2024-10-01"
		if status, code, _ := e.send("PUT", wsPath, "application/json", `{"location":"eastus","tags":`+string(tags)+`}`); status != http.StatusBadRequest || code != c.code {
			t.Errorf("workspace with %s: %d %s, want 400 %s", c.what, status, code, c.code)
		}
	}
	if status, _, _ := e.send("GET", computePath+"ci-tags?api-version=2024-10-01", "", ""); status != http.StatusNotFound {
		t.Errorf("after the refusals GET = %d, want 404", status)
	}
	// At the limits exactly: 50 tags, a 512-character name, 256-character values.
	tags, _ := json.Marshal(fifty)
	if status, code, msg := e.send("PUT", computePath+"ci-tags?api-version=2024-10-01", "application/json", fmt.Sprintf(ciBody, `,"tags":`+string(tags))); status != http.StatusCreated {
		t.Errorf("tags at the limits: %d %s %s, want 201", status, code, msg)
	}
}

// A client that sends half a body and stalls gets an answer once the body
// timeout passes, instead of holding the request for ever.
func TestStalledBody(t *testing.T) {
	t.Parallel()
	e := newServerEnv(t, nil, amlsimtest.WithAPIOptions(api.WithBodyTimeout(300*time.Millisecond)))
	conn, err := tls.Dial("tcp", strings.TrimPrefix(e.srv.URL, "https://"), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "PUT %sci-stall?api-version=2024-10-01 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{\"properties\":", computePath, e.token)
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	reply, _ := io.ReadAll(io.LimitReader(conn, 4096))
	if !strings.HasPrefix(string(reply), "HTTP/1.1 400") || !strings.Contains(string(reply), "InvalidRequestContent") {
		t.Errorf("reply to a stalled body = %q, want a 400 InvalidRequestContent", reply)
	}
}

// The refusal of an unpublished api-version names the type and lists the
// published versions, as ARM's NoRegisteredProviderFound does; with
// [api] strict_versions a version newer than amlsim knows is refused too.
func TestAPIVersions(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	status, code, msg := e.send("GET", computePath+"ci-v?api-version=2023-02-15", "", "")
	want := "No registered resource provider found for location '*' and API version '2023-02-15' for type 'workspaces/computes'. The supported api-versions are '2018-03-01-preview, 2018-11-19, "
	if status != http.StatusBadRequest || code != "NoRegisteredProviderFound" || !strings.HasPrefix(msg, want) || !strings.Contains(msg, "2024-10-01, ") || !strings.HasSuffix(msg, "The supported locations are 'eastus, westeurope'.") {
		t.Errorf("unpublished version: %d %s %q", status, code, msg)
	}
	if status, _, msg := e.send("GET", "/subscriptions/"+sub+"/providers/Microsoft.MachineLearningServices/locations/eastus/usages?api-version=2023-02-15", "", ""); status != 400 || !strings.Contains(msg, "location 'eastus'") || !strings.Contains(msg, "type 'locations/usages'") {
		t.Errorf("unpublished version on usages: %d %q", status, msg)
	}
	strict := newEnv(t, func(c *sim.Config) { c.API.StrictVersions = true })
	if status, code, _ := strict.send("GET", computePath+"ci-v?api-version=2031-01-01", "", ""); status != 400 || code != "NoRegisteredProviderFound" {
		t.Errorf("newer version with strict_versions: %d %s, want 400 NoRegisteredProviderFound", status, code)
	}
	if status, _, _ := strict.send("GET", computePath+"ci-v?api-version=2024-10-01", "", ""); status != 404 {
		t.Errorf("published version with strict_versions: %d, want the compute's 404", status)
	}
}

// Properties Azure does not know are dropped, never stored or echoed;
// known ones of the wrong JSON type are refused, naming their path. What
// is known depends on the api-version: enableSSO is in stable 2025-12-01,
// not in 2024-10-01 (see propertySince).
func TestComputeInstancePropertyTypes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	status, code, msg := e.send("PUT", computePath+"ci-typed?api-version=2025-12-01", "application/json",
		`{"properties":{"computeType":"ComputeInstance","properties":{"vmSize":"Standard_D1_v2","enableSSO":"yes"}}}`)
	if status != 400 || code != "InvalidRequestContent" || !strings.Contains(msg, "properties.properties.enableSSO") {
		t.Errorf("enableSSO \"yes\": %d %s %q, want 400 InvalidRequestContent naming the path", status, code, msg)
	}
	if status, _, _ := e.send("GET", computePath+"ci-typed?api-version=2025-12-01", "", ""); status != 404 {
		t.Errorf("after the refusal GET = %d, want 404", status)
	}
	status, _, _ = e.send("PUT", computePath+"ci-typed?api-version=2025-12-01", "application/json",
		`{"properties":{"computeType":"ComputeInstance","properties":{"vmSize":"Standard_D1_v2","enableSSO":false,"madeUpProperty":{"x":1}}}}`)
	if status != 201 {
		t.Fatalf("create with a made-up property: %d, want 201", status)
	}
	body, _ := io.ReadAll(e.raw("GET", computePath+"ci-typed?api-version=2025-12-01", e.token, "").Body)
	if strings.Contains(string(body), "madeUpProperty") || !strings.Contains(string(body), `"enableSSO":false`) {
		t.Errorf("GET echoes %s; want enableSSO kept and madeUpProperty dropped", body)
	}
	body, _ = io.ReadAll(e.raw("GET", computePath+"ci-typed?api-version=2024-10-01", e.token, "").Body)
	if strings.Contains(string(body), "enableSSO") || !strings.Contains(string(body), `"vmSize":"Standard_D1_v2"`) {
		t.Errorf("GET in 2024-10-01, which has no enableSSO, shows %s", body)
	}
	status, code, msg = e.send("PUT", computePath+"ci-old?api-version=2024-10-01", "application/json",
		`{"properties":{"computeType":"ComputeInstance","properties":{"vmSize":"Standard_D1_v2","enableSSO":"yes"}}}`)
	if status != 201 {
		t.Errorf("enableSSO \"yes\" in 2024-10-01, which does not define it: %d %s %q, want 201 (dropped)", status, code, msg)
	}
	body, _ = io.ReadAll(e.raw("GET", computePath+"ci-old?api-version=2026-09-15-preview", e.token, "").Body)
	if strings.Contains(string(body), "enableSSO") {
		t.Errorf("enableSSO sent in a version without it was kept: %s", body)
	}
}
