package shell

import (
	"context"
	"errors"
	"fmt"
	"go/constant"
	"io"
	"reflect"
	"sort"
	"strings"

	"github.com/discovery-platform/discovery/shell/lib/dsh"
	"github.com/discovery-platform/discovery/shell/symbols"
)

// LineReader reads input lines: a line editor on a terminal, a plain reader
// otherwise.
type LineReader interface {
	// ReadLine shows prompt and returns one line without its newline; it
	// returns ErrInterrupt on Ctrl-C at the prompt and io.EOF at the end of
	// input (Ctrl-D).
	ReadLine(prompt string) (string, error)
}

// ErrInterrupt is what a LineReader returns for Ctrl-C at the prompt.
var ErrInterrupt = errors.New("interrupt")

// Prompt is the prompt for a new input: "dsh <tenant>> ".
func Prompt() string { return "dsh " + dsh.Tenant() + "> " }

// ContinuationPrompt is the prompt for the next line of an incomplete input.
const ContinuationPrompt = "... "

// Loop reads inputs from r and evaluates them until the end of input or
// `exit`. An input spans lines until it is complete (see Incomplete); Ctrl-C
// at the prompt drops the lines typed so far. `help` lists the preloaded
// packages; `help <package>` lists one's functions and types.
func (s *Shell) Loop(ctx context.Context, r LineReader) error {
	var lines []string
	for {
		prompt := Prompt()
		if len(lines) > 0 {
			prompt = ContinuationPrompt
		}
		line, err := r.ReadLine(prompt)
		switch {
		case errors.Is(err, ErrInterrupt):
			lines = nil
			continue
		case errors.Is(err, io.EOF):
			if len(lines) > 0 {
				_ = s.Eval(ctx, strings.Join(lines, "\n"))
			}
			return nil
		case err != nil:
			return err
		}
		lines = append(lines, line)
		src := strings.Join(lines, "\n")
		if Incomplete(src) {
			continue
		}
		lines = nil
		switch word := strings.Fields(src); {
		case len(word) == 1 && (word[0] == "exit" || word[0] == "quit"):
			return nil
		case len(word) > 0 && word[0] == "help" && len(word) <= 2:
			s.Help(word[1:]...)
			continue
		}
		_ = s.Eval(ctx, src)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

// examples are the lines `help` shows after the packages: the verbs an
// operator reaches for first.
var examples = [][2]string{
	{`images.List()`, "the images tenants may deploy (admins: images.Put)"},
	{`deploy.Rollout("arena", "example/arena:0.2")`, "deploy an image of the catalog"},
	{`deploy.Status("arena")`, "its revisions, states and ready replicas"},
	{`deploy.Sessions("arena")`, "connections, reservations and leases per revision"},
	{`events.Handoffs("arena")`, "players handed off in drains: moved, fell back"},
	{`leases.List("arena")`, "the app's leases; leases.Release(\"arena\", \"<lease>\")"},
	{`tokens.IssueFor("acme", "alice", 24*time.Hour)`, "a token bound to tenant acme"},
	{`tenants.AllowCommands("acme", true)`, "let a trusted tenant deploy commands (admin)"},
}

// Help prints the preloaded packages, or the functions and types of those
// named.
func (s *Shell) Help(pkgs ...string) {
	w := s.out
	if len(pkgs) == 0 {
		fmt.Fprintln(w, "Preloaded (no import needed):")
		for _, p := range Platform {
			fmt.Fprintf(w, "  %-9s %s\n", p.Name, p.Doc)
		}
		fmt.Fprintf(w, "  and %s from the standard library.\n", strings.Join(Std, ", "))
		fmt.Fprintln(w, "For example:")
		for _, ex := range examples {
			fmt.Fprintf(w, "  %-52s %s\n", ex[0], ex[1])
		}
		fmt.Fprintln(w, `help <package> lists its functions; Tab completes names, and app names inside "quotes".`)
		fmt.Fprintln(w, "Ctrl-C stops the running call; Ctrl-D or exit leaves.")
		return
	}
	for _, name := range pkgs {
		path, ok := autoImports[name]
		syms := symbols.Symbols[path+"/"+name]
		if !ok || syms == nil {
			fmt.Fprintf(w, "help: %s is not a platform package (see help)\n", name)
			continue
		}
		names := make([]string, 0, len(syms))
		for n := range syms {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			v := syms[n]
			if !v.IsValid() {
				continue
			}
			if c, ok := v.Interface().(constant.Value); ok {
				fmt.Fprintf(w, "  const %s.%s = %s\n", name, n, c)
				continue
			}
			switch {
			case v.Kind() == reflect.Func:
				fmt.Fprintf(w, "  %s.%s%s\n", name, n, strings.TrimPrefix(v.Type().String(), "func"))
			case v.Kind() == reflect.Pointer && v.IsNil():
				fmt.Fprintf(w, "  type %s.%s\n", name, n)
			default:
				fmt.Fprintf(w, "  %s.%s %s\n", name, n, v.Type())
			}
		}
	}
}
