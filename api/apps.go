package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/discovery-platform/discovery/apps"
)

// decode reads a JSON body strictly: unknown fields and trailing data are
// refused, so a typo in a field name is an error and not a silent default.
func decode(c *fiber.Ctx, v any) error {
	body := c.Body()
	if len(bytes.TrimSpace(body)) == 0 {
		return fmt.Errorf("%w: a JSON body is required", errBadRequest)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: invalid JSON body: %v", errBadRequest, err)
	}
	if dec.More() {
		return fmt.Errorf("%w: invalid JSON body: trailing data after the object", errBadRequest)
	}
	return nil
}

func (s *Server) listApps(c *fiber.Ctx) error {
	ctx, cancel := s.ctx(c)
	defer cancel()
	list, err := s.cfg.Apps.ListApps(ctx, c.Params("tenant"))
	if err != nil {
		return err
	}
	out := make([]appView, len(list))
	for i, a := range list {
		out[i] = appView{App: a}
		if s.cfg.Deploys != nil {
			if d, ok := s.cfg.Deploys.LastDeploy(a.Tenant, a.Name); ok {
				out[i].LastDeploy = &d
			}
		}
	}
	return c.JSON(fiber.Map{"apps": out})
}

// DeploySource tells how an app's last deploy went (endpoint.Routes, from
// memory).
type DeploySource interface {
	LastDeploy(tenant, app string) (apps.DeployStatus, bool)
}

// appView is an app in the apps list: with how its last deploy went.
type appView struct {
	apps.App
	LastDeploy *apps.DeployStatus `json:"last_deploy,omitempty"`
}

func (s *Server) createApp(c *fiber.Ctx) error {
	var spec apps.AppSpec
	if err := decode(c, &spec); err != nil {
		return err
	}
	ctx, cancel := s.ctx(c)
	defer cancel()
	a, err := s.cfg.Apps.CreateApp(ctx, c.Params("tenant"), spec)
	if err != nil {
		return err
	}
	c.Location(fmt.Sprintf("/api/v1/tenants/%s/apps/%s", a.Tenant, a.Name))
	return c.Status(fiber.StatusCreated).JSON(a)
}

func (s *Server) getApp(c *fiber.Ctx) error {
	ctx, cancel := s.ctx(c)
	defer cancel()
	a, err := s.cfg.Apps.GetApp(ctx, c.Params("tenant"), c.Params("app"))
	if err != nil {
		return err
	}
	return c.JSON(a)
}

func (s *Server) updateApp(c *fiber.Ctx) error {
	var spec apps.AppSpec
	if err := decode(c, &spec); err != nil {
		return err
	}
	ctx, cancel := s.ctx(c)
	defer cancel()
	a, err := s.cfg.Apps.UpdateApp(ctx, c.Params("tenant"), c.Params("app"), spec)
	if err != nil {
		return err
	}
	return c.JSON(a)
}

func (s *Server) deleteApp(c *fiber.Ctx) error {
	ctx, cancel := s.ctx(c)
	defer cancel()
	var opt apps.DeleteOptions
	var err error
	if opt.Force, err = queryBool(c, "force"); err != nil {
		return err
	}
	if opt.Drain, err = queryBool(c, "drain"); err != nil {
		return err
	}
	a, err := s.cfg.Apps.DeleteApp(ctx, c.Params("tenant"), c.Params("app"), opt)
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusAccepted).JSON(a)
}

func (s *Server) listEvents(c *fiber.Ctx) error {
	limit, err := queryInt(c, "limit", 100, 1, apps.MaxEventsPerApp)
	if err != nil {
		return err
	}
	f, err := eventFilter(c)
	if err != nil {
		return err
	}
	ctx, cancel := s.ctx(c)
	defer cancel()
	evs, err := s.filteredEvents(ctx, c.Params("tenant"), c.Params("app"), c.Query("after"), limit, f)
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"events": evs})
}

// filteredEvents is the newest limit events after after that pass f (f
// looks through the whole log, which is bounded).
func (s *Server) filteredEvents(ctx context.Context, tenant, app, after string, limit int, f apps.EventFilter) ([]apps.Event, error) {
	if f == (apps.EventFilter{}) {
		return s.cfg.Apps.Events(ctx, tenant, app, after, limit)
	}
	evs, err := s.cfg.Apps.Events(ctx, tenant, app, after, apps.MaxEventsPerApp)
	if err != nil {
		return nil, err
	}
	return f.Keep(evs, limit), nil
}

// eventFilter reads ?actor= and ?type= (one of apps.EventTypes).
func eventFilter(c *fiber.Ctx) (apps.EventFilter, error) {
	f := apps.EventFilter{Actor: strings.Clone(c.Query("actor")), Type: apps.EventType(strings.Clone(c.Query("type")))}
	if len(f.Actor) > apps.MaxActor {
		return f, fmt.Errorf("%w: query actor is longer than %d bytes", errBadRequest, apps.MaxActor)
	}
	if f.Type != "" && !slices.Contains(apps.EventTypes, f.Type) {
		return f, fmt.Errorf("%w: query type=%q is not an event type (%s)", errBadRequest, f.Type, eventTypeList())
	}
	return f, nil
}

func eventTypeList() string {
	names := make([]string, len(apps.EventTypes))
	for i, t := range apps.EventTypes {
		names[i] = string(t)
	}
	return strings.Join(names, ", ")
}

// queryBool reads a true/false query parameter (absent: false).
func queryBool(c *fiber.Ctx, name string) (bool, error) {
	switch v := c.Query(name); v {
	case "", "false", "0":
		return false, nil
	case "true", "1":
		return true, nil
	default:
		return false, fmt.Errorf("%w: query %s=%q must be true or false", errBadRequest, name, v)
	}
}

func queryInt(c *fiber.Ctx, name string, def, lo, hi int) (int, error) {
	v := c.Query(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("%w: query %s=%q must be an integer in %d-%d", errBadRequest, name, v, lo, hi)
	}
	return n, nil
}

// revisionView is a revision with its replicas, as the API shows it.
type revisionView struct {
	apps.Revision
	Replicas []replicaView `json:"replicas"`
}

type replicaView struct {
	ID      string            `json:"id"`
	State   apps.ReplicaState `json:"state"`
	Address string            `json:"address,omitempty"`
	// Stopping is true once the platform decided to stop the replica.
	Stopping  bool   `json:"stopping,omitempty"`
	CreatedAt string `json:"created_at"`
	// Usage is its CPU and memory, where the platform can measure them
	// (the process runtime; absent on Kubernetes).
	Usage *apps.ReplicaUsage `json:"usage,omitempty"`
}

// UsageSource measures replicas' CPU and memory (process.UsageReader).
type UsageSource interface {
	Usage(ids []apps.ReplicaID) map[apps.ReplicaID]apps.ReplicaUsage
}

// usageOf measures the live replicas of snap (nil without a source).
func (s *Server) usageOf(snap apps.Snapshot) map[apps.ReplicaID]apps.ReplicaUsage {
	if s.cfg.Usage == nil {
		return nil
	}
	ids := make([]apps.ReplicaID, 0, len(snap.Replicas))
	for _, r := range snap.Replicas {
		if r.State != apps.ReplicaExited {
			ids = append(ids, apps.ReplicaID{Tenant: r.Tenant, App: r.App, Revision: r.Revision, Replica: r.ID})
		}
	}
	return s.cfg.Usage.Usage(ids)
}

func viewOf(snap apps.Snapshot, rev apps.Revision, usage map[apps.ReplicaID]apps.ReplicaUsage) revisionView {
	v := revisionView{Revision: rev, Replicas: []replicaView{}}
	for _, r := range snap.Replicas {
		if r.Revision == rev.ID {
			rv := replicaView{ID: r.ID, State: r.State, Address: r.Address, Stopping: r.Stop,
				CreatedAt: r.CreatedAt.Format("2006-01-02T15:04:05Z07:00")}
			if u, ok := usage[apps.ReplicaID{Tenant: r.Tenant, App: r.App, Revision: r.Revision, Replica: r.ID}]; ok {
				rv.Usage = &u
			}
			v.Replicas = append(v.Replicas, rv)
		}
	}
	return v
}

func (s *Server) listRevisions(c *fiber.Ctx) error {
	ctx, cancel := s.ctx(c)
	defer cancel()
	snap, err := s.cfg.Apps.Load(ctx, c.Params("tenant"), c.Params("app"))
	if err != nil {
		return err
	}
	out := make([]revisionView, 0, len(snap.Revisions))
	usage := s.usageOf(snap)
	for _, r := range snap.Revisions {
		out = append(out, viewOf(snap, r, usage))
	}
	return c.JSON(fiber.Map{"revisions": out})
}

func (s *Server) getRevision(c *fiber.Ctx) error {
	ctx, cancel := s.ctx(c)
	defer cancel()
	snap, err := s.cfg.Apps.Load(ctx, c.Params("tenant"), c.Params("app"))
	if err != nil {
		return err
	}
	rev, ok := snap.Revision(c.Params("rev"))
	if !ok {
		return fmt.Errorf("revision %s: %w", c.Params("rev"), apps.ErrNotFound)
	}
	return c.JSON(viewOf(snap, rev, s.usageOf(snap)))
}

func (s *Server) deploy(c *fiber.Ctx) error {
	var spec apps.RevisionSpec
	if err := decode(c, &spec); err != nil {
		return err
	}
	ctx, cancel := s.ctx(c)
	defer cancel()
	rev, err := s.cfg.Apps.Deploy(ctx, c.Params("tenant"), c.Params("app"), spec)
	if err != nil {
		return err
	}
	c.Location(fmt.Sprintf("/api/v1/tenants/%s/apps/%s/revisions/%s", rev.Tenant, rev.App, rev.ID))
	return c.Status(fiber.StatusAccepted).JSON(revisionView{Revision: rev, Replicas: []replicaView{}})
}

func (s *Server) activate(c *fiber.Ctx) error {
	ctx, cancel := s.ctx(c)
	defer cancel()
	rev, err := s.cfg.Apps.Activate(ctx, c.Params("tenant"), c.Params("app"), c.Params("rev"))
	if err != nil {
		return err
	}
	return c.JSON(rev)
}

func (s *Server) retire(c *fiber.Ctx) error {
	ctx, cancel := s.ctx(c)
	defer cancel()
	rev, err := s.cfg.Apps.Retire(ctx, c.Params("tenant"), c.Params("app"), c.Params("rev"))
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusAccepted).JSON(rev)
}

func (s *Server) replicaLogs(c *fiber.Ctx) error {
	tail, err := queryInt(c, "tail", 64<<10, 1, 1<<20)
	if err != nil {
		return err
	}
	ctx, cancel := s.ctx(c)
	defer cancel()
	id := apps.ReplicaID{Tenant: c.Params("tenant"), App: c.Params("app"), Revision: c.Params("rev"), Replica: c.Params("replica")}
	out, err := s.cfg.Apps.ReplicaLogs(ctx, id, tail)
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderContentType, fiber.MIMETextPlainCharsetUTF8)
	return c.Send(out)
}
