// Command amlsim simulates Azure Machine Learning compute instances on one
// machine: `amlsim serve` runs the ARM-compatible API backed by real VMs,
// and the other verbs are its tools and its client.
package main

import (
	"fmt"
	"os"
	"path/filepath"
)

const usage = `amlsim simulates Azure Machine Learning compute instances on this machine.

Usage:
  amlsim serve [--home DIR] [--listen ADDR] [--config FILE] [--driver libvirt|fake] [--test-clock]
  amlsim token [--home DIR] [--user OBJECT_ID] [--tenant TENANT_ID] [--name NAME] [--ttl DURATION]
  amlsim env [--home DIR] [--endpoint URL] [--user OBJECT_ID]
  amlsim studio [--home DIR] [--endpoint URL] [--user OBJECT_ID]
  amlsim image build [--cache DIR]

  amlsim compute create NAME --size SIZE [--ssh-key FILE] [--setup-script FILE] [--no-wait]
  amlsim compute show NAME
  amlsim compute list [--mine]
  amlsim compute start|stop|restart NAME [--no-wait]
  amlsim compute delete NAME [--yes]
  amlsim compute ssh NAME [-- COMMAND…]
  amlsim compute logs NAME [--serial|--setup|--startup] [-f]
  amlsim setup-script run FILE [--timeout D] [--keep] [-- ARGS…]
  amlsim role assign --principal OBJECT_ID --role ROLE [--scope SCOPE]
  amlsim role list [--scope SCOPE] [--principal OBJECT_ID]
  amlsim role remove NAME [--scope SCOPE]
  amlsim clock show|set TIME|advance DURATION
  amlsim usage [--location L]
  amlsim sizes [--location L]
  amlsim doctor
  amlsim completion bash|zsh

Client verbs find the server at $AMLSIM_ENDPOINT (--endpoint, default
https://127.0.0.1:9443), trust the CA and mint a token from the home
($AMLSIM_HOME, --home, default ~/.amlsim), and print --output table or json.

Run 'amlsim VERB --help' for a verb's flags.
`

// verbs are the top-level verbs.
func verbs() map[string]func([]string) error {
	return map[string]func([]string) error{
		"serve":        serve,
		"token":        token,
		"env":          envCmd,
		"studio":       studioCmd,
		"image":        image,
		"compute":      compute,
		"usage":        usageCmd,
		"sizes":        sizesCmd,
		"doctor":       doctor,
		"completion":   completion,
		"setup-script": setupScript,
		"role":         role,
		"clock":        clockCmd,
	}
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(exitUsage)
	}
	verb, ok := verbs()[os.Args[1]]
	if !ok {
		if os.Args[1] == "help" || os.Args[1] == "--help" || os.Args[1] == "-h" {
			fmt.Print(usage)
			return
		}
		fmt.Fprintf(os.Stderr, "amlsim: unknown verb %q\n\n%s", os.Args[1], usage)
		os.Exit(exitUsage)
	}
	os.Exit(report(verb(os.Args[2:])))
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
