package fakesentry

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"time"
)

// The project-config endpoint, as Sentry serves it to registered relays
// (api/endpoints/relay/project_configs.py, version 3; relay-protocol.md
// §7.3): POST /api/0/relays/projectconfigs/?version=3 with
//
//	{"publicKeys": [...], "revisions": [...], "fullConfig": false, "noCache": false}
//
// answered with {"configs": {key: state | null}, "pending": [...],
// "unchanged": [...]}. A key the fake knows nothing about is null (no access
// or unknown); a key programmed as pending is listed in "pending" for its
// next n requests; a key whose revision the relay already has is listed in
// "unchanged" (only when the request carries revisions for all its keys).
// The request must come from a registered relay and be signed by it.

// projectState is what the fake serves for one public key.
type projectState struct {
	config  json.RawMessage // served as is
	rev     string          // "rev" of config, for "unchanged"
	pending int             // answers left in "pending"
}

// ProjectConfigQuery is one project-config request as the fake saw it.
type ProjectConfigQuery struct {
	At         time.Time
	RelayID    string
	PublicKeys []string
	Revisions  []*string // index-aligned with PublicKeys; nil when not sent
	FullConfig bool
	NoCache    bool
	Global     bool
	Status     int
}

// SetProjectConfig makes the fake serve state (a project state in Sentry's
// camelCase JSON: projectId, slug, disabled, publicKeys, rev, config, …)
// for publicKey. It is served verbatim, so a test can serve a config the
// relay cannot make sense of. A "rev" in it is what "unchanged" compares.
// state must be valid JSON.
func (s *Server) SetProjectConfig(publicKey string, state json.RawMessage) {
	if !json.Valid(state) {
		panic("fakesentry: SetProjectConfig: state is not valid JSON")
	}
	var r struct {
		Rev string `json:"rev"`
	}
	_ = json.Unmarshal(state, &r)
	s.mu.Lock()
	defer s.mu.Unlock()
	ps := s.projectsLocked()[publicKey]
	if ps == nil {
		ps = &projectState{}
		s.projects[publicKey] = ps
	}
	ps.config, ps.rev = slices.Clone(state), r.Rev
}

// SetProjectPending makes the next n requests for publicKey answer it as
// "pending" (Sentry is still computing the config).
func (s *Server) SetProjectPending(publicKey string, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ps := s.projectsLocked()[publicKey]
	if ps == nil {
		ps = &projectState{}
		s.projects[publicKey] = ps
	}
	ps.pending = n
}

// RemoveProjectConfig forgets publicKey: it is served as null again.
func (s *Server) RemoveProjectConfig(publicKey string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.projectsLocked(), publicKey)
}

// ProjectConfigQueries returns the log of project-config requests.
func (s *Server) ProjectConfigQueries() []ProjectConfigQuery {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.configQueries)
}

// projectsLocked returns the project table, creating it; s.mu held.
func (s *Server) projectsLocked() map[string]*projectState {
	if s.projects == nil {
		s.projects = map[string]*projectState{}
	}
	return s.projects
}

func (s *Server) serveProjectConfigs(w http.ResponseWriter, r *http.Request) {
	q := ProjectConfigQuery{At: time.Now(), RelayID: r.Header.Get("X-Sentry-Relay-Id")}
	fail := func(status int, detail string) {
		q.Status = status
		s.mu.Lock()
		s.configQueries = append(s.configQueries, q)
		s.mu.Unlock()
		s.answer(w, r, status, detail, nil, "")
	}
	if r.Method != http.MethodPost {
		fail(http.StatusMethodNotAllowed, "method not allowed")
		return
	}
	if v := r.URL.Query().Get("version"); v != "3" {
		fail(http.StatusBadRequest, "fakesentry: only version=3 is served, got "+v)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxRelayJSON+1))
	if err != nil || len(body) > maxRelayJSON {
		fail(http.StatusBadRequest, detailBadJSON)
		return
	}
	s.mu.Lock()
	key, known := s.relaysLocked().known[q.RelayID]
	s.mu.Unlock()
	if !known || VerifyRelaySignature(key, body, r.Header.Get("X-Sentry-Relay-Signature"), 5*time.Minute, time.Now()) != nil {
		fail(http.StatusUnauthorized, "invalid relay signature")
		return
	}
	var req struct {
		PublicKeys []string  `json:"publicKeys"`
		Revisions  []*string `json:"revisions"`
		FullConfig bool      `json:"fullConfig"`
		NoCache    bool      `json:"noCache"`
		Global     bool      `json:"global"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&req); err != nil {
		fail(http.StatusBadRequest, detailBadJSON)
		return
	}
	q.PublicKeys, q.Revisions, q.FullConfig, q.NoCache, q.Global = req.PublicKeys, req.Revisions, req.FullConfig, req.NoCache, req.Global
	withRevisions := req.Revisions != nil && len(req.Revisions) == len(req.PublicKeys)

	configs := map[string]json.RawMessage{}
	pending, unchanged := []string{}, []string{}
	s.mu.Lock()
	for i, k := range req.PublicKeys {
		ps := s.projectsLocked()[k]
		switch {
		case ps != nil && ps.pending > 0:
			ps.pending--
			pending = append(pending, k)
		case ps == nil || ps.config == nil:
			configs[k] = json.RawMessage("null")
		case withRevisions && req.Revisions[i] != nil && ps.rev != "" && *req.Revisions[i] == ps.rev:
			unchanged = append(unchanged, k)
		default:
			configs[k] = ps.config
		}
	}
	q.Status = http.StatusOK
	s.configQueries = append(s.configQueries, q)
	s.mu.Unlock()

	resp := map[string]any{"configs": configs}
	if len(pending) > 0 {
		resp["pending"] = pending
	}
	if len(unchanged) > 0 {
		resp["unchanged"] = unchanged
	}
	if req.Global {
		resp["global"] = map[string]any{}
		resp["globalStatus"] = "ready"
	}
	b, _ := json.Marshal(resp)
	s.answerJSON(w, r, http.StatusOK, string(b), nil, "")
}
