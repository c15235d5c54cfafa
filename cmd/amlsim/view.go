package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	ml "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/machinelearning/armmachinelearning/v4"
)

// instance is the CLI's view of a compute instance: the JSON that
// `--output json` prints for show, list, create, start, stop and restart.
// Its fields are a stable contract for scripts (see the README); they are
// amlsim's own, not the SDK's.
type instance struct {
	Name              string `json:"name"`
	State             string `json:"state"`
	ProvisioningState string `json:"provisioningState"`
	VMSize            string `json:"vmSize"`
	Location          string `json:"location"`
	ResourceGroup     string `json:"resourceGroup"`
	Workspace         string `json:"workspace"`
	ID                string `json:"id"`
	Description       string `json:"description,omitempty"`
	CreatedBy         user   `json:"createdBy"`
	// AssignedUser is the object ID of the user the instance was created
	// for, if it was created on someone's behalf.
	AssignedUser  string         `json:"assignedUser,omitempty"`
	CreatedOn     time.Time      `json:"createdOn"`
	SSH           sshAccess      `json:"ssh"`
	LastOperation *lastOperation `json:"lastOperation"`
	Errors        []errorEntry   `json:"errors"`
	// Applications are the instance's web applications (Jupyter), open to
	// its owner (or to everyone allowed, when shared).
	Applications []application `json:"applications"`
}

type application struct {
	Name string `json:"name"`
	URL  string `json:"url"`
}

type user struct {
	ID   string `json:"userId"`
	Name string `json:"userName"`
}

// sshAccess says how to reach the instance; Port and PublicKey are empty
// when public access is disabled, and for anyone but the instance's owner.
type sshAccess struct {
	Enabled   bool   `json:"enabled"`
	User      string `json:"user"`
	Host      string `json:"host"`
	Port      int    `json:"port,omitempty"`
	PublicKey string `json:"publicKey,omitempty"`
}

type lastOperation struct {
	Name    string    `json:"name"`
	Status  string    `json:"status"`
	Time    time.Time `json:"time"`
	Trigger string    `json:"trigger"`
}

type errorEntry struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// instanceOf turns an ARM ComputeResource, as the SDK decoded it, into
// the CLI's view. A compute that is not an instance keeps its name, ID
// and provisioning state only.
func instanceOf(r *ml.ComputeResource) instance {
	in := instance{
		Name:         deref(r.Name),
		Location:     deref(r.Location),
		ID:           deref(r.ID),
		Errors:       []errorEntry{},
		Applications: []application{},
	}
	in.ResourceGroup, in.Workspace = idPart(in.ID, "resourceGroups"), idPart(in.ID, "workspaces")
	ci, ok := r.Properties.(*ml.ComputeInstance)
	if !ok {
		if r.Properties != nil {
			in.ProvisioningState = string(deref(r.Properties.GetCompute().ProvisioningState))
		}
		return in
	}
	in.ProvisioningState = string(deref(ci.ProvisioningState))
	in.Description = deref(ci.Description)
	in.CreatedOn = deref(ci.CreatedOn)
	p := ci.Properties
	if p == nil {
		return in
	}
	in.State = string(deref(p.State))
	in.VMSize = deref(p.VMSize)
	if cb := p.CreatedBy; cb != nil {
		in.CreatedBy = user{ID: deref(cb.UserID), Name: deref(cb.UserName)}
	}
	if s := p.SSHSettings; s != nil {
		in.SSH.Enabled = s.SSHPublicAccess != nil && strings.EqualFold(string(*s.SSHPublicAccess), "Enabled")
		in.SSH.User = deref(s.AdminUserName)
		if in.SSH.Enabled {
			in.SSH.Port = int(deref(s.SSHPort))
			in.SSH.PublicKey = deref(s.AdminPublicKey)
		}
	}
	if ce := p.ConnectivityEndpoints; ce != nil {
		in.SSH.Host = deref(ce.PublicIPAddress)
	}
	for _, a := range p.Applications {
		in.Applications = append(in.Applications, application{Name: deref(a.DisplayName), URL: deref(a.EndpointURI)})
	}
	if pc := p.PersonalComputeInstanceSettings; pc != nil && pc.AssignedUser != nil {
		in.AssignedUser = deref(pc.AssignedUser.ObjectID)
	}
	if op := p.LastOperation; op != nil {
		in.LastOperation = &lastOperation{Name: string(deref(op.OperationName)), Status: string(deref(op.OperationStatus)),
			Time: deref(op.OperationTime), Trigger: string(deref(op.OperationTrigger))}
	}
	for _, e := range p.Errors {
		if e != nil && e.Error != nil {
			in.Errors = append(in.Errors, errorEntry{Code: deref(e.Error.Code), Message: deref(e.Error.Message)})
		}
	}
	return in
}

// deref is *p, or the zero value for nil: the SDK's models are pointers.
func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// idPart returns the segment after key in an ARM resource ID.
func idPart(id, key string) string {
	segs := strings.Split(id, "/")
	for i := 0; i+1 < len(segs); i++ {
		if strings.EqualFold(segs[i], key) {
			return segs[i+1]
		}
	}
	return ""
}

// getInstance GETs one compute instance.
func (c *client) getInstance(ctx context.Context, w *workspaceRef, name string) (instance, error) {
	r, err := c.ml.NewComputeClient().Get(ctx, w.rg, w.name, name, nil)
	if err != nil {
		return instance{}, c.failure(ctx, err)
	}
	return instanceOf(&r.ComputeResource), nil
}

// listInstances lists every compute of the workspace (amlsim serves
// instances only), page after page.
func (c *client) listInstances(ctx context.Context, w *workspaceRef) ([]instance, error) {
	list := []instance{}
	pager := c.ml.NewComputeClient().NewListPager(w.rg, w.name, nil)
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return nil, c.failure(ctx, err)
		}
		for _, r := range page.Value {
			list = append(list, instanceOf(r))
		}
	}
	return list, nil
}

// sshCommand is the command line a user types to reach the instance.
func (in instance) sshCommand() string {
	if !in.SSH.Enabled {
		return ""
	}
	return fmt.Sprintf("ssh -p %d %s@%s", in.SSH.Port, in.SSH.User, in.SSH.Host)
}

// printInstance writes one instance in the --output format.
func printInstance(w io.Writer, output string, in instance) error {
	return render(w, output, in, func(w io.Writer) error { return instanceTable(w, in) })
}

// instanceTable writes one instance as a table of fields.
func instanceTable(w io.Writer, in instance) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, "%s:\t%s\n", k, v) }
	row("Name", in.Name)
	row("State", in.State)
	row("Size", in.VMSize)
	row("Location", in.Location)
	row("Workspace", in.ResourceGroup+"/"+in.Workspace)
	if in.Description != "" {
		row("Description", in.Description)
	}
	row("Created by", fmt.Sprintf("%s (%s)", in.CreatedBy.Name, in.CreatedBy.ID))
	row("Created on", in.CreatedOn.UTC().Format(time.RFC3339))
	switch {
	case in.SSH.Enabled && in.SSH.Port == 0:
		row("SSH", "enabled, for the instance's owner only")
	case in.SSH.Enabled:
		row("SSH", in.sshCommand())
		row("SSH from amlsim", "amlsim compute ssh "+in.Name)
	default:
		row("SSH", "public access disabled")
	}
	for _, a := range in.Applications {
		row(a.Name, a.URL+"  (in a browser: amlsim compute open "+in.Name+")")
	}
	if op := in.LastOperation; op != nil {
		line := fmt.Sprintf("%s %s at %s", op.Name, op.Status, op.Time.UTC().Format(time.RFC3339))
		if op.Trigger != "" && op.Trigger != "User" {
			line += " (by " + op.Trigger + ")"
		}
		row("Last operation", line)
	}
	for _, e := range in.Errors {
		row("Error", e.Code+": "+oneLine(e.Message))
	}
	return tw.Flush()
}

// printInstances writes a list as a table, names, or any --output format.
func printInstances(w io.Writer, output string, list []instance) error {
	if output == outputName {
		for _, in := range list {
			fmt.Fprintln(w, in.Name)
		}
		return nil
	}
	return render(w, output, list, func(w io.Writer) error { return instancesTable(w, list) })
}

func instancesTable(w io.Writer, list []instance) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSTATE\tSIZE\tSSH\tCREATED BY")
	for _, in := range list {
		ssh := "disabled"
		if in.SSH.Enabled {
			ssh = fmt.Sprintf("%s:%d", in.SSH.Host, in.SSH.Port)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", in.Name, in.State, in.VMSize, ssh, in.CreatedBy.Name)
	}
	return tw.Flush()
}
