package client

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"

	"github.com/treaty-dev/treaty/localapi"
)

// Groups lists the node's consensus groups.
func (c *Client) Groups(ctx context.Context) ([]localapi.GroupInfo, error) {
	var out []localapi.GroupInfo
	return out, c.do(ctx, http.MethodGet, "/v1/groups", nil, &out)
}

// GroupCreate creates a group of which the node is a member.
func (c *Client) GroupCreate(ctx context.Context, req localapi.GroupCreateRequest) error {
	var out localapi.OKResponse
	return c.do(ctx, http.MethodPost, "/v1/groups/create", req, &out)
}

// GroupMember opens the group's motion to add or remove a member.
func (c *Client) GroupMember(ctx context.Context, req localapi.GroupMemberRequest) (localapi.Decision, error) {
	var out localapi.Decision
	return out, c.do(ctx, http.MethodPost, "/v1/groups/member", req, &out)
}

// KVPut sets a key and returns once the group committed it.
func (c *Client) KVPut(ctx context.Context, req localapi.KVPutRequest) (localapi.Decision, error) {
	var out localapi.Decision
	return out, c.do(ctx, http.MethodPost, "/v1/kv/put", req, &out)
}

// KVGet reads a key (linearizable).
func (c *Client) KVGet(ctx context.Context, group, key string) (localapi.KVItem, error) {
	var out localapi.KVItem
	return out, c.do(ctx, http.MethodGet, "/v1/kv/get?"+url.Values{"group": {group}, "key": {key}}.Encode(), nil, &out)
}

// KVList lists the keys with prefix (at most the answer's limit: see
// KVListAnswer to learn whether the list was cut).
func (c *Client) KVList(ctx context.Context, group, prefix string) ([]string, error) {
	out, err := c.KVListAnswer(ctx, group, prefix)
	return out.Keys, err
}

// KVListAnswer lists the keys with prefix and says whether the answer was
// cut at its limit.
func (c *Client) KVListAnswer(ctx context.Context, group, prefix string) (localapi.KVList, error) {
	var out localapi.KVList
	err := c.do(ctx, http.MethodGet, "/v1/kv/ls?"+url.Values{"group": {group}, "prefix": {prefix}}.Encode(), nil, &out)
	return out, err
}

// MotionOpen opens a motion.
func (c *Client) MotionOpen(ctx context.Context, req localapi.MotionOpenRequest) (localapi.Decision, error) {
	var out localapi.Decision
	return out, c.do(ctx, http.MethodPost, "/v1/motions/open", req, &out)
}

// MotionVote votes yes or no on a motion.
func (c *Client) MotionVote(ctx context.Context, group, motion string, yes bool) (localapi.Decision, error) {
	vote := "no"
	if yes {
		vote = "yes"
	}
	var out localapi.Decision
	return out, c.do(ctx, http.MethodPost, "/v1/motions/vote", localapi.MotionVoteRequest{Group: group, Motion: motion, Vote: vote}, &out)
}

// MotionShow returns one motion with its tally.
func (c *Client) MotionShow(ctx context.Context, group, name string) (localapi.MotionInfo, error) {
	var out localapi.MotionInfo
	return out, c.do(ctx, http.MethodGet, "/v1/motions/show?"+url.Values{"group": {group}, "name": {name}}.Encode(), nil, &out)
}

// MotionList lists the motions the group keeps.
func (c *Client) MotionList(ctx context.Context, group string) ([]localapi.MotionInfo, error) {
	var out localapi.MotionList
	err := c.do(ctx, http.MethodGet, "/v1/motions/ls?"+url.Values{"group": {group}}.Encode(), nil, &out)
	return out.Motions, err
}

// DecisionExport returns the self-contained decision record of an index.
func (c *Client) DecisionExport(ctx context.Context, group string, index uint64) (json.RawMessage, error) {
	var out json.RawMessage
	q := url.Values{"group": {group}, "index": {strconv.FormatUint(index, 10)}}.Encode()
	return out, c.do(ctx, http.MethodGet, "/v1/decisions/export?"+q, nil, &out)
}
