// Command dsh is the Discovery shell: an interactive Go REPL with the
// platform's APIs preloaded (apps, deploy, endpoint, events, logs, leases,
// images, tenants, tokens), so an operator deploys with
// deploy.Rollout("arena", "example/arena:0.2") instead of curl. It also
// evaluates one expression (dsh -e '...') and runs scripts (dsh run
// script.go): plain Go files whose code is the source of truth for what runs.
//
//	dsh [--url URL] [--tenant T]                 interactive shell
//	dsh [--url URL] [--tenant T] -e EXPR ...     evaluate, print, exit (1 on error)
//	dsh [--url URL] [--tenant T] run FILE [ARG]  run a script's main
//	dsh login [--url URL] [--tenant T] [--token-file F]
//	dsh logout
//	dsh apps | status APP | deploy APP IMAGE [--wait] | rollback APP [REV] | ...
//
// The verbs (verbs.go) do the everyday work without Go: list apps, read an
// app's status, deploy and follow a revision until it is active or failed,
// roll back, retire, scale, read and follow logs and events, count sessions;
// --json on each for scripts; dsh completion bash|zsh for the shells.
//
// The platform's URL, the token and the tenant come from the flags, then
// DISCOVERY_URL, DISCOVERY_TOKEN, DISCOVERY_TENANT, then what `dsh login`
// saved, then http://127.0.0.1:4000 and "default". The engine is package
// shell; see its documentation for the Go dialect dsh speaks.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/chzyer/readline"

	"github.com/discovery-platform/discovery/client"
	"github.com/discovery-platform/discovery/shell"
)

// Exit statuses.
const (
	exitOK          = 0
	exitError       = 1
	exitUsage       = 2
	exitInterrupted = 130
)

func main() { os.Exit(run(os.Args[1:])) }

// usage is dsh's usage; verbs.go adds the verbs' lines.
var usage = `usage:
  dsh [--url URL] [--tenant T]                   interactive shell (help inside for help)
  dsh [--url URL] [--tenant T] -e EXPR [-e ...]  evaluate, print the result, exit (1 on error)
  dsh [--url URL] [--tenant T] run FILE.go [ARG...]  run a Go script's main
  dsh login [--url URL] [--tenant T] [--token-file FILE]  save URL, token and tenant (mode 0600)
  dsh logout                                     forget the saved token

URL, token and tenant: flags, else $DISCOVERY_URL, $DISCOVERY_TOKEN, $DISCOVERY_TENANT,
else what dsh login saved, else http://127.0.0.1:4000 and "default".
`

type exprs []string

func (e *exprs) String() string     { return strings.Join(*e, "; ") }
func (e *exprs) Set(v string) error { *e = append(*e, v); return nil }

func run(args []string) int {
	fl := flag.NewFlagSet("dsh", flag.ContinueOnError)
	fl.Usage = func() { fmt.Fprint(os.Stderr, usage) }
	url := fl.String("url", "", "the platform's API URL")
	tenant := fl.String("tenant", "", "the tenant to work in")
	var evals exprs
	fl.Var(&evals, "e", "evaluate this Go and exit (repeatable)")
	if err := fl.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	rest := fl.Args()
	if len(rest) > 0 {
		switch rest[0] {
		case "login":
			return login(rest[1:], *url, *tenant)
		case "logout":
			return logout()
		case "run":
			if len(rest) < 2 {
				fmt.Fprint(os.Stderr, "dsh run: which script?\n"+usage)
				return exitUsage
			}
			return runScript(rest[1], rest[2:], *url, *tenant)
		case "help":
			if len(rest) > 1 && findVerb(rest[1]) != nil {
				return runVerb([]string{rest[1], "--help"}, *url, *tenant)
			}
			fmt.Print(usage)
			return exitOK
		default:
			return runVerb(rest, *url, *tenant)
		}
	}
	set, c, err := session(*url, *tenant)
	if err != nil {
		fmt.Fprintln(os.Stderr, "dsh:", err)
		return exitError
	}
	s, err := shell.New(shell.Options{Client: c, Tenant: set.Tenant, Args: []string{"dsh"}})
	if err != nil {
		fmt.Fprintln(os.Stderr, "dsh:", err)
		return exitError
	}
	if len(evals) > 0 {
		return evaluate(s, evals)
	}
	return interactive(s, c, set)
}

// session resolves the settings and makes the client.
func session(flagURL, flagTenant string) (settings, *client.Client, error) {
	saved, err := loadConfig()
	if err != nil {
		return settings{}, nil, err
	}
	set := resolve(flagURL, flagTenant, saved)
	c, err := client.New(client.Config{URL: set.URL, Token: set.Token, UserAgent: "dsh"})
	return set, c, err
}

// interrupts cancels ctx on the first Ctrl-C (SIGINT) or SIGTERM.
func interrupts() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

func evaluate(s *shell.Shell, evals []string) int {
	ctx, stop := interrupts()
	defer stop()
	for _, src := range evals {
		if err := s.Eval(ctx, src); err != nil {
			if ctx.Err() != nil {
				return exitInterrupted
			}
			return exitError
		}
	}
	return exitOK
}

func runScript(path string, args []string, flagURL, flagTenant string) int {
	src, err := os.ReadFile(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "dsh run:", err)
		return exitError
	}
	set, c, err := session(flagURL, flagTenant)
	if err != nil {
		fmt.Fprintln(os.Stderr, "dsh:", err)
		return exitError
	}
	ctx, stop := interrupts()
	defer stop()
	err = shell.Run(ctx, shell.Options{Client: c, Tenant: set.Tenant, Args: append([]string{path}, args...)}, path, src)
	switch {
	case err == nil:
		return exitOK
	case ctx.Err() != nil:
		return exitInterrupted
	case !errors.Is(err, shell.ErrReported):
		fmt.Fprintln(os.Stderr, "dsh run:", err)
	}
	return exitError
}

// interactive runs the REPL: a line editor with history and completion on a
// terminal, plain lines otherwise (dsh < script.txt).
func interactive(s *shell.Shell, c *client.Client, set settings) int {
	// Ctrl-C while a call runs arrives as SIGINT (the line editor has the
	// terminal in raw mode only while it reads): cancel that call only.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt)
	defer signal.Stop(sigs)
	tty := readline.DefaultIsTerminal()
	go func() {
		for range sigs {
			if !s.Interrupt() && !tty {
				os.Exit(exitInterrupted)
			}
		}
	}()
	var r shell.LineReader
	if tty {
		rl, err := newLineEditor(s)
		if err != nil {
			fmt.Fprintln(os.Stderr, "dsh:", err)
			return exitError
		}
		defer rl.Close()
		r = editor{rl}
		greet(c, set)
	} else {
		r = plainReader{bufio.NewReader(os.Stdin)}
	}
	if err := s.Loop(context.Background(), r); err != nil {
		fmt.Fprintln(os.Stderr, "dsh:", err)
		return exitError
	}
	return exitOK
}

// greet says where dsh is connected and as whom, or why calls will fail.
func greet(c *client.Client, set settings) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	who, err := c.WhoAmI(ctx, set.Tenant)
	if err == nil {
		fmt.Printf("dsh: %s as %s. help for help, Ctrl-D to leave.\n", c.URL(), who)
		return
	}
	fmt.Printf("dsh: %s, tenant %s. help for help, Ctrl-D to leave.\n", c.URL(), set.Tenant)
	switch {
	case errors.Is(err, client.ErrUnreachable):
		fmt.Printf("warning: %v; calls fail until it answers.\n", err)
	case errors.Is(err, client.ErrUnauthenticated):
		fmt.Printf("warning: the platform refused the token (%v); dsh login, or set DISCOVERY_TOKEN.\n", err)
	}
}

// newLineEditor sets up line editing with history kept across sessions (in
// the config dir, mode 0600) and completion.
func newLineEditor(s *shell.Shell) (*readline.Instance, error) {
	cfg := &readline.Config{
		Prompt:            shell.Prompt(),
		AutoComplete:      completer{s},
		InterruptPrompt:   "^C",
		EOFPrompt:         "",
		HistorySearchFold: true,
		HistoryLimit:      5000,
	}
	if dir, err := configDir(); err == nil {
		if os.MkdirAll(dir, 0o700) == nil {
			path := filepath.Join(dir, "dsh_history")
			// readline would create it world-readable; typed lines may hold secrets.
			if f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600); err == nil {
				f.Close()
				cfg.HistoryFile = path
			}
		}
	}
	return readline.NewEx(cfg)
}

// editor adapts readline to shell.LineReader.
type editor struct{ rl *readline.Instance }

func (e editor) ReadLine(prompt string) (string, error) {
	e.rl.SetPrompt(prompt)
	line, err := e.rl.Readline()
	if errors.Is(err, readline.ErrInterrupt) {
		return "", shell.ErrInterrupt
	}
	return line, err
}

// completer adapts shell completion to readline.
type completer struct{ s *shell.Shell }

func (c completer) Do(line []rune, pos int) ([][]rune, int) {
	suffixes, n := c.s.Complete(string(line), len(string(line[:pos])))
	out := make([][]rune, len(suffixes))
	for i, s := range suffixes {
		out[i] = []rune(s)
	}
	return out, n
}

// plainReader reads lines without prompts or editing.
type plainReader struct{ r *bufio.Reader }

func (p plainReader) ReadLine(string) (string, error) {
	line, err := p.r.ReadString('\n')
	if err == io.EOF && line != "" {
		err = nil
	}
	return strings.TrimRight(line, "\r\n"), err
}
