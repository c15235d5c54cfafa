package studio

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/amlsim/amlsim/sim"
)

// maxScript is the largest setup script the create form takes.
const maxScript = 1 << 20

// size is a VM size as the create form offers it, with the quota of its
// family left in the region.
type size struct {
	Name      string
	Family    string
	VCPUs     int
	MemoryGB  float64
	QuotaLeft int
}

// maxSchedules is how many schedules an instance may have ("a total of
// four schedules per compute instance", how-to-create-compute-instance.md).
const maxSchedules = 4

// weekDays are the days a schedule row offers, as the API names them.
var weekDays = []string{"Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"}

// scheduleRow is one schedule of the create form: start or stop the
// instance at a time of day on some days of the week, in a time zone, as
// Azure's studio offers them ("Start compute instance or Stop compute
// instance … Time zone … Startup time or Shutdown time … days").
type scheduleRow struct {
	Action, Time, TimeZone string
	Days                   map[string]bool
}

// schedulesFrom reads the form's schedule rows (action0, time0, zone0,
// days0 …) into the API's computeStartStop entries (Recurrence, weekly).
func schedulesFrom(r *http.Request) ([]scheduleRow, []any, error) {
	var rows []scheduleRow
	var out []any
	for i := range maxSchedules {
		n := strconv.Itoa(i)
		row := scheduleRow{Action: r.FormValue("action" + n), Time: r.FormValue("time" + n), TimeZone: r.FormValue("zone" + n), Days: map[string]bool{}}
		for _, d := range r.Form["days"+n] {
			row.Days[d] = true
		}
		rows = append(rows, row)
		if row.Action == "" {
			continue
		}
		at, err := time.Parse("15:04", row.Time)
		if err != nil {
			return rows, nil, fmt.Errorf("schedule %d: the time %q is not HH:MM", i+1, row.Time)
		}
		var days []string
		for _, d := range weekDays {
			if row.Days[d] {
				days = append(days, d)
			}
		}
		if len(days) == 0 {
			return rows, nil, fmt.Errorf("schedule %d: choose at least one day", i+1)
		}
		zone := row.TimeZone
		if zone == "" {
			zone = "UTC"
		}
		out = append(out, map[string]any{
			"action": row.Action, "triggerType": "Recurrence", "status": "Enabled",
			"recurrence": map[string]any{"frequency": "Week", "interval": 1, "timeZone": zone,
				"schedule": map[string]any{"hours": []int{at.Hour()}, "minutes": []int{at.Minute()}, "weekDays": days}},
		})
	}
	return rows, out, nil
}

// usage is one quota of the region, for the quota page's bars.
type usage struct {
	Name    string
	Current int
	Limit   int
	Percent int
}

// newForm is what the create form shows and, after a refused create,
// what the user had entered.
type newForm struct {
	Name, Size, SSHKey, CreationArgs, StartupArgs, AssignTo, IdleMinutes string
	SSH                                                                  bool
	CreationScript, StartupScript                                        string
	Schedules                                                            []scheduleRow
	Days                                                                 []string
	Sizes                                                                []size
	Scripts                                                              []string
	UserFolder                                                           string
}

func (s *Studio) location() string {
	ws, _ := s.workspace()
	return ws.Location
}

func (s *Studio) locationPath(what string) string {
	return "/subscriptions/" + s.svc.Config().Subscription + "/providers/Microsoft.MachineLearningServices/locations/" + s.location() + "/" + what
}

// sizes reads the catalogue and the region's usages through the API.
func (s *Studio) sizes(r *http.Request, p sim.Principal) ([]size, []usage, error) {
	var vs struct {
		Value []struct {
			Name     string  `json:"name"`
			Family   string  `json:"family"`
			VCPUs    int     `json:"vCPUs"`
			MemoryGB float64 `json:"memoryGB"`
		} `json:"value"`
	}
	if err := s.call(r, p, "GET", s.locationPath("vmSizes"), nil, &vs); err != nil {
		return nil, nil, err
	}
	var us struct {
		Value []struct {
			Name struct {
				Value          string `json:"value"`
				LocalizedValue string `json:"localizedValue"`
			} `json:"name"`
			CurrentValue int `json:"currentValue"`
			Limit        int `json:"limit"`
		} `json:"value"`
	}
	if err := s.call(r, p, "GET", s.locationPath("usages"), nil, &us); err != nil {
		return nil, nil, err
	}
	left := map[string]int{}
	var usages []usage
	for _, u := range us.Value {
		left[strings.ToLower(u.Name.Value)] = u.Limit - u.CurrentValue
		pct := 0
		if u.Limit > 0 {
			pct = min(100, u.CurrentValue*100/u.Limit)
		}
		usages = append(usages, usage{Name: u.Name.LocalizedValue, Current: u.CurrentValue, Limit: u.Limit, Percent: pct})
	}
	var out []size
	for _, v := range vs.Value {
		out = append(out, size{Name: v.Name, Family: v.Family, VCPUs: v.VCPUs, MemoryGB: v.MemoryGB, QuotaLeft: left[strings.ToLower(v.Family)]})
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].VCPUs < out[j].VCPUs || out[i].VCPUs == out[j].VCPUs && out[i].Name < out[j].Name
	})
	return out, usages, nil
}

var folderRE = regexp.MustCompile(`[^a-z0-9._-]+`)

// userFolder is the user's folder of the workspace share, where the
// studio puts the scripts it uploads, as Azure's studio puts them under
// Users/<alias> (how-to-customize-compute-instance.md).
func userFolder(p sim.Principal) string {
	name := strings.Trim(folderRE.ReplaceAllString(strings.ToLower(p.Name), "-"), "-")
	if name == "" {
		name = strings.ToLower(p.ObjectID)
	}
	return "Users/" + name
}

// shareScripts lists the shell scripts of the workspace share, as paths
// relative to it.
func (s *Studio) shareScripts() []string {
	dir, err := s.svc.WorkspaceShare(s.workspaceRef())
	if err != nil || dir == "" {
		return nil
	}
	var out []string
	filepath.WalkDir(filepath.Join(dir, "Users"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".sh") {
			if rel, err := filepath.Rel(dir, p); err == nil {
				out = append(out, filepath.ToSlash(rel))
			}
		}
		return nil
	})
	return out
}

func (s *Studio) newPage(w http.ResponseWriter, r *http.Request, p sim.Principal, form newForm, status int, errText string) {
	pg := s.base(r, p, "New compute instance")
	sizes, _, err := s.sizes(r, p)
	if err != nil {
		errText = err.Error()
	}
	form.Sizes, form.Scripts, form.UserFolder, form.Days = sizes, s.shareScripts(), userFolder(p), weekDays
	for len(form.Schedules) < maxSchedules {
		form.Schedules = append(form.Schedules, scheduleRow{TimeZone: "UTC", Days: map[string]bool{}})
	}
	pg.Form, pg.Error = &form, errText
	s.render(w, r, status, "new", pg)
}

func (s *Studio) newForm(w http.ResponseWriter, r *http.Request, p sim.Principal) {
	s.newPage(w, r, p, newForm{Size: "Standard_DS3_v2", SSH: false, AssignTo: p.ObjectID}, http.StatusOK, "")
}

// checkName answers the form's live check of a name: Azure's naming rule,
// then whether the region has an instance of that name.
func (s *Studio) checkName(w http.ResponseWriter, r *http.Request, p sim.Principal) {
	name := r.URL.Query().Get("name")
	msg, ok := "", true
	switch {
	case name == "":
		msg, ok = "", true
	case sim.CheckComputeName(name) != nil:
		msg, ok = "3 to 24 letters, digits and hyphens, starting with a letter; a hyphen must be followed by a letter somewhere after it.", false
	default:
		if _, err := s.svc.ComputeAt(s.location(), name); err == nil {
			msg, ok = "An instance named "+name+" exists in "+s.location()+": names are unique in a region.", false
		} else {
			msg = name + " is available."
		}
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	class := "ok"
	if !ok {
		class = "bad"
	}
	fmt.Fprintf(w, `<span id="name-check" class="%s" role="status">%s</span>`, class, templateEscape(msg))
}

// create builds the API's create request from the form and sends it.
func (s *Studio) create(w http.ResponseWriter, r *http.Request, p sim.Principal) {
	// Nothing is written to the share for one who may not create.
	if err := s.svc.Authorize(p, sim.ActComputeWrite, s.computesPath()); err != nil {
		http.Error(w, err.Error(), http.StatusForbidden)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 3*maxScript)
	if err := r.ParseMultipartForm(2 * maxScript); err != nil {
		http.Error(w, "the form could not be read: "+err.Error(), http.StatusBadRequest)
		return
	}
	f := newForm{
		Name: strings.TrimSpace(r.FormValue("name")), Size: r.FormValue("size"), SSH: r.FormValue("ssh") == "on",
		SSHKey: strings.TrimSpace(r.FormValue("sshKey")), CreationScript: r.FormValue("creationScript"),
		CreationArgs: r.FormValue("creationArgs"), StartupScript: r.FormValue("startupScript"),
		StartupArgs: r.FormValue("startupArgs"), AssignTo: r.FormValue("assignTo"), IdleMinutes: r.FormValue("idleMinutes"),
	}
	props := map[string]any{"vmSize": f.Size}
	access := "Disabled"
	if f.SSH {
		access = "Enabled"
	}
	ssh := map[string]any{"sshPublicAccess": access}
	if f.SSH {
		ssh["adminPublicKey"] = f.SSHKey
	}
	props["sshSettings"] = ssh
	if f.AssignTo != "" && !strings.EqualFold(f.AssignTo, p.ObjectID) {
		u, ok := s.svc.Principal(f.AssignTo)
		if !ok {
			s.newPage(w, r, p, f, http.StatusBadRequest, "No principal "+f.AssignTo+" in amlsim's config.")
			return
		}
		props["personalComputeInstanceSettings"] = map[string]any{"assignedUser": map[string]string{"objectId": u.ObjectID, "tenantId": u.TenantID}}
	}
	rows, schedules, err := schedulesFrom(r)
	f.Schedules = rows
	if err != nil {
		s.newPage(w, r, p, f, http.StatusBadRequest, err.Error())
		return
	}
	if len(schedules) > 0 {
		props["schedules"] = map[string]any{"computeStartStop": schedules}
	}
	if f.IdleMinutes != "" {
		n, err := strconv.Atoi(f.IdleMinutes)
		if err != nil || n < 15 || n > 3*24*60 {
			// Azure's bounds (how-to-create-compute-instance.md).
			s.newPage(w, r, p, f, http.StatusBadRequest, "Idle shutdown takes 15 minutes to three days.")
			return
		}
		props["idleTimeBeforeShutdown"] = "PT" + strconv.Itoa(n) + "M"
	}
	scripts := map[string]any{}
	var written []string // uploads stored in the share, removed if the create fails
	defer func() {
		for _, f := range written {
			s.removeFromShare(f)
		}
	}()
	for _, k := range []struct{ field, upload, args, key string }{
		{"creationScript", "creationUpload", "creationArgs", "creationScript"},
		{"startupScript", "startupUpload", "startupArgs", "startupScript"},
	} {
		ref, stored, err := s.scriptRef(r, p, k.field, k.upload)
		if stored != "" {
			written = append(written, stored)
		}
		if err != nil {
			s.newPage(w, r, p, f, http.StatusBadRequest, err.Error())
			return
		}
		if ref != nil {
			if a := r.FormValue(k.args); a != "" {
				ref["scriptArguments"] = a
			}
			scripts[k.key] = ref
		}
	}
	if len(scripts) > 0 {
		props["setupScripts"] = map[string]any{"scripts": scripts}
	}
	body, _ := json.Marshal(map[string]any{"location": s.location(), "properties": map[string]any{"computeType": "ComputeInstance", "properties": props}})
	if err := s.callBody(r, p, "PUT", s.computesPath()+"/"+f.Name, body); err != nil {
		s.newPage(w, r, p, f, http.StatusBadRequest, err.Error())
		return
	}
	written = nil // the instance refers to them now
	http.Redirect(w, r, "/studio/computes/"+url.PathEscape(f.Name)+"?notice="+url.QueryEscape("Create of "+f.Name+" requested."), http.StatusSeeOther)
}

// scriptRef is a setup script reference from the form: an uploaded file,
// stored into the user's folder of the workspace share first (stored is
// its path there), or a script of the share chosen from the list; nil
// when neither is given.
func (s *Studio) scriptRef(r *http.Request, p sim.Principal, field, upload string) (ref map[string]any, stored string, err error) {
	file, hdr, err := r.FormFile(upload)
	if err != nil {
		if v := r.FormValue(field); v != "" {
			return map[string]any{"scriptSource": "workspaceStorage", "scriptData": v}, "", nil
		}
		return nil, "", nil
	}
	defer file.Close()
	b, err := io.ReadAll(io.LimitReader(file, maxScript+1))
	if err != nil || len(b) > maxScript {
		return nil, "", fmt.Errorf("the script %s is over 1 MB", hdr.Filename)
	}
	name := path.Base(strings.ReplaceAll(hdr.Filename, `\`, "/"))
	if name == "." || name == ".." || name == "/" || name == "" {
		return nil, "", fmt.Errorf("the script's file name %q is not usable", hdr.Filename)
	}
	dir, err := s.svc.WorkspaceShare(s.workspaceRef())
	if err != nil {
		return nil, "", err
	}
	if dir == "" {
		// No share kept (a server without one): send it inline.
		return map[string]any{"scriptSource": "inline", "scriptData": base64.StdEncoding.EncodeToString(b)}, "", nil
	}
	// Through an os.Root: a guest can write to the share, and a link it
	// planted must not lead the write out of it.
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, "", err
	}
	defer root.Close()
	rel := userFolder(p) + "/" + name
	if err := root.MkdirAll(userFolder(p), 0o755); err != nil {
		return nil, "", err
	}
	if err := root.WriteFile(rel, b, 0o755); err != nil {
		return nil, "", err
	}
	return map[string]any{"scriptSource": "workspaceStorage", "scriptData": rel}, rel, nil
}

// removeFromShare removes a file the studio stored in the share.
func (s *Studio) removeFromShare(rel string) {
	dir, err := s.svc.WorkspaceShare(s.workspaceRef())
	if err != nil || dir == "" {
		return
	}
	if root, err := os.OpenRoot(dir); err == nil {
		root.Remove(rel)
		root.Close()
	}
}

// callBody sends a JSON body through the API as p.
func (s *Studio) callBody(r *http.Request, p sim.Principal, method, path string, body []byte) error {
	return s.api.Call(r.Context(), p, apiRequest(r, method, path, body)).Err()
}

func (s *Studio) workspaceRef() sim.WorkspaceRef {
	ws, _ := s.workspace()
	return ws.Ref()
}

// --- details: events and logs; the quota page ---

type event struct {
	Time    time.Time `json:"time"`
	State   string    `json:"state"`
	Message string    `json:"message"`
}

// events reads an instance's events, newest first.
func (s *Studio) events(r *http.Request, p sim.Principal, name string) []event {
	var ev struct {
		Value []event `json:"value"`
	}
	if err := s.call(r, p, "GET", s.computesPath()+"/"+name+"/amlsim/events", nil, &ev); err != nil {
		return nil
	}
	for i, j := 0, len(ev.Value)-1; i < j; i, j = i+1, j-1 {
		ev.Value[i], ev.Value[j] = ev.Value[j], ev.Value[i]
	}
	return ev.Value
}

// logPage shows one log of an instance: its setup or startup script's, or
// the VM's serial console.
func (s *Studio) logPage(w http.ResponseWriter, r *http.Request, p sim.Principal) {
	name, kind := r.PathValue("name"), r.PathValue("kind")
	pg := s.base(r, p, kind+" log of "+name)
	pg.Compute = &instance{Name: name}
	pg.Action = kind
	resp := s.api.Call(r.Context(), p, apiRequest(r, "GET", s.computesPath()+"/"+name+"/amlsim/logs/"+kind, nil))
	if err := resp.Err(); err != nil {
		pg.Error = err.Error()
	} else {
		pg.Log = string(resp.Body)
	}
	s.render(w, r, http.StatusOK, "log", pg)
}

func (s *Studio) quota(w http.ResponseWriter, r *http.Request, p sim.Principal) {
	pg := s.base(r, p, "Quota")
	_, usages, err := s.sizes(r, p)
	if err != nil {
		pg.Error = err.Error()
	}
	pg.Usages = usages
	pg.Location = s.location()
	s.render(w, r, http.StatusOK, "quota", pg)
}

// logFile is a file of an instance's log folder in the share.
type logFile struct {
	Name string
	Size int64
	Time time.Time
}

// logFolder lists an instance's folder of logs in the workspace share
// (Logs/<name>/: "Logs from the setup script execution … are stored back
// to your notebooks file share under the Logs\<compute instance name>
// folder", how-to-customize-compute-instance.md), and shows one of its
// files when ?file= names it. Those who may read the instance may read it.
func (s *Studio) logFolder(w http.ResponseWriter, r *http.Request, p sim.Principal) {
	name := r.PathValue("name")
	pg := s.base(r, p, "Logs of "+name)
	pg.Compute = &instance{Name: name}
	if err := s.call(r, p, "GET", s.computesPath()+"/"+name, nil, nil); err != nil {
		pg.Error = err.Error()
		s.render(w, r, http.StatusNotFound, "files", pg)
		return
	}
	dir, err := s.svc.WorkspaceShare(s.workspaceRef())
	if err != nil || dir == "" {
		pg.Error = "amlsim keeps no workspace share here."
		s.render(w, r, http.StatusOK, "files", pg)
		return
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		pg.Error = err.Error()
		s.render(w, r, http.StatusOK, "files", pg)
		return
	}
	defer root.Close()
	folder := "Logs/" + name
	if file := r.URL.Query().Get("file"); file != "" {
		if strings.ContainsAny(file, `/\`) || file == ".." {
			http.Error(w, "not a file of the folder", http.StatusBadRequest)
			return
		}
		b, err := root.ReadFile(folder + "/" + file)
		if err != nil {
			pg.Error = "No file " + file + " in " + folder + "."
		} else {
			pg.Log = string(b[:min(len(b), maxScript)])
		}
		pg.Action = file
	}
	entries, err := fs.ReadDir(root.FS(), folder)
	if err != nil && pg.Error == "" {
		pg.Notice = "No logs in " + folder + "/ yet."
	}
	for _, e := range entries {
		if info, err := e.Info(); err == nil && !e.IsDir() {
			pg.Files = append(pg.Files, logFile{Name: e.Name(), Size: info.Size(), Time: info.ModTime()})
		}
	}
	pg.Folder = folder
	s.render(w, r, http.StatusOK, "files", pg)
}
