package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
)

// completionVerb is a function, not a variable like the other verbs: the
// script it prints lists every verb's flags, its own included.
func completionVerb() verb {
	return verb{
		name: "completion",
		args: "bash|zsh",
		summary: `Print a shell completion script: verbs, flags, VM sizes and instance names.

  bash: source <(amlsim completion bash)     (or save it in /etc/bash_completion.d/amlsim)
  zsh:  source <(amlsim completion zsh)      (after compinit)

Instance names and sizes are asked of the server ('amlsim compute list
--output name', 'amlsim sizes') when completing, with the environment's
AMLSIM_ENDPOINT and AMLSIM_HOME.`,
		setup: func(c *command) runFunc {
			return func(ctx context.Context, args []string) error {
				if err := exactArgs(c, args, "SHELL"); err != nil {
					return err
				}
				switch args[0] {
				case "bash":
					return writeCompletion(c.stdout, bashTemplate)
				case "zsh":
					return writeCompletion(c.stdout, zshTemplate)
				}
				return usageErrorf("no completion for shell %q: want bash or zsh", args[0])
			}
		},
	}
}

func completion(args []string) error { return runVerb("completion", completionVerb(), args) }

// staticFlags are the flags of the verbs that parse their own (serve,
// token, image build).
var staticFlags = map[string][]string{
	"serve":       {"--home", "--listen", "--config", "--driver", "--test-clock", "-v"},
	"token":       {"--home", "--user", "--tenant", "--name", "--ttl"},
	"env":         {"--home", "--endpoint", "--user", "--tenant"},
	"studio":      {"--home", "--endpoint", "--user", "--tenant"},
	"image build": {"--cache"},
}

// fileFlags take a path: the shells complete file names after them.
var fileFlags = map[string]bool{"--home": true, "--config": true, "--cache": true}

// completionSpec gathers what the scripts complete: verb keys ("compute
// create", "usage") and their flags.
func completionSpec() (keys []string, flags map[string][]string, files map[string]bool) {
	flags = map[string][]string{}
	files = map[string]bool{}
	for f := range fileFlags {
		files[f] = true
	}
	for k, v := range staticFlags {
		flags[k] = v
	}
	add := func(key string, v verb) {
		c := newCommand(key, v)
		v.setup(c)
		c.fs.VisitAll(func(f *flag.Flag) {
			dash := "--"
			if len(f.Name) == 1 {
				dash = "-"
			}
			flags[key] = append(flags[key], dash+f.Name)
			if name, _ := flag.UnquoteUsage(f); name == "FILE" || name == "DIR" {
				files[dash+f.Name] = true
			}
		})
	}
	for _, v := range computeVerbs() {
		add("compute "+v.name, v)
	}
	for _, v := range roleVerbs() {
		add("role "+v.name, v)
	}
	for _, v := range setupScriptVerbs() {
		add("setup-script "+v.name, v)
	}
	for _, v := range clockVerbs() {
		add("clock "+v.name, v)
	}
	for _, v := range []verb{usageVerb, sizesVerb, doctorVerb, completionVerb()} {
		add(v.name, v)
	}
	for k := range flags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys, flags, files
}

func computeNames() string {
	var names []string
	for _, v := range computeVerbs() {
		names = append(names, v.name)
	}
	return strings.Join(names, " ")
}

// writeCompletion fills a script template: @VERBS@, @COMPUTE@, @FILEFLAGS@
// and @FLAGCASES@ (one case arm per verb key, in the shell's syntax).
func writeCompletion(w io.Writer, tmpl string) error {
	keys, flags, fileSet := completionSpec()
	var files []string
	for f := range fileSet {
		files = append(files, f)
	}
	sort.Strings(files)
	var cases strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&cases, "    %q) flags=%q ;;\n", k, strings.Join(flags[k], " "))
	}
	var top []string
	for v := range verbs() {
		top = append(top, v)
	}
	sort.Strings(top)
	r := strings.NewReplacer(
		"@VERBS@", strings.Join(top, " "),
		"@COMPUTE@", computeNames(),
		"@FILEFLAGS@", strings.Join(files, "|"),
		"@FLAGCASES@", strings.TrimRight(cases.String(), "\n"),
	)
	_, err := io.WriteString(w, r.Replace(tmpl))
	return err
}

const bashTemplate = `# bash completion for amlsim; load with: source <(amlsim completion bash)
_amlsim() {
  local cur prev verb sub key flags
  cur="${COMP_WORDS[COMP_CWORD]}"
  prev="${COMP_WORDS[COMP_CWORD-1]}"
  verb="${COMP_WORDS[1]}"
  sub="${COMP_WORDS[2]}"
  COMPREPLY=()
  if [[ $COMP_CWORD -eq 1 ]]; then
    COMPREPLY=($(compgen -W "@VERBS@" -- "$cur"))
    return
  fi
  case "$prev" in
    @FILEFLAGS@) COMPREPLY=($(compgen -f -- "$cur")); return ;;
    --output|-o) COMPREPLY=($(compgen -W "table json name" -- "$cur")); return ;;
    --driver) COMPREPLY=($(compgen -W "libvirt fake" -- "$cur")); return ;;
    --size) COMPREPLY=($(compgen -W "$(amlsim sizes 2>/dev/null | awk 'NR>1 {print $1}')" -- "$cur")); return ;;
  esac
  if [[ $COMP_CWORD -eq 2 ]]; then
    case "$verb" in
      compute) COMPREPLY=($(compgen -W "@COMPUTE@" -- "$cur")); return ;;
      image) COMPREPLY=($(compgen -W "build" -- "$cur")); return ;;
      role) COMPREPLY=($(compgen -W "assign list remove" -- "$cur")); return ;;
      setup-script) COMPREPLY=($(compgen -W "run" -- "$cur")); return ;;
      clock) COMPREPLY=($(compgen -W "show set advance" -- "$cur")); return ;;
      completion) COMPREPLY=($(compgen -W "bash zsh" -- "$cur")); return ;;
    esac
  fi
  key="$verb"
  case "$verb" in compute|image|role|setup-script|clock) key="$verb $sub" ;; esac
  if [[ "$cur" == -* ]]; then
    flags=""
    case "$key" in
@FLAGCASES@
    esac
    COMPREPLY=($(compgen -W "$flags" -- "$cur"))
    return
  fi
  case "$key" in
    "compute show"|"compute start"|"compute stop"|"compute restart"|"compute delete"|"compute ssh"|"compute logs")
      COMPREPLY=($(compgen -W "$(amlsim compute list --output name 2>/dev/null)" -- "$cur")) ;;
  esac
}
complete -o default -F _amlsim amlsim
`

const zshTemplate = `#compdef amlsim
# zsh completion for amlsim; load with: source <(amlsim completion zsh)
# (after compinit), or save it as _amlsim in a directory of $fpath.
_amlsim() {
  local cur=${words[CURRENT]} prev=${words[CURRENT-1]} verb=${words[2]} sub=${words[3]} key flags
  if (( CURRENT == 2 )); then
    compadd -- @VERBS@
    return
  fi
  case "$prev" in
    @FILEFLAGS@) _files; return ;;
    --output|-o) compadd -- table json name; return ;;
    --driver) compadd -- libvirt fake; return ;;
    --size) compadd -- ${(f)"$(amlsim sizes 2>/dev/null | awk 'NR>1 {print $1}')"}; return ;;
  esac
  if (( CURRENT == 3 )); then
    case "$verb" in
      compute) compadd -- @COMPUTE@; return ;;
      image) compadd -- build; return ;;
      role) compadd -- assign list remove; return ;;
      setup-script) compadd -- run; return ;;
      clock) compadd -- show set advance; return ;;
      completion) compadd -- bash zsh; return ;;
    esac
  fi
  key="$verb"
  case "$verb" in compute|image|role|setup-script|clock) key="$verb $sub" ;; esac
  if [[ "$cur" == -* ]]; then
    flags=""
    case "$key" in
@FLAGCASES@
    esac
    compadd -- ${=flags}
    return
  fi
  case "$key" in
    "compute show"|"compute start"|"compute stop"|"compute restart"|"compute delete"|"compute ssh"|"compute logs")
      compadd -- ${(f)"$(amlsim compute list --output name 2>/dev/null)"} ;;
    *) _files ;;
  esac
}
if [[ $zsh_eval_context[-1] == loadautofunc ]]; then
  _amlsim "$@"
else
  compdef _amlsim amlsim
fi
`
