package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// armCompute is the part of an ARM ComputeResource the CLI reads.
type armCompute struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	Location   string `json:"location"`
	Properties struct {
		ProvisioningState string    `json:"provisioningState"`
		CreatedOn         time.Time `json:"createdOn"`
		Description       string    `json:"description"`
		Properties        struct {
			State       string `json:"state"`
			VMSize      string `json:"vmSize"`
			SSHSettings struct {
				SSHPublicAccess string `json:"sshPublicAccess"`
				AdminUserName   string `json:"adminUserName"`
				SSHPort         int    `json:"sshPort"`
				AdminPublicKey  string `json:"adminPublicKey"`
			} `json:"sshSettings"`
			ConnectivityEndpoints struct {
				PublicIPAddress string `json:"publicIpAddress"`
			} `json:"connectivityEndpoints"`
			CreatedBy struct {
				UserName string `json:"userName"`
				UserID   string `json:"userId"`
			} `json:"createdBy"`
			PersonalComputeInstanceSettings *struct {
				AssignedUser *struct {
					ObjectID string `json:"objectId"`
				} `json:"assignedUser"`
			} `json:"personalComputeInstanceSettings"`
			LastOperation *struct {
				Name    string    `json:"operationName"`
				Time    time.Time `json:"operationTime"`
				Status  string    `json:"operationStatus"`
				Trigger string    `json:"operationTrigger"`
			} `json:"lastOperation"`
			Errors       []armErrorBody `json:"errors"`
			Applications []struct {
				DisplayName string `json:"displayName"`
				EndpointURI string `json:"endpointUri"`
			} `json:"applications"`
		} `json:"properties"`
	} `json:"properties"`
}

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

// instanceOf turns an ARM ComputeResource into the CLI's view.
func instanceOf(a armCompute) instance {
	p := a.Properties.Properties
	in := instance{
		Name:              a.Name,
		State:             p.State,
		ProvisioningState: a.Properties.ProvisioningState,
		VMSize:            p.VMSize,
		Location:          a.Location,
		ID:                a.ID,
		Description:       a.Properties.Description,
		CreatedBy:         user{ID: p.CreatedBy.UserID, Name: p.CreatedBy.UserName},
		CreatedOn:         a.Properties.CreatedOn,
		SSH: sshAccess{
			Enabled: strings.EqualFold(p.SSHSettings.SSHPublicAccess, "Enabled"),
			User:    p.SSHSettings.AdminUserName,
			Host:    p.ConnectivityEndpoints.PublicIPAddress,
		},
		Errors:       []errorEntry{},
		Applications: []application{},
	}
	for _, a := range p.Applications {
		in.Applications = append(in.Applications, application{Name: a.DisplayName, URL: a.EndpointURI})
	}
	if pc := p.PersonalComputeInstanceSettings; pc != nil && pc.AssignedUser != nil {
		in.AssignedUser = pc.AssignedUser.ObjectID
	}
	if in.SSH.Enabled {
		in.SSH.Port = p.SSHSettings.SSHPort
		in.SSH.PublicKey = p.SSHSettings.AdminPublicKey
	}
	in.ResourceGroup, in.Workspace = idPart(a.ID, "resourceGroups"), idPart(a.ID, "workspaces")
	if op := p.LastOperation; op != nil {
		in.LastOperation = &lastOperation{Name: op.Name, Status: op.Status, Time: op.Time, Trigger: op.Trigger}
	}
	for _, e := range p.Errors {
		in.Errors = append(in.Errors, errorEntry{Code: e.Error.Code, Message: e.Error.Message})
	}
	return in
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
	var a armCompute
	if err := c.getJSON(ctx, c.computePath(w, name), nil, &a); err != nil {
		return instance{}, err
	}
	return instanceOf(a), nil
}

// sshCommand is the command line a user types to reach the instance.
func (in instance) sshCommand() string {
	if !in.SSH.Enabled {
		return ""
	}
	return fmt.Sprintf("ssh -p %d %s@%s", in.SSH.Port, in.SSH.User, in.SSH.Host)
}

// printJSON writes v as indented JSON.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// printInstance writes one instance as a table of fields, or as JSON.
func printInstance(w io.Writer, output string, in instance) error {
	if output == outputJSON {
		return printJSON(w, in)
	}
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

// printInstances writes a list as a table, JSON array or names.
func printInstances(w io.Writer, output string, list []instance) error {
	switch output {
	case outputJSON:
		return printJSON(w, list)
	case outputName:
		for _, in := range list {
			fmt.Fprintln(w, in.Name)
		}
		return nil
	}
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
