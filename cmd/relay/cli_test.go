package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/relayhq/relay/internal/config"
	"github.com/relayhq/relay/internal/credentials"
)

// result is what one in-process run of the command line produced.
type result struct {
	code           int
	stdout, stderr string
}

type runOpts struct {
	stdin    string
	terminal bool
	env      map[string]string
}

// run executes the command line in-process with captured streams and a fixed environment.
func run(t *testing.T, o runOpts, args ...string) result {
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
	}
	code := execute(context.Background(), args, c)
	return result{code, out.String(), errOut.String()}
}

// oneErrorLine checks a failed run printed exactly one line, "error: …" containing want.
func oneErrorLine(t *testing.T, r result, code int, want string) {
	t.Helper()
	if r.code != code {
		t.Errorf("exit status %d, want %d (stderr %q)", r.code, code, r.stderr)
	}
	lines := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "error: ") {
		t.Fatalf("stderr is not one error line: %q", r.stderr)
	}
	if !strings.Contains(lines[0], want) {
		t.Fatalf("stderr %q does not contain %q", lines[0], want)
	}
}

func TestHelp(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--help"}, "Configuration precedence, highest first"},
		{nil, "Available Commands:"},
		{[]string{"config", "--help"}, "relay config show"},
		{[]string{"config"}, "Available Commands:"},
		{[]string{"config", "init", "--help"}, "An existing config.yml is never replaced"},
		{[]string{"config", "show", "-h"}, "The output is\nitself a valid config.yml"},
		{[]string{"credentials", "--help"}, "Settings →\nRelays"},
		{[]string{"credentials", "generate", "--help"}, "--overwrite"},
		{[]string{"credentials", "show", "--help"}, "never the secret key"},
		{[]string{"credentials", "set", "--help"}, "--id random picks a new random relay id"},
		{[]string{"credentials", "remove", "--help"}, "--yes is required"},
		{[]string{"generate-completions", "--help"}, "guessed from $SHELL"},
		{[]string{"help", "credentials"}, "Manage the credentials"},
	} {
		r := run(t, runOpts{}, tt.args...)
		if r.code != 0 || r.stderr != "" {
			t.Errorf("%v: exit %d, stderr %q", tt.args, r.code, r.stderr)
		}
		if !strings.Contains(r.stdout, tt.want) {
			t.Errorf("%v: help lacks %q:\n%s", tt.args, tt.want, r.stdout)
		}
	}
	r := run(t, runOpts{}, "--version")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "relay ") {
		t.Errorf("--version: %+v", r)
	}
}

func TestUsageErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--bogus"}, "unknown flag: --bogus (see 'relay --help')"},
		{[]string{"config", "show", "--bogus"}, "unknown flag: --bogus (see 'relay config show --help')"},
		{[]string{"cofig"}, `unknown command "cofig" for "relay" (did you mean "config"?)`},
		{[]string{"config", "shw"}, `unknown command "shw" for "relay config" (did you mean "show"?)`},
		{[]string{"credentials", "generate", "extra"}, `"relay credentials generate" takes no arguments, got "extra"`},
		{[]string{"-c", dir, "config", "init", "--port", "abc"}, `invalid argument "abc" for "-P, --port" flag`},
		{[]string{"-c", dir, "config", "init", "--mode", "foo"}, `--mode: relay.mode: "foo" is not one of managed, proxy, static`},
		{[]string{"-c", dir, "config", "init", "--upstream", "sentry.io"}, `--upstream: relay.upstream: "sentry.io" must be an http:// or https:// URL`},
		{[]string{"-c", dir, "config", "show", "-f", "json"}, `--format: "json" is not supported (only yaml)`},
		{[]string{"-c", dir, "credentials", "set", "--public-key", "x"}, "--public-key needs --secret-key"},
		{[]string{"-c", dir, "credentials", "set", "--secret-key", "x", "--id", "random"}, "--secret-key: invalid secret key"},
		{[]string{"-c", dir, "credentials", "set", "--id", "nope"}, `--id: invalid relay id "nope"`},
		{[]string{"generate-completions", "-f", "tcsh"}, `--format: "tcsh" is not one of bash, zsh, fish, powershell`},
	} {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			r := run(t, runOpts{}, tt.args...)
			oneErrorLine(t, r, 2, tt.want)
		})
	}
	// Nothing was written by the failed commands.
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("failed commands left %d files in the config folder", len(entries))
	}
}

func TestConfigInitNonInteractive(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cfg")
	r := run(t, runOpts{}, "-c", dir, "config", "init", "--mode", "proxy", "--upstream", "http://127.0.0.1:9000/", "-P", "4000")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	for _, want := range []string{"Initializing relay in ", "Wrote " + filepath.Join(dir, "config.yml"), "All done!"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "credentials") {
		t.Errorf("proxy mode generated credentials:\n%s", r.stdout)
	}
	st, err := os.Stat(filepath.Join(dir, "config.yml"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("config.yml: %v %v", st, err)
	}
	if st, _ := os.Stat(dir); st.Mode().Perm() != 0o700 {
		t.Errorf("config dir mode %v", st.Mode().Perm())
	}
	cfg, err := config.LoadWithEnv(dir, func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Relay.Mode != config.ModeProxy || cfg.Relay.Upstream != "http://127.0.0.1:9000/" || cfg.Relay.Port != 4000 || cfg.Relay.Host != "127.0.0.1" {
		t.Fatalf("written relay section %+v", cfg.Relay)
	}
	if c, _ := credentials.Load(dir); c != nil {
		t.Fatal("credentials written in proxy mode")
	}

	// A second init does nothing; with flags it refuses to touch the file.
	r = run(t, runOpts{}, "-c", dir, "config", "init")
	if r.code != 0 || !strings.Contains(r.stdout, "Nothing to do.") {
		t.Fatalf("second init: %+v", r)
	}
	r = run(t, runOpts{}, "-c", dir, "config", "init", "--port", "5000")
	oneErrorLine(t, r, 2, "config.yml already exists; edit it (or remove it first) instead of passing --port")
}

func TestConfigInitManagedDefault(t *testing.T) {
	// No terminal and no flags: defaults, managed mode, credentials generated.
	dir := filepath.Join(t.TempDir(), ".relay")
	r := run(t, runOpts{}, "-c", dir, "config", "init")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	creds, err := credentials.Load(dir)
	if err != nil || creds == nil {
		t.Fatalf("credentials: %v %v", creds, err)
	}
	for _, want := range []string{"Generated new credentials", "  relay id: " + creds.ID.String(), "  public key: " + creds.PublicKeyString(), "All done!", "Settings → Relays, then start the relay with \"relay run\""} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, r.stdout)
		}
	}
	if st, _ := os.Stat(credentials.Path(dir)); st.Mode().Perm() != 0o600 {
		t.Errorf("credentials.json mode %v", st.Mode().Perm())
	}
	// Credentials removed later are regenerated by init, and existing ones kept.
	if r := run(t, runOpts{}, "-c", dir, "config", "init", "--yes"); r.code != 0 || !strings.Contains(r.stdout, "Nothing to do.") {
		t.Fatalf("init with existing credentials: %+v", r)
	}
	os.Remove(credentials.Path(dir))
	if r := run(t, runOpts{}, "-c", dir, "config", "init", "--yes"); r.code != 0 || !strings.Contains(r.stdout, "Generated new credentials") {
		t.Fatalf("init without credentials: %+v", r)
	}
}

func TestConfigInitInteractive(t *testing.T) {
	dir := filepath.Join(t.TempDir(), ".relay")
	// custom config; proxy (3rd); an invalid upstream, then a good one; default host; port.
	stdin := "2\n3\nftp://x/\nhttp://localhost:9000/\n\n70000\n4000\n"
	r := run(t, runOpts{stdin: stdin, terminal: true}, "-c", dir, "config", "init")
	if r.code != 0 {
		t.Fatalf("exit %d: %s\n%s", r.code, r.stderr, r.stdout)
	}
	for _, want := range []string{
		"? Do you want to create a new config?\n  1) Yes, create default config\n  2) Yes, create custom config\n  3) No, abort\n",
		"? How should this relay operate?\n  1) Managed through upstream\n  2) Statically configured\n  3) Proxy for all events\n",
		"? upstream [https://sentry.io/]: ",
		`  invalid input: "ftp://x/" must be an http:// or https:// URL`,
		"? listen interface [127.0.0.1]: ",
		"? listen port [3000]: ",
		"  invalid input: 70000 is not a port number",
		"All done!",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, r.stdout)
		}
	}
	cfg, err := config.LoadWithEnv(dir, func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	want := config.Relay{Mode: config.ModeProxy, Upstream: "http://localhost:9000/", Host: "127.0.0.1", Port: 4000}
	if cfg.Relay != want {
		t.Fatalf("relay section %+v, want %+v", cfg.Relay, want)
	}
}

func TestConfigInitInteractiveAbortAndEOF(t *testing.T) {
	dir := filepath.Join(t.TempDir(), ".relay")
	r := run(t, runOpts{stdin: "3\n", terminal: true}, "-c", dir, "config", "init")
	if r.code != 0 || !strings.Contains(r.stdout, "Aborted.") {
		t.Fatalf("abort: %+v", r)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("abort created the folder: %v", err)
	}
	r = run(t, runOpts{stdin: "2\n", terminal: true}, "-c", dir, "config", "init")
	oneErrorLine(t, r, 1, "standard input ended before the question was answered")
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("aborted init created the folder: %v", err)
	}
	// Enter on the first question takes the default config.
	r = run(t, runOpts{stdin: "\n", terminal: true}, "-c", dir, "config", "init")
	if r.code != 0 || !strings.Contains(r.stdout, "Generated new credentials") {
		t.Fatalf("default choice: %+v", r)
	}
}

func TestConfigShow(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "config.yml"), "relay:\n  mode: proxy\nlimits:\n  max_event_size: 2MiB\n")
	r := run(t, runOpts{env: map[string]string{"RELAY_PORT": "4567"}}, "-c", dir, "config", "show")
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	for _, want := range []string{"relay:\n  mode: proxy\n", "  port: 4567\n", "  max_event_size: 2MiB\n", "  encoding: zstd\n", "  spool.db\n"} {
		if want == "  spool.db\n" {
			want = "path: " + filepath.Join(dir, "spool.db") + "\n"
		}
		if !strings.Contains(r.stdout, want) {
			t.Errorf("show lacks %q:\n%s", want, r.stdout)
		}
	}

	// Secrets are redacted unless asked for, from the file and from the environment.
	writeFile(t, filepath.Join(dir, "config.yml"), "relay:\n  mode: proxy\njetstream:\n  url: nats://alice:url-pass@127.0.0.1:4222\n")
	env := map[string]string{"RELAY_UPSTREAM_URL": "https://key:env-pass@sentry.example.com/"}
	r = run(t, runOpts{env: env}, "-c", dir, "config", "show")
	if r.code != 0 || strings.Contains(r.stdout, "-pass") || !strings.Contains(r.stdout, "url: nats://alice:REDACTED@127.0.0.1:4222\n") ||
		!strings.Contains(r.stdout, "upstream: https://key:REDACTED@sentry.example.com/\n") {
		t.Errorf("secrets not redacted (exit %d, %s):\n%s", r.code, r.stderr, r.stdout)
	}
	r = run(t, runOpts{env: env}, "-c", dir, "config", "show", "--show-secrets")
	if r.code != 0 || !strings.Contains(r.stdout, "alice:url-pass@") || !strings.Contains(r.stdout, "key:env-pass@") {
		t.Errorf("--show-secrets did not show them (exit %d):\n%s", r.code, r.stdout)
	}
	writeFile(t, filepath.Join(dir, "config.yml"), "relay:\n  mode: proxy\njetstream:\n  url: nats://127.0.0.1:4222\n  token: yaml-token\n")
	r = run(t, runOpts{}, "-c", dir, "config", "show")
	if r.code != 0 || strings.Contains(r.stdout, "yaml-token") || !strings.Contains(r.stdout, "token: REDACTED\n") {
		t.Errorf("token not redacted (exit %d, %s):\n%s", r.code, r.stderr, r.stdout)
	}
	writeFile(t, filepath.Join(dir, "config.yml"), "relay:\n  mode: proxy\nlimits:\n  max_event_size: 2MiB\n")

	// No config.yml at all: the defaults.
	r = run(t, runOpts{}, "-c", filepath.Join(dir, "nothing-here"), "config", "show")
	if r.code != 0 || !strings.Contains(r.stdout, "mode: managed\n") {
		t.Fatalf("defaults: %+v", r)
	}

	// A config with a problem is shown, and the problem reported; exit status 1.
	r = run(t, runOpts{env: map[string]string{"RELAY_MODE": "capture"}}, "-c", dir, "config", "show")
	if !strings.Contains(r.stdout, "mode: capture") {
		t.Errorf("invalid config not shown:\n%s", r.stdout)
	}
	oneErrorLine(t, r, 1, `RELAY_MODE: relay.mode: "capture" is not one of managed, proxy, static`)

	// A typo'd key names file, line and key.
	writeFile(t, filepath.Join(dir, "config.yml"), "relay:\n  mode: proxy\n  prot: 1\n")
	r = run(t, runOpts{}, "-c", dir, "config", "show")
	oneErrorLine(t, r, 1, filepath.Join(dir, "config.yml")+`:3: relay.prot: unknown key (did you mean "port"?)`)
	if r.stdout != "" {
		t.Errorf("a config that does not load was printed:\n%s", r.stdout)
	}
}

func TestSeveralProblemsAreListed(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "config.yml"), "relay:\n  mode: foo\n  port: -1\n")
	r := run(t, runOpts{}, "-c", dir, "config", "show")
	if r.code != 1 {
		t.Fatalf("exit %d", r.code)
	}
	lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "error: ") || !strings.HasPrefix(lines[1], "  ") ||
		!strings.Contains(lines[0], "relay.mode") || !strings.Contains(lines[1], "relay.port") {
		t.Fatalf("stderr:\n%s", r.stderr)
	}
}

func TestCredentialsCommands(t *testing.T) {
	dir := filepath.Join(t.TempDir(), ".relay")
	c := func(args ...string) result { return run(t, runOpts{}, append([]string{"-c", dir}, args...)...) }

	r := c("credentials", "show")
	oneErrorLine(t, r, 1, "no stored credentials in "+dir)

	r = c("credentials", "remove")
	if r.code != 0 || r.stdout != "No credentials\n" {
		t.Fatalf("remove without credentials: %+v", r)
	}

	// --stdout prints JSON and stores nothing.
	r = c("credentials", "generate", "--stdout")
	if r.code != 0 {
		t.Fatalf("generate --stdout: %+v", r)
	}
	var printed map[string]string
	if err := json.Unmarshal([]byte(r.stdout), &printed); err != nil || len(printed) != 3 || strings.Count(r.stdout, "\n") != 1 {
		t.Fatalf("--stdout output %q: %v", r.stdout, err)
	}
	if _, err := credentials.Parse(printed["secret_key"], printed["public_key"], printed["id"]); err != nil {
		t.Fatalf("printed credentials do not parse: %v", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatal("--stdout created the config folder")
	}

	r = c("credentials", "generate")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "Generated new credentials\n  relay id: ") {
		t.Fatalf("generate: %+v", r)
	}
	first, _ := credentials.Load(dir)
	if first == nil {
		t.Fatal("nothing stored")
	}
	r = c("credentials", "generate")
	oneErrorLine(t, r, 1, "aborting because credentials already exist. Pass --overwrite to force.")
	r = c("credentials", "generate", "--overwrite")
	second, _ := credentials.Load(dir)
	if r.code != 0 || second.ID == first.ID {
		t.Fatalf("--overwrite: %+v", r)
	}

	r = c("credentials", "show")
	want := "Credentials:\n  relay id: " + second.ID.String() + "\n  public key: " + second.PublicKeyString() + "\n"
	if r.code != 0 || r.stdout != want {
		t.Fatalf("show = %q, want %q", r.stdout, want)
	}
	if strings.Contains(r.stdout, second.SecretKeyString()) {
		t.Fatal("show printed the secret key")
	}

	// set: only the id.
	r = c("credentials", "set", "--id", "29308cac-9783-40e9-98ac-b5503dffe3a4")
	got, _ := credentials.Load(dir)
	if r.code != 0 || got.ID.String() != "29308cac-9783-40e9-98ac-b5503dffe3a4" || !got.SecretKey.Equal(second.SecretKey) {
		t.Fatalf("set --id: %+v", r)
	}
	if !strings.HasPrefix(r.stdout, "Stored updated credentials:\n") {
		t.Fatalf("set output %q", r.stdout)
	}
	r = c("credentials", "set", "--id", "29308cac-9783-40e9-98ac-b5503dffe3a4")
	if r.code != 0 || r.stdout != "Nothing was changed\nRun `relay credentials remove` first to remove all stored credentials.\n" {
		t.Fatalf("unchanged set: %+v", r)
	}
	r = c("credentials", "set", "--id", "random")
	if got2, _ := credentials.Load(dir); r.code != 0 || got2.ID == got.ID || got2.ID.Version() != 4 {
		t.Fatalf("set --id random: %+v", r)
	}

	// set: a key pair (Relay's own test pair), public key checked.
	const seed, pub = "OvXFVm1tIUi8xDTuyHX1SSqdMc8nCt2qU9IUaH5p7oU", "JOaR2bHZ31zYjFojC7UhPOidzfT3qOQgT9WEBw1JAKU"
	r = c("credentials", "set", "-s", seed, "-p", pub)
	if got3, _ := credentials.Load(dir); r.code != 0 || got3.PublicKeyString() != pub {
		t.Fatalf("set key pair: %+v", r)
	}
	r = c("credentials", "set", "-s", seed, "-p", second.PublicKeyString())
	oneErrorLine(t, r, 2, "public key does not belong to the secret key")

	// remove needs confirmation without a terminal.
	r = c("credentials", "remove")
	oneErrorLine(t, r, 2, "not removing credentials without confirmation: pass --yes")
	r = c("credentials", "remove", "--yes")
	if r.code != 0 || r.stdout != "Credentials removed\n" {
		t.Fatalf("remove --yes: %+v", r)
	}
	if got, _ := credentials.Load(dir); got != nil {
		t.Fatal("credentials still there")
	}
}

func TestCredentialsSetWithoutStoredCredentials(t *testing.T) {
	dir := filepath.Join(t.TempDir(), ".relay")
	r := run(t, runOpts{}, "-c", dir, "credentials", "set", "--id", "random")
	oneErrorLine(t, r, 2, "no credentials are stored yet and --secret-key is missing")

	r = run(t, runOpts{}, "-c", dir, "credentials", "set", "-s", "OvXFVm1tIUi8xDTuyHX1SSqdMc8nCt2qU9IUaH5p7oU")
	oneErrorLine(t, r, 2, "no credentials are stored yet and --id is missing")

	// On a terminal the missing parts are asked for.
	r = run(t, runOpts{terminal: true, stdin: "not-a-key\nOvXFVm1tIUi8xDTuyHX1SSqdMc8nCt2qU9IUaH5p7oU\nn\n29308cac-9783-40e9-98ac-b5503dffe3a4\n"}, "-c", dir, "credentials", "set")
	if r.code != 0 {
		t.Fatalf("prompted set: %+v", r)
	}
	got, _ := credentials.Load(dir)
	if got == nil || got.PublicKeyString() != "JOaR2bHZ31zYjFojC7UhPOidzfT3qOQgT9WEBw1JAKU" || got.ID.String() != "29308cac-9783-40e9-98ac-b5503dffe3a4" {
		t.Fatalf("stored %+v\n%s", got, r.stdout)
	}
	if !strings.Contains(r.stdout, "invalid input: invalid secret key") {
		t.Errorf("bad answer not explained:\n%s", r.stdout)
	}

	// remove on a terminal asks; "n" keeps them.
	r = run(t, runOpts{terminal: true, stdin: "n\n"}, "-c", dir, "credentials", "remove")
	if r.code != 0 || !strings.Contains(r.stdout, "Nothing was removed") {
		t.Fatalf("remove declined: %+v", r)
	}
	r = run(t, runOpts{terminal: true, stdin: "y\n"}, "-c", dir, "credentials", "remove")
	if r.code != 0 || !strings.Contains(r.stdout, "Credentials removed") {
		t.Fatalf("remove confirmed: %+v", r)
	}
}

func TestBrokenCredentialsFile(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, credentials.Path(dir), "{not json")
	r := run(t, runOpts{}, "-c", dir, "credentials", "show")
	oneErrorLine(t, r, 1, credentials.Path(dir)+": not valid JSON")
}

func TestGenerateCompletions(t *testing.T) {
	for _, sh := range []string{"bash", "zsh", "fish", "powershell"} {
		r := run(t, runOpts{}, "generate-completions", "-f", sh)
		if r.code != 0 || !strings.Contains(r.stdout, "relay") {
			t.Errorf("%s: exit %d, %d bytes", sh, r.code, len(r.stdout))
		}
	}
	r := run(t, runOpts{env: map[string]string{"SHELL": "/usr/bin/zsh"}}, "generate-completions")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "#compdef relay") {
		t.Errorf("zsh from $SHELL: %q", r.stdout[:min(40, len(r.stdout))])
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
