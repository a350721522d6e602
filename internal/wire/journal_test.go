package wire

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/internal/identity"
)

// journaledVerifier opens the journal at path and a Verifier for bob on it,
// as a node does at each start; the Verifier is closed at the test's end.
func journaledVerifier(t *testing.T, self identity.PublicKey, path string, now time.Time) *Verifier {
	t.Helper()
	j, err := OpenReplayJournal(ReplayJournalConfig{Path: path, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	v, err := NewVerifier(VerifierConfig{Self: self, Journal: j})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	return v
}

// TestReplayAcrossRestart: a request accepted before a restart is refused as
// a replay after it, for as long as it could be accepted at all; another
// request from the same peer passes.
func TestReplayAcrossRestart(t *testing.T) {
	k := testKeys(t)
	path := filepath.Join(t.TempDir(), "replay.journal")
	r, _ := signedRequest(t, k, testBody, nil)

	first := journaledVerifier(t, k.bob.Public(), path, t0)
	if _, err := first.VerifyRequest(serverView(t, r), testBody, k.alice.Public(), t0); err != nil {
		t.Fatal(err)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}

	// Restarted one second later, and again at the last instant the request
	// is valid (expires + skew): refused both times.
	for _, at := range []time.Time{t0.Add(time.Second), t0.Add(DefaultTTL + 30*time.Second)} {
		v := journaledVerifier(t, k.bob.Public(), path, at)
		_, err := v.VerifyRequest(serverView(t, r), testBody, k.alice.Public(), at)
		wantReason(t, err, ReasonReplayed)
		fresh, _ := signedRequest(t, k, testBody, func(p *SignParams) { p.Now = at; p.Rand = seededRand(uint64(at.Unix())) })
		if _, err := v.VerifyRequest(serverView(t, fresh), testBody, k.alice.Public(), at); err != nil {
			t.Fatalf("a fresh request after the restart: %v", err)
		}
		v.Close()
	}

	// Once expired, its entry is dropped from the journal at the next start.
	later := t0.Add(DefaultTTL + 31*time.Second + 2*time.Minute)
	v := journaledVerifier(t, k.bob.Public(), path, later)
	if n := v.ReplayLen(); n != 0 {
		t.Fatalf("ReplayLen = %d after every entry expired, want 0", n)
	}
}

// TestReplayJournalForget: a request refused before it was served (Forget)
// may be sent again after a restart, once.
func TestReplayJournalForget(t *testing.T) {
	k := testKeys(t)
	path := filepath.Join(t.TempDir(), "replay.journal")
	r, _ := signedRequest(t, k, testBody, nil)
	v := journaledVerifier(t, k.bob.Public(), path, t0)
	req, err := v.VerifyRequest(serverView(t, r), testBody, k.alice.Public(), t0)
	if err != nil {
		t.Fatal(err)
	}
	v.Forget(req)
	v.Close()
	v = journaledVerifier(t, k.bob.Public(), path, t0.Add(time.Second))
	if _, err := v.VerifyRequest(serverView(t, r), testBody, k.alice.Public(), t0.Add(time.Second)); err != nil {
		t.Fatalf("forgotten request refused after a restart: %v", err)
	}
	v.Close()
	v = journaledVerifier(t, k.bob.Public(), path, t0.Add(2*time.Second))
	_, err = v.VerifyRequest(serverView(t, r), testBody, k.alice.Public(), t0.Add(2*time.Second))
	wantReason(t, err, ReasonReplayed)
}

// TestReplayJournalRotation: the journal's two files rotate each period,
// so it stays bounded by the requests of two periods, and a request
// accepted just before a rotation is still refused after a restart.
func TestReplayJournalRotation(t *testing.T) {
	k := testKeys(t)
	path := filepath.Join(t.TempDir(), "replay.journal")
	v := journaledVerifier(t, k.bob.Public(), path, t0)
	period := DefaultTTL + 2*30*time.Second + time.Second
	now := t0
	var last *Request
	for i := range 40 {
		now = now.Add(period / 10)
		r, _ := signedRequest(t, k, testBody, func(p *SignParams) { p.Now = now; p.Rand = seededRand(uint64(1000 + i)) })
		got, err := v.VerifyRequest(serverView(t, r), testBody, k.alice.Public(), now)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		last = &got
		size := 0
		for _, p := range []string{path, path + ".old"} {
			if fi, err := os.Stat(p); err == nil {
				size += int(fi.Size())
			}
		}
		if size > 2*11*journalRecordBytes {
			t.Fatalf("journal holds %d bytes after %d requests, want at most two periods' worth", size, i+1)
		}
	}
	v.Close()
	r, _ := signedRequest(t, k, testBody, func(p *SignParams) { p.Now = now; p.Rand = seededRand(uint64(1039)) })
	if r.Header.Get(HeaderSignature) != last.Signature {
		t.Fatal("test rebuilt another request")
	}
	v = journaledVerifier(t, k.bob.Public(), path, now)
	_, err := v.VerifyRequest(serverView(t, r), testBody, k.alice.Public(), now)
	wantReason(t, err, ReasonReplayed)
}

// TestReplayJournalTornRecord: a process killed inside a write leaves a
// partial last record; the next start reads the whole records before it.
func TestReplayJournalTornRecord(t *testing.T) {
	k := testKeys(t)
	path := filepath.Join(t.TempDir(), "replay.journal")
	v := journaledVerifier(t, k.bob.Public(), path, t0)
	r, _ := signedRequest(t, k, testBody, nil)
	if _, err := v.VerifyRequest(serverView(t, r), testBody, k.alice.Public(), t0); err != nil {
		t.Fatal(err)
	}
	v.Close()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write(make([]byte, journalRecordBytes/2))
	f.Close()
	v = journaledVerifier(t, k.bob.Public(), path, t0.Add(time.Second))
	_, err = v.VerifyRequest(serverView(t, r), testBody, k.alice.Public(), t0.Add(time.Second))
	wantReason(t, err, ReasonReplayed)
	for _, p := range []string{path, path + ".old"} {
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v, mode %v; want 0600", p, err, fi.Mode().Perm())
		}
	}
}

// TestReplayJournalWriteFailure: a nonce that cannot be journaled is not
// accepted (the request is refused as replay_cache_full, retryable) and
// does not stay in the window.
func TestReplayJournalWriteFailure(t *testing.T) {
	k := testKeys(t)
	path := filepath.Join(t.TempDir(), "replay.journal")
	v := journaledVerifier(t, k.bob.Public(), path, t0)
	v.journal.f.Close() // every write now fails
	r, _ := signedRequest(t, k, testBody, nil)
	_, err := v.VerifyRequest(serverView(t, r), testBody, k.alice.Public(), t0)
	wantReason(t, err, ReasonReplayCacheFull)
	if n := v.ReplayLen(); n != 0 {
		t.Fatalf("ReplayLen = %d after a refused journal write, want 0", n)
	}
}

func TestReplayJournalServesOneVerifier(t *testing.T) {
	k := testKeys(t)
	j, err := OpenReplayJournal(ReplayJournalConfig{Path: filepath.Join(t.TempDir(), "replay.journal"), Now: t0})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	if _, err := NewVerifier(VerifierConfig{Self: k.bob.Public(), Journal: j}); err != nil {
		t.Fatal(err)
	}
	if _, err := NewVerifier(VerifierConfig{Self: k.bob.Public(), Journal: j}); err == nil {
		t.Fatal("a second Verifier on one journal accepted")
	}
}

// TestReplayJournalRotationFailure: a rotation that fails (here .old is a
// directory) does not refuse requests: their nonces go on to the current
// file, and a start still refuses their replays.
func TestReplayJournalRotationFailure(t *testing.T) {
	k := testKeys(t)
	path := filepath.Join(t.TempDir(), "replay.journal")
	v := journaledVerifier(t, k.bob.Public(), path, t0)
	if err := os.Remove(path + ".old"); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(path+".old", "blocker"), 0o700); err != nil {
		t.Fatal(err)
	}
	later := t0.Add(DefaultTTL + 2*30*time.Second + 2*time.Second) // past one period
	r, _ := signedRequest(t, k, testBody, func(p *SignParams) { p.Now = later; p.Rand = seededRand(77) })
	if _, err := v.VerifyRequest(serverView(t, r), testBody, k.alice.Public(), later); err != nil {
		t.Fatalf("request refused when the journal could not rotate: %v", err)
	}
	v.Close()
	if err := os.RemoveAll(path + ".old"); err != nil {
		t.Fatal(err)
	}
	v = journaledVerifier(t, k.bob.Public(), path, later.Add(time.Second))
	_, err := v.VerifyRequest(serverView(t, r), testBody, k.alice.Public(), later.Add(time.Second))
	wantReason(t, err, ReasonReplayed)
}
