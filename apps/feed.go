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

// AppRecords is what a feed has told of one app so far, kind by kind (a
// replica may be heard of before its app): the copy a feed's handler keeps
// per app.
type AppRecords struct {
	App  *App                // nil until heard of, and once deleted
	Revs map[string]Revision // by revision id
	Reps map[string]Replica  // by "revision/replica"
}

// NewAppRecords returns an app of which nothing is known yet.
func NewAppRecords() *AppRecords {
	return &AppRecords{Revs: map[string]Revision{}, Reps: map[string]Replica{}}
}

// Put records one change.
func (a *AppRecords) Put(rec Record) {
	switch rec.Kind {
	case KindApp:
		a.App = rec.App // nil when deleted
	case KindRevision:
		if rec.Deleted {
			delete(a.Revs, rec.Revision)
		} else {
			a.Revs[rec.Revision] = *rec.Rev
		}
	case KindReplica:
		if rec.Deleted {
			delete(a.Reps, rec.Revision+"/"+rec.Replica)
		} else {
			a.Reps[rec.Revision+"/"+rec.Replica] = *rec.ReplicaRec
		}
	}
}

// Clear forgets the records of one kind (a relist replaces them).
func (a *AppRecords) Clear(kind RecordKind) {
	switch kind {
	case KindApp:
		a.App = nil
	case KindRevision:
		clear(a.Revs)
	case KindReplica:
		clear(a.Reps)
	}
}

// Empty reports whether nothing is known of the app any more.
func (a *AppRecords) Empty() bool { return a.App == nil && len(a.Revs) == 0 && len(a.Reps) == 0 }

// FeedHandler receives the store's records. Reset gives every record of one
// kind after a (re)list and replaces what the handler had of that kind;
// Apply gives each batch of changes since. Calls for one kind never overlap;
// calls for different kinds may.
type FeedHandler interface {
	Reset(kind RecordKind, all []Record)
	Apply(kind RecordKind, changes []Record)
}
