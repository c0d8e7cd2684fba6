package fakesentry

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

// testSign signs body at t the way §7.2 describes, written out here with
// crypto/ed25519 so these tests depend on neither the relay's signer nor
// the fake's verifier.
func testSign(priv ed25519.PrivateKey, body []byte, t time.Time) string {
	header := []byte(`{"t":"` + t.UTC().Format(time.RFC3339Nano) + `"}`)
	msg := append(append(append([]byte{}, header...), 0), body...)
	return base64.RawURLEncoding.EncodeToString(ed25519.Sign(priv, msg)) + "." + base64.RawURLEncoding.EncodeToString(header)
}

type testRelay struct {
	id   string
	pub  string
	priv ed25519.PrivateKey
}

func newTestRelay(t *testing.T, id string) testRelay {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return testRelay{id: id, pub: base64.RawURLEncoding.EncodeToString(pub), priv: priv}
}

// call posts a registration step and returns the status and JSON body.
func (tr testRelay) call(t *testing.T, s *Server, step string, body []byte, hdr map[string]string) (int, map[string]string) {
	t.Helper()
	r, err := http.NewRequest(http.MethodPost, s.URL()+"/api/0/relays/register/"+step+"/", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("X-Sentry-Relay-Id", tr.id)
	r.Header.Set("X-Sentry-Relay-Signature", testSign(tr.priv, body, time.Now()))
	for k, v := range hdr {
		if v == "" {
			r.Header.Del(k)
		} else {
			r.Header.Set(k, v)
		}
	}
	resp, err := client.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]string{}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("%s: answer is not a JSON object of strings: %v", step, err)
	}
	return resp.StatusCode, out
}

func (tr testRelay) challengeBody() []byte {
	return []byte(`{"relay_id":"` + tr.id + `","public_key":"` + tr.pub + `","version":"0.1.0"}`)
}

func (tr testRelay) register(t *testing.T, s *Server) (int, map[string]string) {
	t.Helper()
	status, out := tr.call(t, s, "challenge", tr.challengeBody(), nil)
	if status != http.StatusOK {
		return status, out
	}
	if out["relay_id"] != tr.id || out["token"] == "" {
		t.Fatalf("challenge answer %v", out)
	}
	return tr.call(t, s, "response", []byte(`{"relay_id":"`+tr.id+`","token":"`+out["token"]+`","version":"0.1.0"}`), nil)
}

// A signature made by Sentry Relay itself (getsentry/relay
// py/tests/test_auth.py): the fake must accept what the real Relay sends.
func TestVerifyRelaySignatureOfRelay(t *testing.T) {
	const (
		key  = "dXq9IiKDLgma0J8dLVITOdkpaU8mPZPJj18t4HCKTfs"
		body = `{"relay_id":"29308cac-9783-40e9-98ac-b5503dffe3a4","public_key":"dXq9IiKDLgma0J8dLVITOdkpaU8mPZPJj18t4HCKTfs","version":"20.8.0"}`
		sig  = "VgFn-7B5JmbSPiM5bikxkn7DjImV8LkfW3UVQcXnK8nLumvLaS7ML0KTY7a7LlU_3grGtSNZlEUbBudOp__RDA.eyJ0IjoiMjAyMC0wOS0wOFQxMzozMzozNS45OTM5MDRaIn0"
	)
	pub, _ := base64.RawURLEncoding.DecodeString(key)
	at := time.Date(2020, 9, 8, 13, 33, 35, 993904000, time.UTC)
	if err := VerifyRelaySignature(pub, []byte(body), sig, time.Minute, at.Add(30*time.Second)); err != nil {
		t.Fatalf("Relay's own signature: %v", err)
	}
	for name, c := range map[string]struct {
		body, sig string
		now       time.Time
	}{
		"too old":         {body, sig, at.Add(2 * time.Minute)},
		"from the future": {body, sig, at.Add(-2 * time.Minute)},
		"body changed":    {body + " ", sig, at},
		"sig changed":     {body, "A" + sig[1:], at},
		"no header":       {body, sig[:strings.IndexByte(sig, '.')], at},
		"empty":           {body, "", at},
	} {
		if err := VerifyRelaySignature(pub, []byte(c.body), c.sig, time.Minute, c.now); err == nil {
			t.Errorf("%s: verified", name)
		}
	}
}

func TestRegistration(t *testing.T) {
	s := newServer(t, Options{})
	ok := newTestRelay(t, "29308cac-9783-40e9-98ac-b5503dffe3a4")
	s.AllowRelay(ok.pub)

	status, out := ok.register(t, s)
	if status != http.StatusOK || out["relay_id"] != ok.id {
		t.Fatalf("register: %d %v", status, out)
	}
	// Re-registration with the same key works any number of times.
	if status, out := ok.register(t, s); status != http.StatusOK {
		t.Fatalf("re-register: %d %v", status, out)
	}
	st := s.RelayStats()
	if st.Challenges != 2 || st.Responses != 2 || st.Registrations != 2 || len(st.Rejected) != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestRegistrationRefusals(t *testing.T) {
	allowed := newTestRelay(t, "8d1d1b34-5c1f-4b3c-9a55-0d6f1b0e6a01")
	stranger := newTestRelay(t, "8d1d1b34-5c1f-4b3c-9a55-0d6f1b0e6a02")
	tests := []struct {
		name       string
		relay      testRelay
		step       string
		body       []byte
		hdr        map[string]string
		stop       bool
		wantStatus int
		wantDetail string
		wantStop   bool
	}{
		{"key not allow-listed", stranger, "challenge", stranger.challengeBody(), nil, false, 403, detailNotAllowed, false},
		{"relay stop", allowed, "challenge", allowed.challengeBody(), nil, true, 403, detailNotAllowed, true},
		{"relay stop on response", allowed, "response", []byte(`{"relay_id":"` + allowed.id + `","token":"x"}`), nil, true, 403, detailNotAllowed, true},
		{"no signature", allowed, "challenge", allowed.challengeBody(), map[string]string{"X-Sentry-Relay-Signature": ""}, false, 400, detailMissingSig, false},
		{"signature by another key", allowed, "challenge", allowed.challengeBody(), map[string]string{"X-Sentry-Relay-Signature": testSign(stranger.priv, allowed.challengeBody(), time.Now())}, false, 400, detailBadSig, false},
		{"stale signature", allowed, "challenge", allowed.challengeBody(), map[string]string{"X-Sentry-Relay-Signature": testSign(allowed.priv, allowed.challengeBody(), time.Now().Add(-time.Hour))}, false, 400, detailBadSig, false},
		{"header id differs", allowed, "challenge", allowed.challengeBody(), map[string]string{"X-Sentry-Relay-Id": stranger.id}, false, 400, detailIDMismatch, false},
		{"not json", allowed, "challenge", []byte(`{"relay_id":`), nil, false, 400, detailBadJSON, false},
		{"unknown token", allowed, "response", []byte(`{"relay_id":"` + allowed.id + `","token":"nope"}`), nil, false, 401, detailChallengeExpire, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newServer(t, Options{})
			s.AllowRelay(allowed.pub)
			s.SetRelayStop(tt.stop)
			status, out := tt.relay.call(t, s, tt.step, tt.body, tt.hdr)
			if status != tt.wantStatus || out["detail"] != tt.wantDetail {
				t.Fatalf("got %d %v, want %d %q", status, out, tt.wantStatus, tt.wantDetail)
			}
			if gotStop := out["relay"] == "stop"; gotStop != tt.wantStop {
				t.Fatalf("relay stop = %v, want %v (%v)", gotStop, tt.wantStop, out)
			}
			if st := s.RelayStats(); st.Rejected[tt.wantDetail] != 1 || st.Registrations != 0 {
				t.Fatalf("stats %+v", st)
			}
		})
	}
}

func TestRegistrationKeyChange(t *testing.T) {
	s := newServer(t, Options{})
	first := newTestRelay(t, "4b6f0f55-54a4-4c59-9c6b-3fd7f4b5a9d0")
	s.AllowRelay(first.pub)
	if status, out := first.register(t, s); status != http.StatusOK {
		t.Fatalf("register: %d %v", status, out)
	}
	// The same relay id with another key, even an allowed one, is refused.
	second := newTestRelay(t, first.id)
	s.AllowRelay(second.pub)
	if status, out := second.register(t, s); status != http.StatusBadRequest || out["detail"] != detailDifferentKey {
		t.Fatalf("register with another key: %d %v", status, out)
	}
	// A key removed from the allow-list cannot register again.
	s.DisallowRelay(first.pub)
	if status, out := first.register(t, s); status != http.StatusForbidden || out["detail"] != detailNotAllowed {
		t.Fatalf("register after removal: %d %v", status, out)
	}
}

func TestEnvelopeSignatureCounts(t *testing.T) {
	s := newServer(t, Options{})
	tr := newTestRelay(t, "0f3c7d1e-2b4a-4e6f-8a9b-1c2d3e4f5a6b")
	s.AllowRelay(tr.pub)
	if status, out := tr.register(t, s); status != http.StatusOK {
		t.Fatalf("register: %d %v", status, out)
	}
	other := newTestRelay(t, "0f3c7d1e-2b4a-4e6f-8a9b-1c2d3e4f5a6c")
	for _, sig := range []string{
		testSign(tr.priv, nil, time.Now()),    // valid
		"",                                    // unsigned
		testSign(other.priv, nil, time.Now()), // another key
		testSign(tr.priv, nil, time.Now().Add(-time.Hour)), // stale
		testSign(tr.priv, []byte("payload"), time.Now()),   // not over an empty payload
	} {
		r, _ := http.NewRequest(http.MethodPost, s.URL()+"/api/42/envelope/", strings.NewReader(envelope))
		r.Header.Set("X-Sentry-Auth", authHdr)
		r.Header.Set("Content-Type", "application/x-sentry-envelope")
		r.Header.Set("X-Sentry-Relay-Id", tr.id)
		if sig != "" {
			r.Header.Set("X-Sentry-Relay-Signature", sig)
		}
		resp, err := client.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("envelope: %d", resp.StatusCode)
		}
	}
	st := s.RelayStats()
	if st.SignedEnvelopes != 1 || st.UnsignedEnvelopes != 1 || st.BadSignatures != 3 {
		t.Fatalf("stats %+v", st)
	}
}
