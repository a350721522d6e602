package backend

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/treaty-dev/treaty/internal/jsonsyntax"
)

// Exec runs a command per call: the input JSON on stdin, the result JSON on
// stdout. The process group is killed when the call times out or is
// cancelled, and when the command exits, so neither a hung backend nor a
// child it left behind outlives its call (a process that leaves the group,
// e.g. with setsid, is beyond reach).
//
// The command does not inherit the node's environment, which may hold the
// operator's credentials: it gets only BaseEnv and the EnvAllow names taken
// from the node's environment, then Env, then the variables the node sets
// for the call (TREATY_PEER, TREATY_CAPABILITY, TREATY_CALL, TREATY_HOME),
// which win over any of the same name.
type Exec struct {
	Argv      []string      // program and arguments; required
	Env       []string      // extra KEY=VALUE entries
	EnvAllow  []string      // names passed through from the node's environment, e.g. OPENAI_API_KEY
	Timeout   time.Duration // required; the process is killed after it
	MaxOutput int           // zero: DefaultMaxOutput; for streams, per event line
}

// baseEnv names the variables every exec backend gets from the node's
// environment (when set there).
var baseEnv = [...]string{"PATH", "HOME", "LANG"}

// environ is the command's environment for inv; lookup reads the node's.
func (e *Exec) environ(inv Invocation, lookup func(string) (string, bool)) []string {
	env := make([]string, 0, len(baseEnv)+len(e.EnvAllow)+len(e.Env)+4)
	for _, names := range [][]string{baseEnv[:], e.EnvAllow} {
		for _, name := range names {
			if v, ok := lookup(name); ok {
				env = append(env, name+"="+v)
			}
		}
	}
	env = append(env, e.Env...)
	env = append(env, "TREATY_PEER="+inv.Peer.String(), "TREATY_CAPABILITY="+inv.Capability)
	if inv.CallToken != "" {
		env = append(env, "TREATY_CALL="+inv.CallToken)
	}
	if inv.Home != "" {
		env = append(env, "TREATY_HOME="+inv.Home)
	}
	return env
}

func (e *Exec) command(ctx context.Context, inv Invocation) (*exec.Cmd, *procGroup, error) {
	if len(e.Argv) == 0 {
		return nil, nil, fail("misconfigured", errors.New("exec: empty command"))
	}
	cmd := exec.CommandContext(ctx, e.Argv[0], e.Argv[1:]...)
	cmd.Env = e.environ(inv, os.LookupEnv)
	cmd.Stdin = bytes.NewReader(inv.Input)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// Kill the whole group: a shell script's children must die with it.
	// The cancellation may come as the command is reaped: procGroup
	// signals the group only before.
	g := newProcGroup(cmd, nil)
	cmd.Cancel = g.kill
	cmd.WaitDelay = time.Second
	return cmd, g, nil
}

func (e *Exec) maxOutput() int {
	if e.MaxOutput > 0 {
		return e.MaxOutput
	}
	return DefaultMaxOutput
}

// Call runs the command once.
func (e *Exec) Call(ctx context.Context, inv Invocation) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, e.Timeout)
	defer cancel()
	cmd, group, err := e.command(ctx, inv)
	if err != nil {
		return nil, err
	}
	// Past the limit the answer is lost anyway: stop the command there
	// rather than at its timeout.
	stdout := &limitedBuffer{max: e.maxOutput(), full: cancel}
	stderr := &limitedBuffer{max: 4 << 10}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Start(); err != nil {
		return nil, fail("could not start", err)
	}
	err = group.wait()
	if stdout.overflow {
		return nil, outputTooLarge(stdout.max)
	}
	if ctx.Err() != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, fail(fmt.Sprintf("timed out after %v", e.Timeout), ctx.Err())
		}
		return nil, fail("cancelled", ctx.Err())
	}
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return nil, fail(fmt.Sprintf("exited with status %d", ee.ExitCode()), fmt.Errorf("%w; stderr: %q", err, stderr.b))
		}
		return nil, fail("failed", err)
	}
	out := bytes.TrimSpace(stdout.b)
	if !jsonsyntax.Valid(out) {
		return nil, fail("returned invalid JSON on stdout", nil)
	}
	return out, nil
}

// Stream runs the command once and emits each stdout line as one JSON event.
func (e *Exec) Stream(ctx context.Context, inv Invocation, emit func([]byte) error) error {
	ctx, cancel := context.WithTimeout(ctx, e.Timeout)
	defer cancel()
	cmd, group, err := e.command(ctx, inv)
	if err != nil {
		return err
	}
	stderr := &limitedBuffer{max: 4 << 10}
	cmd.Stderr = stderr
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		return fail("could not start", err)
	}
	if err := cmd.Start(); err != nil {
		return fail("could not start", err)
	}
	sc := bufio.NewScanner(pipe)
	sc.Buffer(make([]byte, 0, 64<<10), e.maxOutput())
	var emitErr error
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		if !jsonsyntax.Valid(line) {
			emitErr = fail("emitted a line that is not JSON", nil)
			break
		}
		if emitErr = emit(bytes.Clone(line)); emitErr != nil {
			break
		}
	}
	scanErr := sc.Err()
	if emitErr != nil || scanErr != nil {
		cancel() // stop the process; its output is no longer wanted
	}
	waitErr := group.wait()
	switch {
	case emitErr != nil:
		return emitErr
	case errors.Is(scanErr, bufio.ErrTooLong):
		return outputTooLarge(e.maxOutput())
	case ctx.Err() != nil && errors.Is(ctx.Err(), context.DeadlineExceeded):
		return fail(fmt.Sprintf("timed out after %v", e.Timeout), ctx.Err())
	case ctx.Err() != nil:
		return fail("cancelled", ctx.Err())
	case waitErr != nil:
		var ee *exec.ExitError
		if errors.As(waitErr, &ee) {
			return fail(fmt.Sprintf("exited with status %d", ee.ExitCode()), fmt.Errorf("%w; stderr: %q", waitErr, stderr.b))
		}
		return fail("failed", waitErr)
	}
	return nil
}
