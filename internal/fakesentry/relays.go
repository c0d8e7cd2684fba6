package fakesentry

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// The relay registration endpoints, as Sentry serves them
// (api/endpoints/relay/register_{challenge,response}.py; relay-protocol.md
// §7.1): a relay whose public key is on the allow-list (Settings → Relays)
// asks for a challenge, signs it back, and is registered.
//
// Signatures are checked here with this file's own reading of §7.2, never
// with the relay's internal/credentials: a fake that verifies with the code
// under test would agree with any bug in it.

// Texts of Sentry's answers.
const (
	detailNotAllowed      = "Relay is not allowed to register"
	detailMissingSig      = "Missing relay signature"
	detailBadSig          = "Invalid relay signature"
	detailBadJSON         = "No valid json body"
	detailIDMismatch      = "relay_id in payload did not match header"
	detailDifferentKey    = "Attempted to register agent with a different public key"
	detailChallengeExpire = "Challenge expired"
)

// maxRelayJSON bounds the body of a relay API request (Relay's
// MAX_JSON_SIZE, 256 KiB).
const maxRelayJSON = 256 << 10

// challengeTTL is how long a challenge token can be answered, and the max
// age of a registration request's signature.
const challengeTTL = 60 * time.Second

// RelayStats counts what the registration endpoints and the relay
// signatures on envelopes saw.
type RelayStats struct {
	Challenges    int            // POST …/register/challenge/ requests
	Responses     int            // POST …/register/response/ requests
	Registrations int            // responses that completed a registration
	Rejected      map[string]int // refused registration requests, by detail

	// Accepted envelopes by their relay signature: valid for the key of the
	// relay named by X-Sentry-Relay-Id (which must be registered), invalid
	// (unknown relay, bad or stale signature), or absent.
	SignedEnvelopes   int
	BadSignatures     int
	UnsignedEnvelopes int
}

// relayState is the registration side of Server, guarded by Server.mu.
type relayState struct {
	allowed    map[string]bool              // base64url public keys
	stop       bool                         // answer 403 {"relay":"stop"}
	known      map[string]ed25519.PublicKey // relay id → key it registered with
	challenges map[string]challenge         // token → challenge
	stats      RelayStats
}

type challenge struct {
	relayID string
	key     ed25519.PublicKey
	issued  time.Time
}

// relaysLocked returns the registration state, creating it on first use; s.mu held.
func (s *Server) relaysLocked() *relayState {
	if s.relay == nil {
		s.relay = &relayState{
			allowed:    map[string]bool{},
			known:      map[string]ed25519.PublicKey{},
			challenges: map[string]challenge{},
			stats:      RelayStats{Rejected: map[string]int{}},
		}
	}
	return s.relay
}

// AllowRelay adds public keys (base64url, as `relay credentials show`
// prints them) to the allow-list: only those relays may register.
func (s *Server) AllowRelay(publicKeys ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range publicKeys {
		s.relaysLocked().allowed[k] = true
	}
}

// DisallowRelay removes a public key from the allow-list. A relay already
// registered with it fails its next re-registration.
func (s *Server) DisallowRelay(publicKey string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.relaysLocked().allowed, publicKey)
}

// SetRelayStop makes both registration endpoints answer 403 with
// {"relay": "stop"} (on) or behave normally (off): how Sentry tells a relay
// to give up for good.
func (s *Server) SetRelayStop(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.relaysLocked().stop = on
}

// RelayStats returns a copy of the registration and signature counters.
func (s *Server) RelayStats() RelayStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.relaysLocked().stats
	rej := make(map[string]int, len(st.Rejected))
	for k, v := range st.Rejected {
		rej[k] = v
	}
	st.Rejected = rej
	return st
}

// serveRegister handles …/register/challenge/ and …/register/response/.
func (s *Server) serveRegister(w http.ResponseWriter, r *http.Request, step string) {
	if step != "challenge/" && step != "response/" {
		s.answer(w, r, http.StatusNotFound, "not found", nil, "")
		return
	}
	if r.Method != http.MethodPost {
		s.answer(w, r, http.StatusMethodNotAllowed, "method not allowed", nil, "")
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxRelayJSON+1))
	s.mu.Lock()
	rs := s.relaysLocked()
	if step == "challenge/" {
		rs.stats.Challenges++
	} else {
		rs.stats.Responses++
	}
	s.mu.Unlock()
	if err != nil || len(body) > maxRelayJSON {
		s.refuse(w, r, http.StatusBadRequest, detailBadJSON, false)
		return
	}
	if step == "challenge/" {
		s.serveChallenge(w, r, body)
	} else {
		s.serveChallengeResponse(w, r, body)
	}
}

func (s *Server) serveChallenge(w http.ResponseWriter, r *http.Request, body []byte) {
	var req struct {
		RelayID   string `json:"relay_id"`
		PublicKey string `json:"public_key"`
		Version   string `json:"version"`
	}
	if json.Unmarshal(body, &req) != nil || req.RelayID == "" || req.PublicKey == "" || req.Version == "" {
		s.refuse(w, r, http.StatusBadRequest, detailBadJSON, false)
		return
	}
	if s.stopping() {
		s.refuse(w, r, http.StatusForbidden, detailNotAllowed, true)
		return
	}
	if r.Header.Get("X-Sentry-Relay-Id") != req.RelayID {
		s.refuse(w, r, http.StatusBadRequest, detailIDMismatch, false)
		return
	}
	sig := r.Header.Get("X-Sentry-Relay-Signature")
	if sig == "" {
		s.refuse(w, r, http.StatusBadRequest, detailMissingSig, false)
		return
	}
	key, err := base64.RawURLEncoding.DecodeString(req.PublicKey)
	if err != nil || len(key) != ed25519.PublicKeySize {
		s.refuse(w, r, http.StatusBadRequest, detailBadJSON, false)
		return
	}
	s.mu.Lock()
	rs := s.relaysLocked()
	allowed := rs.allowed[req.PublicKey]
	prev, seen := rs.known[req.RelayID]
	s.mu.Unlock()
	if !allowed {
		s.refuse(w, r, http.StatusForbidden, detailNotAllowed, false)
		return
	}
	if seen && !bytes.Equal(prev, key) {
		s.refuse(w, r, http.StatusBadRequest, detailDifferentKey, false)
		return
	}
	if err := VerifyRelaySignature(key, body, sig, challengeTTL, time.Now()); err != nil {
		s.refuse(w, r, http.StatusBadRequest, detailBadSig, false)
		return
	}
	var raw [32]byte
	_, _ = rand.Read(raw[:])
	token := base64.RawURLEncoding.EncodeToString(raw[:])
	s.mu.Lock()
	rs.challenges[token] = challenge{relayID: req.RelayID, key: key, issued: time.Now()}
	s.mu.Unlock()
	resp, _ := json.Marshal(map[string]string{"relay_id": req.RelayID, "token": token})
	s.answerJSON(w, r, http.StatusOK, string(resp), nil, "")
}

func (s *Server) serveChallengeResponse(w http.ResponseWriter, r *http.Request, body []byte) {
	var req struct {
		RelayID string `json:"relay_id"`
		Token   string `json:"token"`
		Version string `json:"version"`
	}
	if json.Unmarshal(body, &req) != nil || req.RelayID == "" || req.Token == "" {
		s.refuse(w, r, http.StatusBadRequest, detailBadJSON, false)
		return
	}
	if s.stopping() {
		s.refuse(w, r, http.StatusForbidden, detailNotAllowed, true)
		return
	}
	if r.Header.Get("X-Sentry-Relay-Id") != req.RelayID {
		s.refuse(w, r, http.StatusBadRequest, detailIDMismatch, false)
		return
	}
	sig := r.Header.Get("X-Sentry-Relay-Signature")
	if sig == "" {
		s.refuse(w, r, http.StatusBadRequest, detailMissingSig, false)
		return
	}
	s.mu.Lock()
	rs := s.relaysLocked()
	ch, ok := rs.challenges[req.Token]
	delete(rs.challenges, req.Token) // a token answers once
	s.mu.Unlock()
	if !ok || ch.relayID != req.RelayID || time.Since(ch.issued) > challengeTTL {
		s.refuse(w, r, http.StatusUnauthorized, detailChallengeExpire, false)
		return
	}
	if err := VerifyRelaySignature(ch.key, body, sig, challengeTTL, time.Now()); err != nil {
		s.refuse(w, r, http.StatusBadRequest, detailBadSig, false)
		return
	}
	s.mu.Lock()
	// The key may have been removed from the allow-list since the challenge.
	if !rs.allowed[base64.RawURLEncoding.EncodeToString(ch.key)] {
		s.mu.Unlock()
		s.refuse(w, r, http.StatusForbidden, detailNotAllowed, false)
		return
	}
	rs.known[req.RelayID] = ch.key
	rs.stats.Registrations++
	s.mu.Unlock()
	resp, _ := json.Marshal(map[string]string{"relay_id": req.RelayID})
	s.answerJSON(w, r, http.StatusOK, string(resp), nil, "")
}

func (s *Server) stopping() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.relaysLocked().stop
}

// refuse answers a registration request with Sentry's error body, counted
// by detail; stop adds "relay": "stop".
func (s *Server) refuse(w http.ResponseWriter, r *http.Request, status int, detail string, stop bool) {
	s.mu.Lock()
	s.relaysLocked().stats.Rejected[detail]++
	s.mu.Unlock()
	body := map[string]string{"detail": detail}
	if stop {
		body["relay"] = "stop"
	}
	b, _ := json.Marshal(body)
	s.answerJSON(w, r, status, string(b), nil, "")
}

// noteEnvelopeSignature counts an accepted envelope by its relay
// signature: Relay signs envelopes over an empty payload, only to prove
// which relay sent them.
func (s *Server) noteEnvelopeSignature(h http.Header) {
	sig := h.Get("X-Sentry-Relay-Signature")
	id := h.Get("X-Sentry-Relay-Id")
	s.mu.Lock()
	defer s.mu.Unlock()
	rs := s.relaysLocked()
	switch key, ok := rs.known[id]; {
	case sig == "":
		rs.stats.UnsignedEnvelopes++
	case ok && VerifyRelaySignature(key, nil, sig, 5*time.Minute, time.Now()) == nil:
		rs.stats.SignedEnvelopes++
	default:
		rs.stats.BadSignatures++
	}
}

// VerifyRelaySignature checks an X-Sentry-Relay-Signature value over body
// with key, as Sentry does: the value is base64url(signature) "."
// base64url(header), the signature covers header ‖ 0x00 ‖ body, and the
// header's "t" (RFC 3339) must be no older than maxAge at now (nor more
// than maxAge ahead: clocks differ, but not by that much).
func VerifyRelaySignature(key ed25519.PublicKey, body []byte, value string, maxAge time.Duration, now time.Time) error {
	sigPart, headerPart, ok := strings.Cut(value, ".")
	if !ok {
		return errors.New("signature has no header part")
	}
	sig, err := base64.RawURLEncoding.DecodeString(sigPart)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return errors.New("signature is not 64 bytes of base64url")
	}
	header, err := base64.RawURLEncoding.DecodeString(headerPart)
	if err != nil {
		return errors.New("signature header is not base64url")
	}
	signed := make([]byte, 0, len(header)+1+len(body))
	signed = append(append(append(signed, header...), 0), body...)
	if !ed25519.Verify(key, signed, sig) {
		return errors.New("signature does not verify")
	}
	var h struct {
		T string `json:"t"`
	}
	if err := json.Unmarshal(header, &h); err != nil || h.T == "" {
		return errors.New("signature header has no time")
	}
	t, err := time.Parse(time.RFC3339Nano, h.T)
	if err != nil {
		return fmt.Errorf("signature time %q: %w", h.T, err)
	}
	if age := now.Sub(t); age > maxAge || age < -maxAge {
		return fmt.Errorf("signature time %s is %s away from now", h.T, age)
	}
	return nil
}
