package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/relayhq/relay/internal/config"
	"github.com/relayhq/relay/internal/credentials"
)

// fakeApp records what run hands to the running relay.
type fakeApp struct {
	cfg     *config.Config
	creds   *credentials.Credentials
	started chan struct{}
	block   bool // wait for the context to end, as the real relay does
	err     error
}

func (f *fakeApp) run(ctx context.Context, cfg *config.Config, creds *credentials.Credentials, log *slog.Logger) error {
	f.cfg, f.creds = cfg, creds
	log.Info("fake app running")
	if f.started != nil {
		close(f.started)
	}
	if f.block {
		<-ctx.Done()
	}
	return f.err
}

func runWithApp(t *testing.T, f *fakeApp, o runOpts, args ...string) result {
	t.Helper()
	var out, errOut bytes.Buffer
	c := &cli{
		in:         strings.NewReader(o.stdin),
		out:        &out,
		errOut:     &errOut,
		isTerminal: func() bool { return o.terminal },
		lookupEnv: func(k string) (string, bool) {
			v, ok := o.env[k]
			return v, ok
		},
		runApp: f.run,
	}
	code := execute(context.Background(), args, c)
	return result{code, out.String(), errOut.String()}
}

func TestRunPrecedence(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "config.yml"), "relay:\n  mode: managed\n  host: 127.0.0.2\n  port: 1111\n  upstream: https://file.example/\nlogging:\n  level: warn\n")
	env := map[string]string{"RELAY_MODE": "proxy", "RELAY_PORT": "2222", "RELAY_UPSTREAM_URL": "https://env.example/", "RELAY_LOG_LEVEL": "info"}

	f := &fakeApp{}
	r := runWithApp(t, f, runOpts{env: env}, "-c", dir, "run", "-P", "3333", "--shutdown-timeout", "3")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	got := f.cfg.Relay
	want := config.Relay{Mode: config.ModeProxy, Upstream: "https://env.example/", Host: "127.0.0.2", Port: 3333}
	if got != want {
		t.Fatalf("relay = %+v, want %+v (flags > env > file)", got, want)
	}
	if f.cfg.Limits.ShutdownTimeout != 3*time.Second {
		t.Errorf("shutdown timeout %v", f.cfg.Limits.ShutdownTimeout)
	}
	if f.creds != nil {
		t.Errorf("credentials without any: %+v", f.creds)
	}
	if !strings.Contains(r.stderr, `msg="launching relay" config_folder=`+dir+` config_file=read mode=proxy`) || !strings.Contains(r.stderr, "fake app running") {
		t.Errorf("banner:\n%s", r.stderr)
	}
	if strings.Contains(r.stderr, "relay_id") {
		t.Errorf("banner shows a relay id without credentials:\n%s", r.stderr)
	}

	// Flags win over everything, also for mode/upstream/host.
	f = &fakeApp{}
	r = runWithApp(t, f, runOpts{env: env}, "-c", dir, "run", "--mode", "proxy", "-u", "http://flag.example:9000/", "-H", "0.0.0.0")
	if r.code != 0 || f.cfg.Relay.Upstream != "http://flag.example:9000/" || f.cfg.Relay.Host != "0.0.0.0" || f.cfg.Relay.Port != 2222 {
		t.Fatalf("flags: %+v %+v", r, f.cfg.Relay)
	}
}

func TestRunEphemeral(t *testing.T) {
	// No config folder at all: defaults plus flags are enough.
	dir := filepath.Join(t.TempDir(), "none")
	f := &fakeApp{}
	r := runWithApp(t, f, runOpts{}, "-c", dir, "run", "--mode", "proxy")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if f.cfg.Spool.Path != filepath.Join(dir, "spool.db") || f.cfg.FileExists() {
		t.Fatalf("cfg %+v", f.cfg.Spool)
	}
	if !strings.Contains(r.stderr, `config_file="absent, using defaults"`) {
		t.Errorf("banner:\n%s", r.stderr)
	}
}

func TestRunCredentials(t *testing.T) {
	const seed, pub, id = "OvXFVm1tIUi8xDTuyHX1SSqdMc8nCt2qU9IUaH5p7oU", "JOaR2bHZ31zYjFojC7UhPOidzfT3qOQgT9WEBw1JAKU", "29308cac-9783-40e9-98ac-b5503dffe3a4"
	dir := t.TempDir()
	stored, _ := credentials.Generate()
	if err := stored.Save(dir, false); err != nil {
		t.Fatal(err)
	}

	// From credentials.json, shown in the banner.
	f := &fakeApp{}
	r := runWithApp(t, f, runOpts{}, "-c", dir, "run", "--mode", "proxy")
	if r.code != 0 || f.creds == nil || f.creds.ID != stored.ID {
		t.Fatalf("stored credentials not used: %+v", r)
	}
	if !strings.Contains(r.stderr, "relay_id="+stored.ID.String()+" public_key="+stored.PublicKeyString()) {
		t.Errorf("banner:\n%s", r.stderr)
	}

	// The environment wins over the file.
	f = &fakeApp{}
	r = runWithApp(t, f, runOpts{env: map[string]string{"RELAY_SECRET_KEY": seed, "RELAY_ID": id}}, "-c", dir, "run", "--mode", "proxy")
	if r.code != 0 || f.creds.PublicKeyString() != pub || f.creds.ID.String() != id {
		t.Fatalf("env credentials: %+v", r)
	}
	// Flags win over the environment.
	other, _ := credentials.Generate()
	f = &fakeApp{}
	r = runWithApp(t, f, runOpts{env: map[string]string{"RELAY_SECRET_KEY": seed, "RELAY_ID": id}}, "-c", dir, "run", "--mode", "proxy",
		"-s", other.SecretKeyString(), "-p", other.PublicKeyString(), "-i", other.ID.String())
	if r.code != 0 || f.creds.ID != other.ID {
		t.Fatalf("flag credentials: %+v", r)
	}

	for _, tt := range []struct {
		name string
		env  map[string]string
		args []string
		code int
		want string
	}{
		{"id without key", nil, []string{"-i", id}, 2, "--secret-key and --id go together"},
		{"mismatched pair", nil, []string{"-s", seed, "-p", other.PublicKeyString(), "-i", id}, 2, "public key does not belong to the secret key"},
		{"env id only", map[string]string{"RELAY_ID": id}, nil, 1, "RELAY_SECRET_KEY and RELAY_ID go together"},
		{"env bad key", map[string]string{"RELAY_SECRET_KEY": "x", "RELAY_ID": id}, nil, 1, "RELAY_SECRET_KEY/RELAY_PUBLIC_KEY/RELAY_ID: invalid secret key"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeApp{}
			r := runWithApp(t, f, runOpts{env: tt.env}, append([]string{"-c", dir, "run", "--mode", "proxy"}, tt.args...)...)
			oneErrorLine(t, r, tt.code, tt.want)
			if f.cfg != nil {
				t.Fatal("the relay was started")
			}
		})
	}
}

func TestRunRefusesManagedWithoutCredentials(t *testing.T) {
	for _, tt := range []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"managed by default, without credentials", nil, nil, `managed mode needs credentials and `},
		{"managed env, without credentials", nil, map[string]string{"RELAY_MODE": "managed"}, "managed mode needs credentials"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeApp{}
			r := runWithApp(t, f, runOpts{env: tt.env}, append([]string{"-c", t.TempDir(), "run"}, tt.args...)...)
			if f.cfg != nil {
				t.Fatal("the relay was started")
			}
			if r.code != 1 {
				t.Fatalf("exit %d", r.code)
			}
			lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
			last := lines[len(lines)-1]
			if !strings.HasPrefix(last, "error: "+tt.want) {
				t.Fatalf("last line %q, want %q", last, tt.want)
			}
			// The banner came first, saying which mode was refused.
			if !strings.Contains(lines[0], `msg="launching relay"`) {
				t.Errorf("no banner:\n%s", r.stderr)
			}
		})
	}
}

// Static mode starts: only projects with a file under <config dir>/projects
// are accepted, and a missing projects directory is a valid start.
func TestRunStartsStatic(t *testing.T) {
	for _, tt := range []struct {
		name string
		args []string
		env  map[string]string
	}{
		{"static flag", []string{"--mode", "static"}, nil},
		{"static env", nil, map[string]string{"RELAY_MODE": "static"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeApp{}
			r := runWithApp(t, f, runOpts{env: tt.env}, append([]string{"-c", t.TempDir(), "run"}, tt.args...)...)
			if r.code != 0 || f.cfg == nil {
				t.Fatalf("exit %d, started %v:\n%s", r.code, f.cfg != nil, r.stderr)
			}
			if f.cfg.Relay.Mode != "static" {
				t.Errorf("mode = %q, want static", f.cfg.Relay.Mode)
			}
		})
	}
}

func TestRunBadValues(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--mode", "capture"}, 1, `--mode: relay.mode: "capture" is not one of managed, proxy, static`},
		{[]string{"--mode", "proxy", "-P", "abc"}, 2, `--port: relay.port: expected an integer, got "abc"`},
		{[]string{"--mode", "proxy", "-P", "70000"}, 1, `--port: relay.port: 70000 is not a port number`},
		{[]string{"--mode", "proxy", "-u", "sentry.io"}, 1, `--upstream: relay.upstream: "sentry.io" must be an http:// or https:// URL`},
		{[]string{"--mode", "proxy", "--shutdown-timeout", "soon"}, 2, `--shutdown-timeout: limits.shutdown_timeout: "soon" is not a duration`},
		{[]string{"--mode", "proxy", "--bogus"}, 2, "unknown flag: --bogus (see 'relay run --help')"},
		{[]string{"extra"}, 2, `"relay run" takes no arguments, got "extra"`},
	} {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			f := &fakeApp{}
			r := runWithApp(t, f, runOpts{}, append([]string{"-c", dir, "run"}, tt.args...)...)
			oneErrorLine(t, r, tt.code, tt.want)
			if f.cfg != nil {
				t.Fatal("the relay was started")
			}
		})
	}
}

func TestRunAppError(t *testing.T) {
	f := &fakeApp{err: errors.New("ingest: listen on 127.0.0.1:3000: address already in use")}
	r := runWithApp(t, f, runOpts{}, "-c", t.TempDir(), "run", "--mode", "proxy")
	if r.code != 1 || !strings.HasSuffix(r.stderr, "error: ingest: listen on 127.0.0.1:3000: address already in use\n") {
		t.Fatalf("%+v", r)
	}
}

func TestRunStopsOnSIGTERM(t *testing.T) {
	f := &fakeApp{started: make(chan struct{}), block: true}
	done := make(chan result, 1)
	go func() {
		done <- runWithApp(t, f, runOpts{}, "-c", t.TempDir(), "run", "--mode", "proxy")
	}()
	select {
	case <-f.started:
	case <-time.After(10 * time.Second):
		t.Fatal("the relay did not start")
	}
	// run's signal handler is installed before the relay starts, so this reaches it.
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-done:
		if r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("SIGTERM did not stop the relay")
	}
}

func TestRunHelp(t *testing.T) {
	r := run(t, runOpts{}, "run", "--help")
	for _, want := range []string{"Run the relay in the foreground until SIGTERM or SIGINT", "-P, --port", "-u, --upstream", "-H, --host", "--mode", "registers with the upstream"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("run --help lacks %q", want)
		}
	}
	r = run(t, runOpts{}, "rn")
	oneErrorLine(t, r, 2, `unknown command "rn" for "relay" (did you mean "run"?)`)
}

// Managed mode starts with credentials; without, it tells the user how to
// make them and what to do in Sentry.
func TestRunManaged(t *testing.T) {
	dir := t.TempDir()
	f := &fakeApp{}
	r := runWithApp(t, f, runOpts{}, "-c", dir, "run")
	if f.cfg != nil || r.code != 1 {
		t.Fatalf("started without credentials: %+v", r)
	}
	for _, want := range []string{credentials.Path(dir), `run "relay credentials generate"`, `the public key that "relay credentials show" prints in Sentry under Settings → Relays`} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("error lacks %q:\n%s", want, r.stderr)
		}
	}

	stored, _ := credentials.Generate()
	if err := stored.Save(dir, false); err != nil {
		t.Fatal(err)
	}
	f = &fakeApp{}
	r = runWithApp(t, f, runOpts{}, "-c", dir, "run")
	if r.code != 0 || f.cfg == nil || f.cfg.Relay.Mode != config.ModeManaged || f.creds == nil || f.creds.ID != stored.ID {
		t.Fatalf("managed with credentials: %+v, cfg %v", r, f.cfg)
	}
}
