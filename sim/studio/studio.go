// Package studio serves amlsim's studio: web pages to list, inspect,
// start, stop, restart and delete compute instances, as Azure ML studio's
// compute page does (MicrosoftDocs/azure-ai-docs, articles/machine-learning/
// how-to-manage-compute-instance.md, the Studio tab). The pages are
// rendered on the server with html/template; htmx (vendored from npm,
// assets/) refreshes the instance list while operations run.
//
// The studio is a client of amlsim's own ARM API, as Azure's studio is a
// client of ARM: every read and every action is an in-process request as
// the signed-in principal (api.Server.Call), so it gets the REST API's
// RBAC checks, validation and audit log, and nothing else.
package studio

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/amlsim/amlsim/sim"
	"github.com/amlsim/amlsim/sim/api"
	"github.com/amlsim/amlsim/sim/auth"
)

// PathPrefix is where the studio is served.
const PathPrefix = "/studio/"

// sessionCookie carries the token of the principal the studio acts as;
// signerCookie that of the principal who signed in, who may switch to
// another when allowed to.
const (
	sessionCookie = "amlsim_studio"
	signerCookie  = "amlsim_studio_signer"
)

// sessionTTL is how long a sign-in lasts.
const sessionTTL = 12 * time.Hour

// sessionAudience is the audience of the studio's session tokens: ARM
// does not accept them, so a session cookie is no API credential.
const sessionAudience = "amlsim-studio"

// apiVersion is the api-version the studio speaks to the API.
const apiVersion = "2024-04-01"

//go:embed templates/*.html
var templateFS embed.FS

//go:embed assets/static
var staticFS embed.FS

// Caller is amlsim's ARM API, answering requests made on a principal's
// behalf (api.Server).
type Caller interface {
	Call(ctx context.Context, who sim.Principal, r api.Request) api.Response
}

// Studio is the studio's HTTP handler.
type Studio struct {
	svc    *sim.Service
	tokens *auth.Signer
	api    Caller
	log    *slog.Logger
	pages  map[string]*template.Template
	// handler is the pages behind net/http's cross-origin protection.
	handler http.Handler
}

// New returns the studio over the service, signing sessions with tokens
// and acting through api.
func New(svc *sim.Service, tokens *auth.Signer, arm Caller, log *slog.Logger) *Studio {
	s := &Studio{svc: svc, tokens: tokens, api: arm, log: log, pages: map[string]*template.Template{}}
	funcs := template.FuncMap{"since": since, "lower": strings.ToLower, "title": func(s string) string {
		if s == "" {
			return s
		}
		return strings.ToUpper(s[:1]) + s[1:]
	}}
	for _, page := range []string{"computes", "compute", "confirm", "signin", "new", "log", "quota", "files"} {
		s.pages[page] = template.Must(template.New("layout.html").Funcs(funcs).ParseFS(templateFS,
			"templates/layout.html", "templates/parts.html", "templates/"+page+".html"))
	}
	// The list's rows alone, for htmx to swap in.
	s.pages["rows"] = template.Must(template.Must(template.New("parts.html").Funcs(funcs).ParseFS(templateFS, "templates/parts.html")).Lookup("rows").Clone())
	static, err := fs.Sub(staticFS, "assets/static")
	if err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /studio/static/", http.StripPrefix("/studio/static/", http.FileServerFS(static)))
	mux.HandleFunc("GET /studio/signin", s.signIn)
	mux.HandleFunc("POST /studio/signin/as", s.signedIn(s.switchPrincipal))
	mux.HandleFunc("GET /studio/{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/studio/computes", http.StatusSeeOther)
	})
	mux.HandleFunc("GET /studio/computes", s.signedIn(s.list))
	mux.HandleFunc("POST /studio/computes", s.signedIn(s.create))
	// Fragments and forms live outside /studio/computes/, where every
	// name is an instance's.
	mux.HandleFunc("GET /studio/rows", s.signedIn(s.rows))
	mux.HandleFunc("GET /studio/new", s.signedIn(s.newForm))
	mux.HandleFunc("GET /studio/check-name", s.signedIn(s.checkName))
	mux.HandleFunc("GET /studio/quota", s.signedIn(s.quota))
	mux.HandleFunc("GET /studio/computes/{name}", s.signedIn(s.details))
	mux.HandleFunc("GET /studio/computes/{name}/logs/{kind}", s.signedIn(s.logPage))
	mux.HandleFunc("GET /studio/computes/{name}/files", s.signedIn(s.logFolder))
	mux.HandleFunc("GET /studio/computes/{name}/confirm/{action}", s.signedIn(s.confirm))
	mux.HandleFunc("POST /studio/computes/{name}/{action}", s.signedIn(s.act))
	s.handler = http.NewCrossOriginProtection().Handler(mux)
	return s
}

// ServeHTTP serves the studio. A form posted from another site is refused
// with 403 (net/http's CrossOriginProtection: Sec-Fetch-Site and Origin).
func (s *Studio) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Security-Policy", "default-src 'self'; style-src 'self'; script-src 'self'; frame-ancestors 'none'")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Referrer-Policy", "no-referrer")
	s.handler.ServeHTTP(w, r)
}

// SignInURL is the address that signs a browser in with a token.
func SignInURL(endpoint, token string) string {
	return strings.TrimRight(endpoint, "/") + PathPrefix + "signin?token=" + url.QueryEscape(token)
}

// --- sessions ---

// signIn trades the token of the sign-in address for a session cookie and
// takes it out of the address bar.
func (s *Studio) signIn(w http.ResponseWriter, r *http.Request) {
	c, err := s.tokens.Verify(r.URL.Query().Get("token"))
	if err != nil {
		s.render(w, r, http.StatusUnauthorized, "signin", page{Title: "Sign in", Error: "This sign-in address is not valid (" + err.Error() + "). Run 'amlsim studio' for a new one."})
		return
	}
	p := sim.Principal{ObjectID: c.ObjectID, TenantID: c.TenantID, Name: c.Name}
	if s.setCookie(w, signerCookie, p) && s.setCookie(w, sessionCookie, p) {
		http.Redirect(w, r, "/studio/computes", http.StatusSeeOther)
	}
}

// setCookie sets a session cookie for p; false when it could not.
func (s *Studio) setCookie(w http.ResponseWriter, name string, p sim.Principal) bool {
	tok, err := s.tokens.MintFor(sessionAudience, p.ObjectID, p.TenantID, p.Name, sessionTTL)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return false
	}
	http.SetCookie(w, &http.Cookie{Name: name, Value: tok, Path: PathPrefix, Secure: true, HttpOnly: true,
		SameSite: http.SameSiteLaxMode, MaxAge: int(sessionTTL.Seconds())})
	return true
}

// cookiePrincipal is the principal of a session cookie.
func (s *Studio) cookiePrincipal(r *http.Request, name string) (sim.Principal, error) {
	c, err := r.Cookie(name)
	if err != nil {
		return sim.Principal{}, err
	}
	claims, err := s.tokens.VerifyFor(c.Value, sessionAudience)
	if err != nil {
		return sim.Principal{}, err
	}
	p := sim.Principal{ObjectID: claims.ObjectID, TenantID: claims.TenantID, Name: claims.Name}
	if known, ok := s.svc.Principal(p.ObjectID); ok && p.Name == "" {
		p.Name = known.Name
	}
	return p, nil
}

// signer is the principal who signed in, when the studio may let them act
// as another: one who may assign roles in the subscription (an Owner)
// could give themselves any other principal's access anyway.
func (s *Studio) signer(r *http.Request) (sim.Principal, bool) {
	p, err := s.cookiePrincipal(r, signerCookie)
	return p, err == nil && s.svc.Authorize(p, sim.ActAssignmentWrite, s.svc.SubscriptionScope()) == nil
}

// switchPrincipal acts as another principal of the config, so a tester
// can see the studio as a data scientist sees it, and back. Only a
// signer who may assign roles may switch (403 otherwise).
func (s *Studio) switchPrincipal(w http.ResponseWriter, r *http.Request, _ sim.Principal) {
	if _, ok := s.signer(r); !ok {
		http.Error(w, "only a principal who may assign roles (an Owner) may act as another principal", http.StatusForbidden)
		return
	}
	p, ok := s.svc.Principal(r.FormValue("principal"))
	if !ok {
		http.Error(w, "no such principal in amlsim's config", http.StatusBadRequest)
		return
	}
	if s.setCookie(w, sessionCookie, p) {
		http.Redirect(w, r, "/studio/computes", http.StatusSeeOther)
	}
}

// signedIn runs h for the session's principal, or shows how to sign in.
func (s *Studio) signedIn(h func(http.ResponseWriter, *http.Request, sim.Principal)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, err := s.cookiePrincipal(r, sessionCookie)
		if errors.Is(err, http.ErrNoCookie) {
			s.render(w, r, http.StatusUnauthorized, "signin", page{Title: "Sign in"})
			return
		}
		if err != nil {
			s.render(w, r, http.StatusUnauthorized, "signin", page{Title: "Sign in", Error: "Your session has ended. Run 'amlsim studio' for a new sign-in address."})
			return
		}
		h(w, r, p)
	}
}

// --- pages ---

// page is what every template gets.
type page struct {
	Title      string
	Error      string
	Me         sim.Principal
	Principals []sim.Principal
	Workspace  string
	Mine       bool
	Computes   []instance
	Compute    *instance
	Action     string
	Notice     string
	Form       *newForm
	Log        string
	Usages     []usage
	Location   string
	Events     []event
	Files      []logFile
	Folder     string
	// CanCreate is whether the user may create instances (computes/write);
	// CanSwitch whether the principal who signed in may act as another.
	CanCreate, CanSwitch bool
}

// instance is a compute instance as the studio shows it, read from the
// ARM API's answer.
type instance struct {
	Name          string
	State         string
	Size          string
	CreatedBy     string
	CreatedByID   string
	AssignedTo    string
	CreatedOn     time.Time
	Location      string
	SSHPort       int
	SSHUser       string
	SSHEnabled    bool
	IP            string
	LastOperation string
	LastOpStatus  string
	LastOpTime    time.Time
	Errors        []string
	Applications  []link
	Mine          bool
	Busy          bool
	Allowed       map[string]bool
}

type link struct{ Name, URL string }

// armCompute is the part of the API's compute resource the studio reads.
type armCompute struct {
	Name       string `json:"name"`
	Location   string `json:"location"`
	Properties struct {
		CreatedOn  time.Time `json:"createdOn"`
		Properties struct {
			State     string `json:"state"`
			VMSize    string `json:"vmSize"`
			CreatedBy struct {
				UserName string `json:"userName"`
				UserID   string `json:"userId"`
			} `json:"createdBy"`
			Personal *struct {
				AssignedUser struct {
					ObjectID string `json:"objectId"`
				} `json:"assignedUser"`
			} `json:"personalComputeInstanceSettings"`
			SSH struct {
				Access string `json:"sshPublicAccess"`
				User   string `json:"adminUserName"`
				Port   int    `json:"sshPort"`
			} `json:"sshSettings"`
			Endpoints struct {
				Public string `json:"publicIpAddress"`
			} `json:"connectivityEndpoints"`
			LastOperation *struct {
				Name   string    `json:"operationName"`
				Status string    `json:"operationStatus"`
				Time   time.Time `json:"operationTime"`
			} `json:"lastOperation"`
			Errors []struct {
				Error struct{ Code, Message string } `json:"error"`
			} `json:"errors"`
			Applications []struct {
				DisplayName string `json:"displayName"`
				EndpointURI string `json:"endpointUri"`
			} `json:"applications"`
		} `json:"properties"`
	} `json:"properties"`
}

// actions are the instance actions the studio offers, with the RBAC
// action each needs.
var actions = map[string]string{
	"start":   sim.ActComputeStart,
	"stop":    sim.ActComputeStop,
	"restart": sim.ActComputeRestart,
	"delete":  sim.ActComputeDelete,
}

// workspace is the workspace the studio shows: the config's first, else
// the first one stored (created through the API). ok is false when there
// is none.
func (s *Studio) workspace() (ws sim.Workspace, ok bool) {
	all, err := s.svc.Workspaces("")
	if err != nil || len(all) == 0 {
		return sim.Workspace{}, false
	}
	for _, c := range s.svc.Config().Workspaces {
		for _, w := range all {
			if strings.EqualFold(w.ResourceGroup, c.ResourceGroup) && strings.EqualFold(w.Name, c.Name) {
				return w, true
			}
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].CreatedOn.Before(all[j].CreatedOn) })
	return all[0], true
}

func (s *Studio) computesPath() string {
	ws, _ := s.workspace()
	return "/subscriptions/" + s.svc.Config().Subscription + "/resourceGroups/" + ws.ResourceGroup +
		"/providers/Microsoft.MachineLearningServices/workspaces/" + ws.Name + "/computes"
}

// call asks the API, as p, and decodes a 2xx answer into out (when not
// nil); another answer is returned as the ARM error it carries.
func (s *Studio) call(r *http.Request, p sim.Principal, method, path string, query url.Values, out any) error {
	req := apiRequest(r, method, path, nil)
	req.Query = query
	resp := s.api.Call(r.Context(), p, req)
	if err := resp.Err(); err != nil {
		return err
	}
	if out != nil {
		return json.Unmarshal(resp.Body, out)
	}
	return nil
}

func apiRequest(r *http.Request, method, path string, body []byte) api.Request {
	return api.Request{Host: r.Host, Method: method, Path: path, Version: apiVersion, Body: body}
}

// templateEscape escapes text for HTML written outside a template.
func templateEscape(s string) string { return template.HTMLEscapeString(s) }

// view is an instance as the page shows it; computes is the path of the
// workspace's computes (computesPath).
func (s *Studio) view(p sim.Principal, c armCompute, computes string) instance {
	pp := c.Properties.Properties
	in := instance{
		Name: c.Name, State: pp.State, Size: pp.VMSize, CreatedBy: pp.CreatedBy.UserName, CreatedByID: pp.CreatedBy.UserID,
		CreatedOn: c.Properties.CreatedOn, Location: c.Location, SSHPort: pp.SSH.Port, SSHUser: pp.SSH.User,
		SSHEnabled: pp.SSH.Access == "Enabled", IP: pp.Endpoints.Public, Allowed: map[string]bool{},
	}
	owner := pp.CreatedBy.UserID
	if pp.Personal != nil && pp.Personal.AssignedUser.ObjectID != "" {
		owner = pp.Personal.AssignedUser.ObjectID
		if u, ok := s.svc.Principal(owner); ok {
			in.AssignedTo = u.Name
		} else {
			in.AssignedTo = owner
		}
	}
	in.Mine = strings.EqualFold(owner, p.ObjectID) || strings.EqualFold(pp.CreatedBy.UserID, p.ObjectID)
	if op := pp.LastOperation; op != nil {
		in.LastOperation, in.LastOpStatus, in.LastOpTime = op.Name, op.Status, op.Time
	}
	for _, e := range pp.Errors {
		in.Errors = append(in.Errors, e.Error.Code+": "+e.Error.Message)
	}
	// Links to applications show once they can answer, as Azure's studio
	// shows them for a running instance.
	if pp.State == string(sim.StateRunning) {
		for _, a := range pp.Applications {
			in.Applications = append(in.Applications, link{a.DisplayName, a.EndpointURI})
		}
	}
	switch in.State {
	case "Creating", "Starting", "Stopping", "Restarting", "Deleting", "Resizing", "SettingUp":
		in.Busy = true
	}
	scope := computes + "/" + c.Name
	for name, act := range actions {
		in.Allowed[name] = stateAllows(in.State, name) && s.svc.Authorize(p, act, scope) == nil
	}
	return in
}

// stateAllows reports whether the studio offers an action in a state: a
// start to a stopped instance, a stop or restart to a running one, a
// delete to any instance not being deleted, as the lifecycle table
// accepts them.
func stateAllows(state, action string) bool {
	switch action {
	case "start":
		return state == string(sim.StateStopped)
	case "stop", "restart":
		return state == string(sim.StateRunning)
	case "delete":
		return state != string(sim.StateDeleting)
	}
	return false
}

// computes reads the workspace's instances, every page of them.
func (s *Studio) computes(r *http.Request, p sim.Principal, mine bool) ([]instance, error) {
	var out []instance
	var query url.Values
	path := s.computesPath()
	for {
		var list struct {
			Value    []armCompute `json:"value"`
			NextLink string       `json:"nextLink"`
		}
		if err := s.call(r, p, "GET", path, query, &list); err != nil {
			return nil, err
		}
		for _, c := range list.Value {
			if in := s.view(p, c, path); !mine || in.Mine {
				out = append(out, in)
			}
		}
		if list.NextLink == "" || len(list.Value) == 0 {
			break
		}
		next, err := url.Parse(list.NextLink)
		if err != nil {
			return nil, err
		}
		query = url.Values{"$skip": {next.Query().Get("$skip")}}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedOn.After(out[j].CreatedOn) })
	return out, nil
}

func (s *Studio) base(r *http.Request, p sim.Principal, title string) page {
	var all []sim.Principal
	for _, c := range s.svc.Config().Principals {
		all = append(all, sim.Principal{ObjectID: c.ObjectID, TenantID: c.TenantID, Name: c.Name})
	}
	ws, ok := s.workspace()
	_, canSwitch := s.signer(r)
	pg := page{Title: title, Me: p, Principals: all, Workspace: ws.Name, CanSwitch: canSwitch,
		CanCreate: ok && s.svc.Authorize(p, sim.ActComputeWrite, s.computesPath()) == nil}
	if !ok {
		pg.Error = "amlsim has no workspace: create one through the API, or name one in the config's [[workspaces]]."
	}
	return pg
}

func (s *Studio) list(w http.ResponseWriter, r *http.Request, p sim.Principal) {
	pg := s.base(r, p, "Compute instances")
	pg.Mine = r.URL.Query().Get("mine") == "1"
	list, err := s.computes(r, p, pg.Mine)
	if err != nil {
		pg.Error = err.Error()
	}
	pg.Computes = list
	pg.Notice = r.URL.Query().Get("notice")
	s.render(w, r, http.StatusOK, "computes", pg)
}

// rows is the list's table body alone, which htmx fetches every few
// seconds, so states change and instances come and go without a reload.
func (s *Studio) rows(w http.ResponseWriter, r *http.Request, p sim.Principal) {
	pg := s.base(r, p, "")
	pg.Mine = r.URL.Query().Get("mine") == "1"
	list, err := s.computes(r, p, pg.Mine)
	if err != nil {
		pg.Error = err.Error()
	}
	pg.Computes = list
	s.render(w, r, http.StatusOK, "rows", pg)
}

func (s *Studio) details(w http.ResponseWriter, r *http.Request, p sim.Principal) {
	pg := s.base(r, p, r.PathValue("name"))
	var c armCompute
	if err := s.call(r, p, "GET", s.computesPath()+"/"+r.PathValue("name"), nil, &c); err != nil {
		pg.Error = err.Error()
		s.render(w, r, http.StatusNotFound, "compute", pg)
		return
	}
	in := s.view(p, c, s.computesPath())
	pg.Compute = &in
	pg.Events = s.events(r, p, in.Name)
	pg.Notice = r.URL.Query().Get("notice")
	s.render(w, r, http.StatusOK, "compute", pg)
}

// confirm asks before an action, on a page of its own (no script needed).
func (s *Studio) confirm(w http.ResponseWriter, r *http.Request, p sim.Principal) {
	action := r.PathValue("action")
	if _, ok := actions[action]; !ok {
		http.NotFound(w, r)
		return
	}
	pg := s.base(r, p, action+" "+r.PathValue("name"))
	pg.Compute = &instance{Name: r.PathValue("name")}
	pg.Action = action
	s.render(w, r, http.StatusOK, "confirm", pg)
}

// act runs an action through the API and goes back to where it was asked
// for, with the API's answer.
func (s *Studio) act(w http.ResponseWriter, r *http.Request, p sim.Principal) {
	name, action := r.PathValue("name"), r.PathValue("action")
	if _, ok := actions[action]; !ok {
		http.NotFound(w, r)
		return
	}
	path := s.computesPath() + "/" + name
	method, query := "POST", url.Values(nil)
	switch action {
	case "delete":
		method, query = "DELETE", url.Values{"underlyingResourceAction": {"Delete"}}
	default:
		path += "/" + action
	}
	back := "/studio/computes/" + url.PathEscape(name)
	if action == "delete" {
		back = "/studio/computes"
	}
	notice := strings.ToUpper(action[:1]) + action[1:] + " of " + name + " requested."
	if err := s.call(r, p, method, path, query, nil); err != nil {
		notice = err.Error()
	}
	http.Redirect(w, r, back+"?notice="+url.QueryEscape(notice), http.StatusSeeOther)
}

func (s *Studio) render(w http.ResponseWriter, r *http.Request, status int, name string, pg page) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if err := s.pages[name].Execute(w, pg); err != nil {
		s.log.Error("studio page", "page", name, "err", err)
	}
}

// since is how long ago t was, as a person says it.
func since(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	d := time.Since(t)
	switch {
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return fmt.Sprintf("%d min ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h ago", int(d.Hours()))
	}
	return t.UTC().Format("2006-01-02")
}
