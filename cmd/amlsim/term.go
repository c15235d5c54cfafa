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

// terminalWidth is the width of the terminal f in columns, or 0 when it
// cannot be told.
func terminalWidth(f *os.File) int {
	w, _, err := term.GetSize(int(f.Fd()))
	if err != nil {
		return 0
	}
	return w
}
