package main

const startSummary = `Start a stopped compute instance and wait until it is running.

The instance must be Stopped; starting any other state fails with
StartComputeInstanceOnlyAllowedInStoppedState (exit status 4).`
