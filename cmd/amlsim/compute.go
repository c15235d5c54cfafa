package main

// computeVerbs are the verbs of `amlsim compute`, one file each.
func computeVerbs() []verb {
	return []verb{
		createVerb, showVerb, listVerb, startVerb, stopVerb, restartVerb,
		deleteVerb, sshVerb, openVerb, logsVerb,
	}
}

// compute runs `amlsim compute VERB …`.
func compute(args []string) error { return dispatch("compute", computeVerbs(), args) }
