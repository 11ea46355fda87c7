// Package images is the platform's image catalog: the images tenants may
// deploy on the process runtime, each mapped by a platform admin to the
// command that runs it. A tenant never names a program on the platform's
// machine; it names an image the admin vetted. (On Kubernetes an image is
// pulled and run in the tenant's pod; the catalog is not consulted.)
package images

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// Sentinel errors of the catalog.
var (
	ErrNotFound = errors.New("images: not found")
	ErrInvalid  = errors.New("images: invalid")
)

// Limits of a catalog entry.
const (
	MaxRefLen         = 256
	MaxArgs           = 64
	MaxArgLen         = 4096
	MaxDescriptionLen = 512
	// MaxImages bounds the catalog (admins write it; a bound keeps a script
	// gone wrong from filling the store).
	MaxImages = 1000
)

// Image is one entry of the catalog.
type Image struct {
	// Ref is what tenants deploy, e.g. "example/arena:0.2".
	Ref string `json:"image"`
	// Command is what the process runtime runs for it: an absolute program
	// path and its arguments.
	Command []string `json:"command"`
	// Description tells tenants what the image is.
	Description string    `json:"description,omitempty"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// refPattern is a container image reference: a lower-case repository path,
// an optional tag, an optional digest.
var refPattern = regexp.MustCompile(`^[a-z0-9]+([._-][a-z0-9]+)*(/[a-z0-9]+([._-][a-z0-9]+)*)*(:[A-Za-z0-9_][A-Za-z0-9._-]{0,127})?(@sha256:[a-f0-9]{64})?$`)

// ValidRef checks an image reference.
func ValidRef(ref string) error {
	if ref == "" || len(ref) > MaxRefLen || !refPattern.MatchString(ref) {
		return fmt.Errorf("%w: image %q must be a reference like example/arena:0.2 (lower-case path, optional :tag, at most %d bytes)", ErrInvalid, truncate(ref, 80), MaxRefLen)
	}
	return nil
}

// Validate checks an entry.
func (i Image) Validate() error {
	if err := ValidRef(i.Ref); err != nil {
		return err
	}
	if len(i.Command) == 0 || len(i.Command) > MaxArgs {
		return fmt.Errorf("%w: command needs 1-%d arguments", ErrInvalid, MaxArgs)
	}
	if !strings.HasPrefix(i.Command[0], "/") {
		return fmt.Errorf("%w: command[0] must be an absolute program path, got %q", ErrInvalid, truncate(i.Command[0], 80))
	}
	for n, arg := range i.Command {
		if len(arg) > MaxArgLen || strings.ContainsRune(arg, 0) {
			return fmt.Errorf("%w: command[%d] must be at most %d bytes with no NUL", ErrInvalid, n, MaxArgLen)
		}
	}
	if len(i.Description) > MaxDescriptionLen {
		return fmt.Errorf("%w: description is %d bytes, at most %d", ErrInvalid, len(i.Description), MaxDescriptionLen)
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
