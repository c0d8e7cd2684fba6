package ingest

// The routes whose body is not an envelope but a payload of another
// protocol: browser NEL reports, cron check-ins and OTLP traces and logs
// (protocol doc §1.6, §1.8, §1.9). Each request becomes an envelope with the
// item types Sentry Relay makes for it, and from there takes the envelope
// route's path: the same admission (serveIngest), project gate, item limits,
// publish and "answer only after the PubAck" rule. Nothing here converts a
// payload the way Sentry's processing does; what is not converted is kept as
// it came, so nothing an SDK or browser was told was accepted is dropped.
//
// Item types, and why these:
//   - NEL: one `nel` item (JSON) per report of the reports+json array, as
//     Relay made them before it switched to its internal `integration` item
//     type. `integration` items must never leave the Relay that made them
//     (an upstream Relay refuses them: "envelope contains internal items"),
//     so they are not an option for a relay that does not convert them.
//   - cron: one `check_in` item (JSON), built from the query or the body as
//     Relay's monitor endpoint does.
//   - OTLP traces: one `otel_traces_data` item holding the request body as it
//     came, `content_type` application/x-protobuf or application/json — the
//     raw OTLP TracesData item Relay accepted before `integration`.
//   - OTLP logs: Relay never had a non-internal item for raw OTLP logs; the
//     body is kept as one `otel_logs_data` item (same shape as traces), which
//     Relay forwards as an unknown item type instead of dropping it.

import (
	"encoding/json"
	"errors"
	"math"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/relayhq/relay/internal/envelope"
)

// Item types and content types the integration routes produce.
const (
	itemNEL        = "nel"
	itemCheckIn    = "check_in"
	itemOTLPTraces = "otel_traces_data"
	itemOTLPLogs   = "otel_logs_data"
	ctJSON         = "application/json"
	ctProtobuf     = "application/x-protobuf"
	checkInClient  = "relay-http" // Relay's DEFAULT_CHECK_IN_CLIENT
	nilCheckInID   = "00000000000000000000000000000000"
)

// authPathKey: the key came from the request path (`/cron/{slug}/{key}/`),
// Relay's last place to look for it.
const authPathKey = authEnvelope + 1

// Refusals of the integration routes, by reason.
var (
	droppedMediaType      = metrics.NewCounter(`relay_ingest_rejected_total{reason="unsupported_media_type"}`)
	droppedInvalidCheckIn = metrics.NewCounter(`relay_ingest_rejected_total{reason="invalid_check_in"}`)
	droppedInvalidNEL     = metrics.NewCounter(`relay_ingest_rejected_total{reason="invalid_nel"}`)
)

// integration reports whether the route's body is converted into an envelope
// here rather than being one.
func (r route) integration() bool {
	return r == routeNEL || r == routeCron || r == routeOTLPTraces || r == routeOTLPLogs
}

// integrationMatch is a request path of an integration route, split.
type integrationMatch struct {
	rt      route
	project string // raw {project_id}: parsed by the handler (400, not 404)
	slug    string // cron: {monitor_slug}
	key     string // cron: {sentry_key} from the path, "" when absent
}

// matchIntegration maps a slash-folded path to an integration route. Paths
// match exactly as in Relay's route table: `nel/` needs its trailing slash;
// cron and OTLP take it or not.
func matchIntegration(path string) (integrationMatch, bool) {
	rest, ok := cutPrefix(path, "/api/")
	if !ok {
		return integrationMatch{}, false
	}
	i := strings.IndexByte(rest, '/')
	if i <= 0 {
		return integrationMatch{}, false
	}
	m := integrationMatch{project: rest[:i]}
	tail := rest[i+1:]
	switch tail {
	case "nel/":
		m.rt = routeNEL
		return m, true
	case "integration/otlp/v1/traces", "integration/otlp/v1/traces/":
		m.rt = routeOTLPTraces
		return m, true
	case "integration/otlp/v1/logs", "integration/otlp/v1/logs/":
		m.rt = routeOTLPLogs
		return m, true
	}
	cron, ok := cutPrefix(tail, "cron/")
	if !ok {
		return integrationMatch{}, false
	}
	cron = strings.TrimSuffix(cron, "/")
	slug, key, hasKey := strings.Cut(cron, "/")
	if slug == "" || hasKey && (key == "" || strings.IndexByte(key, '/') >= 0) {
		return integrationMatch{}, false
	}
	m.rt, m.slug, m.key = routeCron, slug, key
	return m, true
}

// serveIntegration answers the methods of an integration route and hands the
// rest to serveIngest, so the routes share its admission and buffers.
func (s *Server) serveIntegration(w http.ResponseWriter, r *http.Request, m integrationMatch) {
	switch {
	case r.Method == http.MethodOptions:
		s.writePreflight(w)
		s.countRequest(m.rt, http.StatusOK)
	case r.Method == http.MethodPost, r.Method == http.MethodGet && m.rt == routeCron:
		s.serveIngest(w, r, m.rt, m.project)
	case m.rt == routeCron:
		s.writeError(w, r, m.rt, errMethodNotAllowed(hdrAllowGetPost))
	default:
		s.writeError(w, r, m.rt, errMethodNotAllowed(hdrAllowPost))
	}
}

// ingestRoute runs one admitted request of any ingesting route.
func (s *Server) ingestRoute(w http.ResponseWriter, r *http.Request, rt route, projectSeg string, st *reqState) *apiError {
	switch {
	case rt.integration():
		return s.ingestIntegration(w, r, rt, st)
	case rt.upload():
		return s.ingestUpload(w, r, rt, projectSeg, st)
	}
	return s.ingest(w, r, rt, projectSeg, st)
}

// ingestIntegration runs one integration request in the envelope route's
// order of checks — encoding, project id, auth, content type, body — then
// builds the envelope, checks it against the project and the item limits,
// publishes it and answers as Relay does (NEL 200, cron and OTLP 202, all
// without a body).
func (s *Server) ingestIntegration(w http.ResponseWriter, r *http.Request, rt route, st *reqState) *apiError {
	receivedAt := time.Now()
	m, ok := matchIntegration(foldSlashes(r.URL.Path))
	if !ok || m.rt != rt {
		return errNotFound // cannot happen: ServeHTTP matched this path
	}

	enc, rawEnc, ok := parseContentEncoding(r.Header)
	if !ok {
		return errUnsupportedEncoding(rawEnc)
	}
	projectID, ok := parseProjectID(m.project)
	if !ok {
		return errBadProject
	}
	auth, e := extractAuth(r)
	if e != nil {
		return e
	}
	if m.key != "" {
		switch {
		case auth.source == authNone:
			auth = authInfo{source: authPathKey, key: m.key, version: protocolVersion}
		case !sameKey(auth.key, m.key):
			return errMultipleAuth
		}
	}
	if auth.source == authNone {
		return errMissingAuth
	}
	publicKey, err := validatePublicKey(auth.key)
	if err != nil {
		return errBadPublicKey(err)
	}
	if auth.version > protocolVersion {
		return errProtocolVersion(auth.version)
	}

	// The content type decides before the body is read: a 415 costs no
	// buffer. Cron reads a body only when it says it is JSON.
	contentType := firstHeader(r.Header, "Content-Type")
	var otlpCT string
	cronJSON := false
	switch rt {
	case routeNEL:
		if !isNELMediaType(contentType) {
			s.writeMediaType(w, r, rt)
			return nil
		}
	case routeOTLPTraces, routeOTLPLogs:
		if otlpCT = otlpContentType(contentType); otlpCT == "" {
			s.writeMediaType(w, r, rt)
			return nil
		}
	case routeCron:
		cronJSON = strings.HasPrefix(contentType, ctJSON) // Relay: starts_with("application/json")
	}

	var body []byte
	if rt != routeCron || cronJSON {
		limit := s.envelopeLimit
		if rt == routeCron {
			limit = s.eventLimit // Relay: max_event_size on the monitor route
		}
		if body, e = readBody(r, enc, limit, st.body, st); e != nil {
			return e
		}
		if len(body) == 0 {
			return errEmptyBody
		}
	}

	// The envelope, written into the request's second buffer. Charge it
	// before it grows: 2×(body + framing) covers the envelope and, for NEL,
	// the decoded copies of the reports.
	if err := st.charge(int64(len(body)) + 1024); err != nil {
		var be *budgetError
		if errors.As(err, &be) {
			return errAdmission(be)
		}
		return errMemoryBudget
	}
	st.out = getBuf()
	out := (*st.out)[:0]
	var eventID string
	switch rt {
	case routeNEL:
		var reports []json.RawMessage
		if err := json.Unmarshal(body, &reports); err != nil {
			return &apiError{status: http.StatusBadRequest, detail: "invalid JSON data",
				causes: []string{err.Error()}, dropped: droppedInvalidNEL}
		}
		out = append(out, "{}\n"...)
		for _, rep := range reports {
			out = appendItem(out, itemNEL, ctJSON, rep)
		}
	case routeCron:
		payload, err := checkInPayload(m.slug, body, cronJSON, r.URL.RawQuery)
		if err != nil {
			return errCheckIn(err, cronJSON)
		}
		eventID = envelope.NewEventID()
		out = append(out, `{"event_id":"`...)
		out = append(out, eventID...)
		out = append(out, "\"}\n"...)
		out = appendItem(out, itemCheckIn, ctJSON, payload)
		if auth.client == "" {
			auth.client = checkInClient
		}
	case routeOTLPTraces, routeOTLPLogs:
		typ := itemOTLPTraces
		if rt == routeOTLPLogs {
			typ = itemOTLPLogs
		}
		out = append(out, "{}\n"...)
		out = appendItem(out, typ, otlpCT, body)
	}
	*st.out = out

	env, err := envelope.Parse(out)
	if err != nil {
		return errParse(err) // cannot happen: the items were framed with their lengths just above
	}
	origin := requestOrigin(r.Header)
	haveProject := true
	if e := s.admitProject(publicKey, &projectID, &haveProject, origin); e != nil {
		return e
	}
	if len(env.Items) == 0 {
		// An empty report list: valid, nothing to store (Relay's empty
		// envelope is answered as accepted, too).
		s.writeAccepted(w, r, rt)
		return nil
	}
	if err := envelope.CheckSizeLimits(env, s.cfg.Limits); err != nil {
		return errItemTooLarge(err)
	}

	if e := s.storeEnvelope(r, rt, st, projectID, publicKey, auth, origin, receivedAt, eventID, out); e != nil {
		return e
	}
	s.writeAccepted(w, r, rt)
	return nil
}

// writeMediaType answers a content type an integration or security route
// does not take: Relay's handlers return a bare 415, without an error body.
func (s *Server) writeMediaType(w http.ResponseWriter, r *http.Request, rt route) {
	droppedMediaType.Inc()
	h := w.Header()
	s.setCommon(h)
	setCORS(h, r)
	h[keyContentLength] = hdrContentLength0
	w.WriteHeader(http.StatusUnsupportedMediaType)
	s.countRequest(rt, http.StatusUnsupportedMediaType)
}

// writeAccepted answers a stored integration request: 200 for NEL, 202 for
// cron and OTLP, no body.
func (s *Server) writeAccepted(w http.ResponseWriter, r *http.Request, rt route) {
	status := http.StatusAccepted
	if rt == routeNEL {
		status = http.StatusOK
	}
	h := w.Header()
	s.setCommon(h)
	setCORS(h, r)
	h[keyContentLength] = hdrContentLength0
	w.WriteHeader(status)
	s.countRequest(rt, status)
}

// appendItem frames one item with an explicit length, so its payload may
// hold newlines (pretty-printed JSON, protobuf bytes).
func appendItem(dst []byte, typ, contentType string, payload []byte) []byte {
	dst = append(dst, `{"type":"`...)
	dst = append(dst, typ...)
	dst = append(dst, `","length":`...)
	dst = strconv.AppendInt(dst, int64(len(payload)), 10)
	dst = append(dst, `,"content_type":"`...)
	dst = append(dst, contentType...)
	dst = append(dst, "\"}\n"...)
	dst = append(dst, payload...)
	return append(dst, '\n')
}

// sameKey compares an auth key (possibly with ".flags") with a path key.
func sameKey(authKey, pathKey string) bool {
	a, _, _ := strings.Cut(authKey, ".")
	p, _, _ := strings.Cut(pathKey, ".")
	return a == p
}

// isNELMediaType reports whether ct is application/json or
// application/reports+json, parameters aside (Relay's is_nel_mime).
func isNELMediaType(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && (mt == ctJSON || mt == "application/reports+json")
}

// otlpContentType returns the item content type for an OTLP request's
// Content-Type (parameters aside), "" when it is neither JSON nor protobuf.
func otlpContentType(ct string) string {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return ""
	}
	switch mt {
	case ctJSON:
		return ctJSON
	case ctProtobuf:
		return ctProtobuf
	}
	return ""
}

// errCheckIn answers a check-in Relay's extractors refuse: a query string
// that does not deserialise is 400; a JSON body is 400 when it is not JSON
// and 422 when it is JSON of the wrong shape (axum's Query and Json
// rejections, with their texts as the detail).
func errCheckIn(err error, fromBody bool) *apiError {
	e := &apiError{status: http.StatusBadRequest, detail: "Failed to deserialize query string",
		causes: []string{err.Error()}, dropped: droppedInvalidCheckIn}
	if fromBody {
		var syn *json.SyntaxError
		if errors.As(err, &syn) {
			e.detail = "Failed to parse the request body as JSON"
		} else {
			e.status = http.StatusUnprocessableEntity
			e.detail = "Failed to deserialize the JSON body into the target type"
		}
	}
	return e
}

// checkInJSON is the check-in an SDK posts (relay-monitors' CheckIn). Fields
// Relay does not know are dropped, as its deserialiser does.
type checkInJSON struct {
	CheckInID     *string         `json:"check_in_id"`
	Status        *string         `json:"status"`
	Environment   *string         `json:"environment"`
	Duration      *float64        `json:"duration"`
	MonitorConfig json.RawMessage `json:"monitor_config"`
	Contexts      json.RawMessage `json:"contexts"`
}

// checkInOut is the check_in item's payload, in Relay's field order.
type checkInOut struct {
	CheckInID     string          `json:"check_in_id"`
	MonitorSlug   string          `json:"monitor_slug"`
	Status        string          `json:"status"`
	Environment   *string         `json:"environment,omitempty"`
	Duration      *float64        `json:"duration,omitempty"`
	MonitorConfig json.RawMessage `json:"monitor_config,omitempty"`
	Contexts      json.RawMessage `json:"contexts,omitempty"`
}

// checkInPayload builds the check_in item's JSON from a JSON body or, when
// the request is not JSON, from the query (status required; check_in_id,
// environment, duration optional), with the path's monitor slug.
func checkInPayload(slug string, body []byte, fromBody bool, rawQuery string) ([]byte, error) {
	out := checkInOut{CheckInID: nilCheckInID, MonitorSlug: slug}
	var status, id *string
	if fromBody {
		var in checkInJSON
		if err := json.Unmarshal(body, &in); err != nil {
			return nil, err
		}
		status, id = in.Status, in.CheckInID
		out.Environment, out.Duration = in.Environment, in.Duration
		for _, raw := range []*json.RawMessage{&in.MonitorConfig, &in.Contexts} {
			switch {
			case len(*raw) == 0 || string(*raw) == "null":
				*raw = nil
			case (*raw)[0] != '{':
				return nil, errors.New("monitor_config and contexts must be objects")
			}
		}
		out.MonitorConfig, out.Contexts = in.MonitorConfig, in.Contexts
	} else {
		q, err := url.ParseQuery(rawQuery)
		if err != nil {
			return nil, err
		}
		if v, ok := q["status"]; ok {
			status = &v[0]
		}
		if v, ok := q["check_in_id"]; ok {
			id = &v[0]
		}
		if v, ok := q["environment"]; ok {
			out.Environment = &v[0]
		}
		if v, ok := q["duration"]; ok {
			d, err := strconv.ParseFloat(v[0], 64)
			if err != nil || math.IsInf(d, 0) || math.IsNaN(d) {
				return nil, errors.New("duration: not a finite number")
			}
			out.Duration = &d
		}
	}
	if status == nil {
		return nil, errors.New("missing field `status`")
	}
	switch *status {
	case "ok", "error", "in_progress", "missed", "unknown":
		out.Status = *status
	default:
		out.Status = "unknown" // relay-monitors: #[serde(other)]
	}
	if id != nil {
		norm, ok := envelope.NormalizeEventID(*id)
		if !ok {
			return nil, errors.New("check_in_id: not a UUID")
		}
		out.CheckInID = norm
	}
	return json.Marshal(out)
}
