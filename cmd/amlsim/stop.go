package main

const stopSummary = `Stop a running compute instance and wait until it is stopped.

The VM is asked to power off (ACPI) and forced off after a grace period.
A stopped instance keeps its disk and its quota.`
