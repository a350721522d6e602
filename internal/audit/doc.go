// Package audit is treaty's tamper-evident log: every action that crosses the
// trust boundary is appended, durable before it is acknowledged, as a leaf of
// an RFC 6962 Merkle tree whose checkpoints the node signs, so that editing,
// deleting, reordering or inserting a stored entry is caught by Verify and a
// peer can check any entry with a standard inclusion proof.
//
// # Storage
//
// One SQLite file (modernc.org/sqlite), readable with any SQLite client; the
// layout is Schema. An entry is stored as its leaf bytes (see the leaf encoding
// in entry.go: one line of JSON, fixed key order, carrying its own index and
// the SHA-256 of its content and whether the content was kept), its content
// (NULL when pruned or only the digest was kept) and the tlog stored hashes it
// completes. The other entry
// columns are generated from the leaf, so what `SELECT` shows is what Verify
// checks.
//
// # Durability
//
// journal_mode=WAL, synchronous=FULL: a commit returns after the WAL is
// fsynced, so an acknowledged entry survives SIGKILL and power loss. Appends
// are group-committed: one committer at a time takes every request waiting (up
// to Config.MaxBatch) and commits them with one transaction, one checkpoint
// signature and one fsync; while it waits for the disk, the next batch queues.
// On an idle log the committer is the appender itself (no hand-off to another
// goroutine); once its own entry is durable it leaves any queued work to the
// log's writer goroutine.
// Entries from AppendDeferred alone start no commit; they wait, at most
// Config.DeferFor, for the next one. Each commit also signs and stores a new
// head checkpoint in the same transaction, so no committed entry is ever left
// uncovered by a signature, and a crash at any moment leaves either the whole
// batch with its checkpoint or neither. On Open the newest entries are recomputed against the head.
//
// # Pruning and disk space
//
// Prune drops old content and PruneRows deletes old entries, from the start of
// the log only; each transaction signs a pruning record (see Prune) that keeps
// the compact range of the deleted prefix, so the rest still verifies and
// proves. Content missing outside a recorded pruning is tampering. Over
// Config.MaxBytes or under Config.MinFreeBytes, Append refuses new entries
// with a *HighWaterError until space returns; the log's own records still go in.
//
// # What Verify catches, and what it cannot
//
// Verify recomputes every leaf hash and the tree from the leaves alone and
// compares them with the stored hashes and with every stored signed
// checkpoint; the head checkpoint must cover exactly the stored rows. An
// edited, moved, deleted or inserted row, edited content, edited stored
// hashes, an edited or unsigned checkpoint, a deleted or edited pruning
// record, rows missing above the pruned prefix and content removed without a
// pruning record are all reported, naming the first bad entry in log order;
// so are checkpoint and pruning rows of the wrong type or over MaxNoteSize,
// without being read. A file that is not a treaty log, or whose tables were
// replaced by views, is refused before anything else is read. Without the node's private key nobody can
// make a checkpoint for a rewritten log. What remains: someone with write
// access can delete the newest rows together with every checkpoint after the
// cut, leaving a shorter log that verifies on its own. That is caught outside
// the file: peers keep the latest checkpoint they saw (Witness) and receipts
// carry the callee's checkpoint, so the next exchange with a peer reports a
// rollback, and VerifyWith checks against checkpoints kept elsewhere. Whoever
// holds the private key can rewrite anything not yet seen by a peer.
//
// # Use
//
// A node opens its Log once and appends with Append before it acts (a call is
// not answered, a sent call not reported, before its entry is durable).
// AppendAsync takes an entry's place in the log order at once and lets the
// caller act while its commit runs; the caller waits on the returned Pending
// before anything that depends on the entry is seen (a stream's call.sent
// travels with the request: docs/adr/0010-overlap-sent-durability.md).
// AppendDeferred takes its place too but starts no commit: it rides with the
// next one (or commits on Wait, at Close, or Config.DeferFor later), and
// AppendAfter appends an entry that is never durable without the one it
// names, so a pair costs one commit (a call's call.sent and call.completed:
// docs/adr/0019-call-sent-rides-with-completed.md). A
// callee uses AppendCheckpoint to put the index and signed checkpoint of its
// entry in the receipt; the caller stores that receipt as Evidence, and the
// callee can later prove the entry in that very checkpoint with ProveAt.
// Commands that only read (verify, ls, show, prove, export) use Verify,
// OpenReader and Export on the file, also while the node runs.
//
// # Witnessing
//
// Witness keeps the latest checkpoint each peer has shown and asks for a
// consistency proof whenever a newer one arrives; two checkpoints that cannot
// both be prefixes of one log are a fork, kept as evidence (both signed notes)
// and logged as an "audit.fork" entry.
package audit
