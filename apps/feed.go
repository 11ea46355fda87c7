package apps

// The store's records, as a stream: what a watch-fed table (the gateway's
// routes, the reconciler's cache) is built from. The store owns the key
// layout and the encoding; readers get typed records only.

// RecordKind says which kind of record a Record is.
type RecordKind int

const (
	KindApp RecordKind = iota
	KindRevision
	KindReplica
)

func (k RecordKind) String() string {
	return [...]string{"app", "revision", "replica"}[k]
}

// Record is one app, revision or replica record, or its deletion.
type Record struct {
	Kind RecordKind
	// Ref is the app it belongs to; Revision and Replica name it within the
	// app (Revision is set for revisions and replicas, Replica for replicas).
	Ref      Ref
	Revision string
	Replica  string
	// Deleted is set when the record is gone; then only the names are set.
	Deleted bool
	// One of these is set, by Kind, unless Deleted.
	App        *App
	Rev        *Revision
	ReplicaRec *Replica
}

// FeedHandler receives the store's records. Reset gives every record of one
// kind after a (re)list and replaces what the handler had of that kind;
// Apply gives each batch of changes since. Calls for one kind never overlap;
// calls for different kinds may.
type FeedHandler interface {
	Reset(kind RecordKind, all []Record)
	Apply(kind RecordKind, changes []Record)
}
