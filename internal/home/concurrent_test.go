package home

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/treaty-dev/treaty/internal/config"
	"github.com/treaty-dev/treaty/internal/identity"
	"github.com/treaty-dev/treaty/internal/policy"
)

// editorEnv makes the test binary act as one editing process (see TestMain).
const editorEnv = "TREATY_HOME_TEST_EDIT"

func TestMain(m *testing.M) {
	if spec := os.Getenv(editorEnv); spec != "" {
		if err := runEdit(strings.Split(spec, "|")); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runEdit performs one edit: dir, op, then the op's arguments.
func runEdit(a []string) error {
	dir, op := a[0], a[1]
	switch op {
	case "grant":
		_, err := Grant(dir, a[2], a[3])
		return err
	case "ungrant":
		_, _, err := Ungrant(dir, a[2], a[3])
		return err
	case "expose":
		return Expose(dir, config.Capability{Name: a[2]}, false)
	case "peer":
		return AddPeer(dir, a[2], "127.0.0.1:7500", a[3])
	}
	return fmt.Errorf("unknown op %q", op)
}

// editPlan is a set of edits that all succeed in any order, and a check that
// every one of them is in the home afterwards.
type editPlan struct {
	ops   [][]string
	check func(t *testing.T)
}

// newEditPlan makes a home with n peers, each granted "old"; the plan then
// ungrants "old" from each, grants "new" to each, exposes n capabilities and
// adds n more peers: 4n edits of both files that must all survive.
func newEditPlan(t *testing.T, n int) editPlan {
	t.Helper()
	dir := t.TempDir()
	if _, err := Init(dir, "alice", ""); err != nil {
		t.Fatal(err)
	}
	did := func(i int) string { return seededDID(t, byte(i+1)) }
	for i := range n {
		if err := AddPeer(dir, "p"+strconv.Itoa(i), "127.0.0.1:7421", did(i)); err != nil {
			t.Fatal(err)
		}
		if _, err := Grant(dir, "p"+strconv.Itoa(i), "old"); err != nil {
			t.Fatal(err)
		}
	}
	var ops [][]string
	for i := range n {
		p := "p" + strconv.Itoa(i)
		ops = append(ops,
			[]string{dir, "ungrant", p, "old"},
			[]string{dir, "grant", p, "new"},
			[]string{dir, "expose", "cap" + strconv.Itoa(i)},
			[]string{dir, "peer", "q" + strconv.Itoa(i), did(100 + i)},
		)
	}
	return editPlan{ops: ops, check: func(t *testing.T) {
		t.Helper()
		cfg, err := config.Load(dir)
		if err != nil {
			t.Fatal(err)
		}
		e, err := policy.Load(dir)
		if err != nil {
			t.Fatal(err)
		}
		for i := range n {
			k, _ := identity.ParseDID(did(i))
			if e.Authorize(k, policy.ActionCall, "old", policy.Context{}).Allowed {
				t.Errorf("ungrant p%d old was lost", i)
			}
			if !e.Authorize(k, policy.ActionCall, "new", policy.Context{}).Allowed {
				t.Errorf("grant p%d new was lost", i)
			}
			if _, ok := cfg.Capability("cap" + strconv.Itoa(i)); !ok {
				t.Errorf("expose cap%d was lost", i)
			}
			if _, ok := cfg.Peer("q" + strconv.Itoa(i)); !ok {
				t.Errorf("peer add q%d was lost", i)
			}
		}
	}}
}

func TestParallelEditsAreNotLost(t *testing.T) {
	plan := newEditPlan(t, 15)
	var wg sync.WaitGroup
	errs := make(chan error, len(plan.ops))
	for _, op := range plan.ops {
		wg.Go(func() { errs <- runEdit(op) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	plan.check(t)
}

// TestParallelProcessEditsAreNotLost runs each edit in its own process, as
// parallel CLI commands do: the lock must hold across processes.
func TestParallelProcessEditsAreNotLost(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 40 processes")
	}
	plan := newEditPlan(t, 10)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(plan.ops))
	for _, op := range plan.ops {
		cmd := exec.Command(self, "-test.run=^$")
		cmd.Env = append(os.Environ(), editorEnv+"="+strings.Join(op, "|"))
		wg.Go(func() {
			if out, err := cmd.CombinedOutput(); err != nil {
				errs <- fmt.Errorf("%v: %v: %s", op[1:], err, out)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	plan.check(t)
}

func TestLockFileStaysInHome(t *testing.T) {
	dir := t.TempDir()
	if _, err := Init(dir, "alice", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, ".treaty.lock")); err != nil {
		t.Fatalf("lock file: %v", err)
	}
}
