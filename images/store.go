package images

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"path"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/discovery-platform/discovery/internal/storeerr"
)

// Store keeps the catalog in etcd, one key per image:
// {prefix}/images/{path-escaped reference}.
type Store struct {
	cli    clientv3.KV // errors translated (storeerr)
	prefix string
	// Now is the store's clock.
	Now func() time.Time
}

// NewStore returns the catalog under prefix.
func NewStore(cli *clientv3.Client, prefix string) *Store {
	if prefix == "" {
		prefix = "/discovery"
	}
	return &Store{cli: storeerr.KV(cli), prefix: path.Join(strings.TrimSuffix(prefix, "/"), "images") + "/", Now: time.Now}
}

func (s *Store) key(ref string) string { return s.prefix + url.PathEscape(ref) }

// Put adds or replaces an entry.
func (s *Store) Put(ctx context.Context, img Image) (Image, error) {
	if err := img.Validate(); err != nil {
		return Image{}, err
	}
	img.UpdatedAt = s.Now().UTC()
	val, err := json.Marshal(img)
	if err != nil {
		return Image{}, err
	}
	cnt, err := s.cli.Get(ctx, s.prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return Image{}, fmt.Errorf("count images: %w", err)
	}
	key := s.key(img.Ref)
	// A new entry past the bound is refused; replacing one is always fine.
	resp, err := s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), ">", 0)).
		Then(clientv3.OpPut(key, string(val))).
		Commit()
	if err != nil {
		return Image{}, fmt.Errorf("put image %s: %w", img.Ref, err)
	}
	if resp.Succeeded {
		return img, nil
	}
	if cnt.Count >= MaxImages {
		return Image{}, fmt.Errorf("%w: the catalog holds %d images, at most %d", ErrInvalid, cnt.Count, MaxImages)
	}
	if _, err := s.cli.Put(ctx, key, string(val)); err != nil {
		return Image{}, fmt.Errorf("put image %s: %w", img.Ref, err)
	}
	return img, nil
}

// Get reads one entry.
func (s *Store) Get(ctx context.Context, ref string) (Image, error) {
	if err := ValidRef(ref); err != nil {
		return Image{}, err
	}
	resp, err := s.cli.Get(ctx, s.key(ref))
	if err != nil {
		return Image{}, fmt.Errorf("get image %s: %w", ref, err)
	}
	if len(resp.Kvs) == 0 {
		return Image{}, fmt.Errorf("image %s is not in the catalog: %w", ref, ErrNotFound)
	}
	var img Image
	if err := json.Unmarshal(resp.Kvs[0].Value, &img); err != nil {
		return Image{}, fmt.Errorf("decode image %s: %w", ref, err)
	}
	return img, nil
}

// Resolve returns the command that runs an image on the process runtime.
func (s *Store) Resolve(ctx context.Context, ref string) ([]string, error) {
	img, err := s.Get(ctx, ref)
	return img.Command, err
}

// List returns the catalog sorted by reference.
func (s *Store) List(ctx context.Context) ([]Image, error) {
	resp, err := s.cli.Get(ctx, s.prefix, clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend))
	if err != nil {
		return nil, fmt.Errorf("list images: %w", err)
	}
	out := make([]Image, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var img Image
		if err := json.Unmarshal(kv.Value, &img); err != nil {
			return nil, fmt.Errorf("decode image %s: %w", kv.Key, err)
		}
		out = append(out, img)
	}
	return out, nil
}

// Delete removes an entry. Revisions deployed from it keep running: a
// revision is immutable, its command was resolved when it was deployed.
func (s *Store) Delete(ctx context.Context, ref string) error {
	if err := ValidRef(ref); err != nil {
		return err
	}
	resp, err := s.cli.Delete(ctx, s.key(ref))
	if err != nil {
		return fmt.Errorf("delete image %s: %w", ref, err)
	}
	if resp.Deleted == 0 {
		return fmt.Errorf("image %s: %w", ref, ErrNotFound)
	}
	return nil
}
