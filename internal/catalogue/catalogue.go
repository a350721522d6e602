// Package catalogue is the list of remote capabilities that the local agent
// bridges (treaty mcp, treaty a2a) show: what each peer in a running node's
// book exposes to that node, under a stable agent-facing name (FitName).
//
// It reads the node only through its local API and holds no key, so it can
// show a capability but never grant one: every call the bridges make still
// takes the node's whole path. Its promises are the ones an agent relies on
// between polls: a peer that is briefly unreachable keeps its entries (the
// list does not flap), a peer gone from the book loses them, and the list is
// bounded whatever the peers answer.
package catalogue

import (
	"context"
	"encoding/json"
	"log/slog"
	"time"

	"github.com/treaty-dev/treaty/localapi"
)

// Source is what the catalogue reads of a running node; *client.Client is one.
type Source interface {
	Peers(ctx context.Context) ([]localapi.PeerInfo, error)
	Caps(ctx context.Context, peer string) (json.RawMessage, error)
}

// CapsTimeout bounds the wait for one peer's list of capabilities.
const CapsTimeout = 5 * time.Second

// Entry is one listed capability of one peer.
type Entry struct {
	PeerID, PeerName string
	Cap              localapi.CapabilityInfo
}

// PeerView is the last answer about one peer: its capabilities, or why they
// could not be read (then Caps is what was known before).
type PeerView struct {
	Info localapi.PeerInfo
	Caps []localapi.CapabilityInfo
	Err  *localapi.ErrorBody
}

// List is one reading of the node's peers.
type List struct {
	Entries map[string]Entry // by FitName(PeerLabel(peer), capability)
	Peers   []PeerView       // in the node's order
}

// Limits bounds a List and names what its entries are called in logs
// ("tool", "skill"), since an agent meets them under that name.
type Limits struct {
	Max  int    // entries at most; further capabilities are left out (logged)
	Noun string // what an entry is to the agent, for logs
}

// Read asks src for its peers and each peer's capabilities. A peer whose
// capabilities cannot be read keeps its entries and capabilities from prev;
// a peer no longer in the book is dropped. It fails only when the peer list
// cannot be read or ctx ends.
func Read(ctx context.Context, src Source, prev List, lim Limits, log *slog.Logger) (List, error) {
	peers, err := src.Peers(ctx)
	if err != nil {
		return prev, err
	}
	known := make(map[string][]localapi.CapabilityInfo, len(prev.Peers))
	for _, v := range prev.Peers {
		known[v.Info.ID] = v.Caps
	}
	out := List{Entries: map[string]Entry{}, Peers: make([]PeerView, 0, len(peers))}
	for _, p := range peers {
		v := PeerView{Info: p}
		cctx, cancel := context.WithTimeout(ctx, CapsTimeout)
		raw, err := src.Caps(cctx, p.ID)
		cancel()
		if err == nil {
			if err = json.Unmarshal(raw, &v.Caps); err != nil {
				err = &localapi.Error{Stage: localapi.StageInternal, Reason: "capabilities answer is not a list: " + err.Error()}
			}
		}
		if err != nil {
			if ctx.Err() != nil {
				return prev, ctx.Err()
			}
			v.Caps, v.Err = known[p.ID], ErrorBody(err)
			for name, e := range prev.Entries { // keep what we knew
				if e.PeerID == p.ID {
					out.Entries[name] = e
				}
			}
			out.Peers = append(out.Peers, v)
			continue
		}
		out.Peers = append(out.Peers, v)
		for _, c := range v.Caps {
			name := FitName(PeerLabel(p), c.Name)
			if first, dup := out.Entries[name]; dup {
				log.Warn("two capabilities fit the same "+lim.Noun+" name; the second is reachable by peer and capability only",
					lim.Noun, name, "first", first.PeerName+"/"+first.Cap.Name, "second", p.Name+"/"+c.Name)
				continue
			}
			if len(out.Entries) >= lim.Max {
				log.Warn(lim.Noun+" limit reached; further capabilities are reachable by peer and capability only", "limit", lim.Max)
				break
			}
			out.Entries[name] = Entry{PeerID: p.ID, PeerName: p.Name, Cap: c}
		}
	}
	return out, nil
}

// Find resolves a call named by peer (ID or nickname) and capability: the
// peer's ID, nickname and the capability as last read, so provenance shows
// the nickname and a stream is called as one. An unknown pair is returned as
// named; the node decides whether it exists.
func (l List) Find(peer, capability string) Entry {
	e := Entry{PeerID: peer, PeerName: peer, Cap: localapi.CapabilityInfo{Name: capability}}
	for _, v := range l.Peers {
		if v.Info.ID == peer || v.Info.Name == peer {
			e.PeerID, e.PeerName = v.Info.ID, v.Info.Name
			for _, c := range v.Caps {
				if c.Name == capability {
					e.Cap = c
				}
			}
		}
	}
	return e
}

// PeerLabel is the name a peer's entries carry: its nickname, else its ID.
func PeerLabel(p localapi.PeerInfo) string {
	if p.Name != "" {
		return p.Name
	}
	return p.ID
}

// Poll calls sync now and then every period until ctx ends. A failure is
// logged when it starts or changes, and the recovery too, not at every poll.
func Poll(ctx context.Context, period time.Duration, sync func(context.Context) error, log *slog.Logger) {
	t := time.NewTicker(period)
	defer t.Stop()
	var failing string
	for {
		err := sync(ctx)
		switch {
		case ctx.Err() != nil:
		case err != nil && err.Error() != failing:
			failing = err.Error()
			log.Warn("cannot read the node's peers; the list stays as it was", "err", err)
		case err == nil && failing != "":
			failing = ""
			log.Info("the node answers again")
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
