package scrub

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

// The test vectors of docs/pii-scrubbing.md §11, one case per vector (some
// vectors have several sub-cases, suffixed a, b, …). All 119 are honoured.
// Where the doc abbreviates a vector, the case fills it in as follows:
//
//   - v35: the text after the matched line ("…") is a second indented line.
//   - v46, v107: run without normalisation (Relay's processor-level tests do
//     not normalise; with it the Cookie header would move to request.cookies).
//   - v53: the pair is addressed below its array index (headers.0.authorization),
//     as Relay's process_array enters the key from the pair's own state.
//   - v56: the elided signature value is "57911".
//   - v58: the last three selectors share one anything/replace rule "project:3".
//   - v60: Relay's normalisation title-cases header names before scrubbing;
//     this relay runs before Sentry's normalisation, so keys keep their case
//     (key matching is case-insensitive, values and remarks are identical).
//   - v74: the input literally starts and ends with `""` (len 252, start 30).
//   - v99: "fragment" is checked as request.fragment and as a breadcrumb
//     data key http.fragment.
//   - v101: session, csrf-token, __session (request) and sessionid (response).
//   - v103-v106: remark ranges computed from the strings (the doc gives only
//     the outputs).
//   - v110: client.address is pii=maybe (conventions), so only the explicit
//     KNOWN_IP selector removes it: [@anything:remove,x] without @ip:replace.
//   - v111-v116: like Relay's attachments.rs tests, the byte scrubber is called
//     directly; the $attachments.<name> gate is covered by TestAttachmentGate.
//
// Paths in expectations are "/"-separated (keys contain dots); a segment in
// [brackets] may contain "/".

type expect struct {
	path  string
	value string // JSON the node must equal; "" = not checked; "<absent>" = key must not exist
	meta  string // JSON of the node's _meta "" entry; "" = not checked; "-" = must have none
}

type vector struct {
	name      string
	pii       string
	legacy    *DataScrubbing
	item      string // ScrubItem type; "" = ScrubEvent
	event     string
	want      []expect
	unchanged bool // changed must be false (and out == in)
	noNorm    bool // processor-level test: no normalisation (as in Relay's test)
}

var simple = &DataScrubbing{ScrubData: true, ScrubDefaults: true, ScrubIPAddresses: true}

func jstr(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func rem(id, typ string, start, end int, length int) string {
	return fmt.Sprintf(`{"rem":[[%s,%q,%d,%d]],"len":%d}`, jstr(id), typ, start, end, length)
}

func remX(id string) string {
	return fmt.Sprintf(`{"rem":[[%s,"x"]]}`, jstr(id))
}

// builtin builds a §11.1 case: {"$string":[rule]} on extra.value.
func builtin(name, rule, in, out, typ string, start, end int) vector {
	v := vector{
		name:  name,
		pii:   fmt.Sprintf(`{"applications":{"$string":[%s]}}`, jstr(rule)),
		event: fmt.Sprintf(`{"extra":{"value":%s}}`, jstr(in)),
	}
	if out == in {
		v.unchanged = true
		return v
	}
	v.want = []expect{{"extra/value", jstr(out), rem(rule, typ, start, end, utf8.RuneCountInString(in))}}
	return v
}

func custom(name, pii, in, out, id, typ string, start, end int) vector {
	v := builtin(name, "", in, out, typ, start, end)
	v.pii = pii
	v.want[0].meta = rem(id, typ, start, end, utf8.RuneCountInString(in))
	return v
}

func legacyExtra(name string, ds *DataScrubbing, key, in, out, id string, start, end int) vector {
	v := vector{name: name, legacy: ds, event: fmt.Sprintf(`{"extra":{%s:%s}}`, jstr(key), jstr(in))}
	if out == in {
		v.unchanged = true
		return v
	}
	v.want = []expect{{"extra/" + key, jstr(out), rem(id, "s", start, end, utf8.RuneCountInString(in))}}
	return v
}

const pemEC = "-----BEGIN EC PRIVATE KEY-----\nMIHbAgEBBEFbLvIaAaez3q0u6BQYMHZ28B7iSdMPPaODUMGkdorl3ShgTbYmzqGL\n-----END EC PRIVATE KEY-----"

var pem3 = `""-----BEGIN PRIVATE KEY-----` + "\n" + strings.Repeat("Ab", 32) + "\n" + strings.Repeat("Cd", 32) + "\n" + strings.Repeat("Ef", 32) + "\n" + `-----END PRIVATE KEY-----""`

const sensitiveObj = `{"foo":"bar","password":"hello","the_secret":"hello","a_password_here":"hello","api_key":"secret_key","apiKey":"secret_key","otp":"otp_code","two-factor":"otp_code","two_factor":"otp_code"}`

var sensitiveKeys = []struct {
	key string
	len int
}{{"password", 5}, {"the_secret", 5}, {"a_password_here", 5}, {"api_key", 10}, {"apiKey", 10}, {"otp", 8}, {"two-factor", 8}, {"two_factor", 8}}

func sensitiveExpect(prefix string) []expect {
	out := []expect{{prefix + "/foo", `"bar"`, "-"}}
	for _, k := range sensitiveKeys {
		out = append(out, expect{prefix + "/" + k.key, `"[Filtered]"`, rem("@password:filter", "s", 0, 10, k.len)})
	}
	return out
}

func pairsOf(obj string) string {
	var m map[string]string
	if err := json.Unmarshal([]byte(obj), &m); err != nil {
		panic(err)
	}
	// keep the documented key order
	var out []string
	for _, k := range []string{"foo", "password", "the_secret", "a_password_here", "api_key", "apiKey", "otp", "two-factor", "two_factor"} {
		out = append(out, fmt.Sprintf("[%s,%s]", jstr(k), jstr(m[k])))
	}
	return "[" + strings.Join(out, ",") + "]"
}

func sensitivePairExpect(prefix string) []expect {
	out := []expect{{prefix + "/0/1", `"bar"`, "-"}}
	for i, k := range sensitiveKeys {
		out = append(out, expect{fmt.Sprintf("%s/%d/1", prefix, i+1), `"[Filtered]"`, rem("@password:filter", "s", 0, 10, k.len)})
	}
	return out
}

const frame0 = "exception/values/0/stacktrace/frames/0"

func withFrameVars(vars string) string {
	return `{"exception":{"values":[{"type":"E","value":"v","stacktrace":{"frames":[{"function":"f","vars":` + vars + `}]}}]}}`
}

const amzIn = "X-Amz-Algorithm=Some_algorithm&X-Amz-Credential=foobar/19700101/us-east-1/s3/aws4_request&X-Amz-Signature=57911"

var amzOut = strings.Repeat("*", 30) + "&" + strings.Repeat("*", 58) + "&X-Amz-Signature=57911"

func vectors() []vector {
	var vs []vector
	add := func(v ...vector) { vs = append(vs, v...) }

	// ---- §11.1 builtin rules ----
	add(builtin("v01_ip", "@ip", "before 127.0.0.1 after", "before [ip] after", "s", 7, 11))
	add(builtin("v02_ip_hash", "@ip:hash", "before 127.0.0.1 after", "before AE12FE3B5F129B5CC4CDD2B136B7B7947C4D2741 after", "p", 7, 47))
	add(custom("v03_custom_ip_replace", `{"rules":{"0":{"type":"ip","redaction":{"method":"replace"}}},"applications":{"$string":["0"]}}`,
		"before 127.0.0.1 after", "before [Filtered] after", "0", "s", 7, 17))
	add(builtin("v04_ipv6_replace", "@ip:replace", "[2001:0db8:85a3:0000:0000:8a2e:0370:7334]", "[[ip]]", "s", 1, 5))
	add(builtin("v05_ipv6_loopback", "@ip", "before ::1 after", "before [ip] after", "s", 7, 11))
	add(builtin("v06_ipv6_no_match", "@ip", "foo::1", "foo::1", "", 0, 0))
	add(builtin("v07_ipv6_hash", "@ip:hash", "before 2001:0db8:85a3:0000:0000:8a2e:0370:7334 after", "before 8C3DC9BEED9ADE493670547E24E4E45EDE69FF03 after", "p", 7, 47))
	add(builtin("v08_ip_remove", "@ip:remove", "127.0.0.1", "", "x", 0, 0))
	add(builtin("v09_ip_mask", "@ip:mask", "127.0.0.1", "*********", "m", 0, 9))
	add(builtin("v10_imei", "@imei", "before 356938035643809 after", "before [imei] after", "s", 7, 13))
	add(builtin("v11_imei_hash", "@imei:hash", "before 356938035643809 after", "before 3888108AA99417402969D0B47A2CA4ECD2A1AAD3 after", "p", 7, 47))
	add(builtin("v12_mac", "@mac", "ether 4a:00:04:10:9b:50", "ether *****************", "m", 6, 23))
	add(builtin("v13_mac_replace", "@mac:replace", "ether 4a:00:04:10:9b:50", "ether [mac]", "s", 6, 11))
	add(builtin("v14_uuid", "@uuid", "user id ceee0822-ed8f-4622-b2a3-789e73e75cd1", "user id "+strings.Repeat("*", 36), "m", 8, 44))
	add(builtin("v15_uuid_hash", "@uuid:hash", "user id ceee0822-ed8f-4622-b2a3-789e73e75cd1", "user id EBFA4DBDAA4A619F10B6DE2ABB630DE0122F5CDB", "p", 8, 48))
	add(builtin("v16_email", "@email", "John Appleseed <john@appleseed.com>", "John Appleseed <[email]>", "s", 16, 23))
	add(builtin("v17_email_mask", "@email:mask", "John Appleseed <john@appleseed.com>", "John Appleseed <******************>", "m", 16, 34))
	add(builtin("v18_email_hash", "@email:hash", "John Appleseed <john@appleseed.com>", "John Appleseed <33835528AC0FFF1B46D167C35FEAAA6F08FD3F46>", "p", 16, 56))
	add(builtin("v19_iban", "@iban", "some iban: DE89370400440532013000!", "some iban: [iban]!", "s", 11, 17))
	add(builtin("v20_iban_hash", "@iban:hash", "some iban: DE89370400440532013000!", "some iban: 8A1248B6F40D38FBC59ADE6AD0DF69C7BB9C936A!", "p", 11, 51))
	add(builtin("v21a_iban_no_boundary", "@iban", "fooNO9386011117945bar", "fooNO9386011117945bar", "", 0, 0))
	add(builtin("v21b_iban_too_short", "@iban", "some iban: NO938601111794!", "some iban: NO938601111794!", "", 0, 0))
	add(builtin("v21c_iban_bad_country", "@iban", "some iban: N19386011117945!", "some iban: N19386011117945!", "", 0, 0))
	add(builtin("v22_creditcard", "@creditcard", "John Appleseed 4571 2345 6789 0111!", "John Appleseed [creditcard]!", "s", 15, 27))
	add(builtin("v23_creditcard_mask", "@creditcard:mask", "John Appleseed 4571234567890111!", "John Appleseed ****************!", "m", 15, 31))
	add(builtin("v24_creditcard_hash", "@creditcard:hash", "John Appleseed 4571234567890111!", "John Appleseed 68C796A9ED3FB51BF850A11140FCADD8E2D88466!", "p", 15, 55))
	add(builtin("v25_pemkey", "@pemkey", pemEC, "-----BEGIN EC PRIVATE KEY-----\n[pemkey]\n-----END EC PRIVATE KEY-----", "s", 31, 39))
	add(builtin("v26_pemkey_remove", "@pemkey:remove", pemEC, "-----BEGIN EC PRIVATE KEY-----\n\n-----END EC PRIVATE KEY-----", "x", 31, 31))
	add(builtin("v27_urlauth", "@urlauth", "https://username:password@example.com/", "https://[auth]@example.com/", "s", 8, 14))
	add(builtin("v28_urlauth_hash", "@urlauth:hash", "https://username:password@example.com/", "https://2F82AB8A5E3FAD655B5F81E3BEA30D2A14FEF2AC@example.com/", "p", 8, 48))
	add(builtin("v29a_urlauth_mask", "@urlauth:mask", "https://username:password@example.com/", "https://*****************@example.com/", "m", 8, 25))
	add(builtin("v29b_urlauth_remove", "@urlauth:remove", "https://username:password@example.com/", "https://@example.com/", "x", 8, 8))
	add(builtin("v30_usssn", "@usssn", "Hi I'm Hilda and my SSN is 078-05-1120", "Hi I'm Hilda and my SSN is ***********", "m", 27, 38))
	add(builtin("v31a_usssn_replace", "@usssn:replace", "Hi I'm Hilda and my SSN is 078-05-1120", "Hi I'm Hilda and my SSN is [us-ssn]", "s", 27, 35))
	add(builtin("v31b_usssn_hash", "@usssn:hash", "Hi I'm Hilda and my SSN is 078-05-1120", "Hi I'm Hilda and my SSN is 01328BB9C55B35F354FBC7B60CADAC789DC2035C", "p", 27, 67))
	add(builtin("v32_userpath", "@userpath", `C:\Users\mitsuhiko\Desktop`, `C:\Users\[user]\Desktop`, "s", 9, 15))
	add(builtin("v33_userpath_profiles", "@userpath:replace", `C:\Windows\Profiles\Armin\Temp`, `C:\Windows\Profiles\[user]\Temp`, "s", 20, 26))
	add(builtin("v34_userpath_hash", "@userpath:hash", "File in /Users/mitsuhiko/Development/sentry-stripping", "File in /Users/A8791A1A8D11583E0200CC1B9AB971B4D78B8A69/Development/sentry-stripping", "p", 15, 55))
	userpathIn := "make\n" + strings.Repeat(" ", 12) + "export PATH=$PATH:$HOME/collectd_exporter\n" + strings.Repeat(" ", 12) + "make"
	add(builtin("v35_userpath_multiline", "@userpath", userpathIn, strings.Replace(userpathIn, "collectd_exporter", "[user]", 1), "s", 41, 47))
	add(builtin("v36a_userpath_remove", "@userpath:remove", "/Users/john/Documents", "/Users//Documents", "x", 7, 7))
	add(builtin("v36b_userpath_mask", "@userpath:mask", "/Users/john/Documents", "/Users/****/Documents", "m", 7, 11))
	add(builtin("v37_password", "@password", "my_password_123", "", "x", 0, 0))
	add(builtin("v38a_password_replace", "@password:replace", "my_password_123", "[password]", "s", 0, 10))
	add(builtin("v38b_password_mask", "@password:mask", "my_password_123", strings.Repeat("*", 15), "m", 0, 15))
	add(builtin("v39_bearer", "@bearer", "Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9", "Bearer [token]", "s", 0, 14))
	add(builtin("v40a_bearer_mask", "@bearer:mask", "Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9", strings.Repeat("*", 43), "m", 0, 43))
	add(builtin("v40b_bearer_remove", "@bearer:remove", "Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9", "", "x", 0, 0))

	// ---- §11.2 advanced configs on events ----
	add(vector{name: "v41_anything_hash_string", pii: `{"applications":{"$string":["@anything:hash"]}}`,
		event: `{"extra":{"myvalue":"foobar"}}`,
		want:  []expect{{"extra/myvalue", `"168197CA3A9D4FE60EDE05116B0A125DA1AB3BD0"`, rem("@anything:hash", "p", 0, 40, 6)}}})
	add(vector{name: "v42_anything_hash_object", pii: `{"applications":{"$object":["@anything:hash"]}}`,
		event: `{"extra":{"myvalue":"foobar"}}`, want: []expect{{"extra", `null`, remX("@anything:hash")}}})
	add(vector{name: "v43_anything_object", pii: `{"applications":{"$object":["@anything"]}}`,
		event: `{"extra":{"myvalue":"foobar"}}`, want: []expect{{"extra", `null`, remX("@anything")}}})
	add(vector{name: "v44_deep_wildcard_remove", pii: `{"applications":{"**":["@anything:remove"]}}`,
		event: `{"extra":{"myvalue":"foobar"}}`, want: []expect{{"extra", `null`, remX("@anything:remove")}}})
	add(vector{name: "v45_pattern_replace", pii: `{"rules":{"myrule":{"type":"pattern","pattern":"foo","redaction":{"method":"replace","text":"asd"}}},"applications":{"$string":["myrule"]}}`,
		event: `{"extra":{"myvalue":"foobar"}}`, want: []expect{{"extra/myvalue", `"asdbar"`, rem("myrule", "s", 0, 3, 6)}}})
	add(vector{name: "v46_redact_pair_headers", noNorm: true,
		pii:   `{"rules":{"remove_bad_headers":{"type":"redact_pair","keyPattern":"(?i)cookie|secret[-_]?key"}},"applications":{"$object.**":["remove_bad_headers"],"$string":["@ip"]}}`,
		event: `{"request":{"headers":[["Cookie","super secret"],["X-Forwarded-For","127.0.0.1"]],"env":{"SECRET_KEY":"foo"}},"tags":[["forwarded_for","127.0.0.1"]],"logentry":{"formatted":"Hello world!"}}`,
		want: []expect{
			{"request/headers/0/1", `null`, remX("remove_bad_headers")},
			{"request/headers/1/1", `"[ip]"`, rem("@ip", "s", 0, 4, 9)},
			{"request/env/SECRET_KEY", `null`, remX("remove_bad_headers")},
			{"tags", `[["forwarded_for","127.0.0.1"]]`, "-"},
			{"logentry/formatted", `"Hello world!"`, "-"},
		}})
	add(vector{name: "v47_quoted_key_selector",
		pii:   `{"applications":{"extra.'special ,./<>?!@#$%^&*())''gärbage'''":["@anything:remove"]}}`,
		event: `{"extra":{"do not ,./<>?!@#$%^&*())'ßtrip'":"foo","special ,./<>?!@#$%^&*())'gärbage'":"bar"}}`,
		want: []expect{
			{"extra/[do not ,./<>?!@#$%^&*())'ßtrip']", `"foo"`, "-"},
			{"extra/[special ,./<>?!@#$%^&*())'gärbage']", `null`, remX("@anything:remove")},
		}})
	debugMeta := `{"debug_meta":{"images":[{"type":"pe","code_file":"C:\\Windows\\System32\\ntdll.dll","debug_file":"wntdll.pdb"}]}}`
	add(vector{name: "v48_native_path_replace", pii: `{"applications":{"debug_meta.images.*.code_file":["@anything:replace"]}}`,
		event: debugMeta, want: []expect{
			{"debug_meta/images/0/code_file", `"[Filtered]\\ntdll.dll"`, rem("@anything:replace", "s", 0, 10, 19)},
			{"debug_meta/images/0/debug_file", `"wntdll.pdb"`, "-"},
		}})
	add(vector{name: "v49_native_path_hash", pii: `{"applications":{"debug_meta.images.*.code_file":["@anything:hash"]}}`,
		event: debugMeta, want: []expect{
			{"debug_meta/images/0/code_file", `"16941E20B31710B72716F91FE4F0F27DE81DD6F1\\ntdll.dll"`, rem("@anything:hash", "p", 0, 40, 19)},
		}})
	add(vector{name: "v50_native_path_not_generic",
		pii:   `{"applications":{"$string":["@anything:remove"],"**":["@anything:remove"],"debug_meta.**":["@anything:remove"],"(debug_meta.images.**.code_file & $string)":["@anything:remove"]}}`,
		event: debugMeta, unchanged: true})
	for i, sel := range []string{"$logentry.formatted", "$message", "$string"} {
		add(vector{name: fmt.Sprintf("v51%c_logentry_formatted_%s", 'a'+i, strings.TrimPrefix(strings.ReplaceAll(sel, ".", "_"), "$")),
			pii:   fmt.Sprintf(`{"applications":{%s:["@anything:remove"]}}`, jstr(sel)),
			event: `{"logentry":{"formatted":"Hello world!"}}`,
			want:  []expect{{"logentry/formatted", `null`, remX("@anything:remove")}}})
	}
	add(vector{name: "v52a_user_ip_hash_moves_to_id", pii: `{"applications":{"$user.ip_address":["@ip:hash"]}}`,
		event: `{"user":{"ip_address":"127.0.0.1"}}`,
		want: []expect{
			{"user/ip_address", "<absent>", ""},
			{"user/id", `"AE12FE3B5F129B5CC4CDD2B136B7B7947C4D2741"`, rem("@ip:hash", "p", 0, 40, 9)},
		}})
	add(vector{name: "v52b_user_ip_hash_keeps_id", pii: `{"applications":{"$user.ip_address":["@ip:hash"]}}`,
		event: `{"user":{"id":"123","ip_address":"127.0.0.1"}}`,
		want: []expect{
			{"user/ip_address", `"AE12FE3B5F129B5CC4CDD2B136B7B7947C4D2741"`, rem("@ip:hash", "p", 0, 40, 9)},
			{"user/id", `"123"`, "-"},
		}})
	add(vector{name: "v53a_frame_vars_pair_by_key",
		pii:   `{"applications":{"exception.values.0.stacktrace.frames.0.vars.headers.0.authorization":["@anything:replace"]}}`,
		event: withFrameVars(`{"headers":[["authorization","Bearer abc123"]]}`),
		want:  []expect{{frame0 + "/vars/headers/0", `["authorization","[Filtered]"]`, ""}, {frame0 + "/vars/headers/0/1", "", rem("@anything:replace", "s", 0, 10, 13)}}})
	add(vector{name: "v53b_frame_vars_pair_by_index",
		pii:   `{"applications":{"exception.values.0.stacktrace.frames.0.vars.headers.0.1":["@anything:replace"]}}`,
		event: withFrameVars(`{"headers":[["authorization","Bearer abc123"]]}`),
		want:  []expect{{frame0 + "/vars/headers/0", `["authorization","[Filtered]"]`, ""}, {frame0 + "/vars/headers/0/1", "", rem("@anything:replace", "s", 0, 10, 13)}}})
	add(vector{name: "v54_frame_vars_pair_password_remove", pii: `{"applications":{"$string":["@password:remove"]}}`,
		event: withFrameVars(`{"headers":[["authorization","abc123"]]}`),
		want:  []expect{{frame0 + "/vars/headers/0", `["authorization",null]`, ""}, {frame0 + "/vars/headers/0/1", "", remX("@password:remove")}}})
	add(vector{name: "v55_logentry_params", pii: `{"applications":{"$string":["@anything:remove"]}}`,
		event: `{"logentry":{"message":"failed %s","params":["12345"]}}`,
		want:  []expect{{"logentry/params", `[null]`, ""}, {"logentry/params/0", "", remX("@anything:remove")}, {"logentry/message", `"failed %s"`, "-"}}})
	add(vector{name: "v56_span_data_pattern_mask",
		pii:   `{"rules":{"amz":{"type":"pattern","pattern":"(X-Amz-Algorithm|X-Amz-Credential)=[^& ]+","redaction":{"method":"mask"}}},"applications":{"$span.data.*":["amz"]}}`,
		event: `{"type":"transaction","spans":[{"span_id":"0123456789abcdef","data":{"http.query":` + jstr(amzIn) + `,"madeup.field":` + jstr(amzIn) + `,"sentry.cancellation_reason":` + jstr(amzIn) + `}}]}`,
		want: []expect{
			{"spans/0/data/http.query", jstr(amzOut), ""},
			{"spans/0/data/madeup.field", jstr(amzOut), ""},
			{"spans/0/data/sentry.cancellation_reason", jstr(amzIn), "-"},
		}})
	add(vector{name: "v57_logentry_pattern",
		pii:   `{"rules":{"secret":{"type":"pattern","pattern":"SECRET_\\w+","redaction":{"method":"replace","text":"[secret]"}}},"applications":{"$logentry.formatted":["secret"]}}`,
		event: `{"logentry":{"formatted":"Auth failed with SECRET_KEY_12345"}}`,
		want:  []expect{{"logentry/formatted", `"Auth failed with [secret]"`, rem("secret", "s", 17, 25, 33)}}})
	add(vector{name: "v58_span_v2_attributes_object_mode", item: "span",
		pii: `{"rules":{
			"project:0":{"type":"mac","redaction":{"method":"replace","text":"ITS_GONE"}},
			"project:1":{"type":"uuid","redaction":{"method":"replace","text":"BYE"}},
			"project:2":{"type":"pattern","pattern":"[w-z]+","redaction":{"method":"replace","text":"REGEXED"}},
			"project:3":{"type":"anything","redaction":{"method":"replace","text":"[Filtered]"}}},
			"applications":{"test_field_mac.value":["project:0"],"test_field_uuid.value":["project:1"],
			"test_field_regex_passes.value || test_field_regex_fails.value":["project:2"],
			"'user.name'.value":["project:3"],"'url.path'.value":["project:3"],"'sentry.release'.value":["project:3"]}}`,
		event: `{"items":[{"trace_id":"5b8efff798038103d269b633813fc60c","span_id":"eee19b7ec3c1b174","name":"x","start_timestamp":1.0,"end_timestamp":2.0,"attributes":{
			"test_field_mac":{"type":"string","value":"4a:00:04:10:9b:50"},
			"test_field_uuid":{"type":"string","value":"123e4567-e89b-12d3-a456-426614174000"},
			"test_field_regex_passes":{"type":"string","value":"wxyz"},
			"test_field_regex_fails":{"type":"string","value":"abc"},
			"user.name":{"type":"string","value":"secret123"},
			"url.path":{"type":"string","value":"secret123"},
			"sentry.release":{"type":"string","value":"secret123"}}}]}`,
		want: []expect{
			{"items/0/attributes/test_field_mac/value", `"ITS_GONE"`, rem("project:0", "s", 0, 8, 17)},
			{"items/0/attributes/test_field_uuid/value", `"BYE"`, rem("project:1", "s", 0, 3, 36)},
			{"items/0/attributes/test_field_regex_passes/value", `"REGEXED"`, rem("project:2", "s", 0, 7, 4)},
			{"items/0/attributes/test_field_regex_fails/value", `"abc"`, "-"},
			{"items/0/attributes/user.name/value", `"[Filtered]"`, rem("project:3", "s", 0, 10, 9)},
			{"items/0/attributes/url.path/value", `"[Filtered]"`, rem("project:3", "s", 0, 10, 9)},
			{"items/0/attributes/sentry.release/value", `"secret123"`, "-"},
		}})

	// ---- §11.3 legacy settings ----
	add(vector{name: "v59a_frame_vars", legacy: simple, event: withFrameVars(sensitiveObj), want: sensitiveExpect(frame0 + "/vars")})
	add(vector{name: "v59b_request_data", legacy: simple, event: `{"request":{"data":` + sensitiveObj + `}}`, want: sensitiveExpect("request/data")})
	add(vector{name: "v59c_request_env", legacy: simple, event: `{"request":{"env":` + sensitiveObj + `}}`, want: sensitiveExpect("request/env")})
	add(vector{name: "v59d_user_data", legacy: simple, event: `{"user":{"data":` + sensitiveObj + `}}`, want: sensitiveExpect("user/data")})
	add(vector{name: "v60a_request_headers", legacy: simple, event: `{"request":{"headers":` + pairsOf(sensitiveObj) + `}}`, want: sensitivePairExpect("request/headers")})
	add(vector{name: "v60b_request_cookies", legacy: simple, event: `{"request":{"cookies":` + pairsOf(sensitiveObj) + `}}`, want: sensitivePairExpect("request/cookies")})
	add(vector{name: "v61_non_string_under_sensitive_key", legacy: simple,
		event: `{"extra":{"a_password_number":42,"a_password_array":[42,43]}}`,
		want: []expect{
			{"extra/a_password_number", `null`, remX("@password:filter")},
			{"extra/a_password_array", `null`, remX("@password:filter")},
		}})
	add(vector{name: "v62_user_username_and_ip", legacy: simple,
		event: `{"user":{"username":"secret","ip_address":"73.133.27.120"}}`,
		want: []expect{
			{"user/username", `"[Filtered]"`, rem("@password:filter", "s", 0, 10, 6)},
			{"user/ip_address", `null`, `{"rem":[["@ip:replace","s",0,4],["@anything:remove","x"]],"len":13}`},
		}})
	add(vector{name: "v63_query_string", legacy: simple,
		event: `{"request":{"query_string":"foo=bar&password=hello&the_secret=hello&a_password_here=hello&api_key=secret_key"}}`,
		want: []expect{
			{"request/query_string", `[["foo","bar"],["password","[Filtered]"],["the_secret","[Filtered]"],["a_password_here","[Filtered]"],["api_key","[Filtered]"]]`, ""},
			{"request/query_string/1/1", "", rem("@password:filter", "s", 0, 10, 5)},
			{"request/query_string/4/1", "", rem("@password:filter", "s", 0, 10, 10)},
		}})
	add(vector{name: "v64_query_string_empty_value", legacy: simple,
		event: `{"request":{"query_string":[["foo","bar"],["password",""],["baz","bar"]]}}`, unchanged: true})
	add(legacyExtra("v65a_creditcard_visa", simple, "foo", "4571234567890111", "[Filtered]", "@creditcard:filter", 0, 10))
	add(legacyExtra("v65b_creditcard_amex", simple, "foo", "378282246310005", "[Filtered]", "@creditcard:filter", 0, 10))
	add(legacyExtra("v65c_creditcard_discover", simple, "foo", "6011111111111117", "[Filtered]", "@creditcard:filter", 0, 10))
	add(legacyExtra("v66a_creditcard_quoted", simple, "foo", "'4571234567890111'", "'[Filtered]'", "@creditcard:filter", 1, 11))
	add(legacyExtra("v66b_creditcard_in_text", simple, "foo", "foo 4571234567890111", "foo [Filtered]", "@creditcard:filter", 4, 14))
	add(legacyExtra("v67_creditcard_bad_prefix", simple, "foo", "1453843029218310", "1453843029218310", "", 0, 0))
	add(legacyExtra("v68_urlauth_legacy", simple, "foo", "pg://matt:pass@localhost/1", "pg://matt:[Filtered]@localhost/1", "@urlauth:legacy", 10, 20))
	add(vector{name: "v69_urlauth_legacy_twice", legacy: simple,
		event: `{"extra":{"foo":"foo redis://redis:foo@localhost:6379/0 bar pg://matt:foo@localhost/1"}}`,
		want: []expect{{"extra/foo", `"foo redis://redis:[Filtered]@localhost:6379/0 bar pg://matt:[Filtered]@localhost/1"`,
			`{"rem":[["@urlauth:legacy","s",18,28],["@urlauth:legacy","s",60,70]],"len":68}`}}})
	add(legacyExtra("v70_urlauth_no_auth", simple, "foo", "postgres:///path", "postgres:///path", "", 0, 0))
	add(legacyExtra("v71_urlauth_in_json_string", simple, "foo",
		`{"a":"https://localhost","b":"foo@localhost","c":"pg://matt:pass@localhost/1","d":"lol"}`,
		`{"a":"https://localhost","b":"foo@localhost","c":"pg://matt:[Filtered]@localhost/1","d":"lol"}`, "@urlauth:legacy", 60, 70))
	add(legacyExtra("v72_usssn", simple, "s", "123-45-6789", "[Filtered]", "@usssn:filter", 0, 10))
	add(legacyExtra("v73_password_sorts_before_usssn", simple, "password", "123-45-6789", "[Filtered]", "@password:filter", 0, 10))
	add(legacyExtra("v74_pemkey", simple, "foo", pem3, `""-----BEGIN PRIVATE KEY-----`+"\n[Filtered]\n"+`-----END PRIVATE KEY-----""`, "@pemkey:filter", 30, 40))
	add(vector{name: "v75_csp_blocked_uri", legacy: simple,
		event: `{"csp":{"blocked_uri":"https://example.com/?foo=4571234567890111&bar=baz"}}`,
		want:  []expect{{"csp/blocked_uri", `"https://example.com/?foo=[Filtered]&bar=baz"`, rem("@creditcard:filter", "s", 25, 35, 49)}}})
	add(vector{name: "v76_request_data_email_kept", legacy: simple,
		event: `{"request":{"data":{"email":"zzzz@gmail.com","password":"zzzzz"}}}`,
		want: []expect{
			{"request/data/email", `"zzzz@gmail.com"`, "-"},
			{"request/data/password", `"[Filtered]"`, rem("@password:filter", "s", 0, 10, 5)},
		}})
	add(vector{name: "v77_request_data_nested", legacy: simple,
		event: `{"request":{"data":{"password":"test","profile":{"email":"testing@example.com","password":{"$eq":"u{}{}{}]H[[[]]ww6KrA9F.x-F%%"}},"submit":"Se connecter"}}}`,
		want: []expect{
			{"request/data/password", `"[Filtered]"`, rem("@password:filter", "s", 0, 10, 4)},
			{"request/data/profile/password", `null`, remX("@password:filter")},
			{"request/data/profile/email", `"testing@example.com"`, "-"},
			{"request/data/submit", `"Se connecter"`, "-"},
		}})
	add(vector{name: "v78_exclude_container", legacy: &DataScrubbing{ScrubData: true, ScrubDefaults: true, ScrubIPAddresses: true, ExcludeFields: []string{"credentials"}},
		event: `{"request":{"data":{"credentials":{"email":"testing@example.com","password":"test"}}}}`,
		want: []expect{
			{"request/data/credentials/email", `"testing@example.com"`, "-"},
			{"request/data/credentials/password", `"[Filtered]"`, rem("@password:filter", "s", 0, 10, 4)},
		}})
	add(vector{name: "v79_auth_keys", legacy: simple,
		event: `{"extra":{"authorization":"foobar","auth":"foobar","auXth":"foobar"}}`,
		want: []expect{
			{"extra/authorization", `"[Filtered]"`, rem("@password:filter", "s", 0, 10, 6)},
			{"extra/auth", `"[Filtered]"`, rem("@password:filter", "s", 0, 10, 6)},
			{"extra/auXth", `"foobar"`, "-"},
		}})
	var apiKeys []expect
	for _, k := range []string{"x-api-key", "api-key", "api_key", "apikey", "X-Api-Key"} {
		apiKeys = append(apiKeys, expect{"extra/" + k, `"[Filtered]"`, rem("@password:filter", "s", 0, 10, 6)})
	}
	add(vector{name: "v80_api_keys", legacy: simple,
		event: `{"extra":{"x-api-key":"foobar","api-key":"foobar","api_key":"foobar","apikey":"foobar","X-Api-Key":"foobar"}}`, want: apiKeys})
	add(vector{name: "v81_is_authenticated", legacy: simple,
		event: `{"extra":{"test1":{"is_authenticated":"foobar"},"test2":{"is_authenticated":"null"},"test3":{"is_authenticated":true}}}`,
		want: []expect{
			{"extra/test1/is_authenticated", `"[Filtered]"`, rem("@password:filter", "s", 0, 10, 6)},
			{"extra/test2/is_authenticated", `"null"`, "-"},
			{"extra/test3/is_authenticated", `true`, "-"},
		}})
	add(legacyExtra("v82a_mysql_pwd_upper", simple, "MYSQL_PWD", "the one", "[Filtered]", "@password:filter", 0, 10))
	add(legacyExtra("v82b_mysql_pwd_lower", simple, "mysql_pwd", "the one", "[Filtered]", "@password:filter", 0, 10))
	add(legacyExtra("v83a_sensitive_fields", &DataScrubbing{ScrubData: true, ScrubDefaults: true, SensitiveFields: []string{"mystuff"}}, "mystuff", "xxx", "[Filtered]", "strip-fields", 0, 10))
	add(legacyExtra("v83b_sensitive_fields_case", &DataScrubbing{ScrubData: true, ScrubDefaults: true, SensitiveFields: []string{"myStuff"}}, "MYSTUFF", "xxx", "[Filtered]", "strip-fields", 0, 10))
	add(legacyExtra("v84_exclude_fields", &DataScrubbing{ScrubData: true, ScrubDefaults: true, ExcludeFields: []string{"foobar"}}, "foobar", "123-45-6789", "123-45-6789", "", 0, 0))
	add(legacyExtra("v85_blank_fields_ignored", &DataScrubbing{ScrubData: true, ScrubDefaults: true, SensitiveFields: []string{"", " "}, ExcludeFields: []string{"", " "}}, "foobar", "xxx", "xxx", "", 0, 0))
	add(vector{name: "v86_exclude_token_keys", legacy: &DataScrubbing{ScrubData: true, ScrubDefaults: true, ExcludeFields: []string{"GITHUB_TOKEN", "access_token", "stripetoken"}},
		event: `{"extra":{"password":"foo","github_token":"foo","access_token":"foo","stripetoken":"foo","my-token":"foo","new_token":"foo","secret-token-here":"foo"}}`,
		want: []expect{
			{"extra/github_token", `"foo"`, "-"}, {"extra/access_token", `"foo"`, "-"}, {"extra/stripetoken", `"foo"`, "-"},
			{"extra/password", `"[Filtered]"`, rem("@password:filter", "s", 0, 10, 3)},
			{"extra/my-token", `"[Filtered]"`, rem("@password:filter", "s", 0, 10, 3)},
			{"extra/new_token", `"[Filtered]"`, rem("@password:filter", "s", 0, 10, 3)},
			{"extra/secret-token-here", `"[Filtered]"`, rem("@password:filter", "s", 0, 10, 3)},
		}})
	add(vector{name: "v87_exclude_selectors", legacy: &DataScrubbing{ScrubData: true, ScrubDefaults: true,
		ExcludeFields: []string{"do_not_scrub_1", "do_not_scrub_2.**", "extra.'do_not_scrub.dot'.**", "$user.id"}},
		event:     `{"extra":{"do_not_scrub_1":"password","do_not_scrub_2":["password"],"do_not_scrub.dot":["password"]},"user":{"id":"5355849125500546"}}`,
		unchanged: true})
	add(vector{name: "v88_sensitive_formatted_ignored", legacy: &DataScrubbing{ScrubData: true, ScrubDefaults: true, SensitiveFields: []string{"formatted"}},
		event: `{"logentry":{"formatted":"hello world!"}}`, unchanged: true})
	pathsEvent := `{"debug_meta":{"images":[{"type":"pe","code_file":"C:\\Windows\\System32\\ntdll.dll","debug_file":"C:\\Windows\\System32\\wntdll.pdb"}]},` +
		`"exception":{"values":[{"type":"E","stacktrace":{"frames":[{"filename":"/home/user/app/filename.py","abs_path":"/home/user/app/abs_path.py"}]}}]}}`
	add(vector{name: "v89a_sensitive_debug_files_ignored", legacy: &DataScrubbing{ScrubData: true, ScrubDefaults: true, SensitiveFields: []string{"debug_file", "code_file"}},
		event: pathsEvent, unchanged: true})
	add(vector{name: "v89b_sensitive_frame_paths_ignored", legacy: &DataScrubbing{ScrubData: true, ScrubDefaults: true, SensitiveFields: []string{"filename", "abs_path"}},
		event: pathsEvent, unchanged: true})
	add(vector{name: "v90_special_characters", legacy: &DataScrubbing{ScrubData: true, ScrubDefaults: true,
		SensitiveFields: []string{"special ,./<>?!@#$%^&*())'gärbage'"}, ExcludeFields: []string{"do not ,./<>?!@#$%^&*())'ßtrip'", "2abc"}},
		event: `{"extra":{"do not ,./<>?!@#$%^&*())'ßtrip'":"foo","special ,./<>?!@#$%^&*())'gärbage'":"bar"}}`,
		want: []expect{
			{"extra/[do not ,./<>?!@#$%^&*())'ßtrip']", `"foo"`, "-"},
			{"extra/[special ,./<>?!@#$%^&*())'gärbage']", `"[Filtered]"`, rem("strip-fields", "s", 0, 10, 3)},
		}})
	add(vector{name: "v91_sensitive_field_in_breadcrumb_message", legacy: &DataScrubbing{ScrubData: true, ScrubDefaults: true, SensitiveFields: []string{"session_key"}},
		event: `{"breadcrumbs":{"values":[{"category":"query","message":"SELECT session_key FROM django_session WHERE session_key = 'abcdefg'"}]}}`,
		want:  []expect{{"breadcrumbs/values/0/message", `"[Filtered]"`, rem("strip-fields", "s", 0, 10, 68)}}})
	ctx := `{"contexts":{"secret":` + sensitiveObj + `,"biz":` + sensitiveObj
	var known []expect
	for _, c := range []string{"device", "os", "runtime", "app", "browser", "gpu", "trace", "monitor"} {
		ctx += fmt.Sprintf(`,%q:%s`, c, sensitiveObj)
		known = append(known, expect{"contexts/" + c, sensitiveObj, "-"})
	}
	ctx += `}}`
	add(vector{name: "v92_contexts", legacy: simple, event: ctx,
		want: append(append([]expect{{"contexts/secret", `null`, remX("@password:filter")}}, sensitiveExpect("contexts/biz")...), known...)})
	ipOnly := &DataScrubbing{ScrubIPAddresses: true}
	add(vector{name: "v93_scrub_ip_addresses_only", legacy: ipOnly,
		event: `{"user":{"username":"73.133.27.120","data":` + sensitiveObj + `},"breadcrumbs":{"values":[{"message":"73.133.27.120","data":{"test_data":"73.133.27.120"}}]},"spans":[{"span_id":"0123456789abcdef","sentry_tags":{"user.ip":"73.133.27.120"}}]}`,
		want: []expect{
			{"user/username", `"[ip]"`, rem("@ip:replace", "s", 0, 4, 13)},
			{"breadcrumbs/values/0/message", `"[ip]"`, rem("@ip:replace", "s", 0, 4, 13)},
			{"breadcrumbs/values/0/data/test_data", `"[ip]"`, rem("@ip:replace", "s", 0, 4, 13)},
			{"spans/0/sentry_tags/user.ip", `null`, `{"rem":[["@ip:replace","s",0,4],["@anything:remove","x"]],"len":13}`},
			{"user/data", sensitiveObj, "-"},
		}})
	add(vector{name: "v94_remote_addr", legacy: simple,
		event: `{"request":{"env":{"REMOTE_ADDR":"127.0.0.1"}}}`,
		want:  []expect{{"request/env/REMOTE_ADDR", `null`, `{"rem":[["@ip:replace","s",0,4],["@anything:remove","x"]],"len":9}`}}})
	add(vector{name: "v95_user_agent_kept", legacy: simple,
		event: `{"request":{"headers":[["User-Agent","127.0.0.1"],["X-Client-Ip","10.0.0.1"]]}}`,
		want: []expect{
			{"request/headers/0/1", `"127.0.0.1"`, "-"},
			{"request/headers/1/1", `"[ip]"`, rem("@ip:replace", "s", 0, 4, 8)},
		}})
	add(vector{name: "v96_frame_vars_pairs", legacy: simple,
		event: withFrameVars(`{"headers":[["secret","A1BBC234QWERTY0987MNBV012765HJKL"],["passwd","my_password"]]}`),
		want: []expect{
			{frame0 + "/vars/headers/0/1", `"[Filtered]"`, rem("@password:filter", "s", 0, 10, 32)},
			{frame0 + "/vars/headers/1/1", `"[Filtered]"`, rem("@password:filter", "s", 0, 10, 11)},
		}})
	add(vector{name: "v97_frame_vars_pairs_value_match", legacy: simple,
		event: withFrameVars(`{"headers":[["some_random_value","my_password"],["some_random_value_2","abc"]]}`),
		want: []expect{
			{frame0 + "/vars/headers/0/1", `"[Filtered]"`, rem("@password:filter", "s", 0, 10, 11)},
			{frame0 + "/vars/headers/1/1", `"abc"`, "-"},
		}})
	add(vector{name: "v98_frame_vars_bearer_token_key", legacy: simple,
		event: withFrameVars(`{"headers":[["AuthToken","b'Bearer A1BBC234QWERTY0987MNBV012765HJKL'"]]}`),
		want:  []expect{{frame0 + "/vars/headers/0", `["AuthToken","[Filtered]"]`, ""}, {frame0 + "/vars/headers/0/1", "", rem("@password:filter", "s", 0, 10, 42)}}})
	ccq := "ccnumber=5105105105105100&process_id=123"
	ccf := "ccnumber=5105105105105100,process_id=123"
	add(vector{name: "v99_creditcard_in_query", legacy: simple,
		event: `{"spans":[{"span_id":"0123456789abcdef","data":{"http.query":` + jstr(ccq) + `}},{"span_id":"0123456789abcdee","data":{"http.query":"dance=true"}}],` +
			`"breadcrumbs":{"values":[{"data":{"http.query":` + jstr(ccq) + `,"http.fragment":` + jstr(ccf) + `}}]},"request":{"fragment":` + jstr(ccf) + `}}`,
		want: []expect{
			{"spans/0/data/http.query", `"ccnumber=[Filtered]&process_id=123"`, rem("@creditcard:filter", "s", 9, 19, 40)},
			{"spans/1/data/http.query", `"dance=true"`, "-"},
			{"breadcrumbs/values/0/data/http.query", `"ccnumber=[Filtered]&process_id=123"`, rem("@creditcard:filter", "s", 9, 19, 40)},
			{"breadcrumbs/values/0/data/http.fragment", `"ccnumber=[Filtered],process_id=123"`, rem("@creditcard:filter", "s", 9, 19, 40)},
			{"request/fragment", `"ccnumber=[Filtered],process_id=123"`, rem("@creditcard:filter", "s", 9, 19, 40)},
		}})
	add(vector{name: "v100_trace_context_data", legacy: &DataScrubbing{ScrubData: true, ScrubDefaults: true},
		event: `{"contexts":{"trace":{"type":"trace","trace_id":"5b8efff798038103d269b633813fc60c","span_id":"eee19b7ec3c1b174","data":{"previousRoute":{"params":{"password":"test"}}}}}}`,
		want:  []expect{{"contexts/trace/data/previousRoute/params/password", `"[Filtered]"`, rem("@password:filter", "s", 0, 10, 4)}}})
	cookieEvent := `{"request":{"cookies":[["session","abc"],["csrf-token","abc"],["__session","abc"],["not_sensitive","abc"]]},"contexts":{"response":{"type":"response","cookies":[["sessionid","abc"],["not_sensitive","abc"]]}}}`
	add(vector{name: "v101_sensitive_cookies", legacy: &DataScrubbing{ScrubData: true, ScrubDefaults: true}, event: cookieEvent,
		want: []expect{
			{"request/cookies/0/1", `"[Filtered]"`, rem("@anything:filter", "s", 0, 10, 3)},
			{"request/cookies/1/1", `"[Filtered]"`, rem("@password:filter", "s", 0, 10, 3)},
			{"request/cookies/2/1", `"[Filtered]"`, rem("@anything:filter", "s", 0, 10, 3)},
			{"request/cookies/3/1", `"abc"`, "-"},
			{"contexts/response/cookies/0/1", `"[Filtered]"`, rem("@anything:filter", "s", 0, 10, 3)},
			{"contexts/response/cookies/1/1", `"abc"`, "-"},
		}})
	add(vector{name: "v102_gen_ai_prompt_replace_only", legacy: simple,
		event: `{"spans":[{"span_id":"0123456789abcdef","data":{"gen_ai.prompt":"Buy me a drink with my creditcard 4111-1111-1111-1111"}}]}`,
		want:  []expect{{"spans/0/data/gen_ai.prompt", `"Buy me a drink with my creditcard [creditcard]"`, rem("@creditcard:replace", "s", 34, 46, 53)}}})
	formatted := func(name string, ds *DataScrubbing, in, out, meta string) vector {
		v := vector{name: name, legacy: ds, event: `{"logentry":{"formatted":` + jstr(in) + `}}`}
		if in == out {
			v.unchanged = true
		} else {
			v.want = []expect{{"logentry/formatted", jstr(out), meta}}
		}
		return v
	}
	add(formatted("v103a_formatted_email", simple, "User john.doe@company.com failed authentication", "User [email] failed authentication", rem("@email:replace", "s", 5, 12, 47)))
	add(formatted("v103b_formatted_creditcard", simple, "Payment failed for card 4111-1111-1111-1111", "Payment failed for card [creditcard]", rem("@creditcard:replace", "s", 24, 36, 43)))
	add(formatted("v103c_formatted_email_and_card", simple, "User alice@test.com with used card 4111-1111-1111-1111", "User [email] with used card [creditcard]",
		`{"rem":[["@email:replace","s",5,12],["@creditcard:replace","s",28,40]],"len":54}`))
	add(formatted("v103d_formatted_unchanged", simple, "Database connection failed to prod-db-01 at 10:30", "Database connection failed to prod-db-01 at 10:30", ""))
	add(formatted("v104_formatted_bearer", simple, "API request failed with Bearer ABC123XYZ789TOKEN and returned 401", "API request failed with Bearer [token] and returned 401", rem("@bearer:replace", "s", 24, 38, 65)))
	add(formatted("v105a_formatted_password_kept", simple, "User's password is 12345", "User's password is 12345", ""))
	add(formatted("v105b_formatted_secret_kept", simple, "User password is secret123 for authentication", "User password is secret123 for authentication", ""))
	bearerMix := "API failed with Bearer ABC123TOKEN for user@example.com using card 4111-1111-1111-1111"
	add(formatted("v106a_scrub_data_off", &DataScrubbing{ScrubDefaults: true}, bearerMix, bearerMix, ""))
	add(formatted("v106b_scrub_data_on", &DataScrubbing{ScrubData: true, ScrubDefaults: true}, bearerMix, "API failed with Bearer [token] for [email] using card [creditcard]", ""))
	add(vector{name: "v107_token_keys", legacy: simple, noNorm: true,
		event: `{"extra":{"llm":"token count","foo-token-bar":"abc"},"request":{"headers":[["X-Token","abc"],["Token","abc"]]}}`,
		want: []expect{
			{"extra/llm", `"token count"`, "-"},
			{"extra/foo-token-bar", `"[Filtered]"`, rem("@password:filter", "s", 0, 10, 3)},
			{"request/headers/0/1", `"[Filtered]"`, rem("@password:filter", "s", 0, 10, 3)},
			{"request/headers/1/1", `"[Filtered]"`, rem("@password:filter", "s", 0, 10, 3)},
		}})
	add(vector{name: "v108_not_sensitive_lookalikes", legacy: simple,
		event: `{"extra":{"not-a-two-factor":"I am okay","not_a_two_factor":"I am okay","footpath":"I am okay","idiotproof":"I am okay"}}`, unchanged: true})
	add(vector{name: "v109a_graphql_variables", legacy: &DataScrubbing{ScrubData: true, ScrubDefaults: true},
		event: `{"request":{"api_target":"graphql","data":{"query":"{viewer{login}}","variables":{"login":"foo"}}},"contexts":{"response":{"type":"response","data":{"data":{"viewer":{"login":"foo"}}}}}}`,
		want: []expect{
			{"request/data/variables/login", `"[Filtered]"`, ""},
			{"contexts/response/data/data/viewer/login", `"[Filtered]"`, ""},
			{"request/data/query", `"{viewer{login}}"`, ""},
		}})
	add(vector{name: "v109b_graphql_no_variables", legacy: &DataScrubbing{ScrubData: true, ScrubDefaults: true},
		event: `{"request":{"api_target":"graphql","data":{"query":"{viewer{login}}"}},"contexts":{"response":{"type":"response","data":{"data":{"viewer":{"login":"foo"}}}}}}`,
		want:  []expect{{"contexts/response/data", `{}`, ""}}})
	add(vector{name: "v110_span_v2_attributes_value_only", item: "span", legacy: ipOnly,
		event: `{"items":[{"trace_id":"5b8efff798038103d269b633813fc60c","span_id":"eee19b7ec3c1b174","name":"x","start_timestamp":1.0,"end_timestamp":2.0,"attributes":{` +
			`"user.name":{"type":"string","value":"73.133.27.120"},"client.address":{"type":"string","value":"73.133.27.120"}}}]}`,
		want: []expect{
			{"items/0/attributes/user.name/value", `"[ip]"`, rem("@ip:replace", "s", 0, 4, 13)},
			{"items/0/attributes/client.address/value", `null`, remX("@anything:remove")},
		}})
	return vs
}

func TestVectors(t *testing.T) {
	for _, v := range vectors() {
		t.Run(v.name, func(t *testing.T) { runVector(t, v) })
	}
}

func runVector(t *testing.T, v vector) {
	t.Helper()
	cfg := Config{DataScrubbing: v.legacy}
	if v.pii != "" {
		cfg.PIIConfig = []byte(v.pii)
	}
	s, err := Compile(cfg)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	if v.noNorm {
		s.normalize = false
	}
	in := []byte(v.event)
	var out []byte
	var changed bool
	if v.item != "" {
		out, changed, err = s.ScrubItem(Item{Type: v.item}, in)
	} else {
		out, changed, err = s.ScrubEvent(in)
	}
	if err != nil {
		t.Fatalf("scrub: %v", err)
	}
	if !json.Valid(out) {
		t.Fatalf("output is not valid JSON: %s", out)
	}
	if v.unchanged {
		if changed || string(out) != string(in) || (len(in) > 0 && &out[0] != &in[0]) {
			t.Fatalf("expected unchanged input slice, got changed=%v\n%s", changed, out)
		}
		return
	}
	if !changed {
		t.Fatalf("expected a change, got changed=false")
	}
	var doc any
	if err := json.Unmarshal(out, &doc); err != nil {
		t.Fatal(err)
	}
	root := doc
	if v.item != "" {
		// EAP items carry their _meta per item
		root = doc
	}
	for _, e := range v.want {
		got, ok := lookup(root, e.path)
		if e.value == "<absent>" {
			if ok {
				t.Errorf("%s: expected absent, got %s", e.path, mustJSON(got))
			}
		} else if e.value != "" {
			if !ok {
				t.Errorf("%s: missing in output %s", e.path, out)
			} else if !jsonEqual(got, e.value) {
				t.Errorf("%s: got %s, want %s", e.path, mustJSON(got), e.value)
			}
		}
		if e.meta == "" {
			continue
		}
		m, ok := metaAt(doc, e.path, v.item != "")
		switch {
		case e.meta == "-":
			if ok {
				t.Errorf("%s: expected no meta, got %s", e.path, mustJSON(m))
			}
		case !ok:
			t.Errorf("%s: missing meta, want %s\noutput: %s", e.path, e.meta, out)
		case !jsonEqual(m, e.meta):
			t.Errorf("%s: meta %s, want %s", e.path, mustJSON(m), e.meta)
		}
	}
	if t.Failed() {
		t.Logf("output: %s", out)
	}
}

// splitPath splits at "/" except inside [brackets] (keys containing "/").
func splitPath(path string) []string {
	var out []string
	for path != "" {
		if path[0] == '[' {
			end := strings.Index(path, "]")
			out = append(out, path[1:end])
			path = strings.TrimPrefix(path[end+1:], "/")
			continue
		}
		seg, rest, _ := strings.Cut(path, "/")
		out = append(out, seg)
		path = rest
	}
	return out
}

func lookup(doc any, path string) (any, bool) {
	cur := doc
	for _, seg := range splitPath(path) {
		switch c := cur.(type) {
		case map[string]any:
			v, ok := c[seg]
			if !ok {
				return nil, false
			}
			cur = v
		case []any:
			var i int
			if _, err := fmt.Sscan(seg, &i); err != nil || i < 0 || i >= len(c) {
				return nil, false
			}
			cur = c[i]
		default:
			return nil, false
		}
	}
	return cur, true
}

// metaAt finds the _meta "" entry for path; for EAP items the meta lives in
// each item (items/N/_meta/…).
func metaAt(doc any, path string, item bool) (any, bool) {
	segs := splitPath(path)
	if item && len(segs) >= 2 && segs[0] == "items" {
		it, ok := lookup(doc, "items/"+segs[1])
		if !ok {
			return nil, false
		}
		m, ok := lookup(it, "_meta")
		if !ok {
			return nil, false
		}
		return lookupEntry(m, segs[2:])
	}
	m, ok := lookup(doc, "_meta")
	if !ok {
		return nil, false
	}
	return lookupEntry(m, segs)
}

func lookupEntry(m any, segs []string) (any, bool) {
	cur := m
	for _, s := range segs {
		c, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = c[s]; !ok {
			return nil, false
		}
	}
	c, ok := cur.(map[string]any)
	if !ok {
		return nil, false
	}
	e, ok := c[""]
	return e, ok
}

func jsonEqual(got any, want string) bool {
	var w any
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		panic(fmt.Sprintf("bad expectation %s: %v", want, err))
	}
	return reflect.DeepEqual(got, w)
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// ---- §11.4 attachments and view hierarchies ----

func utf16le(s string) []byte {
	var b []byte
	for _, r := range s {
		b = append(b, byte(r), byte(r>>8))
	}
	return b
}

type attachVector struct {
	name     string
	pii      string
	in, want []byte // want nil = unchanged
}

func attachmentVectors() []attachVector {
	plain := []byte("before 127.0.0.1 after")
	wide := utf16le("before 127.0.0.1 after")
	all := make([]byte, 255)
	for i := range all {
		all[i] = byte(i)
	}
	cfg := func(sel, rule string) string {
		return fmt.Sprintf(`{"applications":{%s:[%s]}}`, jstr(sel), jstr(rule))
	}
	vs := []attachVector{
		{"v111_binary_ip_utf8", cfg("$binary", "@ip"), plain, []byte("before [ip]***** after")},
		{"v112_binary_ip_utf16", cfg("$binary", "@ip"), wide, utf16le("before [ip]***** after")},
		{"v113a_binary_ip_hash_utf8", cfg("$binary", "@ip:hash"), plain, []byte("before AE12FE3B5 after")},
		{"v113b_binary_ip_hash_utf16", cfg("$binary", "@ip:hash"), wide, utf16le("before 3FA8F5A46 after")},
		{"v114a_binary_ip_mask", cfg("$binary", "@ip:mask"), plain, []byte("before ********* after")},
		{"v114b_binary_ip_remove", cfg("$binary", "@ip:remove"), plain, []byte("before ********* after")},
		{"v114c_binary_ip_mask_utf16", cfg("$binary", "@ip:mask"), wide, utf16le("before ********* after")},
	}
	for i, sel := range []string{"$string", "$number", "$attachments.* && $string", "$attachments", "** && !$binary"} {
		vs = append(vs, attachVector{fmt.Sprintf("v115%c_binary_not_selected", 'a'+i), cfg(sel, "@ip:mask"), plain, nil})
	}
	vs = append(vs, attachVector{"v116_binary_anything_remove", cfg("$binary", "@anything:remove"), all, []byte(strings.Repeat("*", 255))})
	return vs
}

func TestVectorsAttachments(t *testing.T) {
	for _, v := range attachmentVectors() {
		t.Run(v.name, func(t *testing.T) {
			s, err := Compile(Config{PIIConfig: []byte(v.pii)})
			if err != nil {
				t.Fatal(err)
			}
			// Relay's attachment tests call the byte scrubber directly; the
			// $attachments.<name> gate is tested in TestAttachmentGate.
			out, changed := scrubBytes(s.advanced, "foo.txt", v.in)
			if v.want == nil {
				if changed {
					t.Fatalf("expected unchanged, got %q", out)
				}
				return
			}
			if !changed || string(out) != string(v.want) {
				t.Fatalf("got %q (changed=%v), want %q", out, changed, v.want)
			}
			if len(out) != len(v.in) {
				t.Fatalf("length changed: %d → %d", len(v.in), len(out))
			}
		})
	}
}

func TestVectorsViewHierarchy(t *testing.T) {
	cases := []struct {
		name, pii, in, path, want string
		unchanged                 bool
	}{
		{"v117_view_hierarchy_ip", `{"applications":{"$string":["@ip"]}}`,
			`{"rendering_system":"UIKIT","identifier":"192.45.128.54","windows":[{"type":"UIWindow","identifier":"10.0.0.1"}]}`, "identifier", `"[ip]"`, false},
		{"v118a_view_hierarchy_path", `{"applications":{"nested.stuff.ident":["@ip"]}}`,
			`{"nested":{"stuff":{"ident":"10.0.0.1"}}}`, "nested/stuff/ident", `"[ip]"`, false},
		{"v118b_view_hierarchy_no_path", `{"applications":{"non.existent.path":["@ip"]}}`,
			`{"nested":{"stuff":{"ident":"10.0.0.1"}}}`, "", "", true},
		{"v119_view_hierarchy_password_remove", `{"applications":{"$string":["@password:remove"]}}`,
			`{"rendering_system":"UIKIT","password":"hunter42"}`, "password", `""`, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, err := Compile(Config{PIIConfig: []byte(c.pii)})
			if err != nil {
				t.Fatal(err)
			}
			in := []byte(c.in)
			out, changed, err := s.ScrubItem(Item{Type: "attachment", Filename: "view-hierarchy.json", AttachmentType: "event.view_hierarchy"}, in)
			if err != nil {
				t.Fatal(err)
			}
			if c.unchanged {
				if changed || &out[0] != &in[0] {
					t.Fatalf("expected unchanged, got %s", out)
				}
				return
			}
			var doc any
			if err := json.Unmarshal(out, &doc); err != nil || !changed {
				t.Fatalf("changed=%v err=%v out=%s", changed, err, out)
			}
			got, _ := lookup(doc, c.path)
			if !jsonEqual(got, c.want) {
				t.Fatalf("%s = %s, want %s (out %s)", c.path, mustJSON(got), c.want, out)
			}
			if strings.Contains(string(out), "_meta") {
				t.Fatalf("attachments carry no _meta: %s", out)
			}
			if c.name == "v119_view_hierarchy_password_remove" {
				if v, _ := lookup(doc, "rendering_system"); v != "UIKIT" {
					t.Fatalf("rendering_system changed: %s", out)
				}
			}
		})
	}
}

func TestAttachmentGate(t *testing.T) {
	in := []byte("before 127.0.0.1 after")
	for _, c := range []struct {
		pii  string
		want string
	}{
		{`{"applications":{"$binary":["@ip"]}}`, string(in)}, // no $attachments.<name> selector: not scanned
		{`{"applications":{"$attachments.'foo.txt'":["@ip"]}}`, "before [ip]***** after"},
		{`{"applications":{"$attachments.'bar.txt'":["@ip"]}}`, string(in)},
		{`{"applications":{"$attachments.'bar.txt'":["@ip"],"$binary":["@ip:mask"]}}`, "before ********* after"},
	} {
		s, err := Compile(Config{PIIConfig: []byte(c.pii)})
		if err != nil {
			t.Fatal(err)
		}
		out, _, err := s.ScrubItem(Item{Type: "attachment", Filename: "foo.txt"}, in)
		if err != nil || string(out) != c.want {
			t.Errorf("%s: got %q err %v, want %q", c.pii, out, err, c.want)
		}
	}
	// legacy settings never touch attachments
	s, _ := Compile(Config{DataScrubbing: simple})
	if out, changed, _ := s.ScrubItem(Item{Type: "attachment", Filename: "a.txt"}, in); changed || string(out) != string(in) {
		t.Errorf("legacy settings scrubbed an attachment: %q", out)
	}
}
