package main

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/amlsim/amlsim/sim/api"
)

// Shell completion: cobra's `completion bash|zsh|fish|powershell` scripts
// call `amlsim __complete …`, which runs the functions below. Those that
// ask the server use the flags already on the command line (--endpoint,
// --home, --workspace, …) and their environment defaults; a server that
// does not answer within completionTimeout completes nothing.

// completionTimeout bounds the server calls of one completion.
const completionTimeout = 3 * time.Second

type completeFunc = func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective)

// completionClient is a client for a completion, with its deadline.
func completionClient(cmd *cobra.Command, g *globals) (context.Context, context.CancelFunc, *client, bool) {
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, completionTimeout)
	cl, err := newClient(g)
	if err != nil {
		cancel()
		return nil, nil, nil, false
	}
	return ctx, cancel, cl, true
}

// flagWorkspace is the workspace named by cmd's flags (or their defaults).
func flagWorkspace(cmd *cobra.Command) *workspaceRef {
	w := &workspaceRef{rg: envOr("AMLSIM_RESOURCE_GROUP", defaultResourceGroup), name: envOr("AMLSIM_WORKSPACE", defaultWorkspace)}
	if f := cmd.Flags().Lookup("workspace"); f != nil {
		w.name = f.Value.String()
	}
	if f := cmd.Flags().Lookup("resource-group"); f != nil {
		w.rg = f.Value.String()
	}
	return w
}

// completeInstances completes the first argument with the names of the
// workspace's instances, each described by its state and size; nothing
// after it.
func completeInstances(g *globals) completeFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		ctx, cancel, cl, ok := completionClient(cmd, g)
		if !ok {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		defer cancel()
		list, err := cl.listInstances(ctx, flagWorkspace(cmd))
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var out []cobra.Completion
		for _, in := range list {
			out = append(out, cobra.CompletionWithDesc(in.Name, in.State+", "+in.VMSize))
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}

// completeSizes completes --size with the VM sizes of the region (the
// --location on the line, else the workspace's).
func completeSizes(g *globals) completeFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		ctx, cancel, cl, ok := completionClient(cmd, g)
		if !ok {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		defer cancel()
		loc := ""
		if f := cmd.Flags().Lookup("location"); f != nil {
			loc = f.Value.String()
		}
		if loc == "" {
			var err error
			if loc, err = cl.workspaceLocation(ctx, flagWorkspace(cmd)); err != nil {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
		}
		sizes, err := cl.sizes(ctx, loc)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var out []cobra.Completion
		for _, s := range sizes {
			out = append(out, cobra.CompletionWithDesc(s.Name, fmt.Sprintf("%d vCPUs, %g GB", s.VCPUs, s.MemoryGB)))
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}

// completeLocations completes --location with the subscription's regions
// (ARM's Subscriptions - List Locations).
func completeLocations(g *globals) completeFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		ctx, cancel, cl, ok := completionClient(cmd, g)
		if !ok {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		defer cancel()
		var locs struct {
			Value []struct {
				Name        string `json:"name"`
				DisplayName string `json:"displayName"`
			} `json:"value"`
		}
		if err := cl.getJSON(ctx, "/subscriptions/"+url.PathEscape(cl.sub)+"/locations", map[string][]string{"api-version": {"2022-12-01"}}, &locs); err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var out []cobra.Completion
		for _, l := range locs.Value {
			out = append(out, cobra.CompletionWithDesc(l.Name, l.DisplayName))
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}

// completePrincipals completes an object ID with the principals of the
// server's config, described by their names.
func completePrincipals(g *globals) completeFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		ctx, cancel, cl, ok := completionClient(cmd, g)
		if !ok {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		defer cancel()
		var list struct {
			Value []struct {
				ObjectID    string `json:"objectId"`
				DisplayName string `json:"displayName"`
			} `json:"value"`
		}
		if err := cl.getJSON(ctx, api.PrincipalsPath, nil, &list); err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var out []cobra.Completion
		for _, p := range list.Value {
			out = append(out, cobra.CompletionWithDesc(p.ObjectID, p.DisplayName))
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}

// completeRoles completes --role with the role names defined at --scope.
func completeRoles(g *globals) completeFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		ctx, cancel, cl, ok := completionClient(cmd, g)
		if !ok {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		defer cancel()
		scope := ""
		if f := cmd.Flags().Lookup("scope"); f != nil {
			scope = f.Value.String()
		}
		byID, _, err := cl.roleDefinitions(ctx, cl.scope(scope))
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var out []cobra.Completion
		for _, name := range byID {
			out = append(out, name)
		}
		slices.Sort(out)
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}

// completeWorkspaces completes --workspace with the subscription's
// workspaces (of --resource-group, when it was given), described by
// their regions.
func completeWorkspaces(g *globals) completeFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		ctx, cancel, cl, ok := completionClient(cmd, g)
		if !ok {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		defer cancel()
		rg := ""
		if f := cmd.Flags().Lookup("resource-group"); f != nil && f.Changed {
			rg = f.Value.String()
		}
		var out []cobra.Completion
		pager := cl.ml.NewWorkspacesClient().NewListBySubscriptionPager(nil)
		for pager.More() {
			page, err := pager.NextPage(ctx)
			if err != nil {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			for _, w := range page.Value {
				if rg == "" || strings.EqualFold(idPart(deref(w.ID), "resourceGroups"), rg) {
					out = append(out, cobra.CompletionWithDesc(deref(w.Name), idPart(deref(w.ID), "resourceGroups")+", "+deref(w.Location)))
				}
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}

// noFileFallback makes every flag of the tree that takes a value but has
// no completion of its own complete nothing, rather than the shells'
// default of file names: a file is offered only where one is meant.
func noFileFallback(cmd *cobra.Command) {
	cmd.LocalNonPersistentFlags().VisitAll(func(f *pflag.Flag) { noFileFor(cmd, f) })
	cmd.PersistentFlags().VisitAll(func(f *pflag.Flag) { noFileFor(cmd, f) })
	for _, c := range cmd.Commands() {
		noFileFallback(c)
	}
}

func noFileFor(cmd *cobra.Command, f *pflag.Flag) {
	if f.NoOptDefVal != "" || f.Annotations[cobra.BashCompFilenameExt] != nil || f.Annotations[cobra.BashCompSubdirsInDir] != nil {
		return // a boolean, or a file or directory
	}
	if _, ok := cmd.GetFlagCompletionFunc(f.Name); ok {
		return
	}
	cmd.RegisterFlagCompletionFunc(f.Name, cobra.NoFileCompletions)
}
