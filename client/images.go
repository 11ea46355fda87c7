package client

import (
	"context"
	"net/http"
	"strings"
)

// Images lists the platform's image catalog (any caller): the images a
// tenant may deploy on the process runtime, sorted by reference.
func (c *Client) Images(ctx context.Context) ([]Image, error) {
	var out struct {
		Images []Image `json:"images"`
	}
	err := c.do(ctx, http.MethodGet, apiPath("images"), nil, nil, &out)
	return out.Images, err
}

// PutImage adds an image to the catalog, or replaces it (admin): deploying
// ref on the process runtime runs command (an absolute program path and its
// arguments).
func (c *Client) PutImage(ctx context.Context, ref string, command []string, description string) (Image, error) {
	body := struct {
		Command     []string `json:"command"`
		Description string   `json:"description,omitempty"`
	}{command, description}
	var out Image
	err := c.do(ctx, http.MethodPut, imagePath(ref), nil, body, &out)
	return out, err
}

// DeleteImage removes an image from the catalog (admin). Revisions deployed
// from it keep running: their command was resolved when they were deployed.
func (c *Client) DeleteImage(ctx context.Context, ref string) error {
	return c.do(ctx, http.MethodDelete, imagePath(ref), nil, nil, nil)
}

// imagePath is /api/v1/images/<ref>, the reference's slashes kept as path
// separators ("example/arena:0.2" is /api/v1/images/example/arena:0.2).
func imagePath(ref string) string {
	return apiPath(append([]string{"images"}, strings.Split(ref, "/")...)...)
}
