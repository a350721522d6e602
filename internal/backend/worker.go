package backend

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Worker bounds; a worker that dies is restarted with restartBackoff.
const (
	workerLineSlack = 4 << 10 // room for the id and envelope around an output
	// workerIdle stops a worker nobody called for this long; the next call
	// starts it again. It also ends the workers of a backend a reload dropped.
	workerIdle = time.Minute
)

// Worker runs a long-lived command that serves many calls over JSON lines:
// one request line on its stdin per call,
//
//	{"id":1,"peer":"did:key:…","capability":"review","call":"…","input":{…}}
//
// and one answer line on its stdout, in any order,
//
//	{"id":1,"output":{…}}  or  {"id":1,"error":"…"}
//
// A worker that exits, writes a line that is not such an answer, or writes a
// line longer than MaxOutput plus 4 KiB is killed (its process group) and
// started again on the next call, with backoff; the calls in flight on it fail.
// A call that times out fails alone and its late answer is dropped, unless the
// worker wrote nothing at all since the call was sent: then it is taken as hung
// and killed. A call its caller cancels still ends only when the worker
// answers it or at its timeout, so the caller's concurrency slot stays taken
// while the worker works for it.
//
// A worker must exit when its stdin closes: that is how it learns the node
// stopped. A worker idle for a minute is stopped and started again on the next call, so
// the workers of a configuration a reload replaced end by themselves.
//
// The environment is Exec's minus the per-call variables: those travel in the
// request line.
type Worker struct {
	Argv      []string      // program and arguments; required
	Env       []string      // extra KEY=VALUE entries
	EnvAllow  []string      // names passed through from the node's environment
	Timeout   time.Duration // per call; required
	MaxOutput int           // largest output of one call; zero: DefaultMaxOutput
	Workers   int           // processes serving calls; zero: 1
	Log       *slog.Logger  // gets the stderr of a worker that died; nil: slog.Default()

	idleAfter time.Duration // tests: workerIdle otherwise

	once  sync.Once
	slots []*workerSlot
	next  atomic.Uint64
	ids   atomic.Uint64
}

// workerSlot is one process position: the live process and its restart state.
type workerSlot struct {
	mu       sync.Mutex
	proc     *workerProc
	restarts restartBackoff
	closed   bool
}

type workerProc struct {
	cmd      *exec.Cmd
	group    *procGroup // cmd's: signalled only before serve reaps it
	stdin    *os.File
	wlock    chan struct{} // one writer at a time; a channel so waiting honours ctx
	mu       sync.Mutex
	pending  map[uint64]chan workerAnswer
	dead     chan struct{}
	lastRead atomic.Int64 // unix nanos of the last line read
	lastUse  atomic.Int64 // unix nanos of the last call sent
	idled    atomic.Bool  // stopped for idleness, not a failure
	stderr   limitedBuffer
}

type workerAnswer struct {
	out []byte
	err error
}

type workerRequest struct {
	ID         uint64          `json:"id"`
	Peer       string          `json:"peer"`
	Capability string          `json:"capability"`
	Call       string          `json:"call,omitempty"`
	Input      json.RawMessage `json:"input"`
}

type workerReply struct {
	ID     *uint64         `json:"id"`
	Output json.RawMessage `json:"output"`
	Error  *string         `json:"error"`
}

func (w *Worker) init() {
	w.once.Do(func() {
		n := max(w.Workers, 1)
		w.slots = make([]*workerSlot, n)
		for i := range w.slots {
			w.slots[i] = &workerSlot{}
		}
	})
}

func (w *Worker) maxOutput() int {
	if w.MaxOutput > 0 {
		return w.MaxOutput
	}
	return DefaultMaxOutput
}

func (w *Worker) log() *slog.Logger {
	if w.Log != nil {
		return w.Log
	}
	return slog.Default()
}

// Call sends inv to a worker and waits for its answer.
func (w *Worker) Call(ctx context.Context, inv Invocation) ([]byte, error) {
	w.init()
	ctx, cancel := context.WithTimeout(ctx, w.Timeout)
	defer cancel()
	slot := w.slots[w.next.Add(1)%uint64(len(w.slots))]
	id := w.ids.Add(1)
	line, err := json.Marshal(workerRequest{ID: id, Peer: inv.Peer.String(), Capability: inv.Capability, Call: inv.CallToken, Input: inv.Input})
	if err != nil {
		return nil, fail("input is not JSON", err)
	}
	line = append(line, '\n')
	ch := make(chan workerAnswer, 1)
	var p *workerProc
	for attempt := 0; ; attempt++ {
		if p, err = w.proc(slot, inv.Home); err != nil {
			return nil, err
		}
		p.mu.Lock()
		live := p.pending != nil
		if live {
			p.pending[id] = ch
		}
		p.mu.Unlock()
		if live {
			break
		}
		if attempt > 0 {
			return nil, fail("worker died", errors.New("worker exited before the call was sent"))
		}
		<-p.dead // stopping for idleness: the next proc starts a new one
	}
	sent := time.Now()
	p.lastUse.Store(sent.UnixNano())
	if err := p.write(ctx, line); err != nil {
		p.forget(id)
		switch {
		case ctx.Err() != nil:
			return nil, w.ctxFailure(ctx, p, sent)
		case errors.Is(err, os.ErrDeadlineExceeded): // the pipe's deadline is ctx's, maybe a hair earlier
			return nil, fail(fmt.Sprintf("timed out after %v", w.Timeout), err)
		}
		return nil, fail("worker died", err)
	}
	select {
	case a := <-ch:
		return a.out, a.err
	case <-ctx.Done():
	}
	if errors.Is(ctx.Err(), context.Canceled) {
		// The worker has the call and the protocol cannot stop it, so the
		// call ends when the worker is done with it or at its timeout: a
		// caller that cancels at once frees its concurrency slot no sooner
		// than one that waits, and cannot queue unbounded work on a worker
		// every peer shares.
		deadline, _ := ctx.Deadline()
		t := time.NewTimer(time.Until(deadline))
		defer t.Stop()
		select {
		case <-ch:
		case <-t.C:
			p.forget(id)
			w.killIfHung(p, sent)
		}
		return nil, fail("cancelled", ctx.Err())
	}
	p.forget(id)
	return nil, w.ctxFailure(ctx, p, sent)
}

// ctxFailure is the failure of a call whose context ended; a worker silent
// since the call was sent is killed as hung.
func (w *Worker) ctxFailure(ctx context.Context, p *workerProc, sent time.Time) error {
	if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fail("cancelled", ctx.Err())
	}
	w.killIfHung(p, sent)
	return fail(fmt.Sprintf("timed out after %v", w.Timeout), ctx.Err())
}

// killIfHung kills p when it wrote nothing since sent, a call's timeout ago.
func (w *Worker) killIfHung(p *workerProc, sent time.Time) {
	if p.lastRead.Load() < sent.UnixNano() {
		w.log().Warn("exec worker answered nothing within a call's timeout; killing it", "argv0", w.Argv[0], "timeout", w.Timeout)
		p.kill()
	}
}

// proc returns slot's live process, starting one if there is none and the
// backoff allows.
func (w *Worker) proc(slot *workerSlot, home string) (*workerProc, error) {
	slot.mu.Lock()
	defer slot.mu.Unlock()
	if slot.closed {
		return nil, fail("worker stopped", errors.New("backend closed"))
	}
	if p := slot.proc; p != nil {
		select {
		case <-p.dead:
		default:
			return p, nil
		}
	}
	if wait := slot.restarts.wait(time.Now()); wait > 0 {
		return nil, fail("worker restarting", fmt.Errorf("restart backoff, %v left", wait.Round(time.Millisecond)))
	}
	p, err := w.start(slot, home)
	if err != nil {
		w.died(slot)
		return nil, fail("could not start", err)
	}
	slot.proc = p
	return p, nil
}

// died records a death of slot's worker for the backoff. Called with slot.mu held.
func (w *Worker) died(slot *workerSlot) {
	slot.restarts.died(time.Now())
}

func (w *Worker) start(slot *workerSlot, home string) (*workerProc, error) {
	if len(w.Argv) == 0 {
		return nil, errors.New("exec worker: empty command")
	}
	// A worker serves many peers: TREATY_PEER, TREATY_CAPABILITY and
	// TREATY_CALL travel in each request line instead of its environment.
	var env []string
	for _, kv := range (&Exec{Env: w.Env, EnvAllow: w.EnvAllow}).environ(Invocation{Home: home}, os.LookupEnv) {
		if !strings.HasPrefix(kv, "TREATY_PEER=") && !strings.HasPrefix(kv, "TREATY_CAPABILITY=") {
			env = append(env, kv)
		}
	}
	inR, inW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		return nil, err
	}
	p := &workerProc{
		stdin:   inW,
		wlock:   make(chan struct{}, 1),
		pending: map[uint64]chan workerAnswer{},
		dead:    make(chan struct{}),
		stderr:  limitedBuffer{max: 4 << 10},
	}
	cmd := exec.Command(w.Argv[0], w.Argv[1:]...)
	cmd.Env = env
	cmd.Stdin, cmd.Stdout = inR, outW
	cmd.Stderr = &lockedWriter{w: &p.stderr}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = time.Second
	p.cmd = cmd
	p.group = newProcGroup(cmd, nil)
	err = cmd.Start()
	inR.Close()
	outW.Close()
	if err != nil {
		inW.Close()
		outR.Close()
		return nil, err
	}
	p.lastUse.Store(time.Now().UnixNano())
	go w.serve(slot, p, outR)
	go p.reapIdle(w.idle())
	return p, nil
}

// serve reads p's answers until it dies, then fails what is still pending.
func (w *Worker) serve(slot *workerSlot, p *workerProc, out *os.File) {
	r := bufio.NewReaderSize(out, 64<<10)
	limit := w.maxOutput() + workerLineSlack
	var long []byte // a line longer than r's buffer, gathered up to limit
	var cause error
	healthy := false
	for {
		line, err := readLine(r, &long, limit)
		if err != nil {
			switch {
			case errors.Is(err, errOverflow):
				cause = outputTooLarge(w.maxOutput())
			case errors.Is(err, io.EOF):
				cause = errors.New("worker closed its stdout")
			default:
				cause = err
			}
			break
		}
		p.lastRead.Store(time.Now().UnixNano())
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		var rep workerReply
		if err := json.Unmarshal(line, &rep); err != nil || rep.ID == nil || (rep.Error == nil) == (len(rep.Output) == 0) {
			cause = fmt.Errorf("worker wrote a line that is not an answer: %q", truncate(line, 128))
			break
		}
		p.mu.Lock()
		ch, ok := p.pending[*rep.ID]
		delete(p.pending, *rep.ID)
		p.mu.Unlock()
		if !healthy {
			healthy = true // it answers: the next death restarts it at once
			slot.mu.Lock()
			slot.restarts.healthy()
			slot.mu.Unlock()
		}
		if !ok {
			continue // a call that timed out; its answer is no longer wanted
		}
		if rep.Error != nil {
			ch <- workerAnswer{err: fail("worker reported an error", errors.New(*rep.Error))}
			continue
		}
		if len(rep.Output) > w.maxOutput() {
			ch <- workerAnswer{err: outputTooLarge(w.maxOutput())}
			continue
		}
		ch <- workerAnswer{out: rep.Output} // Unmarshal copied it out of the read buffer
	}
	waitErr := p.group.reap()
	out.Close()
	p.stdin.Close()
	p.mu.Lock()
	pending := p.pending
	p.pending = nil
	p.mu.Unlock()
	idled := p.idled.Load()
	if !idled {
		// Before anyone learns of the death, so a retry meets the backoff.
		slot.mu.Lock()
		w.died(slot)
		slot.mu.Unlock()
	}
	close(p.dead)
	reason := "worker died"
	var fl *Failure
	if errors.As(cause, &fl) {
		reason = fl.Reason
	}
	for _, ch := range pending {
		ch <- workerAnswer{err: fail(reason, cause)}
	}
	if idled {
		return
	}
	w.log().Warn("exec worker stopped; it restarts on the next call", "argv0", w.Argv[0], "cause", cause, "exit", waitErr, "stderr", string(p.stderrBytes()))
}

func (w *Worker) idle() time.Duration {
	if w.idleAfter > 0 {
		return w.idleAfter
	}
	return workerIdle
}

// reapIdle stops p once no call was sent to it for idle and none is pending.
func (p *workerProc) reapIdle(idle time.Duration) {
	t := time.NewTicker(idle / 4)
	defer t.Stop()
	for {
		select {
		case <-p.dead:
			return
		case <-t.C:
		}
		p.mu.Lock()
		quiet := len(p.pending) == 0 && time.Since(time.Unix(0, p.lastUse.Load())) >= idle
		if quiet {
			p.idled.Store(true)
			p.pending = nil // a call racing this one fails as "worker died" rather than hang
		}
		p.mu.Unlock()
		if quiet {
			p.kill()
			return
		}
	}
}

// readLine reads one line of at most limit bytes. A line that fits r's buffer
// is returned in it, a longer one in *long, so memory grows with the lines a
// worker writes, not with the limit.
func readLine(r *bufio.Reader, long *[]byte, limit int) ([]byte, error) {
	*long = (*long)[:0]
	for {
		chunk, err := r.ReadSlice('\n')
		if len(*long)+len(chunk) > limit {
			return nil, errOverflow
		}
		switch {
		case err == nil && len(*long) == 0:
			return chunk, nil
		case err == nil:
			return append(*long, chunk...), nil
		case errors.Is(err, bufio.ErrBufferFull):
			*long = append(*long, chunk...)
		default:
			return nil, err
		}
	}
}

// write sends one request line, giving up when ctx ends.
func (p *workerProc) write(ctx context.Context, line []byte) error {
	select {
	case p.wlock <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	case <-p.dead:
		return errors.New("worker exited")
	}
	defer func() { <-p.wlock }()
	if d, ok := ctx.Deadline(); ok {
		p.stdin.SetWriteDeadline(d)
	}
	n, err := p.stdin.Write(line)
	if err != nil && n > 0 {
		p.kill() // half a line on its stdin: the framing is lost
	}
	return err
}

func (p *workerProc) forget(id uint64) {
	p.mu.Lock()
	delete(p.pending, id)
	p.mu.Unlock()
}

// kill ends the worker's whole process group, unless serve has reaped it
// (after which its id may name a stranger's group).
func (p *workerProc) kill() { p.group.kill() }

func (p *workerProc) stderrBytes() []byte {
	w := p.cmd.Stderr.(*lockedWriter)
	w.mu.Lock()
	defer w.mu.Unlock()
	return bytes.Clone(p.stderr.b)
}

// Close stops every worker; later calls fail.
func (w *Worker) Close() {
	w.init()
	for _, s := range w.slots {
		s.mu.Lock()
		s.closed = true
		p := s.proc
		s.mu.Unlock()
		if p != nil {
			p.kill()
			<-p.dead
		}
	}
}

// lockedWriter serialises writes to a limitedBuffer that is also read.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}
