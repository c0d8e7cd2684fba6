package filter

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/relayhq/relay/internal/envelope"
	"github.com/relayhq/relay/internal/testfixture"
)

// fixtureEvent returns the first event or transaction payload of a recorded
// SDK envelope, decoded so a case can change one field of a real event.
func fixtureEvent(t *testing.T, name string) map[string]any {
	t.Helper()
	env, err := envelope.Parse(testfixture.SDKFile(t, name))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	for _, it := range env.Items {
		if it.Type == "event" || it.Type == "transaction" {
			var m map[string]any
			if err := json.Unmarshal(it.Payload, &m); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			return m
		}
	}
	t.Fatalf("%s: no event item", name)
	return nil
}

// set returns a copy of ev (as JSON) with the value at path replaced (nil
// deletes it); intermediate objects are created.
func set(t *testing.T, ev map[string]any, path string, v any) map[string]any {
	t.Helper()
	b, _ := json.Marshal(ev)
	var cp map[string]any
	if err := json.Unmarshal(b, &cp); err != nil {
		t.Fatal(err)
	}
	keys := strings.Split(path, ".")
	cur := cp
	for _, k := range keys[:len(keys)-1] {
		next, ok := cur[k].(map[string]any)
		if !ok {
			next = map[string]any{}
			cur[k] = next
		}
		cur = next
	}
	if v == nil {
		delete(cur, keys[len(keys)-1])
	} else {
		cur[keys[len(keys)-1]] = v
	}
	return cp
}

func payload(t *testing.T, ev map[string]any) []byte {
	t.Helper()
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustCompile(t *testing.T, settings string) *Settings {
	t.Helper()
	s, err := Compile([]byte(settings))
	if err != nil {
		t.Fatalf("Compile(%s): %v", settings, err)
	}
	return s
}

// exceptionEvent is the browser SDK's exception event with the first
// exception's type, value and innermost frame replaced.
func exceptionEvent(t *testing.T, typ, value, absPath string) map[string]any {
	ev := fixtureEvent(t, "browser-event-exception.envelope")
	ex := map[string]any{"type": typ, "value": value}
	if absPath != "" {
		ex["stacktrace"] = map[string]any{"frames": []any{
			map[string]any{"abs_path": absPath, "function": "inject"},
			map[string]any{"abs_path": "<anonymous>"},
			map[string]any{"abs_path": "[native code]"},
		}}
	}
	return set(t, ev, "exception", map[string]any{"values": []any{ex}})
}

func withUA(t *testing.T, ev map[string]any, ua string) map[string]any {
	return set(t, ev, "request.headers", map[string]any{"User-Agent": ua})
}

type filterCase struct {
	name     string
	settings string
	kind     string
	event    map[string]any
	raw      string // payload used instead of event when set
	clientIP string
	ua       string
	want     Reason
}

func runCases(t *testing.T, cases []filterCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := mustCompile(t, c.settings)
			kind := c.kind
			if kind == "" {
				kind = KindEvent
			}
			p := []byte(c.raw)
			if c.raw == "" {
				p = payload(t, c.event)
			}
			var ip netip.Addr
			if c.clientIP != "" {
				ip = netip.MustParseAddr(c.clientIP)
			}
			got, err := s.Check(Input{Kind: kind, Payload: p, ClientIP: ip, UserAgent: c.ua})
			if err != nil {
				t.Fatalf("Check: %v", err)
			}
			if got != c.want {
				t.Fatalf("reason = %q, want %q", got, c.want)
			}
		})
	}
}

func TestReleases(t *testing.T) {
	ev := fixtureEvent(t, "node-event-exception.envelope") // release relay-clients@1.0.0
	runCases(t, []filterCase{
		{name: "exact", settings: `{"releases":{"releases":["relay-clients@1.0.0"]}}`, event: ev, want: ReasonReleaseVersion},
		{name: "glob", settings: `{"releases":{"releases":["1.3.0","relay-clients@1.*"]}}`, event: ev, want: ReasonReleaseVersion},
		{name: "case-insensitive", settings: `{"releases":{"releases":["RELAY-CLIENTS@*"]}}`, event: ev, want: ReasonReleaseVersion},
		{name: "alternatives", settings: `{"releases":{"releases":["relay-clients@{0.9,1.0}.0"]}}`, event: ev, want: ReasonReleaseVersion},
		{name: "class", settings: `{"releases":{"releases":["relay-clients@[0-1].0.0"]}}`, event: ev, want: ReasonReleaseVersion},
		{name: "negated class", settings: `{"releases":{"releases":["relay-clients@[!0-1].0.0"]}}`, event: ev},
		{name: "other release", settings: `{"releases":{"releases":["relay-clients@1.0.1","2.*"]}}`, event: ev},
		{name: "no release", settings: `{"releases":{"releases":["*"]}}`, event: set(t, ev, "release", nil)},
		{name: "numeric release is lenient", settings: `{"releases":{"releases":["42"]}}`, event: set(t, ev, "release", 42), want: ReasonReleaseVersion},
		{name: "bad glob skipped, good one applies", settings: `{"releases":{"releases":["relay-clients@{1.0.0","relay-*"]}}`, event: ev, want: ReasonReleaseVersion},
		{name: "transactions too", kind: KindTransaction, settings: `{"releases":{"releases":["relay-clients@*"]}}`, event: fixtureEvent(t, "browser-transaction.envelope"), want: ReasonReleaseVersion},
	})
}

func TestErrorMessages(t *testing.T) {
	msg := fixtureEvent(t, "go-event-message.envelope") // "message": "go: a test message"
	runCases(t, []filterCase{
		{name: "exception type and value", settings: `{"errorMessages":{"patterns":["TypeError: browser: a test*"]}}`, event: exceptionEvent(t, "TypeError", "browser: a test exception", ""), want: ReasonErrorMessage},
		{name: "exception value only", settings: `{"errorMessages":{"patterns":["*a test exception"]}}`, event: exceptionEvent(t, "", "browser: a test exception", ""), want: ReasonErrorMessage},
		{name: "exception type only", settings: `{"errorMessages":{"patterns":["typeerror"]}}`, event: exceptionEvent(t, "TypeError", "", ""), want: ReasonErrorMessage},
		{name: "type and value not matched by value alone", settings: `{"errorMessages":{"patterns":["browser: a test exception"]}}`, event: exceptionEvent(t, "TypeError", "browser: a test exception", "")},
		{name: "message string", settings: `{"errorMessages":{"patterns":["go: a test*"]}}`, event: msg, want: ReasonErrorMessage},
		{name: "logentry formatted", settings: `{"errorMessages":{"patterns":["*formatted*"]}}`, event: set(t, set(t, msg, "message", nil), "logentry", map[string]any{"formatted": "it is formatted", "message": "raw %s"}), want: ReasonErrorMessage},
		{name: "logentry message when no formatted", settings: `{"errorMessages":{"patterns":["raw %s"]}}`, event: set(t, set(t, msg, "message", nil), "logentry", map[string]any{"message": "raw %s"}), want: ReasonErrorMessage},
		{name: "logentry message ignored when formatted present", settings: `{"errorMessages":{"patterns":["raw %s"]}}`, event: set(t, set(t, msg, "message", nil), "logentry", map[string]any{"formatted": "raw x", "message": "raw %s"})},
		{name: "chunk load error", settings: `{"errorMessages":{"patterns":["*Uncaught *: ChunkLoadError: Loading chunk *"]}}`, event: exceptionEvent(t, "Error", "Uncaught (in promise): ChunkLoadError: Loading chunk 175 failed.", ""), want: ReasonErrorMessage},
		{name: "hydration error alternatives", settings: `{"errorMessages":{"patterns":["*https://reactjs.org/docs/error-decoder.html?invariant={418,419,422,423,425}*"]}}`, event: exceptionEvent(t, "Error", "Minified React error #423; visit https://reactjs.org/docs/error-decoder.html?invariant=423 for the full message", ""), want: ReasonErrorMessage},
		{name: "star spans newlines", settings: `{"errorMessages":{"patterns":["first*second"]}}`, event: exceptionEvent(t, "", "first\nsecond", ""), want: ReasonErrorMessage},
		{name: "escaped brace is literal", settings: `{"errorMessages":{"patterns":["\\{slug\\}*"]}}`, event: exceptionEvent(t, "", "{slug} missing", ""), want: ReasonErrorMessage},
		{name: "empty pattern matches nothing", settings: `{"errorMessages":{"patterns":[""]}}`, event: exceptionEvent(t, "", "", "")},
		{name: "no match", settings: `{"errorMessages":{"patterns":["something else"]}}`, event: msg},
	})
}

func TestClientIPs(t *testing.T) {
	ev := fixtureEvent(t, "python-transaction.envelope")
	cfg := `{"clientIps":{"blacklistedIps":["122.33.230.14","10.0.0.0/8","aaaa:bbbb::/32","lol/bar"]}}`
	runCases(t, []filterCase{
		{name: "exact v4", settings: cfg, kind: KindTransaction, event: ev, clientIP: "122.33.230.14", want: ReasonIPAddress},
		{name: "cidr v4", settings: cfg, kind: KindTransaction, event: ev, clientIP: "10.1.2.3", want: ReasonIPAddress},
		{name: "cidr v6", settings: cfg, kind: KindTransaction, event: ev, clientIP: "aaaa:bbbb::cccc", want: ReasonIPAddress},
		{name: "v4-mapped v6", settings: cfg, kind: KindTransaction, event: ev, clientIP: "::ffff:10.9.9.9", want: ReasonIPAddress},
		{name: "outside", settings: cfg, kind: KindTransaction, event: ev, clientIP: "122.33.230.15"},
		{name: "unknown client", settings: cfg, kind: KindTransaction, event: ev},
		{name: "user ip is not the client ip", settings: cfg, kind: KindTransaction, event: set(t, ev, "user.ip_address", "10.0.0.1"), clientIP: "192.0.2.1"},
	})
}

func TestClientIPFromMessage(t *testing.T) {
	for _, c := range []struct{ ff, peer, want string }{
		{"", "192.0.2.7", "192.0.2.7"},
		{"203.0.113.9, 198.51.100.1, 192.0.2.7", "192.0.2.7", "203.0.113.9"},
		{" 2001:db8::1 ,192.0.2.7", "192.0.2.7", "2001:db8::1"},
		{"::ffff:203.0.113.9", "192.0.2.7", "203.0.113.9"},
		{"unknown, 192.0.2.7", "192.0.2.7", "invalid IP"},
	} {
		if got := ClientIP(c.ff, c.peer).String(); got != c.want {
			t.Errorf("ClientIP(%q, %q) = %s, want %s", c.ff, c.peer, got, c.want)
		}
	}
}

func TestLocalhost(t *testing.T) {
	ev := fixtureEvent(t, "browser-event-exception.envelope") // request.url http://localhost:9131/…
	on := `{"localhost":{"isEnabled":true}}`
	remote := set(t, ev, "request.url", "https://shop.example.com/cart")
	runCases(t, []filterCase{
		{name: "url host localhost", settings: on, event: ev, want: ReasonLocalhost},
		{name: "disabled", settings: `{"localhost":{"isEnabled":false}}`, event: ev},
		{name: "remote url", settings: on, event: remote},
		{name: "subdomain of localhost", settings: on, event: set(t, ev, "request.url", "http://foo.bar.localhost:8080/"), want: ReasonLocalhost},
		{name: "loopback literal", settings: on, event: set(t, ev, "request.url", "http://127.0.0.1:8080/"), want: ReasonLocalhost},
		{name: "not a subdomain", settings: on, event: set(t, ev, "request.url", "http://foolocalhost/")},
		{name: "localhost.com", settings: on, event: set(t, ev, "request.url", "http://localhost.com/")},
		{name: "file url", settings: on, event: set(t, ev, "request.url", "file:///Users/m/app/index.html"), want: ReasonLocalhost},
		{name: "user ip v4", settings: on, event: set(t, remote, "user", map[string]any{"ip_address": "127.0.0.1"}), want: ReasonLocalhost},
		{name: "user ip v6", settings: on, event: set(t, remote, "user", map[string]any{"ip_address": "::1"}), want: ReasonLocalhost},
		{name: "user ip remote", settings: on, event: set(t, remote, "user", map[string]any{"ip_address": "133.12.12.1"})},
		{name: "user ip {{auto}} from a loopback client", settings: on, event: set(t, remote, "user", map[string]any{"ip_address": "{{auto}}"}), clientIP: "127.0.0.1", want: ReasonLocalhost},
		{name: "user ip {{auto}} from a remote client", settings: on, event: set(t, remote, "user", map[string]any{"ip_address": "{{auto}}"}), clientIP: "203.0.113.9"},
		{name: "forwarded-for header", settings: on, event: set(t, remote, "request.headers", [][]string{{"X-Forwarded-For", "::1"}}), want: ReasonLocalhost},
		{name: "host header without url", settings: on, event: set(t, set(t, remote, "request.url", nil), "request.headers", map[string]any{"host": "localhost:3000"}), want: ReasonLocalhost},
		{name: "forwarded host without url", settings: on, event: set(t, set(t, remote, "request.url", nil), "request.headers", map[string]any{"X-Forwarded-Host": "127.0.0.1:3000"}), want: ReasonLocalhost},
		{name: "host header ignored with url", settings: on, event: set(t, remote, "request.headers", map[string]any{"Host": "localhost:3000"})},
		{name: "subdomain host header", settings: on, event: set(t, set(t, remote, "request.url", nil), "request.headers", map[string]any{"Host": "localhost.sentry.io:3000"})},
	})
}

func TestBrowserExtensions(t *testing.T) {
	on := `{"browserExtensions":{"isEnabled":true}}`
	cases := []filterCase{
		{name: "disabled", settings: `{"browserExtensions":{"isEnabled":false}}`, event: exceptionEvent(t, "Error", "fb_xd_fragment", "")},
		{name: "benign", settings: on, event: exceptionEvent(t, "TypeError", "browser: a test exception", "https://shop.example.com/app.js")},
		{name: "recorded browser event", settings: on, event: fixtureEvent(t, "browser-event-exception.envelope")},
	}
	for _, v := range []string{
		"some error on top.GLOBALS", "biiig problem on originalCreateNotification", "canvas.contentDocument",
		"MyApp_RemoveAllHighlights", "http://tt.epicplay.com/not/very/good", "Can't find variable: ZiteReader, I wonder why?",
		"jigsaw is not defined", "ComboSearch is not defined", "http://loading.retry.widdit.com/some/error",
		"atomicFindClose has messed up", "bad news, we have a fb_xd_fragment", "bmi_SafeAddOnload, again",
		"watch out ! EBCallBackMessageReceived", "error _gCrWeb", "conduitPage",
		"null is not an object (evaluating 'elt.parentNode')", "plugin.setSuspendState is not a function",
		"Extension context invalidated", "useless error webkit-masked-url: please filter",
		"TypeError: can't access dead object because dead stuff smells bad",
	} {
		cases = append(cases, filterCase{name: "value " + v, settings: on, event: exceptionEvent(t, "Error", v, ""), want: ReasonBrowserExtensions})
	}
	for _, src := range []string{
		"https://graph.facebook.com/", "https://connect.facebook.net/en_US/sdk.js",
		"https://eatdifferent.com.woopra-ns.com/main.js", "https://static.woopra.com/js/woopra.js",
		"chrome-extension://my-extension/or/something", "chrome://my-extension/or/something",
		"moz-extension://my-extension/or/something", "safari-extension://my-extension/or/something",
		"safari-web-extension://my-extension/or/something", "127.0.0.1:4001/isrunning",
		"webappstoolbarba.texthelp.com/", "http://metrics.itunes.apple.com.edgesuite.net/itunespreview/itunes/browser:firefo",
		"https://fscr.kaspersky-labs.com/B-9B72-7B7/main.js", "webkit-masked-url:",
	} {
		cases = append(cases, filterCase{name: "source " + src, settings: on, event: exceptionEvent(t, "TypeError", "x is undefined", src), want: ReasonBrowserExtensions})
	}
	// The JavaScript SDK sends frames with filename only: it stands in for abs_path.
	jsFrames := set(t, fixtureEvent(t, "browser-event-exception.envelope"), "exception", map[string]any{"values": []any{
		map[string]any{"type": "TypeError", "value": "x", "stacktrace": map[string]any{"frames": []any{map[string]any{"filename": "chrome-extension://abc/content.js"}}}},
	}})
	cases = append(cases,
		filterCase{name: "filename stands in for abs_path", settings: on, event: jsFrames, want: ReasonBrowserExtensions},
		filterCase{name: "only the first exception counts", settings: on, event: set(t, fixtureEvent(t, "browser-event-exception.envelope"), "exception", []any{
			map[string]any{"type": "Error", "value": "fine"}, map[string]any{"type": "Error", "value": "fb_xd_fragment"},
		})},
		filterCase{name: "exception as bare list", settings: on, event: set(t, fixtureEvent(t, "browser-event-exception.envelope"), "exception", []any{
			map[string]any{"type": "Error", "value": "fb_xd_fragment"},
		}), want: ReasonBrowserExtensions},
	)
	runCases(t, cases)
}

// User agents from Relay's and Sentry's legacy-browser tests.
const (
	uaIE8          = "Mozilla/4.0 (compatible; MSIE 8.0; Windows NT 6.0; Trident/4.0)"
	uaIEMobile9    = "Mozilla/5.0 (compatible; MSIE 9.0; Windows Phone OS 7.5; Trident/5.0; IEMobile/9.0; NOKIA; Lumia 710)"
	uaIE9          = "Mozilla/5.0 (compatible; MSIE 9.0; Windows NT 7.1; Trident/5.0)"
	uaIE10         = "Mozilla/5.0 (compatible; MSIE 10.0; Windows NT 6.1; Trident/6.0)"
	uaIE11         = "Mozilla/5.0 (Windows NT 6.3; Trident/7.0; rv:11.0) like Gecko"
	uaOperaMini7   = "Opera/9.80 (J2ME/MIDP; Opera Mini/7.0.32796/59.323; U; fr) Presto/2.12.423 Version/12.16"
	uaOperaMini8   = "Opera/9.80 (J2ME/MIDP; Opera Mini/8.0.35158/36.2534; U; en) Presto/2.12.423 Version/12.16"
	uaOpera14      = "Mozilla/5.0 (Windows NT 6.1; WOW64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/27.0.1453.12 Safari/537.36 OPR/14.0.1116.4"
	uaOpera15      = "Mozilla/5.0 (Windows NT 6.1) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/28.0.1500.45 Safari/537.36 OPR/15.0.1147.61 (Edition Next)"
	uaOpera12      = "Opera/9.80 (X11; Linux i686; Ubuntu/14.10) Presto/2.12.388 Version/12.16"
	uaAndroid3     = "Mozilla/5.0 (Linux; U; Android 3.2; nl-nl; GT-P6800 Build/HTJ85B) AppleWebKit/534.13 (KHTML, like Gecko) Version/4.0 Safari/534.13"
	uaAndroid4     = "Mozilla/5.0 (Linux; U; Android 4.1.1; en-gb; Build/KLP) AppleWebKit/534.30 (KHTML, like Gecko) Version/4.0 Safari/534.30"
	uaAndroidChrom = "Mozilla/5.0 (Linux; Android 4.0.4; Galaxy Nexus Build/IMM76B) AppleWebKit/535.19 (KHTML, like Gecko) Chrome/18.0.1025.133 Mobile Safari/535.19"
	uaSafari5      = "Mozilla/5.0 (Macintosh; U; Intel Mac OS X 1063; tr-DE) AppleWebKit/533.16 (KHTML like Gecko) Version/5.0 Safari/533.16"
	uaSafari6      = "Mozilla/5.0 (Macintosh; U; Intel Mac OS X 10.17.4; en-GB) AppleWebKit/605.1.5 (KHTML, like Gecko) Version/6.0 Safari/605.1.5"
	uaSafari15     = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/15.6 Safari/605.1.15"
	uaSafari17     = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15"
	uaEdge12       = "Mozilla/5.0 (Windows NT 10.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/42.0.2311.135 Safari/537.36 Edge/12.10136"
	uaEdge120      = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 Edg/120.0.2210.91"
	uaChrome41     = "Mozilla/5.0 (Windows NT 6.1) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/41.0.2228.0 Safari/537.36"
	uaChrome120    = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"
	uaFirefox100   = "Mozilla/5.0 (X11; Linux x86_64; rv:100.0) Gecko/20100101 Firefox/100.0"
	uaFirefox121   = "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0"
)

func TestLegacyBrowsers(t *testing.T) {
	ev := fixtureEvent(t, "browser-event-exception.envelope")
	opts := func(o ...string) string {
		b, _ := json.Marshal(o)
		return `{"legacyBrowsers":{"isEnabled":true,"options":` + string(b) + `}}`
	}
	var cases []filterCase
	add := func(name, settings, ua string, want Reason) {
		cases = append(cases, filterCase{name: name, settings: settings, event: withUA(t, ev, ua), want: want})
	}
	for _, ua := range []string{uaIE9, uaIEMobile9, uaSafari5, uaOpera14, uaAndroid3, uaOperaMini7, uaOpera12, uaIE8} {
		add("default filters "+ua, opts("default"), ua, ReasonLegacyBrowsers)
	}
	for _, ua := range []string{uaIE10, uaSafari6, uaOpera15, uaAndroid4, uaOperaMini8, uaChrome41, uaEdge12, uaAndroidChrom, uaFirefox100} {
		add("default keeps "+ua, opts("default"), ua, "")
	}
	for _, c := range []struct {
		ua   string
		opts []string
		want Reason
	}{
		{uaIE10, []string{"android_pre_4", "ie10"}, ReasonLegacyBrowsers},
		{uaIE11, []string{"ie11"}, ReasonLegacyBrowsers},
		{uaIE9, []string{"ie9"}, ReasonLegacyBrowsers},
		{uaIEMobile9, []string{"ie9"}, ReasonLegacyBrowsers},
		{uaIE8, []string{"ie_pre_9"}, ReasonLegacyBrowsers},
		{uaOpera14, []string{"opera_pre_15"}, ReasonLegacyBrowsers},
		{uaOperaMini7, []string{"opera_mini_pre_8"}, ReasonLegacyBrowsers},
		{uaAndroid3, []string{"android_pre_4"}, ReasonLegacyBrowsers},
		{uaSafari5, []string{"safari_pre_6"}, ReasonLegacyBrowsers},
		{uaEdge12, []string{"edge_pre_79"}, ReasonLegacyBrowsers},
		{uaIE11, []string{"ie10"}, ""},
		{uaIE10, []string{"ie9", "ie11"}, ""},
		{uaIE9, []string{"ie_pre_9"}, ""},
		{uaOpera15, []string{"opera_pre_15"}, ""},
		{uaOperaMini8, []string{"opera_mini_pre_8"}, ""},
		{uaAndroid4, []string{"android_pre_4"}, ""},
		{uaSafari6, []string{"safari_pre_6"}, ""},
		{uaEdge120, []string{"edge_pre_79"}, ""},
		// The current per-browser options.
		{uaIE11, []string{"ie"}, ReasonLegacyBrowsers},
		{uaChrome41, []string{"chrome"}, ReasonLegacyBrowsers},
		{uaChrome120, []string{"chrome"}, ""},
		{uaEdge12, []string{"edge"}, ReasonLegacyBrowsers},
		{uaEdge120, []string{"edge"}, ""},
		{uaFirefox100, []string{"firefox"}, ReasonLegacyBrowsers},
		{uaFirefox121, []string{"firefox"}, ""},
		{uaSafari15, []string{"safari"}, ReasonLegacyBrowsers},
		{uaSafari17, []string{"safari"}, ""},
		{uaOpera15, []string{"opera"}, ReasonLegacyBrowsers},
		{uaOperaMini8, []string{"opera_mini"}, ReasonLegacyBrowsers},
		{uaAndroid3, []string{"android"}, ReasonLegacyBrowsers},
		{uaEdge120, []string{"chrome"}, ""}, // Edge is not Chrome
		{uaOpera14, []string{"chrome"}, ""}, // nor is Opera
		{uaIE8, []string{"some_future_option"}, ""},
		// default wins over every other option, as in Relay
		{uaIE11, []string{"default", "ie11"}, ""},
	} {
		add(strings.Join(c.opts, "+")+" "+c.ua, opts(c.opts...), c.ua, c.want)
	}
	add("disabled", `{"legacyBrowsers":{"isEnabled":false,"options":["default"]}}`, uaIE8, "")
	add("no options", `{"legacyBrowsers":{"isEnabled":true}}`, uaIE8, "")
	cases = append(cases, filterCase{name: "no user agent", settings: opts("default"), event: set(t, ev, "request.headers", nil)})
	runCases(t, cases)
}

func TestWebCrawlers(t *testing.T) {
	ev := fixtureEvent(t, "browser-transaction.envelope")
	on := `{"webCrawlers":{"isEnabled":true}}`
	var cases []filterCase
	for _, ua := range []string{
		"Mediapartners-Google", "AdsBot-Google", "Googlebot", "FeedFetcher-Google", "BingBot", "BingPreview",
		"Baiduspider", "Slurp", "Sogou", "facebook", "ia_archiver", "bots ", "bots;", "bots)", "spider ",
		"spider;", "spider)", "Calypso AppCrawler", "pingdom", "lyticsbot", "AWS Security Scanner",
		"Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)", "Slack-ImgProxy 0.19 (+https://api.slack.com/robots)",
		"Twitterbot/1.0", "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
		"Mozilla/5.0 (compatible; HubSpot Crawler; web-crawlers@hubspot.com)",
		"Mozilla/5.0 (Linux; Android 5.0) AppleWebKit/537.36 (KHTML, like Gecko) Mobile Safari/537.36 (compatible; Bytespider; spider-feedback@bytedance.com)",
		"Better Uptime Bot Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/74.0.3729.169 Safari/537.36",
	} {
		cases = append(cases, filterCase{name: ua, settings: on, kind: KindTransaction, event: withUA(t, ev, ua), want: ReasonWebCrawlers})
	}
	for _, ua := range []string{
		"some user agent", "IE", "opera", "APIs-Google (+https://developers.google.com/webmasters/APIs-Google.html)",
		uaChrome41, "Slackbot 1.0(+https://api.slack.com/robots)",
	} {
		cases = append(cases, filterCase{name: "keeps " + ua, settings: on, kind: KindTransaction, event: withUA(t, ev, ua)})
	}
	cases = append(cases,
		filterCase{name: "recorded browser", settings: on, kind: KindTransaction, event: ev},
		filterCase{name: "disabled", settings: `{"webCrawlers":{"isEnabled":false}}`, kind: KindTransaction, event: withUA(t, ev, "Googlebot")},
		filterCase{name: "headers as pairs", settings: on, kind: KindTransaction, event: set(t, ev, "request.headers", [][]string{{"user-agent", "Googlebot"}}), want: ReasonWebCrawlers},
	)
	runCases(t, cases)
}

func TestIgnoreTransactions(t *testing.T) {
	tx := fixtureEvent(t, "browser-transaction.envelope") // transaction "browser-test-transaction"
	health := set(t, tx, "transaction", "/api/health")
	cfg := `{"ignoreTransactions":{"isEnabled":true,"patterns":["*healthcheck*","*/health"]}}`
	runCases(t, []filterCase{
		{name: "matches", settings: cfg, kind: KindTransaction, event: health, want: ReasonFilteredTx},
		{name: "case-insensitive", settings: cfg, kind: KindTransaction, event: set(t, tx, "transaction", "a_HEALTHCHECK_b"), want: ReasonFilteredTx},
		{name: "no match", settings: cfg, kind: KindTransaction, event: set(t, tx, "transaction", "/healthz")},
		{name: "recorded name", settings: `{"ignoreTransactions":{"isEnabled":true,"patterns":["browser-test-*"]}}`, kind: KindTransaction, event: tx, want: ReasonFilteredTx},
		{name: "disabled", settings: `{"ignoreTransactions":{"isEnabled":false,"patterns":["*"]}}`, kind: KindTransaction, event: health},
		{name: "no patterns", settings: `{"ignoreTransactions":{"isEnabled":true,"patterns":[]}}`, kind: KindTransaction, event: health},
		{name: "errors are not transactions", settings: cfg, event: set(t, fixtureEvent(t, "browser-event-exception.envelope"), "transaction", "/api/health")},
	})
}

func TestCSP(t *testing.T) {
	cfg := `{"csp":{"disallowedSources":["about","ms-browser-extension","*.superfish.com","chrome://*","chrome-extension://*","chromeinvokeimmediate://*","chromenull://*","localhost"]}}`
	classic := func(blocked, source string) string {
		r := map[string]any{"document-uri": "https://shop.example.com/", "violated-directive": "script-src"}
		if blocked != "" {
			r["blocked-uri"] = blocked
		}
		if source != "" {
			r["source-file"] = source
		}
		b, _ := json.Marshal(map[string]any{"csp-report": r})
		return string(b)
	}
	cases := []filterCase{
		{name: "blocked about", settings: cfg, kind: KindSecurity, raw: classic("about", ""), want: ReasonInvalidCSP},
		{name: "blocked extension scheme", settings: cfg, kind: KindSecurity, raw: classic("ms-browser-extension", ""), want: ReasonInvalidCSP},
		{name: "blocked subdomain", settings: cfg, kind: KindSecurity, raw: classic("http://foo.superfish.com", ""), want: ReasonInvalidCSP},
		{name: "source chrome-extension", settings: cfg, kind: KindSecurity, raw: classic("", "chrome-extension://fdsa"), want: ReasonInvalidCSP},
		{name: "source localhost with port", settings: cfg, kind: KindSecurity, raw: classic("", "http://localhost:8000"), want: ReasonInvalidCSP},
		{name: "source localhost", settings: cfg, kind: KindSecurity, raw: classic("", "http://localhost"), want: ReasonInvalidCSP},
		{name: "good blocked", settings: cfg, kind: KindSecurity, raw: classic("http://example.com", "")},
		{name: "good source", settings: cfg, kind: KindSecurity, raw: classic("", "http://example.com")},
		{name: "nothing named", settings: cfg, kind: KindSecurity, raw: classic("", "")},
		{name: "star matches all", settings: `{"csp":{"disallowedSources":["*","bbc.com"]}}`, kind: KindSecurity, raw: classic("http://abc3.com", ""), want: ReasonInvalidCSP},
		{name: "port pattern", settings: `{"csp":{"disallowedSources":["*:82"]}}`, kind: KindSecurity, raw: classic("http://abc.com:82", ""), want: ReasonInvalidCSP},
		{name: "scheme mismatch", settings: `{"csp":{"disallowedSources":["http://abc12.com"]}}`, kind: KindSecurity, raw: classic("https://abc12.com", "")},
		{name: "port mismatch", settings: `{"csp":{"disallowedSources":["http://abc13.com:8080"]}}`, kind: KindSecurity, raw: classic("http://abc13.com:80", "")},
		{name: "reporting api", settings: cfg, kind: KindSecurity,
			raw: `[{"type":"csp-violation","url":"https://shop.example.com/","body":{"documentURL":"https://shop.example.com/","blockedURL":"chrome-extension://abc/x.js","effectiveDirective":"script-src-elem"}}]`, want: ReasonInvalidCSP},
		{name: "csp event in an event item", settings: cfg,
			raw: `{"type":"csp","csp":{"blocked_uri":"http://foo.superfish.com/x.js","effective_directive":"script-src"}}`, want: ReasonInvalidCSP},
		{name: "not a csp event", settings: cfg, event: set(t, fixtureEvent(t, "browser-event-exception.envelope"), "csp", map[string]any{"blocked_uri": "about"})},
		{name: "report by legacy browser", settings: `{"legacyBrowsers":{"isEnabled":true,"options":["ie9"]}}`, kind: KindSecurity, raw: classic("http://example.com", ""), ua: uaIE9, want: ReasonLegacyBrowsers},
	}
	runCases(t, cases)
}

// TestOrder pins Relay's order: with every filter matching, the first in the
// order decides, and turning it off hands the decision to the next.
func TestOrder(t *testing.T) {
	ev := fixtureEvent(t, "browser-transaction.envelope")
	ev = set(t, ev, "transaction", "/health")
	ev = set(t, ev, "type", "csp")
	ev = set(t, ev, "csp", map[string]any{"blocked_uri": "about"})
	ev = set(t, ev, "exception", map[string]any{"values": []any{map[string]any{"type": "Error", "value": "fb_xd_fragment"}}})
	ev = withUA(t, ev, "Mozilla/4.0 (compatible; MSIE 8.0; Windows NT 6.0; Trident/4.0; Googlebot/2.1)")
	filters := []struct {
		key, json string
		reason    Reason
	}{
		{"csp", `{"disallowedSources":["about"]}`, ReasonInvalidCSP},
		{"clientIps", `{"blacklistedIps":["192.0.2.0/24"]}`, ReasonIPAddress},
		{"releases", `{"releases":["relay-clients@*"]}`, ReasonReleaseVersion},
		{"errorMessages", `{"patterns":["*fb_xd*"]}`, ReasonErrorMessage},
		{"localhost", `{"isEnabled":true}`, ReasonLocalhost},
		{"browserExtensions", `{"isEnabled":true}`, ReasonBrowserExtensions},
		{"legacyBrowsers", `{"isEnabled":true,"options":["default"]}`, ReasonLegacyBrowsers},
		{"webCrawlers", `{"isEnabled":true}`, ReasonWebCrawlers},
	}
	p := payload(t, ev)
	for i := range filters {
		parts := []string{}
		for _, f := range filters[i:] {
			parts = append(parts, `"`+f.key+`":`+f.json)
		}
		s := mustCompile(t, "{"+strings.Join(parts, ",")+"}")
		got, err := s.Check(Input{Kind: KindEvent, Payload: p, ClientIP: netip.MustParseAddr("192.0.2.1")})
		if err != nil || got != filters[i].reason {
			t.Fatalf("from %s on: reason %q (err %v), want %q", filters[i].key, got, err, filters[i].reason)
		}
	}
	// ignoreTransactions comes last and needs a transaction.
	tx := set(t, set(t, fixtureEvent(t, "browser-transaction.envelope"), "transaction", "/health"), "release", "other")
	s := mustCompile(t, `{"releases":{"releases":["relay-clients@*"]},"ignoreTransactions":{"isEnabled":true,"patterns":["/health"]}}`)
	if got, _ := s.Check(Input{Kind: KindTransaction, Payload: payload(t, tx)}); got != ReasonFilteredTx {
		t.Fatalf("ignoreTransactions: %q", got)
	}
}

func TestCompile(t *testing.T) {
	for _, c := range []struct {
		name, json string
		empty      bool
		wantErr    bool
	}{
		{"null", `null`, true, false},
		{"empty document", ``, true, false},
		{"empty object", `{}`, true, false},
		{"generic", `{"generic":{"version":1,"filters":[{"id":"x","isEnabled":true,"condition":{"op":"eq","name":"event.release","value":"1"}}]}}`, false, false},
		{"generic of a newer version", `{"generic":{"version":2,"filters":[{"id":"x","isEnabled":true,"condition":{"op":"eq","name":"event.release","value":"1"}}]}}`, true, false},
		{"generic disabled", `{"generic":{"version":1,"filters":[{"id":"x","isEnabled":false,"condition":{"op":"eq","name":"event.release","value":"1"}}]}}`, true, false},
		{"generic malformed condition", `{"generic":{"version":1,"filters":[{"id":"x","isEnabled":true,"condition":{"op":"glob","name":"event.release","value":"1.*"}}]}}`, false, true},
		{"all disabled", `{"localhost":{"isEnabled":false},"webCrawlers":{"isEnabled":false},"browserExtensions":{"isEnabled":false},"legacyBrowsers":{"isEnabled":false,"options":["default"]},"ignoreTransactions":{"isEnabled":false,"patterns":["*"]}}`, true, false},
		{"only invalid cidrs", `{"clientIps":{"blacklistedIps":["lol/bar","300.1.1.1"]}}`, true, false},
		{"unknown legacy option only", `{"legacyBrowsers":{"isEnabled":true,"options":["netscape"]}}`, true, false},
		{"one filter", `{"localhost":{"isEnabled":true}}`, false, false},
		{"not json", `{"localhost":`, false, true},
		{"not an object", `[1,2]`, false, true},
		{"wrong type", `{"localhost":{"isEnabled":"yes"}}`, false, true},
		{"wrong list type", `{"releases":{"releases":"1.0"}}`, false, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, err := Compile([]byte(c.json))
			if (err != nil) != c.wantErr {
				t.Fatalf("err = %v, want error %v", err, c.wantErr)
			}
			if err == nil && s.Empty() != c.empty {
				t.Fatalf("Empty() = %v, want %v", s.Empty(), c.empty)
			}
		})
	}
	if _, err := Compile([]byte(`{"releases":{"releases":["` + strings.Repeat("a", maxSettingsSize) + `"]}}`)); err == nil {
		t.Fatal("an oversized document compiled")
	}
}

func TestCheckUnreadable(t *testing.T) {
	s := mustCompile(t, `{"localhost":{"isEnabled":true}}`)
	for _, p := range []string{``, `[]`, `"event"`, `{"request":`, `null`} {
		if _, err := s.Check(Input{Kind: KindEvent, Payload: []byte(p)}); err != ErrNotAnEvent {
			t.Errorf("%q: err = %v, want ErrNotAnEvent", p, err)
		}
	}
	// Fields of unexpected types are ignored, not errors.
	r, err := s.Check(Input{Kind: KindEvent, Payload: []byte(`{"request":5,"user":[],"exception":"x","logentry":7,"release":{}}`)})
	if err != nil || r != "" {
		t.Fatalf("reason %q, err %v", r, err)
	}
}

func TestCache(t *testing.T) {
	c := NewCache(2)
	a := []byte(`{"localhost":{"isEnabled":true}}`)
	s1, fresh, err := c.Get(a)
	if err != nil || !fresh {
		t.Fatalf("first Get: fresh %v, err %v", fresh, err)
	}
	s2, fresh, _ := c.Get(append([]byte(nil), a...))
	if fresh || s1 != s2 {
		t.Fatal("the same document was compiled twice")
	}
	bad := []byte(`{"localhost":1}`)
	if _, fresh, err := c.Get(bad); err == nil || !fresh {
		t.Fatalf("bad document: fresh %v, err %v", fresh, err)
	}
	if _, fresh, err := c.Get(bad); err == nil || fresh {
		t.Fatalf("bad document again: fresh %v, err %v (its error is cached)", fresh, err)
	}
	if _, _, err := c.Get([]byte(`{"webCrawlers":{"isEnabled":true}}`)); err != nil {
		t.Fatal(err)
	}
	if c.size() != 2 {
		t.Fatalf("size %d, want the bound 2", c.size())
	}
	if _, fresh, _ := c.Get(a); !fresh {
		t.Fatal("the oldest document was not evicted")
	}
}

func TestClientReport(t *testing.T) {
	b, err := ClientReport(time.Unix(1795370604, 0), []Outcome{
		{ReasonLocalhost, "error", 1},
		{ReasonLocalhost, "attachment", 10},
		{ReasonLocalhost, "error", 1},
		{ReasonReleaseVersion, "error", 1},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"timestamp":1795370604,"filtered_events":[{"reason":"localhost","category":"error","quantity":2},{"reason":"localhost","category":"attachment","quantity":10},{"reason":"release-version","category":"error","quantity":1}]}`
	if string(b) != want {
		t.Fatalf("got  %s\nwant %s", b, want)
	}
}
