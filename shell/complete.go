package shell

import (
	"context"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/traefik/yaegi/stdlib"

	"github.com/discovery-platform/discovery/shell/lib/dsh"
	"github.com/discovery-platform/discovery/shell/symbols"
)

// Complete completes the word that ends at pos in line: a preloaded
// package's name ("dep" -> "deploy."), one of its members ("deploy.Ro" ->
// "deploy.Rollout"), or, inside a string literal, an app name of the current
// tenant ("hel" -> "hello", asked of the platform and kept a few seconds).
// With nothing to complete, Tab is a tab.
// It returns the candidates' remaining text after the typed prefix, and the
// prefix's length, as line editors want them.
func (s *Shell) Complete(line string, pos int) (suffixes []string, prefixLen int) {
	if pos > len(line) {
		pos = len(line)
	}
	before := line[:pos]
	if prefix, ok := inString(before); ok {
		return suffixesOf(prefix, s.appNames()), len(prefix)
	}
	word := trailingWord(before)
	if pkg, member, ok := strings.Cut(word, "."); ok {
		return suffixesOf(member, members(pkg)), len(member)
	}
	if word == "" {
		// Nothing to complete: Tab indents (pasted code keeps its tabs).
		return []string{"\t"}, 0
	}
	var names []string
	for n := range autoImports {
		names = append(names, n+".")
	}
	return suffixesOf(word, names), len(word)
}

// inString reports whether text ends inside a "string literal", and the
// literal's text so far.
func inString(text string) (string, bool) {
	in, start := false, 0
	for i := 0; i < len(text); i++ {
		switch {
		case text[i] == '\\' && in:
			i++
		case text[i] == '"':
			in, start = !in, i+1
		}
	}
	if !in || start > len(text) {
		return "", false
	}
	return text[start:], true
}

// trailingWord is the identifier (with one dot) that text ends with.
func trailingWord(text string) string {
	i := len(text)
	for i > 0 {
		c := text[i-1]
		if c == '_' || c == '.' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' {
			i--
			continue
		}
		break
	}
	return text[i:]
}

func suffixesOf(prefix string, names []string) []string {
	var out []string
	for _, n := range names {
		if strings.HasPrefix(n, prefix) && n != prefix {
			out = append(out, n[len(prefix):])
		}
	}
	sort.Strings(out)
	return out
}

// members lists a preloaded package's exported names.
func members(pkg string) []string {
	path, ok := autoImports[pkg]
	if !ok {
		return nil
	}
	key := path + "/" + pkg
	syms := symbols.Symbols[key]
	if syms == nil {
		syms = stdlib.Symbols[key]
	}
	names := make([]string, 0, len(syms))
	for n := range syms {
		if n != "" && n[0] >= 'A' && n[0] <= 'Z' {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names
}

// appNameCache keeps the tenant's app names for completion.
type appNameCache struct {
	mu     sync.Mutex
	tenant string
	at     time.Time
	names  []string
}

const appNamesFor = 5 * time.Second

func (s *Shell) appNames() []string {
	c := &s.apps
	c.mu.Lock()
	defer c.mu.Unlock()
	tenant := dsh.Tenant()
	if c.tenant == tenant && time.Since(c.at) < appNamesFor {
		return c.names
	}
	cli := dsh.Client()
	if cli == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	list, err := cli.ListApps(ctx, tenant)
	if err != nil {
		return c.names
	}
	c.names = c.names[:0]
	for _, a := range list {
		c.names = append(c.names, a.Name)
	}
	c.tenant, c.at = tenant, time.Now()
	return c.names
}
