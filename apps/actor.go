package apps

import "context"

// ActorPlatform is the actor of what the platform does on its own: the
// reconciler's transitions and replicas, notices, handoffs, incidents.
const ActorPlatform = "platform"

// MaxActor bounds an actor's name in an event (a token subject is shorter).
const MaxActor = 128

type actorKey struct{}

// WithActor returns ctx carrying who acts (a token's subject): the events
// the stores write under it name that actor.
func WithActor(ctx context.Context, actor string) context.Context {
	return context.WithValue(ctx, actorKey{}, actor)
}

// ActorOf is who acts under ctx: the actor WithActor put there, else
// ActorPlatform.
func ActorOf(ctx context.Context) string {
	if a, _ := ctx.Value(actorKey{}).(string); a != "" {
		return truncate(a, MaxActor)
	}
	return ActorPlatform
}
