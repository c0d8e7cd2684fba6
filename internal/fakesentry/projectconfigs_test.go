package fakesentry

import (
	"bytes"
	"encoding/json"
	"net/http"
	"reflect"
	"testing"
	"time"
)

const (
	keyA = "a0000000000000000000000000000000"
	keyB = "b0000000000000000000000000000000"
	keyC = "c0000000000000000000000000000000"
)

type configsAnswer struct {
	Configs   map[string]json.RawMessage `json:"configs"`
	Pending   []string                   `json:"pending"`
	Unchanged []string                   `json:"unchanged"`
}

// queryConfigs posts a signed project-config request as relay tr.
func (tr testRelay) queryConfigs(t *testing.T, s *Server, version, body string, sign bool) (int, configsAnswer) {
	t.Helper()
	r, err := http.NewRequest(http.MethodPost, s.URL()+"/api/0/relays/projectconfigs/?version="+version, bytes.NewReader([]byte(body)))
	if err != nil {
		t.Fatal(err)
	}
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("X-Sentry-Relay-Id", tr.id)
	if sign {
		r.Header.Set("X-Sentry-Relay-Signature", testSign(tr.priv, []byte(body), time.Now()))
	}
	resp, err := client.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out configsAnswer
	if resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			t.Fatalf("answer: %v", err)
		}
	}
	return resp.StatusCode, out
}

func registeredRelay(t *testing.T, s *Server) testRelay {
	t.Helper()
	tr := newTestRelay(t, "6a1e2c3d-4b5f-4a6b-8c7d-9e0f1a2b3c4d")
	s.AllowRelay(tr.pub)
	if status, out := tr.register(t, s); status != http.StatusOK {
		t.Fatalf("register: %d %v", status, out)
	}
	return tr
}

func TestProjectConfigs(t *testing.T) {
	s := newServer(t, Options{})
	tr := registeredRelay(t, s)
	stateA := `{"projectId":42,"slug":"a","disabled":false,"rev":"r1","publicKeys":[{"publicKey":"` + keyA + `","numericId":1}],"config":{"allowedDomains":["*"]}}`
	s.SetProjectConfig(keyA, json.RawMessage(stateA))
	s.SetProjectConfig(keyB, json.RawMessage(`{"disabled":true}`))
	s.SetProjectConfig(keyC, json.RawMessage(`{"projectId":7,"rev":"c1"}`))
	s.SetProjectPending(keyC, 2)

	body := `{"publicKeys":["` + keyA + `","` + keyB + `","` + keyC + `","ffffffffffffffffffffffffffffffff"],"fullConfig":false,"noCache":false}`
	for round := 1; round <= 3; round++ {
		status, got := tr.queryConfigs(t, s, "3", body, true)
		if status != http.StatusOK {
			t.Fatalf("round %d: status %d", round, status)
		}
		if string(got.Configs[keyA]) != stateA {
			t.Fatalf("round %d: config A %s, want it verbatim", round, got.Configs[keyA])
		}
		if string(got.Configs[keyB]) != `{"disabled":true}` {
			t.Fatalf("round %d: disabled project %s", round, got.Configs[keyB])
		}
		if string(got.Configs["ffffffffffffffffffffffffffffffff"]) != "null" {
			t.Fatalf("round %d: unknown key %s, want null", round, got.Configs["ffffffffffffffffffffffffffffffff"])
		}
		_, inConfigs := got.Configs[keyC]
		if round <= 2 && (!reflect.DeepEqual(got.Pending, []string{keyC}) || inConfigs) {
			t.Fatalf("round %d: pending %v, configs has C: %v", round, got.Pending, inConfigs)
		}
		if round == 3 && (len(got.Pending) != 0 || string(got.Configs[keyC]) != `{"projectId":7,"rev":"c1"}`) {
			t.Fatalf("round 3: pending %v, C %s", got.Pending, got.Configs[keyC])
		}
	}

	// unchanged: only when every key carries a revision.
	status, got := tr.queryConfigs(t, s, "3", `{"publicKeys":["`+keyA+`","`+keyC+`"],"revisions":["r1","old"]}`, true)
	if status != http.StatusOK || !reflect.DeepEqual(got.Unchanged, []string{keyA}) || got.Configs[keyC] == nil {
		t.Fatalf("revisions: %d %+v", status, got)
	}
	if _, ok := got.Configs[keyA]; ok {
		t.Fatal("an unchanged config was sent again")
	}
	status, got = tr.queryConfigs(t, s, "3", `{"publicKeys":["`+keyA+`","`+keyC+`"],"revisions":["r1"]}`, true)
	if status != http.StatusOK || len(got.Unchanged) != 0 || got.Configs[keyA] == nil {
		t.Fatalf("partial revisions: %d %+v", status, got)
	}

	qs := s.ProjectConfigQueries()
	if len(qs) != 5 || len(qs[0].PublicKeys) != 4 || qs[0].RelayID != tr.id || qs[3].Revisions == nil {
		t.Fatalf("query log %+v", qs)
	}
}

func TestProjectConfigsRefusals(t *testing.T) {
	s := newServer(t, Options{})
	tr := registeredRelay(t, s)
	stranger := newTestRelay(t, "6a1e2c3d-4b5f-4a6b-8c7d-9e0f1a2b3c4e")
	body := `{"publicKeys":["` + keyA + `"]}`
	for _, c := range []struct {
		name    string
		relay   testRelay
		version string
		body    string
		sign    bool
		want    int
	}{
		{"unsigned", tr, "3", body, false, http.StatusUnauthorized},
		{"unregistered relay", stranger, "3", body, true, http.StatusUnauthorized},
		{"version 2", tr, "2", body, true, http.StatusBadRequest},
		{"not json", tr, "3", `{"publicKeys":`, true, http.StatusBadRequest},
	} {
		if status, _ := c.relay.queryConfigs(t, s, c.version, c.body, c.sign); status != c.want {
			t.Errorf("%s: status %d, want %d", c.name, status, c.want)
		}
	}
	if qs := s.ProjectConfigQueries(); len(qs) != 4 || qs[0].Status != http.StatusUnauthorized {
		t.Fatalf("query log %+v", qs)
	}
}
