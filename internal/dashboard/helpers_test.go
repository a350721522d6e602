package dashboard_test

import (
	"context"
	"errors"
	"strconv"
	"sync/atomic"

	"github.com/treaty-dev/treaty/internal/audit"
	"github.com/treaty-dev/treaty/localapi"
)

func auditNewest() audit.Filter {
	return audit.Filter{Reverse: true, Limit: 1, Kind: audit.KindCallCompleted}
}

func itoa(u uint64) string { return strconv.FormatUint(u, 10) }

type downNode struct{}

func (downNode) Status(context.Context) (localapi.Status, error) {
	return localapi.Status{}, errors.New("not running")
}

func (downNode) Peers(context.Context) ([]localapi.PeerInfo, error) {
	return nil, errors.New("not running")
}

// switchNode is down until up is set.
type switchNode struct{ up atomic.Bool }

func (n *switchNode) Status(context.Context) (localapi.Status, error) {
	if !n.up.Load() {
		return localapi.Status{}, errors.New("not running")
	}
	return localapi.Status{Name: "self", ID: "did:key:z6MkSelf"}, nil
}

func (n *switchNode) Peers(context.Context) ([]localapi.PeerInfo, error) { return nil, nil }
