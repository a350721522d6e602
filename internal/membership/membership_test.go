package membership

import (
	"testing"
	"time"
)

func TestSmallClusterConverges(t *testing.T) {
	c := newCluster(t, 4, nil)
	c.joinAll()
	d := eventually(t, 20*time.Second, "4 nodes converge", func() bool { return c.converged(seq(4)) })
	t.Logf("converged in %s", d)
	for _, mem := range c.ms[3].Members() {
		if mem.Record.Nickname != "node" || mem.Record.Org != "org" {
			t.Fatalf("record fields lost: %+v", mem.Record)
		}
	}
}
