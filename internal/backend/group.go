package backend

import (
	"os"
	"os/exec"
	"sync"
	"syscall"
)

// procGroup is a started command whose process leads its own process group
// (Setpgid), and the one place that group is signalled.
//
// kill(-pgid) names the group by its leader's pid. Once the leader is reaped
// and the group's last member has gone, the kernel may give that number to a
// new process, which may lead a group of its own (another backend's server, a
// shell's job): a group kill sent after the reap could kill strangers, and a
// session's end or a call's cancellation can come at any moment relative to
// the reap. So the group is signalled only while the leader is known
// unreaped: a leader that has exited but is not reaped is a zombie, and its
// pid, so the group's id, stays allocated until it is. reap marks the group
// reaped under mu, after its last group kill and before it reaps; kill does
// nothing afterwards. (A group whose leader was reaped but that still has
// members keeps its id too, but nothing here needs to signal one.)
type procGroup struct {
	cmd *exec.Cmd
	// signal sends sig to pid (a group when negative); nil: syscall.Kill.
	// Tests see every signal through it.
	signal func(pid int, sig syscall.Signal) error

	mu     sync.Mutex
	reaped bool
}

func newProcGroup(cmd *exec.Cmd, signal func(int, syscall.Signal) error) *procGroup {
	return &procGroup{cmd: cmd, signal: signal}
}

func (g *procGroup) send(pid int, sig syscall.Signal) error {
	if g.signal != nil {
		return g.signal(pid, sig)
	}
	return syscall.Kill(pid, sig)
}

// kill sends SIGKILL to the whole group, unless the leader is reaped (or
// being reaped): then it returns os.ErrProcessDone, as os.Process.Kill does.
// It suits exec.Cmd.Cancel.
func (g *procGroup) kill() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.reaped || g.cmd.Process == nil {
		return os.ErrProcessDone
	}
	return g.send(-g.cmd.Process.Pid, syscall.SIGKILL)
}

// reap kills the whole group, the leader with it, and waits for the leader
// (exec.Cmd.Wait: its pipes too).
func (g *procGroup) reap() error {
	g.mu.Lock()
	if !g.reaped {
		g.send(-g.cmd.Process.Pid, syscall.SIGKILL)
		g.reaped = true
	}
	g.mu.Unlock()
	return g.cmd.Wait()
}

// wait waits for the leader to exit, then kills what is left of its group
// (a child it left behind must not outlive it) and reaps it.
func (g *procGroup) wait() error {
	if waitExited(g.cmd.Process.Pid) {
		return g.reap()
	}
	// Without a wait that leaves the leader unreaped, its group is killed
	// after the reap: the id is reused only after the pid space wraps.
	err := g.cmd.Wait()
	g.mu.Lock()
	if !g.reaped {
		g.send(-g.cmd.Process.Pid, syscall.SIGKILL)
		g.reaped = true
	}
	g.mu.Unlock()
	return err
}
