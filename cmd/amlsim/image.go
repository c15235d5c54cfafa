package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/amlsim/amlsim/fixtures"
)

// newImageCommand is `amlsim image`: the default guest image.
func newImageCommand() *cobra.Command {
	cmd := newGroupCommand("image", "Build the default guest image")
	build := &cobra.Command{
		Use:   "build",
		Short: "Build the default guest image into the cache, once per recipe",
		Long: `Build the default guest image (Debian with cloud-init) into the cache, once
per recipe: a second run with the same recipe returns at once. Prints the
image's directory.`,
		Args: exactArgs(),
	}
	cache := build.Flags().String("cache", fixtures.DefaultImageCache(), "image cache `DIR`")
	build.MarkFlagDirname("cache")
	build.RunE = func(cmd *cobra.Command, args []string) error {
		img, err := fixtures.EnsureImage(cmd.Context(), *cache, cmd.ErrOrStderr())
		if err != nil {
			return err
		}
		fmt.Fprintln(cmd.OutOrStdout(), img.Dir)
		return nil
	}
	cmd.AddCommand(build)
	return cmd
}
