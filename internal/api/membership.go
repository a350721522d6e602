package api

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/treaty-dev/treaty/internal/identity"
	"github.com/treaty-dev/treaty/internal/membership"
	"github.com/treaty-dev/treaty/internal/refusal"
	"github.com/treaty-dev/treaty/localapi"
)

// The admission endpoints (docs/admission.md).
func (s *Server) membershipRoutes() []route {
	return []route{
		{http.MethodGet, "/v1/members", s.members},
		{http.MethodPost, "/v1/invite", s.invite},
		{http.MethodPost, "/v1/join", s.join},
		{http.MethodPost, "/v1/rotate", s.rotate},
		{http.MethodPost, "/v1/publish", s.publish},
		{http.MethodPost, "/v1/govern", s.govern}, // governor.go
	}
}

func (s *Server) members(w http.ResponseWriter, _ *http.Request) {
	gossip := map[identity.PublicKey]membership.Member{}
	for _, m := range s.n.GossipMembers() {
		gossip[m.Record.Key] = m
	}
	out := []localapi.MemberInfo{}
	for _, m := range s.n.Members() {
		mi := localapi.MemberInfo{Name: m.Name, ID: m.ID.String(), Addr: m.Addr, Source: m.Source, Status: m.Status}
		if g, ok := gossip[m.ID]; ok {
			mi.State, mi.Org, mi.Addrs = g.State.String(), g.Record.Org, g.Record.Addrs
			if !g.Via.IsZero() {
				mi.Via = g.Via.String()
			}
		}
		out = append(out, mi)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Status == "member" && out[j].Status != "member" })
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) invite(w http.ResponseWriter, r *http.Request) {
	var req localapi.InviteRequest
	if !decodeBody(w, r, &req) {
		return
	}
	ttl := time.Hour
	if req.TTL != "" {
		d, err := time.ParseDuration(req.TTL)
		if err != nil {
			writeError(w, refusal.New(refusal.StageUsage, "ttl %q is not a duration such as 1h", req.TTL))
			return
		}
		ttl = d
	}
	if req.Uses == 0 {
		req.Uses = 1
	}
	tok, inv, err := s.n.Invite(r.Context(), ttl, req.Uses, req.Addr)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, localapi.InviteResponse{Token: tok, Expires: inv.Expires.Format(time.RFC3339), Uses: inv.Uses})
}

func (s *Server) join(w http.ResponseWriter, r *http.Request) {
	var req localapi.JoinRequest
	if !decodeBody(w, r, &req) {
		return
	}
	res, err := s.n.Join(r.Context(), req.Token, req.Addr)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, localapi.JoinResponse{Inviter: res.Inviter.String(), Name: res.Name, Members: res.Members})
}

func (s *Server) rotate(w http.ResponseWriter, r *http.Request) {
	res, err := s.n.Rotate(r.Context()) // no request body
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, localapi.RotateResponse{Old: res.Old.String(), New: res.New.String(), Acked: res.Acked, Members: res.Members})
}

func (s *Server) publish(w http.ResponseWriter, r *http.Request) {
	var req localapi.PublishRequest
	if !decodeBody(w, r, &req) {
		return
	}
	st, err := membership.ParseAdmission(req.Statement)
	if err != nil {
		writeError(w, refusal.Wrap(refusal.StageUsage, err))
		return
	}
	acked, err := s.n.Publish(r.Context(), st.Text)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, localapi.PublishResponse{Kind: st.Kind, Acked: acked})
}

// Shutdown stops taking requests, lets those in flight finish (until ctx
// ends), and removes the socket: for a node restarting on a rotated key, so
// that the rotate request itself gets its answer.
func (s *Server) Shutdown(ctx context.Context) error {
	var err error
	s.closeOnce.Do(func() {
		err = s.srv.Shutdown(ctx)
		s.closeErr = err
		os.Remove(filepath.Join(s.n.Home(), SocketName))
	})
	return err
}
