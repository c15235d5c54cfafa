package api

import (
	"errors"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/amlsim/amlsim/sim"
)

// The application proxy serves each instance's applications (its Jupyter
// notebook server) at sim.AppBasePath on this endpoint, as Azure serves
// them at https://NAME.REGION.instances.azureml.ms, and lets through only
// the instance's owner (S24) or, when the instance was created with
// applicationSharingPolicy Shared, anyone granted applicationaccess/action.
// A browser cannot send a bearer header, so a token may also come once as
// ?access_token=…, which the proxy turns into a cookie scoped to the
// instance's path.

// appCookie is the cookie that carries the caller's token to the proxy.
const appCookie = "amlsim_access_token"

// appTokenParam is the query parameter a browser signs in with.
const appTokenParam = "access_token"

func isOwner(p sim.Principal, inst sim.Instance) bool {
	return inst.Owner.ObjectID != "" && strings.EqualFold(p.ObjectID, inst.Owner.ObjectID)
}

// serveApplication authenticates and authorizes a request for an
// instance's application and proxies it to the guest.
func (s *Server) serveApplication(w http.ResponseWriter, hr *http.Request, who *sim.Principal, actions *[]string) error {
	location, name, ok := splitAppPath(hr.URL.Path)
	if !ok {
		return sim.Errorf(sim.KindNotFound, "NotFound", "The requested path '%s' was not found.", hr.URL.Path)
	}
	base := sim.AppBasePath(location, name)
	tok, fromQuery := appToken(hr)
	if tok == "" {
		return sim.Errorf(sim.KindUnauthorized, "AuthenticationFailed",
			"Authentication failed. Send a bearer token (amlsim token) in the 'Authorization' header, or open %s?%s=TOKEN once in a browser.", base, appTokenParam)
	}
	claims, err := s.verify(tok)
	if err != nil {
		return err
	}
	*who = sim.Principal{ObjectID: claims.ObjectID, TenantID: claims.TenantID, Name: claims.Name}
	*actions = []string{sim.ActApplicationAccess}
	inst, err := s.svc.ComputeAt(location, name)
	if err != nil {
		return err
	}
	scope := inst.ResourceID(s.sub())
	if err := s.svc.Authorize(*who, sim.ActApplicationAccess, scope); err != nil {
		return err
	}
	if !isOwner(*who, inst) && !inst.SharedApplications() {
		return sim.Errorf(sim.KindForbidden, "AuthorizationFailed",
			"The client '%s' with object id '%s' is not the user of compute instance '%s': its applicationSharingPolicy is Personal, so its applications are for its owner '%s' (%s) only, whatever the client's role in the workspace.",
			who.ObjectID, who.ObjectID, inst.Name, inst.Owner.Name, inst.Owner.ObjectID)
	}
	if !inst.HasApplications() {
		return sim.Errorf(sim.KindNotFound, "ApplicationNotFound",
			"Compute instance '%s' was created without applications; create it again to get Jupyter.", inst.Name)
	}
	if !inst.State.VMUp() {
		return sim.Errorf(sim.KindConflict, "ComputeInstanceNotRunning",
			"The applications of compute instance '%s' are available while it runs; it is %s.", inst.Name, inst.State)
	}
	if svc, ok := strings.CutPrefix(strings.TrimPrefix(hr.URL.Path, base), customServicePath); ok {
		svc, _, _ = strings.Cut(svc, "/")
		for _, name := range inst.CustomServices() {
			if strings.EqualFold(name, svc) {
				return sim.Errorf(sim.KindUnavailable, "CustomServiceNotRunning",
					"The custom service '%s' of compute instance '%s' is not running: the guest of amlsim has no container runtime to run its image.", name, inst.Name)
			}
		}
	}
	if fromQuery {
		// Keep the token in a cookie for the pages and sockets that
		// follow, and take it out of the address bar.
		http.SetCookie(w, &http.Cookie{Name: appCookie, Value: tok, Path: base, Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode})
		u := *hr.URL
		q := u.Query()
		q.Del(appTokenParam)
		u.RawQuery = q.Encode()
		http.Redirect(w, hr, u.RequestURI(), http.StatusSeeOther)
		return nil
	}
	s.appProxy(inst).ServeHTTP(w, hr)
	return nil
}

// splitAppPath parses /amlsim/instances/LOCATION/NAME/….
func splitAppPath(p string) (location, name string, ok bool) {
	rest := strings.TrimPrefix(p, sim.AppPathPrefix)
	parts := strings.SplitN(rest, "/", 3)
	if len(parts) < 2 || parts[0] == "" || parts[1] == "" {
		return "", "", false
	}
	return parts[0], parts[1], true
}

// appToken finds the caller's token: the Authorization header, then the
// query parameter, then the cookie.
func appToken(r *http.Request) (tok string, fromQuery bool) {
	if h := r.Header.Get("Authorization"); h != "" {
		if scheme, t, ok := strings.Cut(h, " "); ok && strings.EqualFold(scheme, "Bearer") {
			return strings.TrimSpace(t), false
		}
	}
	if t := r.URL.Query().Get(appTokenParam); t != "" {
		return t, true
	}
	if c, err := r.Cookie(appCookie); err == nil {
		return c.Value, false
	}
	return "", false
}

// appProxy forwards to the instance's notebook server. The caller's
// credentials stay here: the guest gets the instance's own token instead,
// and the Host the client used, which Jupyter compares with the Origin of
// WebSocket requests.
func (s *Server) appProxy(inst sim.Instance) *httputil.ReverseProxy {
	target := &url.URL{Scheme: "http", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(inst.AppPort))}
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.SetXForwarded()
			pr.Out.Host = pr.In.Host
			pr.Out.Header.Set("Authorization", "token "+inst.AppToken)
			dropCookie(pr.Out, appCookie)
		},
		FlushInterval: 100 * time.Millisecond,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if errors.Is(r.Context().Err(), err) {
				return // the client went away
			}
			writeError(w, sim.Errorf(sim.KindUnavailable, "ApplicationUnavailable",
				"Jupyter on compute instance '%s' does not answer (yet: it starts once the setup scripts are done): %v", inst.Name, err))
		},
	}
}

// dropCookie removes one cookie from a request, keeping the others.
func dropCookie(r *http.Request, name string) {
	cookies := r.Cookies()
	r.Header.Del("Cookie")
	for _, c := range cookies {
		if c.Name != name {
			r.AddCookie(c)
		}
	}
}
