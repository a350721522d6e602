package api

import (
	"net/http"
	"time"

	"github.com/treaty-dev/treaty/internal/node"
	"github.com/treaty-dev/treaty/internal/refusal"
	"github.com/treaty-dev/treaty/localapi"
)

// govern opens a governing motion (docs/admission.md).
func (s *Server) govern(w http.ResponseWriter, r *http.Request) {
	var req localapi.GovernRequest
	if !decodeBody(w, r, &req) {
		return
	}
	var deadline time.Duration
	if req.Deadline != "" {
		d, err := time.ParseDuration(req.Deadline)
		if err != nil || d <= 0 {
			writeError(w, refusal.New(refusal.StageUsage, "deadline %q is not a positive duration such as 24h", req.Deadline))
			return
		}
		deadline = d
	}
	res, err := s.n.Govern(r.Context(), node.GovernRequest{Action: req.Action, Peer: req.Peer, Name: req.Name,
		Addr: req.Addr, Deadline: deadline, Wait: req.Wait})
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, localapi.GovernResponse{Group: res.Group, Motion: res.Motion, Index: res.Index,
		Outcome: res.Outcome, Key: res.Key.String()})
}
