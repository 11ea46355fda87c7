package client

import (
	"errors"
	"io"
	"strings"
	"testing"
)

func TestReadEventsParsesTheStream(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		ids      []string
		err      error
	}{
		{"events and heartbeats", ": discovery activity log\n\nid: 1\ndata: {\"id\":\"1\",\"type\":\"deployed\"}\n\n: keep-alive\n\nid: 2\ndata: {\"id\":\"2\"}\n\n", []string{"1", "2"}, io.ErrUnexpectedEOF},
		{"data over two lines", "data: {\"id\":\ndata: \"3\"}\n\n", []string{"3"}, io.ErrUnexpectedEOF},
		{"the app deleted", "data: {\"id\":\"4\"}\n\nevent: deleted\ndata: {}\n\ndata: {\"id\":\"5\"}\n\n", []string{"4"}, ErrAppDeleted},
		{"a message cut off", "data: {\"id\":\"6\"}", nil, io.ErrUnexpectedEOF},
	} {
		var ids []string
		err := readEvents(strings.NewReader(tc.in), func(e Event) error { ids = append(ids, e.ID); return nil })
		if !errors.Is(err, tc.err) || strings.Join(ids, ",") != strings.Join(tc.ids, ",") {
			t.Errorf("%s: %v, %v; want %v, %v", tc.name, ids, err, tc.ids, tc.err)
		}
	}
}
