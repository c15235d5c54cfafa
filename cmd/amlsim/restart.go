package main

const restartSummary = `Restart a running compute instance and wait until it is running again.`
