package scrub

import "strings"

// The event schema as far as scrubbing needs it: for every field its PII
// attribute (doc §8) and value types (doc §6.2), derived from the doc and
// relay-event-schema's `pii = "true" | "maybe"` attributes. Anything not
// listed inside a known struct is pii=false; unknown keys follow the struct's
// `other` entry.

type special uint8

const (
	spNone       special = iota
	spPairList           // headers, cookies, query_string, tags: array of [k, v] or object
	spNativePath         // only the directory part is scrubbed
	spUser               // ip_address → id move after children
	spContexts           // values typed by their "type" or key
	spValues             // {"values": [...]} wrapper that also accepts a bare array
	spAttributes         // EAP attributes: {key: {type, value}}
	spMessage            // top-level "message": alias of logentry (string = formatted)
)

type schema struct {
	vt       vtMask
	isStruct bool // struct nodes carry only their schema type, not $object
	pii      piiLevel
	fields   map[string]*schema
	other    *schema // unknown keys (struct) or values (map); nil = anyFalse
	elem     *schema // array elements; nil = same as other
	special  special
	cookie   bool // pair list that may be given as a Cookie string
	query    bool // pair list that may be given as a query string
}

func anySchema(p piiLevel) *schema {
	s := &schema{pii: p}
	s.other, s.elem = s, s
	return s
}

var (
	anyTrue  = anySchema(piiTrue)
	anyMaybe = anySchema(piiMaybe)
	anyFalse = anySchema(piiFalse)
)

func anyOf(p piiLevel) *schema {
	switch p {
	case piiTrue:
		return anyTrue
	case piiMaybe:
		return anyMaybe
	}
	return anyFalse
}

func (s *schema) child(key string) *schema {
	if s.fields != nil {
		if c, ok := s.fields[key]; ok {
			return c
		}
	}
	if s.other != nil {
		return s.other
	}
	return anyFalse
}

func (s *schema) element() *schema {
	if s.elem != nil {
		return s.elem
	}
	if s.other != nil {
		return s.other
	}
	return anyFalse
}

func strct(vt vtMask, other *schema, fields map[string]*schema) *schema {
	if other == nil {
		other = anyFalse
	}
	return &schema{vt: vt, isStruct: true, fields: fields, other: other, elem: anyFalse}
}

func typedLeaf(p piiLevel, vt vtMask) *schema {
	s := &schema{pii: p, vt: vt}
	c := anyOf(p)
	s.other, s.elem = c, c
	return s
}

func arrayOf(elem *schema) *schema {
	return &schema{elem: elem, other: anyFalse}
}

func pairList(p piiLevel) *schema {
	v := anyOf(p)
	return &schema{pii: p, vt: mask(vtObject), other: v, elem: v, special: spPairList}
}

func valuesOf(elem *schema) *schema {
	s := strct(0, anyFalse, map[string]*schema{"values": arrayOf(elem)})
	s.special = spValues
	s.elem = elem
	return s
}

func nativePath(p piiLevel) *schema {
	s := typedLeaf(p, 0)
	s.special = spNativePath
	return s
}

var (
	mechanismSchema = strct(0, anyFalse, map[string]*schema{
		"data": anyTrue, "description": anyTrue,
	})
	frameSchema = strct(mask(vtFrame), anyFalse, map[string]*schema{
		"vars":     anyTrue,
		"module":   anyMaybe,
		"filename": nativePath(piiMaybe),
		"abs_path": nativePath(piiMaybe),
	})
	stacktraceSchema = strct(mask(vtStacktrace), anyFalse, map[string]*schema{
		"frames": arrayOf(frameSchema),
	})
	exceptionSchema = strct(mask(vtException), anyFalse, map[string]*schema{
		"value":          anyTrue,
		"stacktrace":     stacktraceSchema,
		"raw_stacktrace": stacktraceSchema,
		"mechanism":      mechanismSchema,
	})
	threadSchema = strct(mask(vtThread), anyFalse, map[string]*schema{
		"stacktrace":     stacktraceSchema,
		"raw_stacktrace": stacktraceSchema,
	})
	breadcrumbSchema = strct(mask(vtBreadcrumb), anyFalse, map[string]*schema{
		"message": anyTrue,
		"data":    anyTrue,
	})
	logEntrySchema = strct(mask(vtLogEntry), anyTrue, map[string]*schema{
		"message":   typedLeaf(piiFalse, mask(vtMessage)),
		"formatted": typedLeaf(piiTrue, mask(vtMessage)),
		"params":    anyTrue,
	})
	geoSchema = strct(0, anyFalse, map[string]*schema{
		"country_code": anyTrue, "city": anyTrue, "subdivision": anyTrue, "region": anyTrue,
	})
	userSchema = func() *schema {
		s := strct(mask(vtUser), anyTrue, map[string]*schema{
			"id": anyTrue, "email": anyTrue, "ip_address": anyTrue, "username": anyTrue,
			"name": anyTrue, "data": anyTrue, "sentry_user": anyTrue, "geo": geoSchema,
			"segment": anyFalse,
		})
		s.special = spUser
		return s
	}()
	requestSchema = func() *schema {
		cookies := pairList(piiTrue)
		cookies.cookie = true
		query := pairList(piiTrue)
		query.query = true
		return strct(mask(vtRequest), anyTrue, map[string]*schema{
			"url": anyMaybe, "method": anyFalse, "data": anyTrue, "query_string": query,
			"fragment": anyTrue, "cookies": cookies, "headers": pairList(piiTrue), "env": anyTrue,
			"inferred_content_type": anyFalse, "api_target": anyFalse, "body_size": anyFalse,
			"protocol": anyFalse,
		})
	}()
	sdkSchema = strct(mask(vtClientSdkInfo), anyFalse, map[string]*schema{
		"client_ip": anyTrue,
	})
	debugImageSchema = strct(0, anyFalse, map[string]*schema{
		"code_file":  nativePath(piiMaybe),
		"debug_file": nativePath(piiMaybe),
	})
	debugMetaSchema = strct(0, anyFalse, map[string]*schema{
		"images": arrayOf(debugImageSchema),
	})
	cspSchema = strct(0, anyFalse, map[string]*schema{
		"blocked_uri": anyTrue,
	})
	// Span data: known keys carry their own flags (sentry-conventions);
	// unknown keys are pii=true.
	spanDataSchema = func() *schema {
		f := map[string]*schema{}
		for _, k := range conventionFalse {
			f[k] = anyFalse
		}
		for _, k := range conventionMaybe {
			f[k] = anyMaybe
		}
		for _, k := range replaceOnlyKeys {
			f[k] = anyMaybe
		}
		return &schema{pii: piiTrue, vt: 0, fields: f, other: anyTrue, elem: anyTrue}
	}()
	sentryTagsSchema = &schema{fields: map[string]*schema{
		"user": anyTrue, "user.id": anyTrue, "user.ip": anyTrue, "user.email": anyTrue,
		"user.username": anyTrue,
	}, other: anyFalse, elem: anyFalse}
	spanSchema = strct(mask(vtSpan), anyMaybe, map[string]*schema{
		"description": anyMaybe, "tags": pairList(piiMaybe), "data": spanDataSchema,
		"sentry_tags": sentryTagsSchema,
		"op":          anyFalse, "span_id": anyFalse, "parent_span_id": anyFalse, "trace_id": anyFalse,
		"segment_id": anyFalse, "is_segment": anyFalse, "status": anyFalse, "origin": anyFalse,
		"timestamp": anyFalse, "start_timestamp": anyFalse, "exclusive_time": anyFalse,
		"profile_id": anyFalse, "received": anyFalse, "measurements": anyFalse, "platform": anyFalse,
		"was_transaction": anyFalse, "_metrics_summary": anyFalse, "hash": anyFalse,
		"same_process_as_parent": anyFalse,
	})
	traceContextSchema = func() *schema {
		data := *spanDataSchema
		data.pii = piiMaybe
		return strct(0, anyFalse, map[string]*schema{"data": &data, "links": anyMaybe})
	}()
	responseContextSchema = strct(0, anyFalse, map[string]*schema{
		"cookies": func() *schema { c := pairList(piiTrue); c.cookie = true; return c }(),
		"headers": pairList(piiTrue), "data": anyTrue,
	})
	knownContexts = map[string]*schema{
		"device":  strct(0, anyFalse, map[string]*schema{"name": anyMaybe}),
		"os":      strct(0, anyFalse, map[string]*schema{"build": anyMaybe, "kernel_version": anyMaybe}),
		"runtime": strct(0, anyFalse, map[string]*schema{"build": anyMaybe, "raw_description": anyMaybe}),
		"app":     strct(0, anyFalse, map[string]*schema{"app_start_time": anyMaybe, "device_app_hash": anyMaybe}),
		"browser": strct(0, anyFalse, nil), "gpu": strct(0, anyFalse, nil),
		"trace": traceContextSchema, "profile": strct(0, anyFalse, nil),
		"replay": strct(0, anyFalse, nil), "monitor": strct(0, anyFalse, nil),
		"response": responseContextSchema, "otel": strct(0, anyFalse, nil),
		"cloud_resource": strct(0, anyFalse, map[string]*schema{"cloud.account.id": anyMaybe}),
		"nel":            strct(0, anyFalse, nil), "performance_score": strct(0, anyFalse, nil),
		"spring": strct(0, anyFalse, nil), "culture": strct(0, anyFalse, nil),
		"flags": strct(0, anyFalse, nil), "feedback": strct(0, anyFalse, nil),
		"chromium_stability_report": strct(0, anyFalse, nil), "ota_updates": strct(0, anyFalse, nil),
		"memory_info": strct(0, anyFalse, nil), "user_report_v2": strct(0, anyFalse, nil),
	}
	unknownContext = anyTrue
	contextsSchema = &schema{special: spContexts, other: anyFalse, elem: anyFalse}

	eventFields = map[string]*schema{
		"extra": anyTrue, "server_name": anyTrue, "hpkp": anyTrue, "expectct": anyTrue,
		"expectstaple": anyTrue, "csp": cspSchema, "user": userSchema, "request": requestSchema,
		"breadcrumbs": valuesOf(breadcrumbSchema), "exception": valuesOf(exceptionSchema),
		"threads": valuesOf(threadSchema), "stacktrace": stacktraceSchema,
		"logentry": logEntrySchema, "message": {special: spMessage},
		"tags": pairList(piiMaybe), "culprit": anyMaybe, "contexts": contextsSchema,
		"spans": arrayOf(spanSchema), "sdk": sdkSchema, "debug_meta": debugMetaSchema,
	}
	eventSchema  = newRootSchema(mask(vtEvent), eventFields)
	replaySchema = func() *schema {
		f := map[string]*schema{"urls": anyTrue}
		for k, v := range eventFields {
			f[k] = v
		}
		return newRootSchema(mask(vtReplay), f)
	}()
)

// Known event fields that are pii=false (everything else unknown is true).
var eventFalseFields = []string{
	"event_id", "level", "version", "type", "fingerprint", "transaction", "transaction_info",
	"time_spent", "logger", "modules", "platform", "timestamp", "start_timestamp", "received",
	"release", "dist", "environment", "site", "template", "debug_meta", "errors", "key_id",
	"project", "grouping_config", "checksum", "measurements", "breakdowns", "scraping_attempts",
	"_metrics", "_dsc", "_metrics_summary", "_performance_issues_spans", "ingest_path",
	"sdk", "replay_id", "segment_id", "replay_type", "error_ids", "trace_ids",
	"replay_start_timestamp", "sentry.interfaces.Message",
}

func newRootSchema(vt vtMask, fields map[string]*schema) *schema {
	f := map[string]*schema{}
	for _, k := range eventFalseFields {
		f[k] = anyFalse
	}
	for k, v := range fields {
		f[k] = v
	}
	return strct(vt, anyTrue, f)
}

// contextSchema picks the schema of one entry of `contexts`: by its "type"
// field, else by its key (Relay's ContextInner deserialisation).
func contextSchema(key string, n *node) *schema {
	t := key
	if ty, ok := n.get("type").str(); ok {
		t = ty
	}
	if s, ok := knownContexts[strings.ToLower(t)]; ok {
		return s
	}
	return unknownContext
}

// conventionFalse/-Maybe: span data and attribute keys whose PII flag in
// relay-event-schema / sentry-conventions is not the default "true".
var conventionFalse = []string{
	"app_start_type", "browser.name", "db.operation", "db.system", "sentry.environment",
	"environment", "sentry.release", "release", "http.decoded_response_content_length",
	"http.request_method", "http.method", "method", "http.response_content_length",
	"http.response_transfer_size", "resource.render_blocking_status", "server.address",
	"cache.hit", "cache.item_size", "http.response.status_code", "status_code", "ai.input_messages",
	"ai.completion_tokens.used", "ai.prompt_tokens.used", "ai.total_tokens.used", "ai.responses",
	"thread.name", "thread.id", "sentry.segment.name", "transaction", "ui.component_name", "url.scheme",
	"user", "sentry.replay.id", "replay_id", "sentry.sdk.name", "sentry.sdk.version", "frames.delay",
	"sentry.cancellation_reason", "sentry.origin", "sentry.op", "sentry.source", "sentry.platform",
	"sentry.segment.id", "sentry.trace.parent_span_id", "sentry.sample_rate", "sentry.status",
	"sentry.timestamp.sequence", "sentry.message.template", "sentry.severity_text",
	"sentry.severity_number", "sentry.observed_timestamp_nanos", "sentry.browser.name",
	"sentry.browser.version", "os.name", "os.version", "device.brand", "device.family",
	"device.model",
}

var conventionMaybe = []string{
	"code.filepath", "code.lineno", "code.function", "code.namespace", "code.file.path",
	"code.line.number", "url.path", "url.full", "http.url", "client.address",
	"sentry.message.parameter", "db.statement", "db.query.text",
}

var conventionPII = func() map[string]piiLevel {
	m := map[string]piiLevel{}
	for _, k := range conventionFalse {
		m[k] = piiFalse
	}
	for _, k := range conventionMaybe {
		m[k] = piiMaybe
	}
	for _, k := range replaceOnlyKeys {
		m[k] = piiMaybe
	}
	return m
}()

// attributePII is the PII flag of an EAP attribute (unknown names → true).
func attributePII(key string) piiLevel {
	if p, ok := conventionPII[key]; ok {
		return p
	}
	return piiTrue
}

var (
	attributesSchema = &schema{pii: piiMaybe, vt: mask(vtObject), special: spAttributes, other: anyMaybe, elem: anyMaybe}
	ourLogSchema     = strct(mask(vtOurLog), anyFalse, map[string]*schema{
		"body": anyMaybe, "attributes": attributesSchema,
	})
	spanV2Schema = strct(mask(vtSpan), anyFalse, map[string]*schema{
		"name": anyMaybe, "attributes": attributesSchema, "links": anyMaybe,
	})
	traceMetricSchema = strct(mask(vtTraceMetric), anyFalse, map[string]*schema{
		"attributes": attributesSchema,
	})
)
