package project

import (
	"encoding/json"
	"fmt"
	"sync/atomic"

	"github.com/relayhq/relay/scrub"
)

// Status is what the registry knows about a public key.
type Status uint8

const (
	// Pending: nothing is known about the key yet. Ingest accepts; the
	// worker forwards with the relay-wide settings.
	Pending Status = iota
	// Known: the key has a state (which may be disabled or invalid).
	Known
	// Missing: the key is known not to belong to any project the relay
	// serves; it is refused.
	Missing
)

func (s Status) String() string {
	switch s {
	case Pending:
		return "pending"
	case Known:
		return "known"
	case Missing:
		return "missing"
	}
	return fmt.Sprintf("Status(%d)", uint8(s))
}

// Relay's DiscardReason names (relay-server services/outcome.rs, in their
// Debug form), as they appear in a 403's detail.
const (
	ReasonProjectID    = "ProjectId"    // disabled project or key, unknown key, wrong project id
	ReasonCors         = "Cors"         // Origin/Referer outside allowedDomains
	ReasonProjectState = "ProjectState" // the project's config does not parse
)

// Entry is what the registry holds for one public key (or, for a file
// without keys that disables a project, for a project id).
type Entry struct {
	// ProjectID is the project the key belongs to (the state's projectId,
	// else the file name's).
	ProjectID uint64
	// Key is the key's entry in publicKeys (zero for a keyless entry).
	Key PublicKey
	// State is the project's state; nil when Invalid.
	State *State
	// Invalid is why the project's config could not be used; such a key is
	// refused as ProjectState.
	Invalid error
	// Source names where the state came from (a file path), for logs.
	Source string

	// scrubber is the project's compiled scrubbing; nil when the config has
	// neither piiConfig nor datascrubbingSettings (the relay-wide scrubber
	// applies). An invalid entry keeps the last scrubber its source compiled
	// for the key, so envelopes accepted before the config broke are still
	// scrubbed by their project's rules.
	scrubber *scrub.Scrubber
	// wasValid: an invalid entry whose key had a valid config earlier, with
	// scrubber (possibly nil: relay-wide) the one that config asked for.
	wasValid bool
}

// disabled reports whether the entry refuses data as ProjectId.
func (e *Entry) disabled() bool {
	return e.State != nil && (e.State.Disabled || !e.Key.Enabled())
}

// snapshot is one complete view of the known projects; it is never changed
// after it is published.
type snapshot struct {
	keys map[string]*Entry
	// projects holds files that name no key but disable the project, or do
	// not parse: a request stating such a project id is refused even when
	// its key is unknown (proxy mode).
	projects map[uint64]*Entry
}

// Options configure a Registry.
type Options struct {
	// Static: every key without a state is Missing (static mode) rather
	// than Pending (proxy mode).
	Static bool
	// OverrideProjectIDs accepts a request whose project id differs from
	// its key's project (relay.override_project_ids).
	OverrideProjectIDs bool
	// MaxRecordingSize bounds a replay recording decompressed by a
	// project's own scrubbing rules (limits.max_replay_uncompressed_size;
	// 0: scrub.DefaultMaxRecordingSize).
	MaxRecordingSize int64
}

// Registry answers questions about public keys from the states its sources
// publish. Its methods are safe for concurrent use and take no lock: a
// source replaces the whole view at once.
type Registry struct {
	opts Options
	snap atomic.Pointer[snapshot]
	// up answers for keys no project file has (managed mode); nil in the
	// other modes.
	up atomic.Pointer[UpstreamSource]
	// quotas caches each state's limit-0 quotas (quotas.go).
	quotas quotaCache
}

// NewRegistry returns an empty registry.
func NewRegistry(opts Options) *Registry {
	r := &Registry{opts: opts}
	r.snap.Store(&snapshot{})
	return r
}

// Lookup returns what is known about publicKey.
func (r *Registry) Lookup(publicKey string) (Status, *Entry) {
	if e, ok := r.snap.Load().keys[publicKey]; ok {
		return Known, e // project files win over the upstream, as in Relay
	}
	if u := r.up.Load(); u != nil {
		return u.lookup(publicKey)
	}
	if r.opts.Static {
		return Missing, nil
	}
	return Pending, nil
}

// Len returns the number of keys with a state.
func (r *Registry) Len() int { return len(r.snap.Load().keys) }

func (r *Registry) replace(s *snapshot) { r.snap.Store(s) }

// Admit decides whether a request may be stored, as Relay's check_envelope
// does once a project state is cached. projectID is the id the request
// states (haveProject false: none, the legacy store route); origin is its
// Origin, else Referer ("" when neither is an http(s) URL).
//
// It returns "" to accept, or the DiscardReason name to refuse with; and,
// when the key's project is known, that project's id — the one to send the
// envelope to (it differs from projectID only with OverrideProjectIDs).
func (r *Registry) Admit(publicKey string, projectID uint64, haveProject bool, origin string) (reason string, knownProjectID uint64) {
	st, e := r.Lookup(publicKey)
	switch st {
	case Missing:
		return ReasonProjectID, 0
	case Pending:
		if haveProject {
			if p, ok := r.snap.Load().projects[projectID]; ok {
				if p.Invalid != nil {
					return ReasonProjectState, 0
				}
				return ReasonProjectID, 0
			}
		}
		return "", 0
	}
	if e.Invalid != nil {
		return ReasonProjectState, e.ProjectID
	}
	if e.disabled() {
		return ReasonProjectID, e.ProjectID
	}
	if haveProject && projectID != e.ProjectID && !r.opts.OverrideProjectIDs {
		return ReasonProjectID, e.ProjectID
	}
	if !matchOrigin(origin, e.State.Config.AllowedDomains) {
		return ReasonCors, e.ProjectID
	}
	return "", e.ProjectID
}

// ScrubberFor returns the scrubber of publicKey's project when its config
// has scrubbing settings of its own, and nil when the relay-wide scrubbing
// applies (no such settings, or no config for the key). It fails for a key
// whose project config is invalid and was never valid while the relay ran:
// the project's rules are unknown, and forwarding with the relay-wide ones
// could let through what the project meant to remove.
func (r *Registry) ScrubberFor(publicKey string) (*scrub.Scrubber, error) {
	st, e := r.Lookup(publicKey)
	if st != Known {
		return nil, nil
	}
	if e.scrubber == nil && e.Invalid != nil && !e.wasValid {
		return nil, fmt.Errorf("project %d (%s): config is invalid, its scrubbing rules are unknown: %w", e.ProjectID, e.Source, e.Invalid)
	}
	return e.scrubber, nil
}

// FilterSettings returns the inbound filter settings (config.filterSettings)
// of publicKey's project; ok is false while nothing usable is known about
// the key (pending, missing, or a config that does not parse), and then no
// filter applies. It implements worker.FilterSettings.
func (r *Registry) FilterSettings(publicKey string) (json.RawMessage, bool) {
	st, e := r.Lookup(publicKey)
	if st != Known || e.State == nil {
		return nil, false
	}
	return e.State.Config.FilterSettings, true
}
