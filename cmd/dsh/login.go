package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/chzyer/readline"

	"github.com/discovery-platform/discovery/client"
)

// login checks a token against the platform and saves URL, token and tenant
// in the config file (mode 0600). The token comes from --token-file (e.g. the
// platform's data/admin.token), else $DISCOVERY_TOKEN, else is asked for
// (not echoed) or read from standard input.
func login(args []string, url, tenant string) int {
	fl := flag.NewFlagSet("dsh login", flag.ContinueOnError)
	fl.StringVar(&url, "url", url, "the platform's API URL")
	fl.StringVar(&tenant, "tenant", tenant, "the tenant to start in")
	tokenFile := fl.String("token-file", "", "read the token from this file")
	if err := fl.Parse(args); err != nil {
		return exitUsage
	}
	saved, err := loadConfig()
	if err != nil {
		fmt.Fprintln(os.Stderr, "dsh login:", err)
		return exitError
	}
	set := resolve(url, tenant, saved)
	token, err := readToken(*tokenFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, "dsh login:", err)
		return exitError
	}
	c, err := client.New(client.Config{URL: set.URL, Token: token, UserAgent: "dsh"})
	if err != nil {
		fmt.Fprintln(os.Stderr, "dsh login:", err)
		return exitError
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.GetTenant(ctx, set.Tenant); err != nil {
		if errors.Is(err, client.ErrUnauthenticated) {
			fmt.Fprintf(os.Stderr, "dsh login: the platform at %s refused the token: %v\n", c.URL(), err)
		} else {
			fmt.Fprintf(os.Stderr, "dsh login: tenant %s at %s: %v\n", set.Tenant, c.URL(), err)
		}
		return exitError
	}
	path, err := config{URL: c.URL(), Token: token, Tenant: set.Tenant}.save()
	if err != nil {
		fmt.Fprintln(os.Stderr, "dsh login:", err)
		return exitError
	}
	fmt.Printf("logged in to %s, tenant %s; saved in %s\n", c.URL(), set.Tenant, path)
	return exitOK
}

func readToken(file string) (string, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", err
		}
		return strings.TrimSpace(string(b)), nil
	}
	if t := strings.TrimSpace(os.Getenv("DISCOVERY_TOKEN")); t != "" {
		return t, nil
	}
	if readline.DefaultIsTerminal() {
		b, err := readline.Password("token: ")
		return strings.TrimSpace(string(b)), err
	}
	var line string
	_, err := fmt.Fscanln(os.Stdin, &line)
	if err != nil {
		return "", fmt.Errorf("read the token from standard input: %w", err)
	}
	return strings.TrimSpace(line), nil
}

// logout forgets the saved token (URL and tenant stay).
func logout() int {
	saved, err := loadConfig()
	if err == nil {
		saved.Token = ""
		_, err = saved.save()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "dsh logout:", err)
		return exitError
	}
	fmt.Println("logged out")
	return exitOK
}
