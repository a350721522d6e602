package api

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/treaty-dev/treaty/internal/consensus"
	"github.com/treaty-dev/treaty/internal/consensus/fsm"
	"github.com/treaty-dev/treaty/internal/identity"
	"github.com/treaty-dev/treaty/internal/refusal"
	"github.com/treaty-dev/treaty/localapi"
)

// groupRoutes are the endpoints of consensus groups (docs/consensus.md).
func (s *Server) groupRoutes() []route {
	return []route{
		{http.MethodGet, "/v1/groups", s.groupList},
		{http.MethodPost, "/v1/groups/create", s.groupCreate},
		{http.MethodPost, "/v1/groups/member", s.groupMember},
		{http.MethodPost, "/v1/kv/put", s.kvPut},
		{http.MethodGet, "/v1/kv/get", s.kvGet},
		{http.MethodGet, "/v1/kv/ls", s.kvList},
		{http.MethodPost, "/v1/motions/open", s.motionOpen},
		{http.MethodPost, "/v1/motions/vote", s.motionVote},
		{http.MethodGet, "/v1/motions/show", s.motionShow},
		{http.MethodGet, "/v1/motions/ls", s.motionList},
		{http.MethodGet, "/v1/decisions/export", s.decisionExport},
	}
}

// maxListKeys bounds one kv ls answer.
const maxListKeys = 10_000

func (s *Server) manager(w http.ResponseWriter) (*consensus.Manager, bool) {
	m, err := s.n.Groups()
	if err != nil {
		writeError(w, err)
		return nil, false
	}
	return m, true
}

func (s *Server) groupList(w http.ResponseWriter, r *http.Request) {
	m, ok := s.manager(w)
	if !ok {
		return
	}
	names := map[identity.PublicKey]string{s.n.ID(): s.n.Name()}
	for _, p := range s.n.Peers() {
		names[p.ID] = p.Name
	}
	out := []localapi.GroupInfo{}
	for _, in := range m.Groups() {
		out = append(out, groupInfo(in, s.n.ID(), names))
	}
	writeJSON(w, http.StatusOK, out)
}

func groupInfo(in consensus.Info, self identity.PublicKey, names map[identity.PublicKey]string) localapi.GroupInfo {
	if in.Error != "" {
		return localapi.GroupInfo{Name: in.Name, Error: in.Error, Members: []localapi.GroupMember{}}
	}
	st, g := in.Status, in.Status.Group
	gi := localapi.GroupInfo{Name: in.Name, ID: g.ID().String(), Nonce: g.Nonce.String(), Mode: string(g.Mode), Epoch: g.Epoch, Source: in.Source,
		N: g.N(), F: g.F(), Quorum: g.Quorum(), Term: st.Term, LastIndex: st.LastIndex, Healthy: st.Healthy,
		Members: []localapi.GroupMember{}}
	if !st.Leader.IsZero() {
		gi.Leader = st.Leader.String()
	}
	seen := map[identity.PublicKey]consensus.MemberStatus{}
	for _, ms := range st.Members {
		seen[ms.Key] = ms
	}
	for _, k := range g.Members {
		gm := localapi.GroupMember{ID: k.String(), Name: names[k], Self: k == self, Reachable: k == self, Refused: in.Refused[k]}
		if ms, ok := seen[k]; ok {
			gm.Reachable = gm.Reachable || ms.Reachable
			if !ms.LastContact.IsZero() {
				t := ms.LastContact.UTC()
				gm.LastContact = &t
			}
		}
		gi.Members = append(gi.Members, gm)
	}
	return gi
}

func (s *Server) groupCreate(w http.ResponseWriter, r *http.Request) {
	var req localapi.GroupCreateRequest
	if !decodeBody(w, r, &req) {
		return
	}
	m, ok := s.manager(w)
	if !ok {
		return
	}
	g, err := s.n.GroupDefinition(req.Name, req.Mode, req.Members)
	if err == nil {
		if g.Nonce, err = fsm.ParseNonce(req.Nonce); err != nil {
			err = refusal.Wrap(refusal.StageUsage, err)
		}
	}
	switch {
	case err != nil:
	case req.Join:
		err = m.Join(g)
	default:
		err = m.Create(g)
	}
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, localapi.OKResponse{OK: true})
}

func (s *Server) groupMember(w http.ResponseWriter, r *http.Request) {
	var req localapi.GroupMemberRequest
	if !decodeBody(w, r, &req) {
		return
	}
	m, ok := s.manager(w)
	if !ok {
		return
	}
	k, err := s.memberKey(req.Peer)
	if err != nil {
		writeError(w, err)
		return
	}
	a, err := m.ChangeMember(r.Context(), req.Group, k, !req.Remove, req.Text)
	writeDecision(w, a, err)
}

// memberKey resolves a peer named in a membership change: a did:key need
// not be in the peer book (the group may add a member this node has not met).
func (s *Server) memberKey(ref string) (identity.PublicKey, error) {
	if k, err := identity.ParseDID(ref); err == nil {
		return k, nil
	}
	if ref == s.n.Name() {
		return s.n.ID(), nil
	}
	p, err := s.n.Resolve(ref)
	if err != nil {
		return identity.PublicKey{}, refusal.Wrap(refusal.StageUsage, err)
	}
	return p.ID, nil
}

func writeDecision(w http.ResponseWriter, a consensus.Applied, err error) {
	if err != nil {
		writeError(w, err)
		return
	}
	d := localapi.Decision{Index: a.Index, Version: a.Result.Version, Motion: a.Result.Motion, Outcome: string(a.Result.Outcome), Removed: a.Removed}
	for _, c := range a.Result.Closed {
		d.Closed = append(d.Closed, localapi.MotionClosure{Motion: c.Motion, Outcome: string(c.Outcome), Reason: c.Reason})
	}
	writeJSON(w, http.StatusOK, d)
}

func (s *Server) kvPut(w http.ResponseWriter, r *http.Request) {
	var req localapi.KVPutRequest
	if !decodeBody(w, r, &req) {
		return
	}
	m, ok := s.manager(w)
	if !ok {
		return
	}
	a, err := m.Put(r.Context(), req.Group, req.Key, []byte(req.Value), req.IfVersion)
	writeDecision(w, a, err)
}

// query returns the named query parameters, all required, and then the
// optional ones; an ambiguous query (params) is refused.
func query(w http.ResponseWriter, r *http.Request, names ...string) ([]string, bool) {
	return queryOpt(w, r, names, nil)
}

func queryOpt(w http.ResponseWriter, r *http.Request, names, optional []string) ([]string, bool) {
	q, err := params(r)
	if err != nil {
		writeError(w, refusal.New(refusal.StageUsage, "%v", err))
		return nil, false
	}
	out := make([]string, len(names), len(names)+len(optional))
	for _, n := range optional {
		out = append(out, q.Get(n))
	}
	for i, n := range names {
		out[i] = q.Get(n)
		if out[i] == "" {
			writeError(w, refusal.New(refusal.StageUsage, "query parameter %q is required", n))
			return nil, false
		}
	}
	return out, true
}

func (s *Server) kvGet(w http.ResponseWriter, r *http.Request) {
	q, ok := query(w, r, "group", "key")
	if !ok {
		return
	}
	m, ok := s.manager(w)
	if !ok {
		return
	}
	it, found, err := m.Get(r.Context(), q[0], q[1])
	if err == nil && !found {
		err = refusal.New(refusal.StageUsage, "group %s has no key %q", q[0], q[1])
	}
	if err != nil {
		writeError(w, err)
		return
	}
	value, err := s.n.ScreenGroupContent(r.Context(), q[0], it.Value)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, localapi.KVItem{Group: q[0], Key: q[1], Value: string(value), Version: it.Version, Index: it.Index})
}

func (s *Server) kvList(w http.ResponseWriter, r *http.Request) {
	q, ok := queryOpt(w, r, []string{"group"}, []string{"prefix"})
	if !ok {
		return
	}
	m, ok := s.manager(w)
	if !ok {
		return
	}
	keys, truncated, err := m.List(r.Context(), q[0], q[1], maxListKeys)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, kvListAnswer(keys, truncated))
}

// kvListAnswer says whether the keys were cut at the answer's limit, so a
// client never takes a cut list for every key with the prefix.
func kvListAnswer(keys []string, truncated bool) localapi.KVList {
	if keys == nil {
		keys = []string{}
	}
	return localapi.KVList{Keys: keys, Truncated: truncated, Limit: maxListKeys}
}

func (s *Server) motionOpen(w http.ResponseWriter, r *http.Request) {
	var req localapi.MotionOpenRequest
	if !decodeBody(w, r, &req) {
		return
	}
	var d time.Duration
	if req.Deadline != "" {
		var err error
		if d, err = time.ParseDuration(req.Deadline); err != nil || d <= 0 {
			writeError(w, refusal.New(refusal.StageUsage, "deadline %q: want a positive duration such as 1h", req.Deadline))
			return
		}
	}
	m, ok := s.manager(w)
	if !ok {
		return
	}
	a, err := m.OpenMotion(r.Context(), req.Group, req.Name, req.Quorum, d, req.Text)
	writeDecision(w, a, err)
}

func (s *Server) motionVote(w http.ResponseWriter, r *http.Request) {
	var req localapi.MotionVoteRequest
	if !decodeBody(w, r, &req) {
		return
	}
	if req.Vote != "yes" && req.Vote != "no" {
		writeError(w, refusal.New(refusal.StageUsage, "vote %q: want yes or no", req.Vote))
		return
	}
	m, ok := s.manager(w)
	if !ok {
		return
	}
	a, err := m.Vote(r.Context(), req.Group, req.Motion, req.Vote == "yes")
	writeDecision(w, a, err)
}

func (s *Server) motionShow(w http.ResponseWriter, r *http.Request) {
	q, ok := query(w, r, "group", "name")
	if !ok {
		return
	}
	m, ok := s.manager(w)
	if !ok {
		return
	}
	mo, err := m.Motion(r.Context(), q[0], q[1])
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, s.screenMotion(r.Context(), q[0], motionInfo(mo)))
}

func (s *Server) motionList(w http.ResponseWriter, r *http.Request) {
	q, ok := query(w, r, "group")
	if !ok {
		return
	}
	m, ok := s.manager(w)
	if !ok {
		return
	}
	ms, err := m.Motions(r.Context(), q[0])
	if err != nil {
		writeError(w, err)
		return
	}
	out := localapi.MotionList{Motions: []localapi.MotionInfo{}}
	for _, mo := range ms {
		out.Motions = append(out.Motions, s.screenMotion(r.Context(), q[0], motionInfo(mo)))
	}
	writeJSON(w, http.StatusOK, out)
}

// screenMotion passes a motion's text and reason, which members wrote,
// through the inbound screen (Node.ScreenGroupContent); a blocked one is
// replaced by a note saying why, so the rest of the motion still shows.
func (s *Server) screenMotion(ctx context.Context, group string, mi localapi.MotionInfo) localapi.MotionInfo {
	for _, f := range []*string{&mi.Text, &mi.Reason} {
		if *f == "" {
			continue
		}
		out, err := s.n.ScreenGroupContent(ctx, group, []byte(*f))
		if err != nil {
			*f = "[withheld: " + err.Error() + "]"
			continue
		}
		*f = string(out)
	}
	return mi
}

func motionInfo(mo fsm.Motion) localapi.MotionInfo {
	kinds := map[fsm.MotionKind]string{fsm.MotionPlain: "plain", fsm.MotionAdd: "add-member", fsm.MotionRemove: "remove-member"}
	out := localapi.MotionInfo{Name: mo.Name, Kind: kinds[mo.Kind], Proposer: mo.Proposer.String(), Quorum: mo.Quorum,
		Text: mo.Text, Yes: []string{}, No: []string{}, Outcome: string(mo.Outcome), Reason: mo.Reason, Opened: mo.ID, Decided: mo.Decided}
	if !mo.Subject.IsZero() {
		out.Subject = mo.Subject.String()
	}
	if mo.Deadline != 0 {
		t := time.Unix(0, mo.Deadline).UTC()
		out.Deadline = &t
	}
	for _, k := range mo.Yes {
		out.Yes = append(out.Yes, k.String())
	}
	for _, k := range mo.No {
		out.No = append(out.No, k.String())
	}
	return out
}

func (s *Server) decisionExport(w http.ResponseWriter, r *http.Request) {
	q, ok := query(w, r, "group", "index")
	if !ok {
		return
	}
	index, err := strconv.ParseUint(q[1], 10, 64)
	if err != nil || index == 0 {
		writeError(w, refusal.New(refusal.StageUsage, "index %q: want a positive integer", q[1]))
		return
	}
	m, ok := s.manager(w)
	if !ok {
		return
	}
	rec, err := m.Record(r.Context(), q[0], index)
	if err != nil {
		writeError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(rec)
}
