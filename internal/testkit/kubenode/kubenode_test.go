package kubenode

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
)

func TestTailLines(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int64
		want string
	}{
		{"a\nb\nc\n", 1, "c\n"},
		{"a\nb\nc\n", 2, "b\nc\n"},
		{"a\nb\nc\n", 5, "a\nb\nc\n"},
		{"a\nb\nc", 1, "c"},
		{"a\nb\n", 0, ""},
		{"", 3, ""},
	} {
		assert.Equal(t, tc.want, string(tailLines([]byte(tc.in), tc.n)), "tail %d of %q", tc.n, tc.in)
	}
}

func TestLimitedWriter(t *testing.T) {
	var b strings.Builder
	w := &limitedWriter{w: &b, left: 5}
	n, err := w.Write([]byte("abc"))
	assert.Equal(t, 3, n)
	require.NoError(t, err)
	n, err = w.Write([]byte("defg"))
	assert.Equal(t, 2, n)
	assert.ErrorIs(t, err, errLimit)
	assert.Equal(t, "abcde", b.String())
}

// The log file stays bounded, keeps whole lines from the newest half, and a
// reader's offsets stay meaningful across a trim.
func TestLogStoreTrims(t *testing.T) {
	s, err := newLogStore(filepath.Join(t.TempDir(), "log"), 100)
	require.NoError(t, err)
	defer s.remove()
	inst := s.begin()
	line := "0123456789\n" // 11 bytes
	for range 9 {
		_, err := s.Write([]byte(line))
		require.NoError(t, err)
	}
	c, err := s.readFrom(0)
	require.NoError(t, err)
	assert.Equal(t, strings.Repeat(line, 9), string(c.data))
	assert.True(t, c.open)

	_, err = s.Write([]byte("last\n")) // 104 bytes: trimmed to whole lines of the newest 50
	require.NoError(t, err)
	c2, err := s.readFrom(c.next)
	require.NoError(t, err)
	assert.Equal(t, "last\n", string(c2.data), "a reader at its old offset reads only what is new")
	all, err := s.readFrom(0)
	require.NoError(t, err)
	assert.LessOrEqual(t, len(all.data), 50)
	assert.True(t, strings.HasSuffix(string(all.data), line+"last\n"))
	assert.True(t, strings.HasPrefix(string(all.data), "0123456789\n"), "starts at a line: %q", all.data)

	s.end(inst)
	c3, err := s.readFrom(all.next)
	require.NoError(t, err)
	assert.False(t, c3.open)
}

func TestIPPoolDoesNotReuseHeldAddresses(t *testing.T) {
	p := NewIPPool(42)
	a, err := p.Get()
	require.NoError(t, err)
	b, err := p.Get()
	require.NoError(t, err)
	assert.Equal(t, "127.42.0.1", a.String())
	assert.Equal(t, "127.42.0.2", b.String())
	p.Put(a)
	c, err := p.Get()
	require.NoError(t, err)
	assert.Equal(t, "127.42.0.3", c.String(), "a freed address comes back last")
}

func TestCatalogLatestTag(t *testing.T) {
	c := NewCatalog()
	c.Set("example/app", []string{"/bin/app"})
	c.Set("registry:5000/team/x:2", []string{"/bin/x"})
	argv, ok := c.Lookup("example/app:latest")
	assert.True(t, ok)
	assert.Equal(t, []string{"/bin/app"}, argv)
	_, ok = c.Lookup("registry:5000/team/x")
	assert.False(t, ok, "a registry port is not a tag")
	_, ok = c.Lookup("registry:5000/team/x:2")
	assert.True(t, ok)
}

// containerArgv follows Kubernetes: command replaces the image's
// entrypoint, args are appended, $(VAR) expands, $$ escapes.
func TestContainerArgv(t *testing.T) {
	vars := map[string]string{"A": "1"}
	image := []string{"/bin/app", "--flag"}
	for _, tc := range []struct {
		c    v1.Container
		want []string
	}{
		{v1.Container{}, []string{"/bin/app", "--flag"}},
		{v1.Container{Args: []string{"x=$(A)"}}, []string{"/bin/app", "--flag", "x=1"}},
		{v1.Container{Command: []string{"/bin/other"}, Args: []string{"$$(A)", "$(B)"}}, []string{"/bin/other", "$(A)", "$(B)"}},
	} {
		assert.Equal(t, tc.want, containerArgv(image, &tc.c, vars))
	}
}
