package supervisor

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func read(t *testing.T, dir, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return string(b)
}

func TestLogRotatesAtLineEnds(t *testing.T) {
	dir := t.TempDir()
	l, err := OpenLog(dir, 16)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for _, tc := range []struct {
		write, log, old string
	}{
		{"aaaa\nbbbb\n", "aaaa\nbbbb\n", ""},
		{"cccc\n", "aaaa\nbbbb\ncccc\n", ""}, // 15 bytes: fits
		{"dd", "dd", "aaaa\nbbbb\ncccc\n"},   // would pass 16: rotate first
		{"dd\neeeeeeeeee\nf", "f", "dddd\neeeeeeeeee\n"},
		{"ff\n", "fff\n", "dddd\neeeeeeeeee\n"},
		{"0123456789", "fff\n0123456789", "dddd\neeeeeeeeee\n"},
		// A line longer than the limit keeps its first 15 bytes and its
		// newline, even when written in pieces; with no line end to rotate
		// at, it continues in the next file.
		{"abcdefghij", "abcde", "fff\n0123456789"},
		{"klmno\nxy\n", "abcde\nxy\n", "fff\n0123456789"},
		{"ZZZZZZZZZZZZZZZ", "ZZZZZZZZZZZZZZZ", "abcde\nxy\n"},
		{"\n", "ZZZZZZZZZZZZZZZ\n", "abcde\nxy\n"},
		{"YYYYYYYYYYYYYYYYYYYY", "YYYYYYYYYYYYYYY", "ZZZZZZZZZZZZZZZ\n"},
		{"\nW\n", "W\n", "YYYYYYYYYYYYYYY\n"},
	} {
		if _, err := l.Write([]byte(tc.write)); err != nil {
			t.Fatal(err)
		}
		if got, got1 := read(t, dir, LogFile), read(t, dir, OldLogFile); got != tc.log || got1 != tc.old {
			t.Fatalf("after writing %q: log %q, log.1 %q; want %q, %q", tc.write, got, got1, tc.log, tc.old)
		}
	}
}

// TestLogIsBoundedAndKeepsTheNewestOutput writes random lines in random
// chunks: after every write each file is within the limit, and log.1 + log
// is the end of what was written (with over-long lines cut).
func TestLogIsBoundedAndKeepsTheNewestOutput(t *testing.T) {
	const limit = 64
	rng := rand.New(rand.NewPCG(1, 2))
	dir := t.TempDir()
	l, err := OpenLog(dir, limit)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var stream, want strings.Builder
	for i := range 2000 {
		n := rng.IntN(3 * limit)
		line := strings.Repeat(string(rune('a'+i%26)), n)
		stream.WriteString(line + "\n")
		want.WriteString(line[:min(n, limit-1)] + "\n")
	}
	s := stream.String()
	for len(s) > 0 {
		k := min(1+rng.IntN(2*limit), len(s))
		if _, err := l.Write([]byte(s[:k])); err != nil {
			t.Fatal(err)
		}
		s = s[k:]
		cur, old := read(t, dir, LogFile), read(t, dir, OldLogFile)
		if len(cur) > limit || len(old) > limit {
			t.Fatalf("log %d bytes, log.1 %d bytes: past the limit %d", len(cur), len(old), limit)
		}
	}
	got := read(t, dir, OldLogFile) + read(t, dir, LogFile)
	if !strings.HasSuffix(want.String(), got) || len(got) < limit {
		t.Fatalf("log.1+log = %q, not the end of the output", got)
	}
}
