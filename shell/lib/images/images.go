// Package images is dsh's view of the platform's image catalog: the images
// tenants may deploy on the process runtime, each mapped by a platform admin
// to the command that runs it. Everyone lists it; admins Put and Delete.
package images

import (
	"fmt"

	"github.com/discovery-platform/discovery/client"
	"github.com/discovery-platform/discovery/shell/lib/dsh"
)

// List lists the catalog, sorted by reference.
func List() ([]client.Image, error) {
	c, err := dsh.Connected()
	if err != nil {
		return nil, err
	}
	return c.Images(dsh.Context())
}

// Get reads one entry of the catalog.
func Get(ref string) (client.Image, error) {
	list, err := List()
	if err != nil {
		return client.Image{}, err
	}
	for _, img := range list {
		if img.Ref == ref {
			return img, nil
		}
	}
	return client.Image{}, fmt.Errorf("image %s is not in the catalog (images.List() shows it)", ref)
}

// Put adds ref to the catalog or replaces it (admin): deploying ref runs
// command, an absolute program path and its arguments:
// images.Put("example/arena:0.2", []string{"/srv/bin/arena", "--verbose"}, "the arena, v0.2").
func Put(ref string, command []string, description string) (client.Image, error) {
	c, err := dsh.Connected()
	if err != nil {
		return client.Image{}, err
	}
	return c.PutImage(dsh.Context(), ref, command, description)
}

// Delete removes ref from the catalog (admin); revisions deployed from it
// keep running.
func Delete(ref string) error {
	c, err := dsh.Connected()
	if err != nil {
		return err
	}
	return c.DeleteImage(dsh.Context(), ref)
}
