package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"

	"github.com/amlsim/amlsim/fixtures"
)

// image builds the default guest image into the cache, once per recipe.
func image(args []string) error {
	if len(args) == 0 || args[0] != "build" {
		return fmt.Errorf("usage: amlsim image build [--cache DIR]")
	}
	fs := flag.NewFlagSet("image build", flag.ContinueOnError)
	cache := fs.String("cache", fixtures.DefaultImageCache(), "image cache directory")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	img, err := fixtures.EnsureImage(ctx, *cache, os.Stderr)
	if err != nil {
		return err
	}
	fmt.Println(img.Dir)
	return nil
}
