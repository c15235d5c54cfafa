// Command amlsim simulates Azure Machine Learning compute instances on one
// machine: `amlsim serve` runs the ARM-compatible API backed by real VMs,
// and the other verbs are its tools.
package main

import (
	"fmt"
	"os"
	"path/filepath"
)

const usage = `amlsim simulates Azure Machine Learning compute instances on this machine.

Usage:
  amlsim serve [--home DIR] [--listen ADDR] [--config FILE] [--driver libvirt|fake]
  amlsim token [--home DIR] [--user OBJECT_ID] [--tenant TENANT_ID] [--name NAME] [--ttl DURATION]
  amlsim image build [--cache DIR]

Run 'amlsim VERB --help' for a verb's flags.
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	verbs := map[string]func([]string) error{
		"serve": serve,
		"token": token,
		"image": image,
	}
	verb, ok := verbs[os.Args[1]]
	if !ok {
		if os.Args[1] == "help" || os.Args[1] == "--help" || os.Args[1] == "-h" {
			fmt.Print(usage)
			return
		}
		fmt.Fprintf(os.Stderr, "amlsim: unknown verb %q\n\n%s", os.Args[1], usage)
		os.Exit(2)
	}
	if err := verb(os.Args[2:]); err != nil {
		fmt.Fprintln(os.Stderr, "amlsim:", err)
		os.Exit(1)
	}
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
