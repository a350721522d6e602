// Package homedir is the layout of a node's home directory and the one safe way
// to change a file in it. It guarantees that a writer holding Lock is the only
// one editing the home (across goroutines and processes), and that WriteFile
// replaces a file so that a reader sees the old content or the new, never a mix.
package homedir

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// The files of a home directory.
const (
	KeyFile    = "identity.key"     // the node's ed25519 identity (mode 0600)
	ConfigFile = "treaty.yaml"      // configuration; edited by the CLI
	PolicyFile = "policy.cedar"     // Cedar policy; edited by the CLI
	AuditFile  = "audit.db"         // the tamper-evident audit log
	TrustFile  = "trust.json"       // persisted trust scores
	VaultFile  = "pseudonyms.vault" // pseudonym mapping (mode 0600)
	LockFile   = ".treaty.lock"     // held while an edit reads, changes and writes
)

// LockTimeout bounds how long Lock waits for another editor before failing.
const LockTimeout = 10 * time.Second

// ErrBusy is wrapped by Lock when another editor holds the home past LockTimeout.
var ErrBusy = errors.New("homedir: another treaty command is editing this home")

// Lock takes the home's edit lock (an advisory flock on LockFile), waiting up to
// LockTimeout or until ctx ends. Every read-modify-write of ConfigFile and
// PolicyFile happens under it, so parallel edits are serialised and none is lost.
// The lock is per open file, so two goroutines of one process exclude each other
// too; it is released by unlock or when the process exits.
func Lock(ctx context.Context, dir string) (unlock func(), err error) {
	f, err := os.OpenFile(filepath.Join(dir, LockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("homedir: lock: %w", err)
	}
	deadline := time.Now().Add(LockTimeout)
	wait := time.Millisecond
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() {
				syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
				f.Close()
			}, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			f.Close()
			return nil, fmt.Errorf("homedir: lock %s: %w", filepath.Join(dir, LockFile), err)
		}
		if time.Now().After(deadline) {
			f.Close()
			return nil, fmt.Errorf("%w (%s held for more than %v)", ErrBusy, filepath.Join(dir, LockFile), LockTimeout)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			f.Close()
			return nil, fmt.Errorf("homedir: lock: %w", ctx.Err())
		case <-t.C:
		}
		wait = min(wait*2, 20*time.Millisecond)
	}
}

// WriteFile replaces path with b through a synced temp file in the same
// directory and a rename, then syncs the directory, so a crash or a concurrent
// reader sees either the old file or the new one.
func WriteFile(path string, b []byte, mode os.FileMode) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("homedir: write %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			os.Remove(tmp)
		}
	}()
	if err = f.Chmod(mode); err == nil {
		if _, err = f.Write(b); err == nil {
			err = f.Sync()
		}
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("homedir: write %s: %w", path, err)
	}
	if err = os.Rename(tmp, path); err != nil {
		return fmt.Errorf("homedir: write %s: %w", path, err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("homedir: sync %s: %w", dir, err)
	}
	defer d.Close()
	if err = d.Sync(); err != nil {
		return fmt.Errorf("homedir: sync %s: %w", dir, err)
	}
	return nil
}
