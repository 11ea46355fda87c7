package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/discovery-platform/discovery/client"
)

// config is what `dsh login` saves: where the platform is, the token to call
// it with and the tenant to start in. It lives in the user's config dir
// ($XDG_CONFIG_HOME/discovery/dsh.json, else ~/.config/discovery/dsh.json),
// mode 0600, as it holds a bearer token.
type config struct {
	URL    string `json:"url,omitempty"`
	Token  string `json:"token,omitempty"`
	Tenant string `json:"tenant,omitempty"`
}

// configDir is the directory of dsh's files (config, history).
func configDir() (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("find the config dir: %w (set HOME or XDG_CONFIG_HOME)", err)
	}
	return filepath.Join(dir, "discovery"), nil
}

func configPath() (string, error) {
	dir, err := configDir()
	return filepath.Join(dir, "dsh.json"), err
}

// loadConfig reads the saved config; no file is an empty config.
func loadConfig() (config, error) {
	var c config
	path, err := configPath()
	if err != nil {
		return c, err
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return c, err
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// save writes the config with mode 0600 (its dir 0700), replacing the file
// atomically.
func (c config) save() (string, error) {
	path, err := configPath()
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", err
	}
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return "", err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".dsh-*.json")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return "", err
	}
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return "", err
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	return path, os.Rename(tmp.Name(), path)
}

// settings is the session dsh starts with: flags first, then the
// environment (DISCOVERY_URL, DISCOVERY_TOKEN, DISCOVERY_TENANT), then the
// saved config, then the defaults.
type settings struct {
	URL, Token, Tenant string
}

func resolve(flagURL, flagTenant string, saved config) settings {
	return settings{
		URL:    first(flagURL, os.Getenv("DISCOVERY_URL"), saved.URL, client.DefaultURL),
		Token:  first(os.Getenv("DISCOVERY_TOKEN"), saved.Token),
		Tenant: first(flagTenant, os.Getenv("DISCOVERY_TENANT"), saved.Tenant, "default"),
	}
}

func first(vs ...string) string {
	for _, v := range vs {
		if v = strings.TrimSpace(v); v != "" {
			return v
		}
	}
	return ""
}
