// Command treaty is the CLI of a treaty node. It parses flags and prints; the
// work is done by the internal packages or, for a running node, through its
// local API (package client).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/treaty-dev/treaty/internal/home"
	"github.com/treaty-dev/treaty/internal/refusal"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}

// checkedWriter keeps the first error writing to w, so that a command whose
// output was lost (treaty id > /dev/full) does not exit 0.
type checkedWriter struct {
	w   io.Writer
	err error
}

func (c *checkedWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	if err != nil && c.err == nil {
		c.err = err
	}
	return n, err
}

// usageError marks errors in the command line itself (exit 2).
type usageError struct{ err error }

func (u usageError) Error() string { return u.err.Error() }
func (u usageError) Unwrap() error { return u.err }

func run(ctx context.Context, args []string) int {
	root := newRoot()
	root.SetArgs(args)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	out := &checkedWriter{w: os.Stdout}
	root.SetOut(out)
	err := root.ExecuteContext(ctx)
	if err == nil && out.err != nil { // what the command printed did not arrive: a full disk, a closed pipe
		err = fmt.Errorf("write stdout: %w", out.err)
	}
	if err == nil {
		return 0
	}
	fmt.Fprintln(os.Stderr, "treaty:", oneLine(err.Error()))
	return exitCode(err)
}

// exitCode maps an error to the contract's exit code: every mistake in the
// arguments (including an invalid value found by a package, or an unknown peer
// named in an admin command) is a usage error.
func exitCode(err error) int {
	var u usageError
	switch {
	case errors.As(err, &u),
		errors.Is(err, home.ErrInvalid),
		errors.Is(err, home.ErrBadLimit),
		errors.Is(err, home.ErrBadOverride):
		return refusal.ExitUsage
	}
	return refusal.ExitCode(err)
}

// args wraps a cobra argument check so that its failure exits with 2.
func args(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, a []string) error {
		if err := check(cmd, a); err != nil {
			return usageError{err}
		}
		return nil
	}
}

func usagef(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

// requireSubcommand makes every command group under c (peer, audit, ...)
// refuse to run without one of its subcommands. Cobra would print the help
// and exit 0, so a misspelt `treaty audit verfy` in a script would pass.
func requireSubcommand(c *cobra.Command) {
	for _, sub := range c.Commands() {
		requireSubcommand(sub)
	}
	if c.HasParent() && c.HasSubCommands() && !c.Runnable() {
		c.Args = args(cobra.NoArgs) // an unknown subcommand: `unknown command "x" for "treaty peer"`
		c.RunE = func(cmd *cobra.Command, _ []string) error {
			var names []string
			for _, sub := range cmd.Commands() {
				if sub.IsAvailableCommand() {
					names = append(names, sub.Name())
				}
			}
			return usagef("'%s' needs a command: %s (see '%s --help')", cmd.CommandPath(), strings.Join(names, ", "), cmd.CommandPath())
		}
	}
}
