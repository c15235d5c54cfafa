package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/ssh"
)

var createVerb = verb{
	name: "create",
	args: "NAME --size SIZE [flags]",
	summary: `Create a compute instance and wait until it is running.

SSH public access is enabled with --ssh-key, or with ~/.ssh/id_ed25519.pub
(else ~/.ssh/id_rsa.pub) when that exists; --no-ssh leaves it disabled.
Scripts are sent inline (base64) as the instance's creation and startup
scripts. While waiting, the instance's events are shown; --no-wait returns
once the request is accepted.`,
	setup: func(c *command) runFunc {
		ws := c.workspaceFlags()
		size := c.fs.String("size", "", "VM `SIZE`, such as Standard_D3_v2 (see 'amlsim sizes')")
		key := c.fs.String("ssh-key", "", "public key `FILE` (.pub) to log in with; enables SSH public access")
		noSSH := c.fs.Bool("no-ssh", false, "leave SSH public access disabled, even if a default key exists")
		setup := c.fs.String("setup-script", "", "creation script `FILE`, run once when the instance is created")
		setupArgs := c.fs.String("setup-args", "", "`ARGS` passed to the creation script")
		setupTimeout := c.fs.String("setup-timeout", "", "`DURATION` the creation script may run, such as 10m")
		startup := c.fs.String("startup-script", "", "startup script `FILE`, run on every start")
		startupArgs := c.fs.String("startup-args", "", "`ARGS` passed to the startup script")
		startupTimeout := c.fs.String("startup-timeout", "", "`DURATION` the startup script may run")
		desc := c.fs.String("description", "", "`TEXT` describing the instance")
		assigned := c.fs.String("assigned-user", "", "create the instance on behalf of the user with object `ID` (S9)")
		noWait := c.fs.Bool("no-wait", false, "return once the request is accepted")
		return func(ctx context.Context, args []string) error {
			if err := exactArgs(c, args, "NAME"); err != nil {
				return err
			}
			if *size == "" {
				return usageErrorf("missing --size (see 'amlsim sizes' for the sizes)")
			}
			if *key != "" && *noSSH {
				return usageErrorf("--ssh-key and --no-ssh contradict each other")
			}
			props := map[string]any{"vmSize": *size}
			if !*noSSH {
				pub, err := publicKey(*key)
				if err != nil {
					return err
				}
				if pub != "" {
					props["sshSettings"] = map[string]string{"sshPublicAccess": "Enabled", "adminPublicKey": pub}
				} else {
					fmt.Fprintln(c.stderr, "amlsim: no ~/.ssh/id_ed25519.pub or id_rsa.pub: SSH public access stays disabled (make a key with ssh-keygen -t ed25519, or pass --ssh-key FILE)")
				}
			}
			scripts := map[string]any{}
			for _, s := range []struct{ field, file, args, timeout string }{
				{"creationScript", *setup, *setupArgs, *setupTimeout},
				{"startupScript", *startup, *startupArgs, *startupTimeout},
			} {
				if s.file == "" {
					if s.args != "" || s.timeout != "" {
						return usageErrorf("script arguments or timeout given without the script file")
					}
					continue
				}
				ref, err := inlineScript(s.file, s.args, s.timeout)
				if err != nil {
					return err
				}
				scripts[s.field] = ref
			}
			if len(scripts) > 0 {
				props["setupScripts"] = map[string]any{"scripts": scripts}
			}
			if *assigned != "" {
				props["personalComputeInstanceSettings"] = map[string]any{"assignedUser": map[string]string{"objectId": *assigned}}
			}
			outer := map[string]any{"computeType": "ComputeInstance", "properties": props}
			if *desc != "" {
				outer["description"] = *desc
			}
			body := map[string]any{"properties": outer}
			cl, err := newClient(c.g)
			if err != nil {
				return err
			}
			name := args[0]
			path := cl.computePath(ws, name)
			resp, err := cl.do(ctx, http.MethodPut, path, nil, body)
			if err != nil {
				return err
			}
			var a armCompute
			if err := json.Unmarshal(resp.body, &a); err != nil {
				return fmt.Errorf("decode created instance %q: %w", name, err)
			}
			opURL := resp.header.Get("Azure-AsyncOperation")
			if *noWait || opURL == "" {
				return printInstance(c.stdout, c.g.output, instanceOf(a))
			}
			p := &progress{w: c.stderr, tty: isTerminal(os.Stderr), name: name}
			if err := cl.wait(ctx, p, opURL, path); err != nil {
				return err
			}
			in, err := cl.getInstance(ctx, ws, name)
			if err != nil {
				return err
			}
			return printInstance(c.stdout, c.g.output, in)
		}
	},
}

// publicKey reads the public key to install: from file (a .pub, or a
// private key with a .pub beside it), or the user's default key. It returns
// "" when no file is given and no default key exists.
func publicKey(file string) (string, error) {
	if file == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", nil
		}
		for _, k := range defaultKeys {
			p := filepath.Join(home, ".ssh", k+".pub")
			if _, err := os.Stat(p); err == nil {
				file = p
				break
			}
		}
		if file == "" {
			return "", nil
		}
	}
	if !strings.HasSuffix(file, ".pub") {
		if _, err := os.Stat(file + ".pub"); err == nil {
			file += ".pub"
		}
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", usageErrorf("--ssh-key: %v", err)
	}
	pk, comment, _, _, err := ssh.ParseAuthorizedKey(b)
	if err != nil {
		return "", usageErrorf("--ssh-key %s: not an OpenSSH public key: %v", file, err)
	}
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pk)))
	if comment != "" {
		line += " " + comment
	}
	return line, nil
}

// defaultKeys are the key files (under ~/.ssh) used when --ssh-key is not
// given, in order of preference.
var defaultKeys = []string{"id_ed25519", "id_rsa"}

// inlineScript is a script reference with the script inline, base64.
func inlineScript(file, args, timeout string) (map[string]string, error) {
	b, err := os.ReadFile(file)
	if errors.Is(err, os.ErrNotExist) {
		return nil, usageErrorf("script %s does not exist", file)
	}
	if err != nil {
		return nil, fmt.Errorf("read script %s: %w", file, err)
	}
	ref := map[string]string{"scriptSource": "inline", "scriptData": base64.StdEncoding.EncodeToString(b)}
	if args != "" {
		ref["scriptArguments"] = args
	}
	if timeout != "" {
		ref["timeout"] = timeout
	}
	return ref, nil
}
