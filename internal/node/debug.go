package node

// PprofEnabled reports whether treaty.yaml switches on the profiling endpoint
// (debug.pprof), as of the last reload.
func (n *Node) PprofEnabled() bool { return n.state.Load().cfg.Debug.Pprof }
