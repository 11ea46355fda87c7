package kubenode

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
)

// Catalog maps container images to local commands: it is what "pulling an
// image" means on a process node. An entry's argv plays the image's
// ENTRYPOINT: a container's command replaces it and its args are appended, as
// Kubernetes does with an image's entrypoint and cmd. It is safe for
// concurrent use, so a test may map images while pods run.
type Catalog struct {
	mu     sync.RWMutex
	images map[string][]string
}

// NewCatalog returns an empty catalog.
func NewCatalog() *Catalog {
	return &Catalog{images: map[string][]string{}}
}

// LoadCatalog reads a catalog file: a JSON object from image to argv, e.g.
// {"example/arena:1": ["/usr/local/bin/arena"]}.
func LoadCatalog(path string) (*Catalog, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("kubenode: read catalog: %w", err)
	}
	var m map[string][]string
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("kubenode: parse catalog %s: %w", path, err)
	}
	c := NewCatalog()
	for image, argv := range m {
		if len(argv) == 0 {
			return nil, fmt.Errorf("kubenode: catalog %s: image %q has an empty command", path, image)
		}
		c.Set(image, argv)
	}
	return c, nil
}

// Set maps image to argv: argv[0] is a name looked up in PATH or a path; a
// relative path is made absolute here, against the current directory, as a
// pod runs in a directory of its own. An empty argv removes the image.
func (c *Catalog) Set(image string, argv []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(argv) == 0 {
		delete(c.images, normalImage(image))
		return
	}
	argv = slices.Clone(argv)
	if strings.Contains(argv[0], "/") && !filepath.IsAbs(argv[0]) {
		if abs, err := filepath.Abs(argv[0]); err == nil {
			argv[0] = abs
		}
	}
	c.images[normalImage(image)] = argv
}

// Lookup returns a copy of the argv image maps to. "name" and "name:latest"
// are the same image, as for a registry.
func (c *Catalog) Lookup(image string) ([]string, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	argv, ok := c.images[normalImage(image)]
	return slices.Clone(argv), ok
}

// normalImage adds the implicit ":latest" tag to an image without tag or digest.
func normalImage(image string) string {
	if strings.Contains(image, "@") {
		return image
	}
	last := image[strings.LastIndex(image, "/")+1:]
	if !strings.Contains(last, ":") {
		return image + ":latest"
	}
	return image
}

// Entries returns a copy of every mapping.
func (c *Catalog) Entries() map[string][]string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make(map[string][]string, len(c.images))
	for k, v := range c.images {
		out[k] = slices.Clone(v)
	}
	return out
}
