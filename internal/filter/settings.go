package filter

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
)

// Reason is why an item was filtered: Relay's FilterStatKey name, as the
// upstream expects it in a client report's `filtered_events`.
type Reason string

// Relay's filter reasons (relay-filter/src/common.rs, FilterStatKey::name).
const (
	ReasonIPAddress         Reason = "ip-address"
	ReasonReleaseVersion    Reason = "release-version"
	ReasonErrorMessage      Reason = "error-message"
	ReasonBrowserExtensions Reason = "browser-extensions"
	ReasonLegacyBrowsers    Reason = "legacy-browsers"
	ReasonLocalhost         Reason = "localhost"
	ReasonWebCrawlers       Reason = "web-crawlers"
	ReasonInvalidCSP        Reason = "invalid-csp"
	ReasonFilteredTx        Reason = "filtered-transaction"
)

// Settings are one project's compiled filterSettings. The zero value (and
// nil) filters nothing.
type Settings struct {
	generic        []genericFilter
	csp            []originPattern
	cspAny         bool // a disallowed source of "*" matches every report
	clientIPs      []netip.Prefix
	releases       globs
	errorMessages  globs
	localhost      bool
	browserExt     bool
	legacy         legacyConfig
	webCrawlers    bool
	ignoreTx       globs
	ignoreTxActive bool
}

// settingsJSON is the wire shape of `config.filterSettings` (camelCase, as
// Relay's ProjectFiltersConfig). Unknown keys are ignored.
type settingsJSON struct {
	Generic           json.RawMessage `json:"generic"`
	BrowserExtensions *enabledJSON    `json:"browserExtensions"`
	ClientIPs         *struct {
		BlacklistedIPs []string `json:"blacklistedIps"`
	} `json:"clientIps"`
	WebCrawlers *enabledJSON `json:"webCrawlers"`
	CSP         *struct {
		DisallowedSources []string `json:"disallowedSources"`
	} `json:"csp"`
	ErrorMessages *struct {
		Patterns []string `json:"patterns"`
	} `json:"errorMessages"`
	LegacyBrowsers *struct {
		IsEnabled bool     `json:"isEnabled"`
		Options   []string `json:"options"`
	} `json:"legacyBrowsers"`
	Localhost *enabledJSON `json:"localhost"`
	Releases  *struct {
		Releases []string `json:"releases"`
	} `json:"releases"`
	IgnoreTransactions *struct {
		Patterns  []string `json:"patterns"`
		IsEnabled bool     `json:"isEnabled"`
	} `json:"ignoreTransactions"`
}

type enabledJSON struct {
	IsEnabled bool `json:"isEnabled"`
}

// maxSettingsSize bounds a settings document; Sentry's are a few KiB.
const maxSettingsSize = 1 << 20

// Compile parses and compiles a filterSettings document. null, an empty
// document and `{}` compile to Settings that filter nothing. Errors name the
// problem (bad JSON, a known key of the wrong type, a document over 1 MiB).
func Compile(raw []byte) (*Settings, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return &Settings{}, nil
	}
	if len(raw) > maxSettingsSize {
		return nil, fmt.Errorf("filter: settings: %d bytes, over the %d-byte limit", len(raw), maxSettingsSize)
	}
	var j settingsJSON
	if err := json.Unmarshal(raw, &j); err != nil {
		return nil, fmt.Errorf("filter: settings: %w", err)
	}
	s := &Settings{}
	var err error
	if s.generic, err = compileGeneric(j.Generic); err != nil {
		return nil, fmt.Errorf("filter: settings: %w", err)
	}
	if j.CSP != nil {
		for _, src := range j.CSP.DisallowedSources {
			o := parseOrigin(src)
			if o.scheme == "" && o.domain == "" && o.port == "" {
				s.cspAny = true
			}
			s.csp = append(s.csp, o)
		}
	}
	if j.ClientIPs != nil {
		for _, ip := range j.ClientIPs.BlacklistedIPs {
			if p, ok := parseNetwork(ip); ok {
				s.clientIPs = append(s.clientIPs, p)
			}
		}
	}
	if j.Releases != nil {
		s.releases = compileGlobs(j.Releases.Releases)
	}
	if j.ErrorMessages != nil {
		s.errorMessages = compileGlobs(j.ErrorMessages.Patterns)
	}
	s.localhost = j.Localhost != nil && j.Localhost.IsEnabled
	s.browserExt = j.BrowserExtensions != nil && j.BrowserExtensions.IsEnabled
	s.webCrawlers = j.WebCrawlers != nil && j.WebCrawlers.IsEnabled
	if lb := j.LegacyBrowsers; lb != nil && lb.IsEnabled {
		s.legacy = compileLegacy(lb.Options)
	}
	if it := j.IgnoreTransactions; it != nil && it.IsEnabled && len(it.Patterns) > 0 {
		s.ignoreTx = compileGlobs(it.Patterns)
		s.ignoreTxActive = true
	}
	return s, nil
}

// Empty reports whether the settings filter nothing, so the caller can skip
// parsing the envelope.
func (s *Settings) Empty() bool {
	return s == nil || (len(s.generic) == 0 && len(s.csp) == 0 && len(s.clientIPs) == 0 && s.releases.empty() &&
		s.errorMessages.empty() && !s.localhost && !s.browserExt && !s.legacy.active() &&
		!s.webCrawlers && (!s.ignoreTxActive || s.ignoreTx.empty()))
}

// parseNetwork parses an address or a CIDR as Relay's IpNetwork does: a bare
// address is a /32 (/128) network.
func parseNetwork(s string) (netip.Prefix, bool) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, false
		}
		return p.Masked(), true
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, false
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), true
}

// Item kinds Check distinguishes.
const (
	KindEvent       = "event"
	KindTransaction = "transaction"
	KindSecurity    = "security"
)

// Input is one item to check.
type Input struct {
	// Kind is KindEvent, KindTransaction or KindSecurity (security and
	// raw_security items).
	Kind    string
	Payload []byte
	// ClientIP is the first X-Forwarded-For entry or the socket peer;
	// invalid when unknown.
	ClientIP netip.Addr
	// UserAgent is the HTTP request's User-Agent, used for security reports
	// (events carry their own in request.headers).
	UserAgent string
}

// Check runs the filters in Relay's order and returns the reason of the
// first that matches, or "" when the item passes. The error is
// ErrNotAnEvent for a payload the filters cannot read.
func (s *Settings) Check(in Input) (Reason, error) {
	if s.Empty() {
		return "", nil
	}
	var ev *event
	var err error
	if in.Kind == KindSecurity {
		ev, err = parseSecurity(in.Payload, in.UserAgent)
	} else {
		ev, err = parseEvent(in.Payload)
		if err == nil && in.Kind == KindTransaction && ev.typ == "" {
			ev.typ = "transaction"
		}
	}
	if err != nil {
		return "", err
	}
	g := &getter{ev: ev}
	if in.Kind != KindSecurity {
		g.payload = in.Payload
	}
	return s.check(ev, g, in.ClientIP), nil
}

func (s *Settings) check(ev *event, g *getter, clientIP netip.Addr) Reason {
	for _, f := range s.generic {
		if f.cond.match(g) {
			return f.id
		}
	}
	switch {
	case s.matchCSP(ev):
		return ReasonInvalidCSP
	case s.matchClientIP(clientIP):
		return ReasonIPAddress
	case s.releases.match(ev.release):
		return ReasonReleaseVersion
	case s.matchErrorMessage(ev):
		return ReasonErrorMessage
	case s.localhost && matchLocalhost(ev, clientIP):
		return ReasonLocalhost
	case s.browserExt && matchBrowserExtension(ev):
		return ReasonBrowserExtensions
	case s.legacy.active() && ev.userAgent != "" && s.legacy.match(parseUserAgent(ev.userAgent)):
		return ReasonLegacyBrowsers
	case s.webCrawlers && matchWebCrawler(ev.userAgent):
		return ReasonWebCrawlers
	case s.ignoreTxActive && ev.typ == "transaction" && s.ignoreTx.match(ev.transaction):
		return ReasonFilteredTx
	}
	return ""
}

func (s *Settings) matchClientIP(ip netip.Addr) bool {
	if !ip.IsValid() {
		return false
	}
	ip = ip.Unmap()
	for _, p := range s.clientIPs {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// matchErrorMessage: the logentry's formatted text (else its message), then
// every exception as "Type: value", "Type" or "value".
func (s *Settings) matchErrorMessage(ev *event) bool {
	if s.errorMessages.empty() {
		return false
	}
	if ev.hasLogentry {
		msg := ev.logFormatted
		if !ev.hasFormatted {
			msg = ev.logMessage
		}
		if s.errorMessages.match(msg) {
			return true
		}
	}
	for _, e := range ev.exceptions {
		var msg string
		switch {
		case e.typ == "":
			msg = e.value
		case e.value == "":
			msg = e.typ
		default:
			msg = e.typ + ": " + e.value
		}
		if s.errorMessages.match(msg) {
			return true
		}
	}
	return false
}
