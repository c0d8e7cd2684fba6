package scrub

import (
	"regexp"
	"strings"
)

// DataScrubbing holds Sentry's legacy ("Security & Privacy") data-scrubbing
// settings (doc §2.1).
type DataScrubbing struct {
	ScrubData        bool     `json:"scrubData" yaml:"scrub_data"`
	ScrubDefaults    bool     `json:"scrubDefaults" yaml:"scrub_defaults"`
	ScrubIPAddresses bool     `json:"scrubIpAddresses" yaml:"scrub_ip_addresses"`
	SensitiveFields  []string `json:"sensitiveFields" yaml:"sensitive_fields"`
	ExcludeFields    []string `json:"excludeFields" yaml:"exclude_fields"`
}

// Selector constants of Relay's convert.rs (doc §2.2), newest form.
const (
	dataScrubberIgnore = `debug_meta.** || $frame.filename || $frame.abs_path || $logentry.formatted || $error.value || $http.headers.user-agent`
	knownIPFields      = `$http.env.REMOTE_ADDR || $user.ip_address || $sdk.client_ip || $span.sentry_tags.'user.ip' || attributes.'client.address'`
)

// sensitiveCookies are the cookie names always filtered when defaults are on.
var sensitiveCookies = []string{
	"sentrysid", "sudo", "su", "session", "__session", "sessionid", "user_session", "symfony",
	"phpsessid", "fasthttpsessionid", "mysession", "irissessionid", "_vercel_jwt", "csrf", "xsrf",
	"_xsrf", "_csrf", "csrf-token", "csrf_token", "xsrf-token", "xsrf_token", "fastcsrf", "_iris_csrf",
}

// replaceOnlyKeys are product-relevant span data/attribute keys that only get
// non-destructive replace rules.
var replaceOnlyKeys = []string{
	"gen_ai.input.messages", "gen_ai.prompt", "gen_ai.request.messages", "gen_ai.tool.call.arguments",
	"gen_ai.tool.input", "gen_ai.tool.call.result", "gen_ai.tool.output", "gen_ai.output.messages",
	"gen_ai.response.tool_calls", "gen_ai.response.text", "gen_ai.response.object",
	"gen_ai.tool.definitions", "gen_ai.request.available_tools", "gen_ai.tool.name",
	"mcp.prompt.result", "mcp.tool.result.content",
}

func quoteKey(k string) string { return "'" + strings.ReplaceAll(k, "'", "''") + "'" }

func mustSel(s string) *Selector {
	sel, err := parseSelectorStrict(s)
	if err != nil {
		panic(err)
	}
	return sel
}

var (
	selKnownIP     = mustSel(knownIPFields)
	selReplaceOnly = func() *Selector {
		parts := []string{"$logentry.formatted", "$log.body"}
		for _, k := range replaceOnlyKeys {
			parts = append(parts, "$span.data."+quoteKey(k), "attributes."+quoteKey(k)+".value")
		}
		return mustSel(strings.Join(parts, " || "))
	}()
	selCookieBulk = mustSel(`*.'http.request.header.cookie' || *.'http.response.header.cookie'`)
	selCookies    = func() *Selector {
		var parts []string
		for _, n := range sensitiveCookies {
			parts = append(parts, "*.cookies."+quoteKey(n), "*."+quoteKey("http.request.header.cookie."+n))
		}
		return mustSel(strings.Join(parts, " || "))
	}()
)

// legacyToConfig converts the legacy settings (doc §2.2). nil = no scrubbing.
func legacyToConfig(ds *DataScrubbing) *piiConfig {
	if ds == nil || (!ds.ScrubData && !ds.ScrubIPAddresses) {
		return nil
	}
	cfg := &piiConfig{rules: map[string]*ruleSpec{}}
	var mainRules []string
	var apps []appSpec
	if ds.ScrubData && ds.ScrubDefaults {
		mainRules = append(mainRules, "@common:filter")
		apps = append(apps,
			appSpec{sel: selCookies, ids: []string{"@anything:filter"}},
			appSpec{sel: selCookieBulk, ids: []string{"@cookies:filter"}},
			appSpec{sel: selReplaceOnly, ids: []string{"@email:replace", "@creditcard:replace", "@iban:replace", "@usssn:replace", "@bearer:replace"}},
		)
	}
	if ds.ScrubIPAddresses {
		apps = append(apps, appSpec{sel: selKnownIP, ids: []string{"@anything:remove"}})
		mainRules = append(mainRules, "@ip:replace")
	}
	if ds.ScrubData {
		var fields []string
		for _, f := range ds.SensitiveFields {
			if f = strings.TrimSpace(f); f != "" {
				fields = append(fields, regexp.QuoteMeta(f))
			}
		}
		if len(fields) > 0 {
			cfg.rules["strip-fields"] = &ruleSpec{
				typ:        "redact_pair",
				keyPattern: "(?i)" + strings.Join(fields, "|"),
				redaction:  redaction{method: mReplace, text: "[Filtered]"},
			}
			mainRules = append(mainRules, "strip-fields")
		}
	}
	if len(mainRules) == 0 && len(apps) == 0 {
		return nil
	}
	if len(mainRules) > 0 {
		apps = append(apps, appSpec{sel: legacyMainSelector(ds.ExcludeFields), ids: mainRules})
	}
	cfg.apps = sortApps(apps)
	return cfg
}

func legacyMainSelector(exclude []string) *Selector {
	subs := []*Selector{
		mustSel(`$string || $number || $array || $object`),
		{kind: selNot, subs: []*Selector{mustSel(dataScrubberIgnore)}},
	}
	for _, f := range exclude {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		sel, err := parseSelectorStrict(f)
		if err != nil {
			// Not a selector: a single literal key (e.g. `*url*`).
			sel = &Selector{kind: selPath, items: []pathItem{keyItem(f)}}
		}
		subs = append(subs, &Selector{kind: selNot, subs: []*Selector{sel}})
	}
	return &Selector{kind: selAnd, subs: subs}
}
