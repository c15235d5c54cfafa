// Package api serves the simulated cloud over the Azure Resource Manager
// REST API: the paths, bodies, headers, status codes and long-running
// operation protocol that the Azure SDKs and CLIs expect.
package api

import (
	"errors"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/amlsim/amlsim/sim"
	"github.com/amlsim/amlsim/sim/armtemplate"
	"github.com/amlsim/amlsim/sim/auth"
	"github.com/amlsim/amlsim/sim/clock"
	"github.com/google/uuid"
)

// MaxBody is the largest request body accepted.
const MaxBody = 1 << 20

// Provider is the ARM resource provider namespace served.
const Provider = "Microsoft.MachineLearningServices"

var apiVersionRE = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}(-preview)?$`)

// Server is the ARM endpoint of a simulated cloud.
type Server struct {
	svc    *sim.Service
	tokens *auth.Signer
	log    *slog.Logger
	poll   time.Duration
	// bodyTimeout bounds the reading of a request's body.
	bodyTimeout time.Duration
	// faults serves FaultsPath and applies its rules (serve --faults).
	faults bool
	// testClock, when set, is served at ClockPath.
	testClock *clock.Test
	routes    []route
	// auditLog, when set, gets a line per request.
	auditLog *AuditLog
	// deploys are the template deployments running.
	deploys deployments
	// logKey signs the URLs of jobs' logs (history.go).
	logKey []byte
}

// Option configures a Server.
type Option func(*Server)

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(s *Server) { s.log = l } }

// WithPollInterval tells clients to poll operations this often. Below one
// second it is sent as retry-after-ms (which azcore prefers) beside the
// Retry-After of one second every ARM client understands.
func WithPollInterval(d time.Duration) Option { return func(s *Server) { s.poll = d } }

// WithBodyTimeout bounds the time a client has to send a request's body
// (default DefaultBodyTimeout).
func WithBodyTimeout(d time.Duration) Option { return func(s *Server) { s.bodyTimeout = d } }

// DefaultBodyTimeout is how long a client has to send a request's body.
const DefaultBodyTimeout = time.Minute

// New returns the HTTP handler of the ARM API over svc, accepting tokens
// signed by tokens.
func New(svc *sim.Service, tokens *auth.Signer, opts ...Option) *Server {
	s := &Server{svc: svc, tokens: tokens, log: slog.Default(), poll: time.Second, bodyTimeout: DefaultBodyTimeout, logKey: newLogKey()}
	for _, o := range opts {
		o(s)
	}
	s.routes = s.routeTable()
	return s
}

// Close stops the template deployments running and waits for them; call
// it before closing the service. They end Failed at the next start.
func (s *Server) Close() { s.deploys.close() }

// request is what a handler gets: the parsed path and the caller.
type request struct {
	*http.Request
	vars      map[string]string
	principal sim.Principal
	version   string
	// scope is the ARM scope the request acts on.
	scope string
	// fault, when set, gets the fault rule the request's operation was
	// started under, for the audit log.
	fault *string
}

// started records, for the audit log, the fault rule op was started
// under.
func (r *request) started(op *sim.Operation) {
	if op != nil && op.Fault != nil && r.fault != nil {
		*r.fault = op.Fault.Rule
	}
}

func (r *request) workspace() sim.WorkspaceRef {
	return sim.WorkspaceRef{ResourceGroup: r.vars["rg"], Name: r.vars["ws"]}
}

// baseURL is the scheme and host clients reached us on, for the absolute
// URLs of polling headers and nextLinks.
func (r *request) baseURL() string { return "https://" + r.Host }

// handlerFunc is a route's handler. It writes the response, or returns
// an error for ServeHTTP to write: it must not do both.
type handlerFunc func(w http.ResponseWriter, r *request) error

type route struct {
	method   string
	segments []string // literal segments, or {var}
	handle   handlerFunc
	// actions are the Azure RBAC actions the caller needs over the
	// route's scope: the request path, unless scope says otherwise.
	actions []string
	scope   func(vars map[string]string) string
	// resources marks Microsoft.Resources routes: any well-formed
	// api-version is answered, and the route's resource group, if it
	// names one, need not exist (it is the group itself).
	resources bool
	// maxBody, when set, replaces MaxBody.
	maxBody int64
}

func (s *Server) ServeHTTP(w http.ResponseWriter, hr *http.Request) {
	start := time.Now()
	reqID := uuid.NewString()
	w.Header().Set("x-ms-request-id", reqID)
	corr := hr.Header.Get("x-ms-correlation-request-id")
	if corr == "" {
		corr = reqID
	}
	w.Header().Set("x-ms-correlation-request-id", corr)
	rec := &statusRecorder{ResponseWriter: w, status: 200}
	var who sim.Principal
	var actions []string
	var fault string
	defer func() {
		s.log.Debug("request", "method", hr.Method, "path", redactPath(hr.URL.Path), "status", rec.status, "took", time.Since(start))
		s.audit(who, hr, actions, rec.status, fault)
	}()

	if err := s.serve(rec, hr, &who, &actions, &fault); err != nil {
		fault = sim.AsError(err).Fault
		writeError(rec, err)
	}
}

// serve authenticates, checks and routes a request. An error it returns
// is written by ServeHTTP; who, actions and fault get the caller, the
// RBAC actions checked and the fault rule the request's operation was
// started under, for the audit log.
func (s *Server) serve(w http.ResponseWriter, hr *http.Request, who *sim.Principal, actions *[]string, fault *string) error {
	if strings.HasPrefix(hr.URL.Path, sim.AppPathPrefix) {
		return s.serveApplication(w, hr, who, actions)
	}
	if strings.EqualFold(strings.TrimRight(hr.URL.Path, "/"), "/metadata/endpoints") && hr.Method == http.MethodGet {
		return s.metadataEndpoints(w, hr)
	}
	if strings.HasPrefix(hr.URL.Path, IdentityPathPrefix) {
		return s.serveIdentity(w, hr, who)
	}
	if oauthPath(hr.URL.Path) {
		return s.serveOAuth(w, hr, who)
	}
	// Read without a token, as on Azure (history.go).
	if hr.URL.Path == DiscoveryPath && hr.Method == http.MethodGet {
		return s.serveDiscovery(w, hr)
	}
	if strings.HasPrefix(hr.URL.Path, JobLogsPrefix) && hr.Method == http.MethodGet {
		return s.serveJobLog(w, hr)
	}
	claims, err := s.authenticate(hr)
	if err != nil {
		return err
	}
	*who = sim.Principal{ObjectID: claims.ObjectID, TenantID: claims.TenantID, Name: claims.Name}
	if known, ok := s.svc.Principal(who.ObjectID); ok && who.Name == "" {
		who.Name = known.Name
	}
	if hr.URL.Path == FaultsPath || strings.HasPrefix(hr.URL.Path, FaultsPath+"/") {
		return s.serveFaults(w, hr, *who, actions)
	}
	if strings.HasPrefix(hr.URL.Path, HistoryPrefix) {
		return s.serveHistory(w, hr, *who, actions)
	}
	if hr.URL.Path == PrincipalsPath {
		return s.servePrincipals(w, hr, *who)
	}
	if strings.HasPrefix(hr.URL.Path, "/amlsim/") {
		return s.serveClock(w, hr, *who, actions)
	}
	version := hr.URL.Query().Get("api-version")
	if version == "" {
		return sim.Errorf(sim.KindBadRequest, "MissingApiVersionParameter",
			"The api-version query parameter (?api-version=) is required for all requests.")
	}
	if !apiVersionRE.MatchString(version) {
		// ARM lists the supported versions (Azure/azure-sdk-for-net#3160).
		return sim.Errorf(sim.KindBadRequest, "InvalidApiVersionParameter",
			"The api-version '%s' is invalid. The supported versions are '%s'.", version, strings.Join(publishedVersions, ","))
	}
	if scope, rest, ok := splitAuthz(hr.URL.Path); ok {
		return s.serveAuthorization(w, hr, *who, scope, rest, actions)
	}
	rt, vars, err := s.match(hr.Method, hr.URL.Path)
	if err != nil {
		return err
	}
	if !rt.resources {
		if err := s.checkVersion(version, rt, vars); err != nil {
			return err
		}
	}
	if sub, ok := vars["sub"]; ok && !strings.EqualFold(sub, s.svc.Config().Subscription) {
		return sim.Errorf(sim.KindNotFound, "SubscriptionNotFound", "The subscription '%s' could not be found.", sub)
	}
	scope := strings.TrimRight(hr.URL.Path, "/")
	if rt.scope != nil {
		scope = rt.scope(vars)
	}
	*actions = rt.actions
	for _, a := range rt.actions {
		if err := s.svc.Authorize(*who, a, scope); err != nil {
			return err
		}
	}
	// A request under a group that does not exist gets ARM's
	// ResourceGroupNotFound, except on the group itself.
	if rg, ok := vars["rg"]; ok && rt.segments[len(rt.segments)-1] != "{rg}" {
		if _, err := s.svc.ResourceGroup(rg); err != nil {
			return err
		}
	}
	if err := s.requestFault(w, hr, rt, vars, *who); err != nil {
		return err
	}
	limit := int64(MaxBody)
	if rt.maxBody > 0 {
		limit = rt.maxBody
	}
	hr.Body = http.MaxBytesReader(w, hr.Body, limit)
	// A client that sends half a body and stalls must not hold its
	// request (and a connection) for ever.
	if err := http.NewResponseController(w).SetReadDeadline(time.Now().Add(s.bodyTimeout)); err != nil {
		s.log.Debug("no read deadline for the body", "err", err)
	}
	return rt.handle(w, &request{
		Request:   hr,
		vars:      vars,
		principal: *who,
		version:   version,
		scope:     scope,
		fault:     fault,
	})
}

// authenticate checks the bearer token.
func (s *Server) authenticate(r *http.Request) (auth.Claims, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return auth.Claims{}, sim.Errorf(sim.KindUnauthorized, "AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing.")
	}
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" {
		// Azure/azure-sdk-for-python#4124.
		return auth.Claims{}, sim.Errorf(sim.KindUnauthorized, "AuthenticationFailedInvalidHeader", "Authentication failed. The 'Authorization' header is provided in an invalid format.")
	}
	return s.verify(tok)
}

// verify checks a bearer token's signature, audience and expiry.
func (s *Server) verify(tok string) (auth.Claims, error) {
	c, err := s.tokens.Verify(strings.TrimSpace(tok))
	switch {
	case err == nil:
		return c, nil
	case errors.Is(err, auth.ErrExpired) && c.ExpiresAt != nil:
		// ARM's text, times as .NET prints them
		// (microsoft/foundry-dev-tools#461).
		const dotnet = "1/2/2006 3:04:05 PM"
		return c, sim.Errorf(sim.KindUnauthorized, "ExpiredAuthenticationToken",
			"The access token expiry UTC time '%s' is earlier than current UTC time '%s'.",
			c.ExpiresAt.UTC().Format(dotnet), time.Now().UTC().Format(dotnet))
	default:
		s.log.Debug("invalid token", "err", err)
		return c, sim.Errorf(sim.KindUnauthorized, "InvalidAuthenticationToken", "The access token is invalid.")
	}
}

// match finds the route for a path, ignoring the case of literal segments
// as ARM does.
func (s *Server) match(method, path string) (route, map[string]string, error) {
	segs := strings.Split(strings.Trim(path, "/"), "/")
	pathFound := false
	for _, rt := range s.routes {
		vars, ok := matchSegments(rt.segments, segs)
		if !ok {
			continue
		}
		pathFound = true
		if rt.method == method {
			return rt, vars, nil
		}
	}
	if pathFound {
		return route{}, nil, sim.Errorf(sim.KindMethod, "HttpMethodNotSupported",
			"The requested resource does not support http method '%s'.", method)
	}
	return route{}, nil, sim.Errorf(sim.KindNotFound, "NotFound", "The requested path '%s' was not found.", path)
}

func matchSegments(pattern, segs []string) (map[string]string, bool) {
	if len(pattern) != len(segs) {
		return nil, false
	}
	vars := map[string]string{}
	for i, p := range pattern {
		if strings.HasPrefix(p, "{") {
			if segs[i] == "" {
				return nil, false
			}
			vars[strings.Trim(p, "{}")] = segs[i]
			continue
		}
		if !strings.EqualFold(p, segs[i]) {
			return nil, false
		}
	}
	return vars, true
}

func (s *Server) routeTable() []route {
	const (
		ws       = "subscriptions/{sub}/resourceGroups/{rg}/providers/" + Provider + "/workspaces"
		computes = ws + "/{ws}/computes"
		compute  = computes + "/{name}"
		loc      = "subscriptions/{sub}/providers/" + Provider + "/locations/{loc}"
	)
	r := func(method, path string, h handlerFunc, actions ...string) route {
		return route{method: method, segments: strings.Split(path, "/"), handle: h, actions: actions}
	}
	// Actions on an instance are checked over the instance's scope.
	on := func(rt route) route {
		rt.scope = func(v map[string]string) string {
			return "/subscriptions/" + v["sub"] + "/resourceGroups/" + v["rg"] + "/providers/" + Provider + "/workspaces/" + v["ws"] + "/computes/" + v["name"]
		}
		return rt
	}
	// Microsoft.Resources routes.
	res := func(method, path string, h handlerFunc, actions ...string) route {
		rt := r(method, path, h, actions...)
		rt.resources = true
		return rt
	}
	const (
		groups      = "subscriptions/{sub}/resourcegroups"
		group       = groups + "/{rg}"
		deployments = group + "/providers/Microsoft.Resources/deployments"
		deployment  = deployments + "/{name}"
	)
	// A deployment request may be as large as ARM allows (4 MB).
	deploy := func(rt route) route {
		rt.maxBody = armtemplate.MaxRequestSize + 1
		return rt
	}
	return []route{
		res("GET", "subscriptions", s.listSubscriptions),
		res("GET", "subscriptions/{sub}", s.getSubscription),
		res("GET", "tenants", s.listTenants),
		res("GET", "subscriptions/{sub}/locations", s.listLocations),
		res("GET", "subscriptions/{sub}/providers", s.listProviders),
		res("GET", "subscriptions/{sub}/providers/{ns}", s.getProvider),
		res("POST", "subscriptions/{sub}/providers/{ns}/register", s.getProvider, ActProviderRegister),
		res("GET", "subscriptions/{sub}/operationresults/{op}", s.groupDeleteResult),
		res("GET", groups, s.listGroups),
		res("GET", group, s.getGroup, ActGroupRead),
		res("HEAD", group, s.headGroup, ActGroupRead),
		res("PUT", group, s.putGroup, ActGroupWrite),
		res("PATCH", group, s.patchGroup, ActGroupWrite),
		res("DELETE", group, s.deleteGroup, ActGroupDelete),
		res("GET", group+"/resources", s.listGroupResources, ActGroupResourcesRead),
		res("GET", deployments, s.listDeployments, ActDeploymentRead),
		res("GET", deployment, s.getDeployment, ActDeploymentRead),
		res("HEAD", deployment, s.headDeployment, ActDeploymentRead),
		deploy(res("PUT", deployment, s.putDeployment, ActDeploymentWrite)),
		res("DELETE", deployment, s.deleteDeployment, ActDeploymentDelete),
		deploy(res("POST", deployment+"/validate", s.validateDeployment, ActDeploymentValid)),
		deploy(res("POST", deployment+"/whatIf", s.whatIfDeployment, ActDeploymentWhatIf)),
		res("POST", deployment+"/cancel", s.cancelDeployment, ActDeploymentCancel),
		res("POST", deployment+"/exportTemplate", s.exportDeploymentTemplate, ActDeploymentRead),
		res("GET", deployment+"/operations", s.listDeploymentOperations, ActDeploymentOpsRead),
		res("GET", deployment+"/operations/{op}", s.getDeploymentOperation, ActDeploymentOpsRead),
		// The spec's paths of deployment operations have no provider
		// segment (resources.json, DeploymentOperations_List); az uses them.
		res("GET", group+"/deployments/{name}/operations", s.listDeploymentOperations, ActDeploymentOpsRead),
		res("GET", group+"/deployments/{name}/operations/{op}", s.getDeploymentOperation, ActDeploymentOpsRead),
		res("GET", deployment+"/operationStatuses/{op}", s.deploymentStatus, ActDeploymentRead),
		r("GET", "subscriptions/{sub}/providers/"+Provider+"/workspaces", s.listAllWorkspaces, sim.ActWorkspaceRead),
		r("GET", ws, s.listWorkspaces, sim.ActWorkspaceRead),
		r("GET", ws+"/{ws}", s.getWorkspace, sim.ActWorkspaceRead),
		r("PUT", ws+"/{ws}", s.putWorkspace, sim.ActWorkspaceWrite),
		r("DELETE", ws+"/{ws}", s.deleteWorkspace, sim.ActWorkspaceDelete),
		r("GET", ws+"/{ws}/jobs", s.listJobs, ActJobRead),
		r("GET", ws+"/{ws}/jobs/{name}", s.getJob, ActJobRead),
		deploy(r("PUT", ws+"/{ws}/jobs/{name}", s.putJob, ActJobWrite)), // ARM's 4 MB: a long command gets the job's own error
		r("DELETE", ws+"/{ws}/jobs/{name}", s.deleteJob, ActJobDelete),
		r("POST", ws+"/{ws}/jobs/{name}/cancel", s.cancelJob, ActJobCancel),
		r("GET", ws+"/{ws}/jobs/{name}/operationresults/{kind}", s.jobOperationResult, ActJobOpResult),
		r("GET", ws+"/{ws}/environments/{name}/versions/{version}", s.getEnvironment, ActEnvRead),
		r("PUT", ws+"/{ws}/environments/{name}/versions/{version}", s.putEnvironment, ActEnvWrite),
		r("GET", computes, s.listComputes, sim.ActComputeRead),
		r("GET", compute, s.getCompute, sim.ActComputeRead),
		// A create needs the name check too (S22).
		r("PUT", compute, s.putCompute, sim.ActComputeWrite, sim.ActCheckName),
		r("DELETE", compute, s.deleteCompute, sim.ActComputeDelete),
		r("PATCH", compute, s.patchCompute, sim.ActComputeWrite),
		on(r("POST", compute+"/start", s.action(sim.ActionStart), sim.ActComputeStart)),
		on(r("POST", compute+"/stop", s.action(sim.ActionStop), sim.ActComputeStop)),
		on(r("POST", compute+"/restart", s.action(sim.ActionRestart), sim.ActComputeRestart)),
		// No source names the RBAC actions of the preview operations:
		// the changes need computes/write, the size list computes/read.
		on(r("POST", compute+"/resize", s.resize, sim.ActComputeWrite)),
		on(r("POST", compute+"/getAllowedVmSizesForResize", s.allowedResizeSizes, sim.ActComputeRead)),
		on(r("POST", compute+"/customServices", s.updateCustomServices, sim.ActComputeWrite)),
		on(r("POST", compute+"/updateDataMounts", s.updateDataMounts, sim.ActComputeWrite)),
		on(r("POST", compute+"/updateIdleShutdownSetting", s.updateIdleShutdown, sim.ActComputeWrite)),
		on(r("POST", compute+"/listNodes", s.listNodes, sim.ActComputeListNodes)),
		on(r("POST", compute+"/listKeys", s.listKeys, sim.ActComputeListKeys)),
		on(r("GET", compute+"/amlsim/events", s.events, sim.ActComputeRead)),
		on(r("GET", compute+"/amlsim/logs/{kind}", s.logs, sim.ActComputeRead)),
		on(r("GET", compute+"/amlsim/activity", s.activity, sim.ActComputeRead)),
		on(r("PUT", compute+"/amlsim/activity", s.activity, sim.ActComputeWrite)),
		r("GET", loc+"/usages", s.usages, sim.ActUsagesRead),
		r("GET", loc+"/vmSizes", s.vmSizes, sim.ActVMSizesRead),
		r("GET", loc+"/quotas", s.quotas, sim.ActQuotasRead),
		r("POST", loc+"/updateQuotas", s.updateQuotas, sim.ActQuotasWrite),
		// Whoever started an operation may poll it: its URL, with an
		// unguessable ID, needs only a valid token, as on ARM.
		r("GET", loc+"/computeOperationsStatus/{op}", s.operationStatus),
		r("GET", loc+"/computeOperationsResults/{op}", s.operationResult),
		r("GET", loc+"/workspaceOperationsStatus/{op}", s.operationStatus),
		r("GET", loc+"/workspaceOperationsResults/{op}", s.operationResult),
	}
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the connection beneath, for
// the application proxy's flushes and WebSocket upgrades.
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
