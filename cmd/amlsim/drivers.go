package main

// driverNames are the hypervisor drivers `serve --driver` takes.
func driverNames() []string { return []string{"libvirt", "fake"} }
