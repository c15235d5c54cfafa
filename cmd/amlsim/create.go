package main

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	ml "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/machinelearning/armmachinelearning/v4"
	"github.com/spf13/cobra"
	"golang.org/x/crypto/ssh"

	"github.com/amlsim/amlsim/sim"
)

const createSummary = `Create a compute instance and wait until it is running.

SSH public access is enabled with --ssh-key, or with ~/.ssh/id_ed25519.pub
(else ~/.ssh/id_rsa.pub) when that exists; --no-ssh leaves it disabled.
Scripts are sent inline (base64) as the instance's creation and startup
scripts. While waiting, the instance's events are shown; --no-wait returns
once the request is accepted.`

func newCreateCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "create NAME --size SIZE",
		Short: firstLine(createSummary),
		Long:  createSummary,
		Args:  exactArgs("NAME"),
		// The name is new: nothing to complete.
		ValidArgsFunction: cobra.NoFileCompletions,
	}
	ws := workspaceFlags(cmd, g)
	f := cmd.Flags()
	size := f.String("size", "", "VM `SIZE`, such as Standard_D3_v2 (see 'amlsim sizes')")
	key := f.String("ssh-key", "", "public key `FILE` (.pub) to log in with; enables SSH public access")
	noSSH := f.Bool("no-ssh", false, "leave SSH public access disabled, even if a default key exists")
	setup := f.String("setup-script", "", "creation script `FILE`, run once when the instance is created")
	setupArgs := f.String("setup-args", "", "`ARGS` passed to the creation script")
	setupTimeout := f.String("setup-timeout", "", "`DURATION` the creation script may run, such as 10m")
	startup := f.String("startup-script", "", "startup script `FILE`, run on every start")
	startupArgs := f.String("startup-args", "", "`ARGS` passed to the startup script")
	startupTimeout := f.String("startup-timeout", "", "`DURATION` the startup script may run")
	desc := f.String("description", "", "`TEXT` describing the instance")
	assigned := f.String("assigned-user", "", "create the instance on behalf of the user with object `ID` (S9)")
	noWait := f.Bool("no-wait", false, "return once the request is accepted")
	for _, name := range []string{"ssh-key", "setup-script", "startup-script"} {
		cmd.MarkFlagFilename(name)
	}
	cmd.RegisterFlagCompletionFunc("size", completeSizes(g))
	cmd.RegisterFlagCompletionFunc("assigned-user", completePrincipals(g))
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		ctx, stdout := cmd.Context(), cmd.OutOrStdout()
		if *size == "" {
			return usageErrorf("missing --size (see 'amlsim sizes' for the sizes)")
		}
		if *key != "" && *noSSH {
			return usageErrorf("--ssh-key and --no-ssh contradict each other")
		}
		props := &ml.ComputeInstanceProperties{VMSize: size}
		if !*noSSH {
			pub, err := publicKey(*key)
			if err != nil {
				return err
			}
			if pub != "" {
				props.SSHSettings = &ml.ComputeInstanceSSHSettings{SSHPublicAccess: to(ml.SSHPublicAccessEnabled), AdminPublicKey: &pub}
			} else {
				fmt.Fprintln(cmd.ErrOrStderr(), "amlsim: no ~/.ssh/id_ed25519.pub or id_rsa.pub: SSH public access stays disabled (make a key with ssh-keygen -t ed25519, or pass --ssh-key FILE)")
			}
		}
		scripts := &ml.ScriptsToExecute{}
		for _, s := range []struct {
			ref                 **ml.ScriptReference
			file, args, timeout string
		}{
			{&scripts.CreationScript, *setup, *setupArgs, *setupTimeout},
			{&scripts.StartupScript, *startup, *startupArgs, *startupTimeout},
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
			*s.ref = ref
		}
		if scripts.CreationScript != nil || scripts.StartupScript != nil {
			props.SetupScripts = &ml.SetupScripts{Scripts: scripts}
		}
		if *assigned != "" {
			props.PersonalComputeInstanceSettings = &ml.PersonalComputeInstanceSettings{AssignedUser: &ml.AssignedUser{
				ObjectID: assigned, TenantID: to(sim.DefaultOwner.TenantID)}}
		}
		body := ml.ComputeResource{Properties: &ml.ComputeInstance{
			ComputeType: to(ml.ComputeTypeComputeInstance),
			Properties:  props,
		}}
		if *desc != "" {
			body.Properties.(*ml.ComputeInstance).Description = desc
		}
		cl, err := newClient(g)
		if err != nil {
			return err
		}
		name := args[0]
		in, err := cl.create(ctx, ws, name, body, !*noWait, newProgress(cmd, name))
		if err != nil {
			return err
		}
		return printInstance(stdout, g.output, in)
	}
	return cmd
}

// create PUTs an instance through the SDK; with wait, it waits for the
// operation and answers the instance as it then is, else as the PUT
// answered it (Creating).
func (c *client) create(ctx context.Context, ws *workspaceRef, name string, body ml.ComputeResource, wait bool, p *progress) (instance, error) {
	var put *http.Response
	poller, err := c.ml.NewComputeClient().BeginCreateOrUpdate(runtime.WithCaptureResponse(ctx, &put), ws.rg, ws.name, name, body, nil)
	if err != nil {
		return instance{}, c.failure(ctx, err)
	}
	if !wait {
		var r ml.ComputeResource
		if err := runtime.UnmarshalAsJSON(put, &r); err != nil {
			return instance{}, fmt.Errorf("decode created instance %q: %w", name, err)
		}
		return instanceOf(&r), nil
	}
	r, err := waitFor(ctx, c, p, poller, c.computePath(ws, name))
	if err != nil {
		return instance{}, err
	}
	return instanceOf(&r.ComputeResource), nil
}

// to returns a pointer to v, as the SDK's models want.
func to[T any](v T) *T { return &v }

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
func inlineScript(file, args, timeout string) (*ml.ScriptReference, error) {
	b, err := os.ReadFile(file)
	if errors.Is(err, os.ErrNotExist) {
		return nil, usageErrorf("script %s does not exist", file)
	}
	if err != nil {
		return nil, fmt.Errorf("read script %s: %w", file, err)
	}
	ref := &ml.ScriptReference{ScriptSource: to("inline"), ScriptData: to(base64.StdEncoding.EncodeToString(b))}
	if args != "" {
		ref.ScriptArguments = &args
	}
	if timeout != "" {
		ref.Timeout = &timeout
	}
	return ref, nil
}
