// Command amlsim simulates Azure Machine Learning compute instances on one
// machine: `amlsim serve` runs the ARM-compatible API backed by real VMs,
// and the other verbs are its tools and its client.
package main

import (
	"context"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := execute(ctx, newRootCommand(), os.Args[1:])
	stop()
	os.Exit(code)
}

// defaultHome is $AMLSIM_HOME, else ~/.amlsim.
func defaultHome() string {
	if h := os.Getenv("AMLSIM_HOME"); h != "" {
		return h
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ".amlsim"
	}
	return filepath.Join(home, ".amlsim")
}
