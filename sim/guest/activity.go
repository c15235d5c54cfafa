package guest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/amlsim/amlsim/hypervisor/guestssh"
	"github.com/amlsim/amlsim/sim"
)

// sessionsCmd counts the SSH sessions of the guest's user: sshd titles
// each session's process "sshd: azureuser@pts/N" (interactive) or
// "sshd: azureuser@notty" (a command); OpenSSH 9.8 and later name it
// "sshd-session: …". amlsim's own probe is one of them.
const sessionsCmd = `pgrep -c -f '^sshd(-session)?: ` + User + `@' || true`

// Activity reports what keeps the instance from being idle, as Azure
// counts it where the guest has it: SSH sessions other than amlsim's own
// probe, and the Jupyter kernels and terminals of the guest's notebook
// server (its REST API: GET api/kernels, api/terminals).
func (g *SSH) Activity(ctx context.Context, inst sim.Instance) (sim.Activity, error) {
	var a sim.Activity
	addr, hk, err := sshEndpoint(inst)
	if err != nil {
		return a, err
	}
	c, err := guestssh.Dial(ctx, addr, User, g.Key.Signer(), hk)
	if err != nil {
		return a, err
	}
	defer c.Close()
	res, err := runBounded(ctx, c, sessionsCmd)
	if err != nil {
		return a, fmt.Errorf("count SSH sessions: %w", err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(res.Stdout)))
	if err != nil {
		return a, fmt.Errorf("count SSH sessions: %q: %w", res.Stdout, err)
	}
	if n < 1 {
		// The probe's own session is always there: the pattern no
		// longer matches this guest's sshd.
		return a, fmt.Errorf("count SSH sessions: %q matched not even the probe's own session", sessionsCmd)
	}
	a.SSHSessions = n - 1 // less the probe's own session
	if inst.HasApplications() {
		if a.Kernels, err = jupyterCount(ctx, inst, "kernels"); err != nil {
			return a, err
		}
		if a.Terminals, err = jupyterCount(ctx, inst, "terminals"); err != nil {
			return a, err
		}
	}
	return a, nil
}

// jupyterCount counts the kernels or terminals of the guest's notebook
// server, through the instance's forwarded application port.
func jupyterCount(ctx context.Context, inst sim.Instance, what string) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	url := "http://127.0.0.1:" + strconv.Itoa(inst.AppPort) + sim.AppBasePath(inst.Location, inst.Name) + "api/" + what
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "token "+inst.AppToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("list Jupyter %s: %w", what, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("list Jupyter %s: %s", what, resp.Status)
	}
	var list []json.RawMessage
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		return 0, fmt.Errorf("list Jupyter %s: %w", what, err)
	}
	return len(list), nil
}

// FakeActivity is the activity the Fake guest reports, set by tests.
type FakeActivity struct {
	mu     sync.Mutex
	byName map[string]sim.Activity
}

// Set makes the instance called name report a.
func (f *FakeActivity) Set(name string, a sim.Activity) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.byName == nil {
		f.byName = map[string]sim.Activity{}
	}
	f.byName[strings.ToLower(name)] = a
}

// SetActivity implements sim.ActivitySetter.
func (f Fake) SetActivity(name string, a sim.Activity) {
	if f.Active != nil {
		f.Active.Set(name, a)
	}
}

// Activity reports what Set gave the instance (none by default); a
// domain that does not run cannot be asked.
func (f Fake) Activity(ctx context.Context, inst sim.Instance) (sim.Activity, error) {
	if err := f.WaitReady(ctx, inst); err != nil {
		return sim.Activity{}, err
	}
	if f.Active == nil {
		return sim.Activity{}, nil
	}
	f.Active.mu.Lock()
	defer f.Active.mu.Unlock()
	return f.Active.byName[strings.ToLower(inst.Name)], nil
}
