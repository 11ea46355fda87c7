package main

import "testing"

// The summary as strace 6.1 writes it with -c -o (Debian 12).
const straceSample = `% time     seconds  usecs/call     calls    errors syscall
------ ----------- ----------- --------- --------- ----------------
 45.10    0.010000           2      4000           sendto
 30.00    0.006000           1      6000      2000 recvfrom
 24.90    0.005000           1      4001           epoll_wait
  0.00    0.000000           0         1           restart_syscall
------ ----------- ----------- --------- --------- ----------------
100.00    0.021000           1     14002      2000 total
`

func TestParseStraceSummary(t *testing.T) {
	s := parseStraceSummary(straceSample)
	if s.total != 14002 {
		t.Fatalf("total %d, want 14002 (the rows' sum)", s.total)
	}
	want := []syscallCount{{"recvfrom", 6000, 2000}, {"epoll_wait", 4001, 0}, {"sendto", 4000, 0}, {"restart_syscall", 1, 0}}
	if len(s.calls) != len(want) {
		t.Fatalf("calls %+v, want %+v", s.calls, want)
	}
	for i := range want {
		if s.calls[i] != want[i] {
			t.Errorf("row %d: %+v, want %+v", i, s.calls[i], want[i])
		}
	}
	s.frames = 7001
	if got := s.perFrame(); got != 2 {
		t.Errorf("per frame %v, want 2", got)
	}
	if empty := parseStraceSummary(""); empty.total != 0 || len(empty.calls) != 0 {
		t.Errorf("empty summary parsed as %+v", empty)
	}
}
