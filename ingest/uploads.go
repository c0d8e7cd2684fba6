package ingest

// The upload routes: crash reports (minidump, unreal), browser security
// reports (security, csp-report) and standalone event attachments (protocol
// doc §1.3–1.5, §1.7). None of them carries an envelope: each request is
// turned into the envelope Relay's endpoint would build (relay-server
// endpoints/{minidump,unreal,security_report,attachments}.rs) and then takes
// the envelope route's way to the stream (storeEnvelope): the same auth,
// project gate, size limits and durable publish, and the SDK is answered only
// after the stream acknowledged the envelope.
//
// The relay does not process what Sentry's processing expands (an unreal
// crash report, a msgpack event in a minidump upload): it keeps it as it came
// in the item Relay would make, and the upstream expands it.

import (
	"bytes"
	"compress/bzip2"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strings"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/klauspost/compress/zstd"

	"github.com/relayhq/relay/internal/envelope"
)

// authPath: the key came from the request path (the unreal route).
const authPath = authEnvelope + 1

// Refusals of the upload routes, by reason.
var (
	droppedInvalidMinidump  = metrics.NewCounter(`relay_ingest_rejected_total{reason="invalid_minidump"}`)
	droppedMissingMinidump  = metrics.NewCounter(`relay_ingest_rejected_total{reason="missing_minidump"}`)
	droppedDumpContainer    = metrics.NewCounter(`relay_ingest_rejected_total{reason="invalid_compression_container"}`)
	droppedInvalidMultipart = metrics.NewCounter(`relay_ingest_rejected_total{reason="invalid_multipart"}`)
	droppedEmptyEnvelope    = metrics.NewCounter(`relay_ingest_rejected_total{reason="empty_envelope"}`)
	droppedBadEventID       = metrics.NewCounter(`relay_ingest_rejected_total{reason="bad_event_id"}`)
)

var (
	errInvalidMinidump = &apiError{status: http.StatusBadRequest, detail: "invalid minidump", dropped: droppedInvalidMinidump}
	errMissingMinidump = &apiError{status: http.StatusBadRequest, detail: "missing minidump", dropped: droppedMissingMinidump}
	errEmptyEnvelope   = &apiError{status: http.StatusBadRequest, detail: "empty envelope", dropped: droppedEmptyEnvelope}
	errBadEventID      = &apiError{status: http.StatusBadRequest, detail: "bad event_id path parameter", dropped: droppedBadEventID}
	errBadUnrealKey    = &apiError{status: http.StatusBadRequest, detail: "bad sentry DSN public key", dropped: droppedPublicKey}
)

func errInvalidMultipart(err error) *apiError {
	return &apiError{status: http.StatusBadRequest, detail: "invalid multipart data",
		causes: []string{err.Error()}, dropped: droppedInvalidMultipart}
}

// matchUploadRoute matches the part of an /api/{project_id}/ path after the
// project id. Relay's table: minidump with and without the trailing slash,
// unreal/{sentry_key}/, security/, csp-report/,
// events/{event_id}/attachments/.
func matchUploadRoute(rest string) route {
	switch rest {
	case "minidump/", "minidump":
		return routeMinidump
	case "security/", "csp-report/":
		return routeSecurity
	}
	if key, ok := cutPrefix(rest, "unreal/"); ok && len(key) > 1 && strings.IndexByte(key, '/') == len(key)-1 {
		return routeUnreal
	}
	if ev, ok := cutPrefix(rest, "events/"); ok {
		if id, ok := strings.CutSuffix(ev, "/attachments/"); ok && id != "" && !strings.Contains(id, "/") {
			return routeAttachments
		}
	}
	return routeOther
}

// upload reports whether the route is one of this file's.
func (r route) upload() bool {
	return r == routeMinidump || r == routeUnreal || r == routeSecurity || r == routeAttachments
}

// pathSegment returns the path segment after the given one ("unreal" → the
// key, "events" → the event id) of a matched upload route's path.
func pathSegment(path, after string) string {
	_, rest, _ := strings.Cut(path, "/"+after+"/")
	seg, _, _ := strings.Cut(rest, "/")
	return seg
}

// ingestUpload runs one upload request, in the envelope route's order of
// checks: encoding, project id, auth, body, then the route's own envelope,
// project gate, size limits, publish.
func (s *Server) ingestUpload(w http.ResponseWriter, r *http.Request, rt route, projectSeg string, st *reqState) *apiError {
	receivedAt := time.Now()
	enc, rawEnc, ok := parseContentEncoding(r.Header)
	if !ok {
		return errUnsupportedEncoding(rawEnc)
	}
	projectID, ok := parseProjectID(projectSeg)
	if !ok {
		return errBadProject
	}
	path := foldSlashes(r.URL.Path)

	var auth authInfo
	if rt == routeUnreal {
		// The crash reporter cannot send headers: the key is in the path.
		auth = authInfo{source: authPath, key: pathSegment(path, "unreal"), version: protocolVersion}
	} else {
		var e *apiError
		if auth, e = extractAuth(r); e != nil {
			return e
		}
		if auth.source == authNone {
			return errMissingAuth
		}
	}
	publicKey, err := validatePublicKey(auth.key)
	if err != nil {
		if rt == routeUnreal {
			return errBadUnrealKey
		}
		return errBadPublicKey(err)
	}
	if auth.version > protocolVersion {
		return errProtocolVersion(auth.version)
	}

	var eventID string
	if rt == routeAttachments {
		if eventID, ok = envelope.NormalizeEventID(pathSegment(path, "events")); !ok {
			return errBadEventID
		}
	}
	if rt == routeSecurity && !isSecurityMIME(r.Header) {
		s.writeMediaType(w, r, rt) // Relay's bare 415
		return nil
	}

	limit := min(s.envelopeLimit, s.cfg.Limits.MaxAttachmentsSize)
	if rt == routeSecurity {
		limit = s.eventLimit
	}
	body, e := readBody(r, enc, limit, st.body, st)
	if e != nil {
		return e
	}

	// A multipart body is copied part by part into the items: charge that
	// copy (charge takes twice its argument) before making it.
	if rt == routeMinidump || rt == routeAttachments {
		if err := st.charge((int64(len(body)) + 1) / 2); err != nil {
			var be *budgetError
			if errors.As(err, &be) {
				return errAdmission(be)
			}
			return errBodyRead(err)
		}
	}
	var b envelopeBuilder
	switch rt {
	case routeMinidump:
		e = b.minidump(r.Header, body, s.cfg.Limits.MaxAttachmentSize, st)
	case routeUnreal:
		e = b.unreal(r, body)
	case routeSecurity:
		e = b.security(r, body)
	case routeAttachments:
		b.eventID = eventID
		e = b.attachments(r.Header, body)
	}
	if e != nil {
		return e
	}
	if len(b.items) == 0 {
		return errEmptyEnvelope
	}
	if b.eventID == "" {
		b.eventID = envelope.NewEventID()
	}

	st.out = getBuf()
	payload := b.appendTo((*st.out)[:0])
	*st.out = payload
	env, err := envelope.Parse(payload)
	if err != nil {
		// What we built does not parse: a bug here, not the client's fault,
		// but refusing is the only safe answer.
		return errParse(err)
	}
	if err := envelope.CheckSizeLimits(env, s.cfg.Limits); err != nil {
		return errItemTooLarge(err)
	}
	origin := requestOrigin(r.Header)
	haveProject := true
	if e := s.admitProject(publicKey, &projectID, &haveProject, origin); e != nil {
		return e
	}
	if e := s.storeEnvelope(r, rt, st, projectID, publicKey, auth, origin, receivedAt, env.Header.EventID, payload); e != nil {
		return e
	}
	s.writeUploadAnswer(w, r, rt, env.Header.EventID)
	return nil
}

// writeUploadAnswer answers as Relay's endpoints do: the crash routes 200
// with the hyphenated event id as text, security 200 empty, attachments 201.
func (s *Server) writeUploadAnswer(w http.ResponseWriter, r *http.Request, rt route, eventID string) {
	h := w.Header()
	s.setCommon(h)
	setCORS(h, r)
	status := http.StatusOK
	var body []byte
	switch rt {
	case routeMinidump, routeUnreal:
		h[keyContentType] = []string{"text/plain; charset=utf-8"}
		body = []byte(hyphenated(eventID))
	case routeAttachments:
		status = http.StatusCreated
		h[keyContentLength] = hdrContentLength0
	default:
		h[keyContentLength] = hdrContentLength0
	}
	w.WriteHeader(status)
	if body != nil {
		_, _ = w.Write(body)
	}
	s.countRequest(rt, status)
}

// hyphenated formats a 32-hex event id as a UUID (8-4-4-4-12).
func hyphenated(id string) string {
	if len(id) != 32 {
		return id
	}
	return id[:8] + "-" + id[8:12] + "-" + id[12:16] + "-" + id[16:20] + "-" + id[20:]
}

// isSecurityMIME reports whether the Content-Type is one Relay's security
// endpoint takes (security_report.rs is_security_mime).
func isSecurityMIME(h http.Header) bool {
	mt, _, err := mime.ParseMediaType(firstHeader(h, "Content-Type"))
	if err != nil {
		return false
	}
	switch mt {
	case "application/json", "application/csp-report", "application/expect-ct-report",
		"application/expect-ct-report+json", "application/expect-staple-report":
		return true
	}
	return false
}

// builtItem is one item of an envelope being built: its header members
// (after type and length, in this order) and payload.
type builtItem struct {
	typ     string
	headers [][2]string
	payload []byte
}

// envelopeBuilder collects the items an upload request becomes.
type envelopeBuilder struct {
	eventID string // 32 hex; "" until known
	header  [][2]string
	items   []builtItem
}

func (b *envelopeBuilder) add(typ string, payload []byte, headers ...[2]string) {
	b.items = append(b.items, builtItem{typ: typ, headers: headers, payload: payload})
}

// appendTo writes the envelope. encoding/json writes the header values:
// filenames and query values come from the client.
func (b *envelopeBuilder) appendTo(dst []byte) []byte {
	dst = append(dst, `{"event_id":`...)
	dst = appendJSON(dst, b.eventID)
	for _, kv := range b.header {
		dst = append(dst, ',')
		dst = appendJSON(dst, kv[0])
		dst = append(dst, ':')
		dst = appendJSON(dst, kv[1])
	}
	dst = append(dst, "}\n"...)
	for _, it := range b.items {
		dst = append(dst, `{"type":`...)
		dst = appendJSON(dst, it.typ)
		dst = fmt.Appendf(dst, `,"length":%d`, len(it.payload))
		for _, kv := range it.headers {
			dst = append(dst, ',')
			dst = appendJSON(dst, kv[0])
			dst = append(dst, ':')
			dst = appendJSON(dst, kv[1])
		}
		dst = append(dst, "}\n"...)
		dst = append(dst, it.payload...)
		dst = append(dst, '\n')
	}
	return dst
}

func appendJSON(dst []byte, s string) []byte {
	v, _ := json.Marshal(s) // a string always marshals (invalid UTF-8 becomes U+FFFD)
	return append(dst, v...)
}

// Minidump magic and the containers Relay unwraps by their magic bytes
// (minidump.rs). xz is not among ours: no xz decoder in the module; an
// xz-wrapped dump fails the magic check (400 invalid minidump).
var (
	magicMDMP  = []byte("MDMP")
	magicPMDM  = []byte("PMDM")
	magicGzip  = []byte("\x1f\x8b")
	magicBzip2 = []byte("BZh")
	magicZstd  = []byte("\x28\xb5\x2f\xfd")
)

// minidump builds the minidump route's envelope: a raw dump (Content-Type
// application/octet-stream or application/x-dmp), or a multipart form with
// the dump in upload_file_minidump beside other files and form fields.
func (b *envelopeBuilder) minidump(h http.Header, body []byte, maxDump int64, ch charger) *apiError {
	mt, params, _ := mime.ParseMediaType(firstHeader(h, "Content-Type"))
	if mt == "application/octet-stream" || mt == "application/x-dmp" {
		dump, e := decodeMinidump(body, maxDump, ch)
		if e != nil {
			return e
		}
		b.add("attachment", dump, [2]string{"filename", "Minidump"},
			[2]string{"content_type", "application/x-dmp"}, [2]string{"attachment_type", "event.minidump"})
		return nil
	}
	if e := b.multipart(mt, params, body, minidumpAttachmentType); e != nil {
		return e
	}
	for i := range b.items {
		it := &b.items[i]
		if it.typ != "attachment" || attachmentTypeOf(it) != "event.minidump" {
			continue
		}
		if inner := embeddedMinidump(it.payload); inner != nil {
			it.payload = inner
		}
		dump, e := decodeMinidump(it.payload, maxDump, ch)
		if e != nil {
			return e
		}
		it.payload = dump
		for j, kv := range it.headers {
			if kv[0] == "filename" {
				it.headers[j][1] = trimContainerExt(kv[1])
			}
		}
		return nil
	}
	return errMissingMinidump
}

func attachmentTypeOf(it *builtItem) string {
	for _, kv := range it.headers {
		if kv[0] == "attachment_type" {
			return kv[1]
		}
	}
	return ""
}

// minidumpAttachmentType is Relay's infer_attachment_type for the minidump
// route's form fields.
func minidumpAttachmentType(field string) string {
	switch field {
	case "upload_file_minidump":
		return "event.minidump"
	case "__sentry-breadcrumbs1", "__sentry-breadcrumbs2":
		return "event.breadcrumbs"
	case "__sentry-event":
		return "event.payload"
	case "view-hierarchy.json":
		return "event.view_hierarchy"
	}
	return "event.attachment"
}

// decodeMinidump unwraps a gzip, bzip2 or zstd container (by magic bytes, as
// Relay) bounded by max decoded bytes and charged to ch, and checks the
// minidump magic.
func decodeMinidump(data []byte, max int64, ch charger) ([]byte, *apiError) {
	var rd io.Reader
	var err error
	switch {
	case bytes.HasPrefix(data, magicGzip):
		rd, err = gzip.NewReader(bytes.NewReader(data))
	case bytes.HasPrefix(data, magicBzip2):
		rd = bzip2.NewReader(bytes.NewReader(data))
	case bytes.HasPrefix(data, magicZstd):
		var zd *zstd.Decoder
		zd, err = zstd.NewReader(bytes.NewReader(data), zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(uint64(max)+1))
		if err == nil {
			defer zd.Close()
			rd = zd
		}
	}
	if err != nil {
		return nil, errDumpContainer(err)
	}
	if rd != nil {
		// The decoded dump is charged to the ingest byte budget (twice: it
		// and its copy in the envelope), as a decoded body is: a small
		// compressed upload must not hold memory the budget does not see.
		var buf []byte
		out, rerr := readLimited(&buf, rd, max, -1, ch)
		var be *budgetError
		switch {
		case errors.As(rerr, &be):
			return nil, errAdmission(be)
		// zstd refuses a frame whose window or declared size is over its
		// memory bound: that is the dump being too large, not corrupt.
		case rerr == errTooLarge || errors.Is(rerr, zstd.ErrWindowSizeExceeded) ||
			errors.Is(rerr, zstd.ErrDecoderSizeExceeded) || errors.Is(rerr, zstd.ErrFrameSizeExceeded):
			return nil, errItemTooLarge(&envelope.SizeError{ItemType: "attachment:minidump", Limit: "item_size"})
		case rerr != nil:
			return nil, errDumpContainer(rerr)
		}
		data = out
	}
	if !bytes.HasPrefix(data, magicMDMP) && !bytes.HasPrefix(data, magicPMDM) {
		return nil, errInvalidMinidump
	}
	return data, nil
}

func errDumpContainer(err error) *apiError {
	return &apiError{status: http.StatusBadRequest, detail: "invalid compression container",
		causes: []string{err.Error()}, dropped: droppedDumpContainer}
}

// trimContainerExt drops a compression container's extension from a dump's
// filename: the relay stores the dump decoded.
func trimContainerExt(name string) string {
	for _, ext := range []string{".gz", ".xz", ".bz2", ".zst"} {
		if n, ok := strings.CutSuffix(name, ext); ok {
			return n
		}
	}
	return name
}

// embeddedMinidump unwraps the multipart body old Electron SDKs put inside
// the upload_file_minidump field; nil when the field is not one.
func embeddedMinidump(field []byte) []byte {
	if !bytes.HasPrefix(field, []byte("--")) {
		return nil
	}
	line, _, _ := bytes.Cut(field[2:], []byte("\n"))
	boundary := string(bytes.TrimRight(line, "\r"))
	if boundary == "" {
		return nil
	}
	mr := multipart.NewReader(bytes.NewReader(field), boundary)
	for {
		p, err := mr.NextPart()
		if err != nil {
			return nil
		}
		if p.FormName() == "upload_file_minidump" {
			data, err := io.ReadAll(p)
			if err != nil {
				return nil
			}
			return data
		}
	}
}

// multipart adds one attachment item per file of a multipart/form-data body
// (attachment_type from attachmentType by field name) and one form_data item
// with the other fields (Relay's FormDataWriter: key=value entries joined by
// NUL). A `sentry` field holding an event's JSON gives the event id.
func (b *envelopeBuilder) multipart(mt string, params map[string]string, body []byte, attachmentType func(field string) string) *apiError {
	if mt != "multipart/form-data" || params["boundary"] == "" {
		return errInvalidMultipart(errors.New("expected multipart/form-data with a boundary"))
	}
	mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	var form []byte
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return errInvalidMultipart(err)
		}
		// The body is in memory already and bounded: a part cannot be
		// larger than it.
		data, err := io.ReadAll(p)
		if err != nil {
			return errInvalidMultipart(err)
		}
		name := p.FormName()
		if p.FileName() == "" {
			if name == "sentry" && b.eventID == "" {
				b.eventID = eventIDFromJSON(data)
			}
			if len(form) > 0 {
				form = append(form, 0)
			}
			form = append(form, name...)
			form = append(form, '=')
			form = append(form, data...)
			continue
		}
		ct := p.Header.Get("Content-Type")
		if ct == "" {
			ct = "application/octet-stream"
		}
		b.add("attachment", data, [2]string{"filename", p.FileName()},
			[2]string{"content_type", ct}, [2]string{"attachment_type", attachmentType(name)})
	}
	if len(form) > 0 {
		b.add("form_data", form)
	}
	return nil
}

// eventIDFromJSON returns the normalised event_id of an event's JSON, "" if
// it has none.
func eventIDFromJSON(data []byte) string {
	var ev struct {
		EventID string `json:"event_id"`
	}
	if json.Unmarshal(data, &ev) != nil {
		return ""
	}
	id, _ := envelope.NormalizeEventID(ev.EventID)
	return id
}

// unreal keeps the crash report as it came in one unreal_report item; the
// query's UserID goes into the envelope header as unreal_user_id.
func (b *envelopeBuilder) unreal(r *http.Request, body []byte) *apiError {
	if len(body) == 0 {
		return errEmptyBody
	}
	if uid := r.URL.Query().Get("UserID"); uid != "" {
		b.header = append(b.header, [2]string{"unreal_user_id", uid})
	}
	b.add("unreal_report", body)
	return nil
}

// security keeps the report as it came in one raw_security item, with the
// query's sentry_release and sentry_environment as item headers.
func (b *envelopeBuilder) security(r *http.Request, body []byte) *apiError {
	if len(body) == 0 {
		return errEmptyBody
	}
	var hdrs [][2]string
	q := r.URL.Query()
	for _, k := range []string{"sentry_release", "sentry_environment"} {
		if v, ok := q[k]; ok && len(v) > 0 {
			hdrs = append(hdrs, [2]string{k, v[0]})
		}
	}
	b.add("raw_security", body, append([][2]string{{"content_type", "application/json"}}, hdrs...)...)
	return nil
}

// attachments turns a multipart upload into attachment items for the event
// in the path (Relay: every file an event.attachment).
func (b *envelopeBuilder) attachments(h http.Header, body []byte) *apiError {
	mt, params, _ := mime.ParseMediaType(firstHeader(h, "Content-Type"))
	return b.multipart(mt, params, body, func(string) string { return "event.attachment" })
}
