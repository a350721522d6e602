package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/treaty-dev/treaty/localapi"
)

// TestMembersShowsViaRelay: a member reached through a relay is listed with
// the relay's nickname; one reached directly shows a dash.
func TestMembersShowsViaRelay(t *testing.T) {
	hub, laptop := tlDID(t, 1), tlDID(t, 2)
	var buf bytes.Buffer
	err := printMembers(&buf, []localapi.MemberInfo{
		{Name: "hub", ID: hub, Addr: "127.0.0.1:7421", Status: "member", State: "alive"},
		{Name: "laptop", ID: laptop, Addr: "127.0.0.1:7422", Status: "member", State: "suspect", Via: hub},
	})
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("members table:\n%s", buf.String())
	}
	if f := strings.Fields(lines[2]); f[0] != "laptop" || f[len(f)-1] != "hub" || f[4] != "suspect" {
		t.Fatalf("laptop's row %q: want state suspect and via hub", lines[2])
	}
	if f := strings.Fields(lines[1]); f[len(f)-1] != "-" {
		t.Fatalf("hub's row %q: want no relay", lines[1])
	}
}
