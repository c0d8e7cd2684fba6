package filter

import (
	"encoding/json"
	"testing"
)

// generic wraps conditions into a filterSettings document with one generic
// filter per condition, ids f0, f1, …
func generic(t *testing.T, conds ...string) string {
	t.Helper()
	var fs []map[string]any
	for i, c := range conds {
		fs = append(fs, map[string]any{"id": "f" + string(rune('0'+i)), "isEnabled": true, "condition": json.RawMessage(c)})
	}
	b, err := json.Marshal(map[string]any{"generic": map[string]any{"version": 1, "filters": fs}})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestGeneric(t *testing.T) {
	tx := fixtureEvent(t, "browser-transaction.envelope") // release relay-clients@1.0.0, op "task", 12.3 ms, source custom
	ev := fixtureEvent(t, "python-transaction.envelope")
	errEv := fixtureEvent(t, "browser-event-exception.envelope")
	T := KindTransaction
	cases := []filterCase{
		{name: "eq release", kind: T, settings: generic(t, `{"op":"eq","name":"event.release","value":"relay-clients@1.0.0"}`), event: tx, want: "f0"},
		{name: "eq is case-sensitive", kind: T, settings: generic(t, `{"op":"eq","name":"event.release","value":"RELAY-clients@1.0.0"}`), event: tx},
		{name: "eq ignoreCase", kind: T, settings: generic(t, `{"op":"eq","name":"event.release","value":"RELAY-clients@1.0.0","options":{"ignoreCase":true}}`), event: tx, want: "f0"},
		{name: "eq any of a list", kind: T, settings: generic(t, `{"op":"eq","name":"event.environment","value":["prod","test"]}`), event: tx, want: "f0"},
		{name: "eq null matches an absent field", kind: T, settings: generic(t, `{"op":"eq","name":"event.dist","value":null}`), event: tx, want: "f0"},
		{name: "eq null does not match a present one", kind: T, settings: generic(t, `{"op":"eq","name":"event.release","value":null}`), event: tx},
		{name: "eq never compares numbers", kind: T, settings: generic(t, `{"op":"eq","name":"event.release","value":42}`), event: set(t, tx, "release", 42)},
		{name: "lenient release", kind: T, settings: generic(t, `{"op":"eq","name":"event.release","value":"42"}`), event: set(t, tx, "release", 42), want: "f0"},
		{name: "platform defaults to other", settings: generic(t, `{"op":"eq","name":"event.platform","value":"other"}`), event: set(t, errEv, "platform", nil), want: "f0"},
		{name: "level alias", settings: generic(t, `{"op":"eq","name":"event.level","value":"warning"}`), event: set(t, errEv, "level", "warn"), want: "f0"},
		{name: "glob transaction", kind: T, settings: generic(t, `{"op":"glob","name":"event.transaction","value":["browser-*"]}`), event: tx, want: "f0"},
		{name: "transaction source", kind: T, settings: generic(t, `{"op":"eq","name":"event.transaction.source","value":"custom"}`), event: tx, want: "f0"},
		{name: "trace op", kind: T, settings: generic(t, `{"op":"eq","name":"event.contexts.trace.op","value":"task"}`), event: tx, want: "f0"},
		{name: "context field Relay does not expose", kind: T, settings: generic(t, `{"op":"eq","name":"event.contexts.trace.span_id","value":null}`), event: tx, want: "f0"},
		{name: "duration below", kind: T, settings: generic(t, `{"op":"lt","name":"event.duration","value":100}`), event: tx, want: "f0"},
		{name: "duration above", kind: T, settings: generic(t, `{"op":"gte","name":"event.duration","value":100}`), event: tx},
		{name: "duration of an error", settings: generic(t, `{"op":"gte","name":"event.duration","value":0}`), event: errEv},
		{name: "measurement", kind: T, settings: generic(t, `{"op":"gt","name":"event.measurements.lcp.value","value":2500}`), event: set(t, tx, "measurements", map[string]any{"lcp": map[string]any{"value": 4000.5}}), want: "f0"},
		{name: "string comparison", kind: T, settings: generic(t, `{"op":"gte","name":"event.release","value":"relay-clients@0.9"}`), event: tx, want: "f0"},
		{name: "number against string", kind: T, settings: generic(t, `{"op":"gte","name":"event.release","value":1}`), event: tx},
		{name: "tags as object", kind: T, settings: generic(t, `{"op":"eq","name":"event.tags.team","value":"web"}`), event: set(t, ev, "tags", map[string]any{"team": "web"}), want: "f0"},
		{name: "tags as pairs", kind: T, settings: generic(t, `{"op":"eq","name":"event.tags.team","value":"web"}`), event: set(t, ev, "tags", [][]string{{"team", "web"}}), want: "f0"},
		{name: "extra path", kind: T, settings: generic(t, `{"op":"eq","name":"event.extra.a.b","value":true}`), event: set(t, ev, "extra", map[string]any{"a": map[string]any{"b": true}}), want: "f0"},
		{name: "request header", settings: generic(t, `{"op":"glob","name":"event.request.headers.user-agent","value":["*HeadlessChrome*"]}`), event: errEv, want: "f0"},
		{name: "user email empty is absent", settings: generic(t, `{"op":"eq","name":"event.user.email","value":null}`), event: set(t, errEv, "user", map[string]any{"email": ""}), want: "f0"},
		{name: "cidr user ip", settings: generic(t, `{"op":"cidr","name":"event.user.ip_address","value":["10.0.0.0/8","bogus"]}`), event: set(t, errEv, "user", map[string]any{"ip_address": "10.2.3.4"}), want: "f0"},
		{name: "and", kind: T, settings: generic(t, `{"op":"and","inner":[{"op":"eq","name":"event.environment","value":"test"},{"op":"glob","name":"event.transaction","value":["browser-*"]}]}`), event: tx, want: "f0"},
		{name: "and, one false", kind: T, settings: generic(t, `{"op":"and","inner":[{"op":"eq","name":"event.environment","value":"prod"},{"op":"glob","name":"event.transaction","value":["browser-*"]}]}`), event: tx},
		{name: "empty and matches", kind: T, settings: generic(t, `{"op":"and","inner":[]}`), event: tx, want: "f0"},
		{name: "or", kind: T, settings: generic(t, `{"op":"or","inner":[{"op":"eq","name":"event.environment","value":"prod"},{"op":"eq","name":"event.environment","value":"test"}]}`), event: tx, want: "f0"},
		{name: "empty or does not", kind: T, settings: generic(t, `{"op":"or","inner":[]}`), event: tx},
		{name: "not", kind: T, settings: generic(t, `{"op":"not","inner":{"op":"eq","name":"event.environment","value":"prod"}}`), event: tx, want: "f0"},
		{name: "unsupported op never matches", kind: T, settings: generic(t, `{"op":"any","name":"event.exception.values","inner":{"op":"eq","name":"ty","value":"TypeError"}}`), event: tx},
		{name: "names outside event never match", kind: T, settings: generic(t, `{"op":"eq","name":"trace.release","value":"relay-clients@1.0.0"}`), event: tx},
		{name: "first matching filter wins", kind: T, settings: generic(t, `{"op":"eq","name":"event.environment","value":"prod"}`, `{"op":"eq","name":"event.environment","value":"test"}`, `{"op":"eq","name":"event.release","value":"relay-clients@1.0.0"}`), event: tx, want: "f1"},
		{name: "generic runs before the other filters", kind: T, settings: `{"releases":{"releases":["*"]},` + generic(t, `{"op":"eq","name":"event.environment","value":"test"}`)[1:], event: tx, want: "f0"},
		{name: "filters as an object keyed by id", kind: T, settings: `{"generic":{"version":1,"filters":{"healthz":{"isEnabled":true,"condition":{"op":"eq","name":"event.environment","value":"test"}}}}}`, event: tx, want: "healthz"},
		{name: "duplicate id: the first wins, even disabled", kind: T, settings: `{"generic":{"version":1,"filters":[{"id":"a","isEnabled":false,"condition":{"op":"eq","name":"event.environment","value":"test"}},{"id":"a","isEnabled":true,"condition":{"op":"eq","name":"event.environment","value":"test"}}]}}`, event: tx},
		{name: "newer version applies nothing", kind: T, settings: `{"generic":{"version":2,"filters":[{"id":"a","isEnabled":true,"condition":{"op":"eq","name":"event.environment","value":"test"}}]},"localhost":{"isEnabled":true}}`, event: tx, want: ReasonLocalhost},
	}
	runCases(t, cases)
}

func TestGenericDepthBound(t *testing.T) {
	c := `{"op":"eq","name":"event.release","value":"x"}`
	for range maxConditionDepth + 2 {
		c = `{"op":"not","inner":` + c + `}`
	}
	if _, err := Compile([]byte(generic(t, c))); err == nil {
		t.Fatal("a condition nested past the bound compiled")
	}
}
