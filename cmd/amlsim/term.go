package main

import (
	"os"

	"golang.org/x/term"
)

// isTerminal reports whether f is a terminal (a character device such as
// /dev/null is not one).
func isTerminal(f *os.File) bool {
	return term.IsTerminal(int(f.Fd()))
}
