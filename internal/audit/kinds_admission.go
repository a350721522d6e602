package audit

// Kinds of entries that admission and gossip write (internal/node,
// docs/admission.md).
const (
	KindInviteIssued   = "invite.issued"       // this node signed a join token (its nonce, never the token)
	KindMemberAdmitted = "member.admitted"     // a key entered the peer book by invite or introduction, or moved address
	KindMemberJoined   = "member.joined"       // this node joined through an invite
	KindJoinRefused    = "join.refused"        // a join request was refused, with the reason
	KindKeyRotated     = "key.rotated"         // a key handed over to a new one; both keys in the entry
	KindKeyRevoked     = "key.revoked"         // a key was revoked
	KindStmtRefused    = "statement.refused"   // a statement that did not verify, with the member that relayed it
	KindGossipEvidence = "membership.evidence" // gossip dropped a record or statement relayed by a member
)

func admissionKinds() []string {
	return []string{KindInviteIssued, KindMemberAdmitted, KindMemberJoined, KindJoinRefused, KindKeyRotated,
		KindKeyRevoked, KindStmtRefused, KindGossipEvidence}
}
