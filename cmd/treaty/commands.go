package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/treaty-dev/treaty/client"
	"github.com/treaty-dev/treaty/internal/api"
	"github.com/treaty-dev/treaty/internal/config"
	"github.com/treaty-dev/treaty/internal/demo"
	"github.com/treaty-dev/treaty/internal/home"
	"github.com/treaty-dev/treaty/internal/node"
)

func newRoot() *cobra.Command {
	var homeDir string
	root := &cobra.Command{
		Use:           "treaty",
		Short:         "treaty federates AI agents across machines and organisations",
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, a []string) error {
			if len(a) > 0 {
				return usagef("unknown command %q (see 'treaty --help')", a[0])
			}
			cmd.Help()
			return usagef("a command is required")
		},
	}
	root.PersistentFlags().StringVar(&homeDir, "home", home.Default(), "node home directory ($TREATY_HOME, else ~/.treaty)")
	root.PersistentPreRunE = func(*cobra.Command, []string) error {
		if homeDir == "" { // only an explicit --home '' (or --home=) is empty
			return usagef("--home is empty: want the home directory (default $TREATY_HOME, else ~/.treaty)")
		}
		return nil
	}
	h := func() string { return homeDir }

	root.AddCommand(
		initCmd(h), idCmd(h), runCmd(h), statusCmd(h), peerCmd(h),
		exposeCmd(h), grantCmd(h), ungrantCmd(h), capsCmd(h), callCmd(h), demoCmd(),
		scanCmd(h), screenCmd(h), auditCmd(h),
		trustCmd(h), limitCmd(h), versionCmd(), doctorCmd(h),
		mcpCmd(h),
		a2aCmd(h),
		groupCmd(h), kvCmd(h), motionCmd(h), decisionCmd(h),
		dashboardCmd(h),
	)
	root.AddCommand(admissionCmds(h)...) // members.go
	root.InitDefaultCompletionCmd()      // now rather than at Execute, so that requireSubcommand covers it
	requireSubcommand(root)
	return root
}

func initCmd(h func() string) *cobra.Command {
	var name, listen string
	c := &cobra.Command{
		Use:   "init --name NAME [--listen HOST:PORT]",
		Short: "create a home with a new identity; prints the peer ID",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if name == "" {
				return usagef("--name is required")
			}
			id, err := home.Init(h(), name, listen)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), id)
			if err := trySocket(h()); err != nil {
				fmt.Fprintf(cmd.ErrOrStderr(), "treaty: warning: 'treaty run' cannot serve this home's local API: %v; choose a shorter --home\n", err)
			}
			return nil
		},
	}
	c.Flags().StringVar(&name, "name", "", "this node's nickname (required)")
	c.Flags().StringVar(&listen, "listen", config.DefaultListen, "federation address (loopback by default)")
	return c
}

// trySocket binds and removes the local API's socket in a new home, to find
// a path too long for a unix socket here at init rather than at the first run.
func trySocket(dir string) error {
	sock := filepath.Join(dir, api.SocketName)
	ln, err := net.Listen("unix", sock)
	if err != nil {
		return fmt.Errorf("socket path %s (%d bytes): %w", sock, len(sock), err)
	}
	return ln.Close() // removes the socket file
}

func idCmd(h func() string) *cobra.Command {
	return &cobra.Command{
		Use: "id", Short: "print this node's peer ID", Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			id, err := home.ID(h())
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), id)
			return nil
		},
	}
}

func runCmd(h func() string) *cobra.Command {
	var verbose bool
	var logFormat, logLevel string
	c := &cobra.Command{
		Use: "run", Short: "run the node in the foreground", Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if verbose {
				logLevel = "debug"
			}
			log, err := newLogger(os.Stderr, logFormat, logLevel)
			if err != nil {
				return err
			}
			return serveNode(cmd.Context(), h(), log) // restart.go: reopens the node after a key rotation
		},
	}
	c.Flags().BoolVarP(&verbose, "verbose", "v", false, "debug logging (as --log-level debug)")
	c.Flags().StringVar(&logFormat, "log-format", "text", "log format: text or json")
	c.Flags().StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	return c
}

func statusCmd(h func() string) *cobra.Command {
	var wait time.Duration
	c := &cobra.Command{
		Use: "status [--wait DURATION]", Short: "exit 0 once the node is up and serving", Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if wait < 0 {
				return usagef("--wait %v: want a duration >= 0, as in 10s", wait)
			}
			s, err := waitUp(cmd.Context(), client.New(h()), wait)
			if err != nil {
				return err
			}
			tprintf(cmd.OutOrStdout(), "up %s %s %s\n", s.Name, s.ID, s.Addr)
			// The node's own word first; a node that has not polled the files
			// yet is caught by checking them here.
			stale := s.ConfigError
			if stale == "" {
				if err := home.CheckFiles(h()); err != nil {
					stale = err.Error()
				}
			}
			if stale != "" {
				tprintf(cmd.ErrOrStderr(), "treaty: warning: the running configuration is stale: %s; the node keeps its last valid configuration until the file is fixed\n", stale)
			}
			return nil
		},
	}
	c.Flags().DurationVar(&wait, "wait", 0, "keep asking until the node is up, for at most this long")
	return c
}

// statusPoll is how often `status --wait` asks the node.
const statusPoll = 100 * time.Millisecond

// waitUp asks for the node's status until it answers or wait has passed; the
// error is then the last reason it did not answer.
func waitUp(ctx context.Context, cl *client.Client, wait time.Duration) (api.Status, error) {
	ctx, cancel := context.WithTimeout(ctx, wait+5*time.Second) // the last attempt may take a moment
	defer cancel()
	deadline := time.Now().Add(wait)
	for {
		s, err := cl.Status(ctx)
		if err == nil || time.Now().After(deadline) {
			if err != nil && wait > 0 {
				err = fmt.Errorf("not up after %v: %w", wait, err)
			}
			return s, err
		}
		t := time.NewTimer(min(statusPoll, time.Until(deadline)+time.Millisecond))
		select {
		case <-ctx.Done():
			t.Stop()
			return s, err
		case <-t.C:
		}
	}
}

func versionCmd() *cobra.Command {
	return &cobra.Command{
		Use: "version", Short: "print the version of this binary", Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintln(cmd.OutOrStdout(), versionLine())
			return nil
		},
	}
}

// versionLine is "treaty VERSION (REVISION[ modified], TIME) GOVERSION" from the
// build information the Go toolchain embeds; parts it lacks are left out.
func versionLine() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "treaty (no build information)"
	}
	v := bi.Main.Version
	if v == "" {
		v = "(devel)"
	}
	var rev, at string
	modified := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			at = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	line := "treaty " + v
	if rev != "" {
		if len(rev) > 12 {
			rev = rev[:12]
		}
		if modified {
			rev += " modified"
		}
		if at != "" {
			rev += ", " + at
		}
		line += " (" + rev + ")"
	}
	return line + " " + bi.GoVersion
}

func peerCmd(h func() string) *cobra.Command {
	c := &cobra.Command{Use: "peer", Short: "manage the peer book", Args: args(cobra.NoArgs)}
	var name, addr, via string
	var rename bool
	add := &cobra.Command{
		Use: "add --name NAME (--addr HOST:PORT | --via RELAY) [--rename] PEER_ID", Short: "add a peer (or change a known peer's address or relay)",
		Long: "--via RELAY dials the peer through RELAY's relay (another peer, by nickname or did:key, with an\n" +
			"--addr and no --via), for a peer that accepts no inbound connections; --addr may then be left out.\n" +
			"Changing a known peer sets both: without --via it is dialed directly again.",
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			if name == "" || (addr == "" && via == "") {
				return usagef("--name and one of --addr and --via are required")
			}
			return home.SetPeer(h(), home.PeerChange{Name: name, Addr: addr, ID: a[0], Rename: rename, Via: via, SetVia: true})
		},
	}
	add.Flags().StringVar(&name, "name", "", "local nickname")
	add.Flags().StringVar(&addr, "addr", "", "the peer's federation address")
	add.Flags().StringVar(&via, "via", "", "dial the peer through this peer's relay (nickname or did:key)")
	add.Flags().BoolVar(&rename, "rename", false, "give a key already in the peer book a new nickname")
	var asJSON bool
	ls := &cobra.Command{
		Use: "ls", Short: "list the peer book", Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			// A running node adds its breaker states; otherwise read the book.
			out, err := client.New(h()).Peers(cmd.Context())
			if errors.Is(err, client.ErrNotRunning) {
				cfg, lerr := config.Load(h())
				if lerr != nil {
					return lerr
				}
				out, err = []api.PeerInfo{}, nil
				for _, p := range cfg.Peers {
					out = append(out, api.PeerInfo{Name: p.Name, ID: p.ID, Addr: p.Addr, Source: cmp.Or(p.Source, config.SourceOperator)})
				}
			}
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), out)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tID\tADDR\tBREAKER\tSOURCE")
			for _, p := range out {
				tprintf(tw, "%s\t%s\t%s\t%s\t%s\n", p.Name, p.ID, p.Addr, dash(p.Breaker), dash(p.Source))
			}
			return tw.Flush()
		},
	}
	ls.Flags().BoolVar(&asJSON, "json", false, "JSON output")
	rm := &cobra.Command{
		Use: "rm PEER", Short: "remove a peer (its connections close at once)", Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error { return home.RemovePeer(h(), a[0]) },
	}
	c.AddCommand(add, ls, rm)
	return c
}

func exposeCmd(h func() string) *cobra.Command {
	var execCmd, httpURL, mcpCmd, mcpURL, a2aURL, skill, tool, desc, inputSchema, outputSchema string
	var timeout time.Duration
	var stream, replace, allowRemote, worker bool
	var workers int
	c := &cobra.Command{
		Use:   "expose CAP (--exec 'COMMAND ARGS' [--worker [--workers N]] | --http URL [--allow-remote] | (--mcp 'COMMAND ARGS' | --mcp-url URL [--allow-remote]) --tool TOOL | --a2a URL --skill SKILL [--allow-remote]) [--input-schema FILE] [--output-schema FILE] [--replace]",
		Short: "define a capability; grant it to peers with 'treaty grant'",
		Long: "A relative or bare --exec or --mcp program is resolved to an absolute path now, and refused if missing.\n" +
			"--http and --mcp-url must name a loopback host unless --allow-remote is given. --mcp and --mcp-url\n" +
			"expose one tool of a local MCP server (docs/mcp.md); the capability takes the tool's description\n" +
			"and input schema unless --description or --input-schema is given. --a2a exposes one skill of a\n" +
			"local A2A agent (docs/backends.md). An existing capability\n" +
			"is changed only with --replace.",
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			kinds := 0
			for _, v := range []string{execCmd, httpURL, mcpCmd, mcpURL, a2aURL} {
				if v != "" {
					kinds++
				}
			}
			if kinds != 1 {
				return usagef("exactly one of --exec, --http, --mcp, --mcp-url and --a2a is required")
			}
			if (tool != "") != (mcpCmd != "" || mcpURL != "") {
				return usagef("--tool goes with --mcp or --mcp-url, and they need it")
			}
			if (skill != "") != (a2aURL != "") {
				return usagef("--skill goes with --a2a, and it needs it")
			}
			if stream && (mcpCmd != "" || mcpURL != "") {
				return usagef("--mcp and --mcp-url cannot stream: a tool answers each call once")
			}
			if (worker || workers != 0) && execCmd == "" {
				return usagef("--worker and --workers need --exec")
			}
			if workers != 0 && !worker {
				return usagef("--workers needs --worker")
			}
			if worker && stream {
				return usagef("--worker cannot be combined with --stream: a worker answers each call with one line")
			}
			if workers < 0 || workers > config.MaxExecWorkers {
				return usagef("--workers %d: want 1 to %d", workers, config.MaxExecWorkers)
			}
			if timeout < 0 || timeout > config.MaxBackendTimeout {
				return usagef("--timeout %v: want a duration in [0, %v] (0: %v)", timeout, config.MaxBackendTimeout, config.DefaultBackendTimeout)
			}
			cp := config.Capability{Name: a[0], Description: desc, Stream: stream, Timeout: config.Duration(timeout)}
			var err error
			if cp.InputSchema, err = readSchema("--input-schema", inputSchema, "input_schema"); err != nil {
				return err
			}
			if cp.OutputSchema, err = readSchema("--output-schema", outputSchema, "output_schema"); err != nil {
				return err
			}
			switch {
			case mcpCmd != "":
				command, err := home.ResolveCommand(mcpCmd)
				if err != nil {
					return usagef("%s", strings.ReplaceAll(err.Error(), "--exec", "--mcp"))
				}
				cp.MCP = &config.MCPBackend{Command: command, Tool: tool}
			case mcpURL != "":
				if err := home.CheckHTTPBackend(mcpURL, allowRemote); err != nil {
					return usagef("%s", strings.ReplaceAll(err.Error(), "--http", "--mcp-url"))
				}
				cp.MCP = &config.MCPBackend{URL: mcpURL, Tool: tool}
			case a2aURL != "":
				if err := home.CheckHTTPBackend(a2aURL, allowRemote); err != nil {
					return usagef("%s", strings.ReplaceAll(err.Error(), "--http", "--a2a"))
				}
				cp.A2A = &config.A2ABackend{URL: a2aURL, Skill: skill}
			case execCmd != "":
				command, err := home.ResolveCommand(execCmd)
				if err != nil {
					return err
				}
				cp.Exec = &config.ExecBackend{Command: command}
				if worker {
					cp.Exec.Mode, cp.Exec.Workers = config.ExecModeWorker, workers
				}
			default:
				if err := home.CheckHTTPBackend(httpURL, allowRemote); err != nil {
					return err
				}
				cp.HTTP = &config.HTTPBackend{URL: httpURL}
			}
			return home.Expose(h(), cp, replace)
		},
	}
	c.Flags().BoolVar(&replace, "replace", false, "change a capability that is already exposed")
	c.Flags().BoolVar(&allowRemote, "allow-remote", false, "allow an --http, --mcp-url or --a2a URL on a non-loopback host")
	c.Flags().StringVar(&mcpCmd, "mcp", "", "local MCP server run by the node (stdio); needs --tool")
	c.Flags().StringVar(&mcpURL, "mcp-url", "", "local MCP server's streamable HTTP endpoint; needs --tool")
	c.Flags().StringVar(&tool, "tool", "", "with --mcp or --mcp-url: the tool this capability calls")
	c.Flags().StringVar(&a2aURL, "a2a", "", "local A2A agent's base URL (its card at /.well-known/agent-card.json); needs --skill")
	c.Flags().StringVar(&skill, "skill", "", "with --a2a: the skill's id on the agent's card")
	c.Flags().StringVar(&inputSchema, "input-schema", "", "JSON Schema file the input must match (refused before the backend runs)")
	c.Flags().StringVar(&outputSchema, "output-schema", "", "JSON Schema file the result (each event of a stream) must match (refused before it leaves)")
	c.Flags().StringVar(&execCmd, "exec", "", "command run per call: JSON on stdin, JSON on stdout")
	c.Flags().StringVar(&httpURL, "http", "", "local URL to POST the JSON input to")
	c.Flags().StringVar(&desc, "description", "", "what the capability does")
	c.Flags().DurationVar(&timeout, "timeout", 0, "backend timeout (default 30s)")
	c.Flags().BoolVar(&stream, "stream", false, "each stdout line is one event of a result stream")
	c.Flags().BoolVar(&worker, "worker", false, "keep the command running: it serves many calls as JSON lines (docs/backends.md)")
	c.Flags().IntVar(&workers, "workers", 0, "with --worker: how many processes (default 1)")
	return c
}

func grantCmd(h func() string) *cobra.Command {
	return &cobra.Command{
		Use: "grant PEER CAP", Short: "let PEER list and call CAP (adds a Cedar permit)", Args: args(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, a []string) error {
			changed, err := home.Grant(h(), a[0], a[1])
			if err == nil && !changed {
				fmt.Fprintln(cmd.ErrOrStderr(), "treaty: already granted")
			}
			return err
		},
	}
}

func ungrantCmd(h func() string) *cobra.Command {
	return &cobra.Command{
		Use: "ungrant PEER CAP", Short: "remove the permit 'treaty grant' added", Args: args(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, a []string) error {
			changed, still, err := home.Ungrant(h(), a[0], a[1])
			if err != nil {
				return err
			}
			if !changed {
				fmt.Fprintln(cmd.ErrOrStderr(), "treaty: no grant to remove")
			}
			if still {
				fmt.Fprintln(cmd.ErrOrStderr(), "treaty: warning: a hand-written policy in policy.cedar still allows this")
			}
			return nil
		},
	}
}

func capsCmd(h func() string) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use: "caps PEER", Short: "what PEER exposes to this node", Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			raw, err := client.New(h()).Caps(cmd.Context(), a[0])
			if err != nil {
				return err
			}
			var caps []node.CapabilityInfo
			if err := json.Unmarshal(raw, &caps); err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), caps)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "CAPABILITY\tKIND\tDESCRIPTION")
			for _, cp := range caps {
				kind := "call"
				if cp.Stream {
					kind = "stream"
				}
				tprintf(tw, "%s\t%s\t%s\n", cp.Name, kind, cp.Description)
			}
			return tw.Flush()
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "JSON output")
	return c
}

func callCmd(h func() string) *cobra.Command {
	var stream bool
	c := &cobra.Command{
		Use:   "call PEER CAP [JSON | -]",
		Short: "call PEER's capability; prints the result JSON",
		Args:  args(cobra.RangeArgs(2, 3)),
		RunE: func(cmd *cobra.Command, a []string) error {
			input := []byte("{}")
			if len(a) == 3 {
				input = []byte(a[2])
				if a[2] == "-" {
					b, err := io.ReadAll(io.LimitReader(cmd.InOrStdin(), api.MaxRequestBytes+1))
					if err != nil {
						return err
					}
					input = b
				}
			}
			if len(input) > api.MaxRequestBytes {
				return usagef("input is over %d bytes (16 MiB), the most the local API accepts; a peer accepts at most its limits.max_body_bytes (default 1 MiB)", api.MaxRequestBytes)
			}
			if !json.Valid(input) {
				return usagef("input is not valid JSON")
			}
			out := cmd.OutOrStdout()
			cl := client.New(h())
			if stream {
				return cl.Stream(cmd.Context(), a[0], a[1], input, func(d json.RawMessage) error {
					_, err := fmt.Fprintf(out, "%s\n", d)
					return err
				})
			}
			res, err := cl.Call(cmd.Context(), a[0], a[1], input)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(out, "%s\n", res.Output)
			return err
		},
	}
	c.Flags().BoolVar(&stream, "stream", false, "the capability streams: print one event per line")
	return c
}

func demoCmd() *cobra.Command {
	return &cobra.Command{
		Use: "demo", Short: "the whole story on loopback, in one command", Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return demo.Run(cmd.Context(), cmd.OutOrStdout())
		},
	}
}

// printJSON prints v indented, without HTML escaping: output is for terminals
// and scripts, where "<" must stay "<".
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
