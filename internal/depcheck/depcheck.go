// Package depcheck pins the engines that the consensus, membership, A2A and
// metrics work builds on, so that their versions are chosen once and build
// together (raft v1.7.2 with memberlist v0.6.0: v0.7.0 lifts go-metrics past
// the package raft imports). It is removed once those packages import them.
package depcheck

import (
	_ "github.com/a2aproject/a2a-go/a2aclient"
	_ "github.com/a2aproject/a2a-go/a2asrv"
	_ "github.com/anishathalye/porcupine"
	_ "github.com/chromedp/chromedp"
	_ "github.com/hashicorp/memberlist"
	_ "github.com/hashicorp/raft"
	_ "github.com/hyperledger-labs/SmartBFT/pkg/consensus"
	_ "github.com/prometheus/client_golang/prometheus"
)
