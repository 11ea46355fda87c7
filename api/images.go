package api

import (
	"context"
	"net/url"

	"github.com/gofiber/fiber/v2"

	"github.com/discovery-platform/discovery/images"
)

// ImageCatalog is the catalog of images the process runtime runs
// (images.Store).
type ImageCatalog interface {
	List(ctx context.Context) ([]images.Image, error)
	Put(ctx context.Context, img images.Image) (images.Image, error)
	Delete(ctx context.Context, ref string) error
}

// listImages shows the catalog to any caller: it is what tenants may deploy.
func (s *Server) listImages(c *fiber.Ctx) error {
	if s.cfg.Images == nil {
		return c.JSON(fiber.Map{"images": []images.Image{}})
	}
	ctx, cancel := s.ctx(c)
	defer cancel()
	list, err := s.cfg.Images.List(ctx)
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"images": list})
}

type imageRequest struct {
	Command     []string `json:"command"`
	Description string   `json:"description,omitempty"`
}

// imageRef is the reference in the path after /images/ (its slashes are
// path separators; a client may also escape them).
func imageRef(c *fiber.Ctx) (string, error) {
	ref, err := url.PathUnescape(c.Params("+"))
	if err != nil {
		return "", errBadRequest
	}
	return ref, nil
}

func (s *Server) putImage(c *fiber.Ctx) error {
	if s.cfg.Images == nil {
		return fiber.NewError(fiber.StatusNotImplemented, "this platform keeps no image catalog (its runtime pulls images)")
	}
	ref, err := imageRef(c)
	if err != nil {
		return err
	}
	var req imageRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	ctx, cancel := s.ctx(c)
	defer cancel()
	img, err := s.cfg.Images.Put(ctx, images.Image{Ref: ref, Command: req.Command, Description: req.Description})
	if err != nil {
		return err
	}
	return c.JSON(img)
}

func (s *Server) deleteImage(c *fiber.Ctx) error {
	if s.cfg.Images == nil {
		return fiber.NewError(fiber.StatusNotImplemented, "this platform keeps no image catalog (its runtime pulls images)")
	}
	ref, err := imageRef(c)
	if err != nil {
		return err
	}
	ctx, cancel := s.ctx(c)
	defer cancel()
	if err := s.cfg.Images.Delete(ctx, ref); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}
