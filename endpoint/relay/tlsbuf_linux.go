//go:build linux

package relay

import (
	"bytes"
	"crypto/tls"
	"reflect"
	"unsafe"
)

// A *tls.Conn keeps the buffers it reads records into for its whole life,
// at the size of the largest read so far: after the handshake 2 KB of
// rawInput (the ClientHello's; more with post-quantum key shares) and 1.5 KB
// of hand, after one full record 17-33 KB of rawInput. crypto/tls has no way
// to let them go, so an idle TLS direction drops them itself, through the
// fields' offsets (checked by name and type when the package loads: if a
// Go release renames or retypes them, tlsBufs.ok is false and nothing is
// touched; TestTLSReadBuffersFound says so). Dropping is only done when all
// three are empty, by the direction's goroutine, the conn's only reader,
// between two Reads: crypto/tls touches them only inside Read (under its
// c.in lock) and the handshake, which is over. An empty buffer and a zero
// one behave alike: the next Read allocates what it needs (576 bytes for a
// small record). Measured with bench/baseline (4000 wss sessions, one
// gateway): 5.0 KB of RSS per idle session instead of 12.4 without it.
var tlsBufs = func() (o struct {
	rawInput, input, hand uintptr
	ok                    bool
}) {
	t := reflect.TypeFor[tls.Conn]()
	field := func(name string, want reflect.Type) (uintptr, bool) {
		f, found := t.FieldByName(name)
		return f.Offset, found && f.Type == want && len(f.Index) == 1
	}
	buffer, reader := reflect.TypeFor[bytes.Buffer](), reflect.TypeFor[bytes.Reader]()
	var ok1, ok2, ok3 bool
	o.rawInput, ok1 = field("rawInput", buffer)
	o.input, ok2 = field("input", reader)
	o.hand, ok3 = field("hand", buffer)
	o.ok = ok1 && ok2 && ok3
	return o
}()

// releaseReadBuffers drops c's read buffers if they hold nothing, and
// returns their capacity. Only c's reader may call it, between two Reads.
func releaseReadBuffers(c *tls.Conn) int {
	if !tlsBufs.ok {
		return 0
	}
	base := unsafe.Pointer(c)
	rawInput := (*bytes.Buffer)(unsafe.Add(base, tlsBufs.rawInput))
	input := (*bytes.Reader)(unsafe.Add(base, tlsBufs.input))
	hand := (*bytes.Buffer)(unsafe.Add(base, tlsBufs.hand))
	if rawInput.Len() != 0 || input.Len() != 0 || hand.Len() != 0 {
		return 0 // a partial record or message: kept for the next Read
	}
	n := rawInput.Cap() + hand.Cap()
	// input reads from rawInput's array: reset both, or it stays reachable.
	input.Reset(nil)
	*rawInput = bytes.Buffer{}
	*hand = bytes.Buffer{}
	return n
}

// holdsRead reports whether c may hold bytes read from its socket and not
// yet returned by Read (part of a record, more records); true if the fields
// were not found. Only c's reader may call it, between two Reads.
func holdsRead(c *tls.Conn) bool {
	if !tlsBufs.ok {
		return true
	}
	base := unsafe.Pointer(c)
	return (*bytes.Buffer)(unsafe.Add(base, tlsBufs.rawInput)).Len() != 0 ||
		(*bytes.Reader)(unsafe.Add(base, tlsBufs.input)).Len() != 0
}
