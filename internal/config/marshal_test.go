package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestMarshalRoundTrip(t *testing.T) {
	c := mustLoad(t, `
relay:
  mode: proxy
  tls_port: 3443
  tls_identity_path: /etc/relay.p12
http:
  timeout: 90
  retry_delay: 250ms
limits:
  max_event_size: 1000000
jetstream:
  sync: 1
scrub:
  data_scrubbing:
    scrub_data: true
    sensitive_fields: [a, b]
  pii_config:
    rules:
      iban: {type: iban, redaction: {method: mask}}
    applications:
      "$string": [iban]
`)
	out, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"relay:\n  mode: proxy\n  upstream: https://sentry.io/\n",
		"  timeout: 1m30s\n",
		"  retry_delay: 250ms\n",
		"  max_event_size: 1MB\n",
		"  max_envelope_size: 200MiB\n",
		"  sync: 1s\n",
		"  max_disk_size: 500MB\n",
		"  pii_config:\n    rules:\n      iban: {type: iban, redaction: {method: mask}}\n",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("Marshal output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(string(out), "tls_identity_password") {
		t.Errorf("an unset optional key was written:\n%s", out)
	}

	// Reading the output back gives the same configuration.
	dir := writeConfig(t, string(out))
	back, err := LoadWithEnv(dir, env())
	if err != nil {
		t.Fatalf("reload: %v\n%s", err, out)
	}
	if back.Relay != c.Relay || back.HTTP != c.HTTP || back.Limits != c.Limits || back.Logging != c.Logging ||
		back.JetStream != c.JetStream || back.Spool != c.Spool || back.Worker != c.Worker || back.Ingest != c.Ingest ||
		!reflect.DeepEqual(back.Scrub.DataScrubbing, c.Scrub.DataScrubbing) {
		t.Errorf("round trip changed the config:\n%+v\n%+v", back, c)
	}
	j1, _ := c.Scrub.PIIConfigJSON()
	j2, _ := back.Scrub.PIIConfigJSON()
	if string(j1) != string(j2) {
		t.Errorf("pii_config changed: %s vs %s", j1, j2)
	}
}

func TestSaveMinimal(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new", ".relay")
	c := Default()
	c.Relay.Mode = ModeProxy
	c.Relay.Port = 4000
	if err := c.SaveMinimal(dir); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, FileName)
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("file mode %v, want 0600", st.Mode().Perm())
	}
	dst, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if dst.Mode().Perm() != 0o700 {
		t.Errorf("dir mode %v, want 0700", dst.Mode().Perm())
	}
	data, _ := os.ReadFile(path)
	want := minimalHeader + "relay:\n  mode: proxy\n  upstream: https://sentry.io/\n  host: 127.0.0.1\n  port: 4000\n"
	if string(data) != want {
		t.Errorf("file:\n%s\nwant:\n%s", data, want)
	}
	back, err := LoadWithEnv(dir, env())
	if err != nil || back.Relay != c.Relay {
		t.Fatalf("reload: %+v %v", back, err)
	}

	// Never replaces an existing file.
	c.Relay.Port = 5000
	err = c.SaveMinimal(dir)
	if !errors.Is(err, fs.ErrExist) {
		t.Fatalf("second SaveMinimal = %v, want ErrExist", err)
	}
	data2, _ := os.ReadFile(path)
	if string(data2) != string(data) {
		t.Fatal("existing file was changed")
	}
}
