package client

import (
	"context"
	"net/http"

	"github.com/treaty-dev/treaty/localapi"
)

// Members lists the peer book with sources, the refused keys, and gossip's
// view of each member.
func (c *Client) Members(ctx context.Context) ([]localapi.MemberInfo, error) {
	var out []localapi.MemberInfo
	return out, c.do(ctx, http.MethodGet, "/v1/members", nil, &out)
}

// Invite asks the node to sign a join token.
func (c *Client) Invite(ctx context.Context, req localapi.InviteRequest) (localapi.InviteResponse, error) {
	var out localapi.InviteResponse
	return out, c.do(ctx, http.MethodPost, "/v1/invite", req, &out)
}

// Join presents a token to its inviter through the node.
func (c *Client) Join(ctx context.Context, req localapi.JoinRequest) (localapi.JoinResponse, error) {
	var out localapi.JoinResponse
	return out, c.do(ctx, http.MethodPost, "/v1/join", req, &out)
}

// Rotate rotates the node's identity key; the node restarts on the new one.
func (c *Client) Rotate(ctx context.Context) (localapi.RotateResponse, error) {
	var out localapi.RotateResponse
	return out, c.do(ctx, http.MethodPost, "/v1/rotate", struct{}{}, &out)
}

// Publish hands the node a signed statement to apply and spread.
func (c *Client) Publish(ctx context.Context, statement string) (localapi.PublishResponse, error) {
	var out localapi.PublishResponse
	return out, c.do(ctx, http.MethodPost, "/v1/publish", localapi.PublishRequest{Statement: statement}, &out)
}

// Govern asks the governing group to admit or revoke a key: the node opens
// the motion with its yes vote.
func (c *Client) Govern(ctx context.Context, req localapi.GovernRequest) (localapi.GovernResponse, error) {
	var out localapi.GovernResponse
	return out, c.do(ctx, http.MethodPost, "/v1/govern", req, &out)
}
