package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/treaty-dev/treaty/internal/doctor"
)

// errUnhealthy exits 1: a check failed (the findings say which and why).
var errUnhealthy = errors.New("doctor: a check failed")

func doctorCmd(h func() string) *cobra.Command {
	var timeout time.Duration
	c := &cobra.Command{
		Use: "doctor [--home DIR]", Short: "check the home, the running node and its peers, and say what to fix",
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if timeout <= 0 {
				return usagef("--timeout %v: want a duration > 0, as in 5s", timeout)
			}
			fs, err := doctor.Run(cmd.Context(), doctor.Options{Home: h(), Timeout: timeout})
			if err != nil {
				return err
			}
			doctor.Write(termSafe(cmd.OutOrStdout()), fs) // findings quote peers' names and answers
			if !doctor.Healthy(fs) {
				return errUnhealthy
			}
			fmt.Fprintln(cmd.OutOrStdout(), "healthy")
			return nil
		},
	}
	c.Flags().DurationVar(&timeout, "timeout", 5*time.Second, "how long each probe (the node, each peer) may take")
	return c
}
