package main

// The hostile mode: with PROBE=1 the testapp acts as a tenant's replica that
// tries to reach what it must not, and prints everything it gets, so a test
// can read its output and assert that nothing leaked.
//
//	PROBE=1                    probe at start, print one line per attempt
//	PROBE_FILES=<p1>,<p2>      files to read (printed whole when readable)
//	PROBE_DIRS=<d1>,<d2>       directories to list
//	PROBE_UNIX=<s1>,<s2>       unix sockets to connect to
//	PROBE_TCP=<a1>,<a2>        host:port to connect to
//	PRINT_ENV=<K1>,<K2>        print these variables of its own environment
//	                           (a victim replica puts its secret in its log)
//
// It always reads every /proc/<pid>/environ it can and prints its own
// environment.

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

func probe() {
	for _, k := range list("PRINT_ENV") {
		fmt.Printf("env %s=%s\n", k, os.Getenv(k))
	}
	if os.Getenv("PROBE") != "1" {
		return
	}
	fmt.Printf("probe uid=%d gid=%d\n", os.Getuid(), os.Getgid())
	fmt.Printf("probe own environment: %q\n", os.Environ())
	for _, f := range list("PROBE_FILES") {
		b, err := os.ReadFile(f)
		report("read "+f, err, string(b))
	}
	for _, d := range list("PROBE_DIRS") {
		entries, err := os.ReadDir(d)
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		report("list "+d, err, strings.Join(names, " "))
	}
	for _, s := range list("PROBE_UNIX") {
		c, err := net.DialTimeout("unix", s, 2*time.Second)
		if err == nil {
			c.Close()
		}
		report("connect unix "+s, err, "connected")
	}
	for _, a := range list("PROBE_TCP") {
		c, err := net.DialTimeout("tcp", a, 2*time.Second)
		if err == nil {
			c.Close()
		}
		report("connect tcp "+a, err, "connected")
	}
	environs, _ := filepath.Glob("/proc/[0-9]*/environ")
	read := 0
	for _, f := range environs {
		if f == "/proc/self/environ" || strings.HasPrefix(f, fmt.Sprintf("/proc/%d/", os.Getpid())) {
			continue
		}
		b, err := os.ReadFile(f)
		if err == nil && len(b) > 0 {
			read++
			fmt.Printf("probe read %s: %q\n", f, b)
		}
	}
	fmt.Printf("probe environ: read %d of %d other processes\n", read, len(environs)-1)
	fmt.Println("probe done")
}

func report(what string, err error, got string) {
	if err != nil {
		fmt.Printf("probe %s: denied (%v)\n", what, err)
		return
	}
	fmt.Printf("probe %s: GOT %q\n", what, got)
}

func list(key string) []string {
	var out []string
	for _, s := range strings.Split(os.Getenv(key), ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}
