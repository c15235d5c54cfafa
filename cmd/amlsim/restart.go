package main

var restartVerb = actionVerb("restart", `Restart a running compute instance and wait until it is running again.`)
