package main

import (
	"strings"
	"testing"
)

// TestGroupCommandNeedsSubcommand: a command group (peer, audit, trust, ...)
// given no subcommand or a misspelt one is a usage error (exit 2), never a
// silent exit 0: a CI step running `treaty audit verfy` must not pass.
func TestGroupCommandNeedsSubcommand(t *testing.T) {
	dir, _, _ := tlHome(t)
	groups := []string{}
	for _, c := range newRoot().Commands() {
		if c.HasSubCommands() {
			groups = append(groups, c.Name())
		}
	}
	if len(groups) < 8 {
		t.Fatalf("found only the command groups %v", groups)
	}
	for _, g := range groups {
		t.Run(g, func(t *testing.T) {
			out, stderr, code := runTL(t, g, "--home", dir, "frobnicate")
			if code != 2 || !strings.Contains(stderr, `unknown command "frobnicate"`) || out != "" {
				t.Fatalf("treaty %s frobnicate: exit %d, out %q, err %q; want 2 naming the command", g, code, out, stderr)
			}
			_, stderr, code = runTL(t, g, "--home", dir)
			if code != 2 || !strings.Contains(stderr, "needs a command") || strings.Count(stderr, "\n") != 1 {
				t.Fatalf("treaty %s: exit %d, err %q; want 2 and one line listing its commands", g, code, stderr)
			}
			if _, _, code := runTL(t, g, "--help"); code != 0 {
				t.Fatalf("treaty %s --help: exit %d", g, code)
			}
		})
	}
}
