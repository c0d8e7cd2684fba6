package main

// The deployment files — docker-compose.yml, deploy/compose/*.yml,
// deploy/kubernetes/*.yaml, deploy/Dockerfile and the NATS configs — are
// checked here against the code they start, so that neither can drift from
// the other: every relay command line is parsed by this command's own cobra
// tree and its config loaded and validated as `relay run` does (the run
// command is executed with its start replaced by a capture), every
// environment variable must be one the relay reads, every probe path is
// requested from a relay started with that config, the NATS command lines
// and config files are parsed by nats-server's own parser (the version in
// go.mod, which must also be the image's), and the compose files and
// manifests are decoded by their own projects' loaders (compose-go with the
// Compose schema, k8s.io/api types decoded strictly), so an unknown key
// anywhere fails. TestDeploymentFilesCatchDrift feeds broken copies to the
// same checks and requires each to fail: a check that passes on anything is
// no check.

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/nats-io/nats-server/v2/server"
	"go.yaml.in/yaml/v3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	k8syaml "sigs.k8s.io/yaml"

	"github.com/relayhq/relay/internal/app"
	"github.com/relayhq/relay/internal/config"
	"github.com/relayhq/relay/internal/credentials"
	"github.com/relayhq/relay/internal/fakesentry"
)

const repoRoot = "../.."

// The deployment files, relative to the repository root.
var (
	dockerfilePath   = "deploy/Dockerfile"
	composeFiles     = []string{"docker-compose.yml", "deploy/compose/single-box.yml"}
	kubeDir          = "deploy/kubernetes"
	natsValuesPath   = "deploy/kubernetes/nats/values.yaml"
	relayBinary      = "/usr/local/bin/relay"
	fakesentryBinary = "/usr/local/bin/fakesentry"
)

// files reads deployment files from the repository, or from overrides (the
// broken copies of TestDeploymentFilesCatchDrift), keyed by path relative to
// the repository root.
type files struct {
	root      string
	overrides map[string][]byte
}

func (f files) read(rel string) ([]byte, error) {
	if b, ok := f.overrides[rel]; ok {
		return b, nil
	}
	return os.ReadFile(filepath.Join(f.root, rel))
}

// rel turns an absolute path under the root (compose-go resolves bind
// sources) back into a repository path.
func (f files) rel(abs string) string {
	r, err := filepath.Rel(f.root, abs)
	if err != nil {
		return abs
	}
	return filepath.ToSlash(r)
}

// problems collects what is wrong, each naming where.
type problems []string

func (p *problems) add(where, format string, args ...any) {
	*p = append(*p, where+": "+fmt.Sprintf(format, args...))
}

// image is what the Dockerfile's final stage gives every container.
type image struct {
	entrypoint, cmd []string
	env             map[string]string
	volumes         []string        // VOLUME mount points
	binaries        map[string]bool // paths COPYed into the final stage
}

func parseDockerfile(f files, p *problems) image {
	img := image{env: map[string]string{}, binaries: map[string]bool{}}
	b, err := f.read(dockerfilePath)
	if err != nil {
		p.add(dockerfilePath, "%v", err)
		return img
	}
	for n, line := range strings.Split(string(b), "\n") {
		where := fmt.Sprintf("%s:%d", dockerfilePath, n+1)
		inst, rest, _ := strings.Cut(strings.TrimSpace(line), " ")
		switch strings.ToUpper(inst) {
		case "FROM": // a new stage: only the last one's settings count
			img = image{env: map[string]string{}, binaries: map[string]bool{}}
		case "ENTRYPOINT", "CMD":
			var argv []string
			if err := json.Unmarshal([]byte(rest), &argv); err != nil {
				p.add(where, "%s must be in exec form (a JSON array), so a signal reaches the relay: %v", inst, err)
			}
			if inst == "ENTRYPOINT" {
				img.entrypoint = argv
			} else {
				img.cmd = argv
			}
		case "ENV":
			for _, kv := range strings.Fields(rest) {
				k, v, ok := strings.Cut(kv, "=")
				if !ok {
					p.add(where, "ENV %q: write KEY=value", kv)
				}
				img.env[k] = v
			}
		case "VOLUME":
			img.volumes = append(img.volumes, strings.Fields(rest)...)
		case "COPY":
			if f := strings.Fields(rest); len(f) > 0 {
				img.binaries[f[len(f)-1]] = true
			}
		}
	}
	if len(img.entrypoint) == 0 {
		p.add(dockerfilePath, "the final stage has no ENTRYPOINT")
	}
	for _, bin := range []string{relayBinary, fakesentryBinary} {
		if !img.binaries[bin] {
			p.add(dockerfilePath, "the final stage does not COPY %s", bin)
		}
	}
	return img
}

// relayProc is one relay process that a deployment file starts.
type relayProc struct {
	where   string
	args    []string          // after the binary
	env     map[string]string // image ENV and the file's
	secrets map[string]bool   // env names whose value comes from a secret
	files   map[string][]byte // container path → content of a mounted file
	volumes []string          // container paths on storage that outlives the container
	ports   map[int]bool      // container ports reachable by others
	grace   time.Duration     // SIGTERM → SIGKILL
	probes  map[int][]string  // HTTP paths probed, by the container port they use
	nats    map[string]int    // NATS servers of the deployment: host → client port
	natsN   int               // NATS cluster size
	hosts   map[string][]int  // other services of the deployment: host → ports they listen on
}

// relayEnv lists every environment variable the relay reads.
func relayEnv() map[string]bool {
	m := map[string]bool{"RELAY_SECRET_KEY": true, "RELAY_PUBLIC_KEY": true, "RELAY_ID": true}
	for k := range config.EnvVars() {
		m[k] = true
	}
	// The Go runtime's own, legitimate in a container spec.
	for _, k := range []string{"GOMAXPROCS", "GOMEMLIMIT", "GOGC", "GODEBUG", "TZ"} {
		m[k] = true
	}
	return m
}

// testCreds are what the relay gets for env values that come from a secret
// (RELAY_SECRET_KEY and friends): real credentials, so that the start-up
// checks of a managed relay run.
var testCreds = func() *credentials.Credentials {
	c, err := credentials.Generate()
	if err != nil {
		panic(err)
	}
	return c
}()

func secretValue(name string) string {
	switch name {
	case "RELAY_SECRET_KEY":
		return testCreds.SecretKeyString()
	case "RELAY_PUBLIC_KEY":
		return testCreds.PublicKeyString()
	case "RELAY_ID":
		return testCreds.ID.String()
	}
	return "secret"
}

// checked is a relay process that passed `relay run`'s checks.
type checked struct {
	proc  relayProc
	cfg   *config.Config
	creds *credentials.Credentials
}

// checkRelay runs the process's command line through this command as `relay`
// would, with its config files and environment, and checks what it would
// run against the rest of the deployment.
func checkRelay(t *testing.T, r relayProc, p *problems) *checked {
	known := relayEnv()
	env := map[string]string{}
	for k, v := range r.env {
		if !known[k] {
			p.add(r.where, "environment variable %s is not one the relay reads", k)
		}
		env[k] = v
	}
	for k := range r.secrets {
		if !known[k] {
			p.add(r.where, "environment variable %s is not one the relay reads", k)
		}
		env[k] = secretValue(k)
	}

	// The config folder: a fresh directory holding the files mounted there.
	args := slices.Clone(r.args)
	dir := ""
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case (a == "--config" || a == "-c") && i+1 < len(args):
			dir = args[i+1]
			args[i+1] = "<config>"
		case strings.HasPrefix(a, "--config="):
			dir = strings.TrimPrefix(a, "--config=")
			args[i] = "--config=<config>"
		}
	}
	if dir == "" {
		p.add(r.where, "no --config: the relay would use .relay in whatever its working directory is")
		return nil
	}
	local := t.TempDir()
	for i, a := range args {
		args[i] = strings.ReplaceAll(a, "<config>", local)
	}
	for path, content := range r.files {
		if filepath.Dir(path) == filepath.Clean(dir) {
			if err := os.WriteFile(filepath.Join(local, filepath.Base(path)), content, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}

	var got checked
	var errOut bytes.Buffer
	c := &cli{
		in: strings.NewReader(""), out: io.Discard, errOut: &errOut,
		isTerminal: func() bool { return false },
		lookupEnv: func(k string) (string, bool) {
			v, ok := env[k]
			return v, ok
		},
		runApp: func(_ context.Context, cfg *config.Config, creds *credentials.Credentials, _ *slog.Logger) error {
			got.cfg, got.creds = cfg, creds
			return nil
		},
	}
	if len(args) == 0 || args[len(args)-1] == "" {
		p.add(r.where, "empty command line")
		return nil
	}
	if code := execute(context.Background(), args, c); code != 0 || got.cfg == nil {
		msg := strings.TrimSpace(strings.ReplaceAll(errOut.String(), local, dir))
		if got.cfg == nil && code == 0 {
			msg = "the command line does not run the relay (`run`)"
		}
		p.add(r.where, "relay %s: %s", strings.Join(r.args, " "), msg)
		return nil
	}
	got.proc = r
	cfg := got.cfg
	// Paths in the config folder, as the container sees them.
	inContainer := func(path string) string {
		if rest, ok := strings.CutPrefix(path, local); ok {
			return filepath.Join(dir, rest)
		}
		return path
	}

	// What the relay would do, against what the deployment around it gives.
	if cfg.Ingest.Enabled {
		if !r.ports[cfg.Relay.Port] {
			p.add(r.where, "ingest listens on port %d (relay.port) but the file exposes %v", cfg.Relay.Port, keys(r.ports))
		}
	}
	if cfg.Ingest.Enabled || len(r.probes) > 0 {
		if ip := net.ParseIP(cfg.Relay.Host); ip == nil || !ip.IsUnspecified() {
			p.add(r.where, "relay.host is %s: nothing outside the container reaches it (0.0.0.0 does)", cfg.Relay.Host)
		}
	}
	for port := range r.probes {
		if port != cfg.Relay.Port {
			p.add(r.where, "probes use port %d, the relay listens on %d", port, cfg.Relay.Port)
		}
	}
	if cfg.Worker.Enabled {
		if path := inContainer(cfg.Spool.Path); !onVolume(filepath.Dir(path), r.volumes) {
			p.add(r.where, "the spool (%s) is not on a volume (%v): a restart would lose what it holds", path, r.volumes)
		}
	}
	if cfg.JetStream.Embedded() {
		if path := inContainer(cfg.JetStream.StoreDir); !onVolume(path, r.volumes) {
			p.add(r.where, "the JetStream store (%s) is not on a volume (%v): a restart would lose what it holds", path, r.volumes)
		}
	}
	if cfg.Limits.ShutdownTimeout >= r.grace {
		p.add(r.where, "limits.shutdown_timeout (%s) is not below the time the orchestrator waits before SIGKILL (%s)", cfg.Limits.ShutdownTimeout, r.grace)
	}
	if !cfg.JetStream.Embedded() {
		for _, u := range strings.Split(cfg.JetStream.URL, ",") {
			pu, err := url.Parse(strings.TrimSpace(u))
			if err != nil {
				continue // Validate said so
			}
			port, ok := r.nats[pu.Hostname()]
			if !ok {
				p.add(r.where, "jetstream.url names %s, which is no NATS server of this deployment (%v)", pu.Hostname(), keys(r.nats))
			} else if pu.Port() != strconv.Itoa(port) {
				p.add(r.where, "jetstream.url names port %s of %s, which listens for clients on %d", pu.Port(), pu.Hostname(), port)
			}
		}
		if cfg.JetStream.Replicas > r.natsN {
			p.add(r.where, "jetstream.replicas is %d but the NATS cluster has %d servers", cfg.JetStream.Replicas, r.natsN)
		}
	}
	if u, err := url.Parse(cfg.Relay.Upstream); err == nil && !strings.Contains(u.Hostname(), ".") {
		// A bare host name is another service of the deployment.
		ports, ok := r.hosts[u.Hostname()]
		port := u.Port()
		if port == "" {
			port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
		}
		if !ok {
			p.add(r.where, "relay.upstream %s names no service of this deployment", cfg.Relay.Upstream)
		} else if !slices.Contains(ports, atoi(port)) {
			p.add(r.where, "relay.upstream %s: %s listens on %v", cfg.Relay.Upstream, u.Hostname(), ports)
		}
	}
	return &got
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

func keys[K comparable, V any](m map[K]V) []K {
	out := make([]K, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

func onVolume(path string, volumes []string) bool {
	for _, v := range volumes {
		if path == v || strings.HasPrefix(path, strings.TrimRight(v, "/")+"/") {
			return true
		}
	}
	return false
}

// checkProbes starts the relay with the config the file gives it — only
// what cannot exist here is replaced: the NATS cluster by an embedded
// server, Sentry by a fake that accepts the relay, the listen address by a
// free local port — and requests every probe path; each must answer 200.
func checkProbes(t *testing.T, c *checked, p *problems) {
	if len(c.proc.probes) == 0 {
		return
	}
	up := fakesentry.New(fakesentry.Options{})
	defer up.Close()
	if c.creds != nil {
		up.AllowRelay(c.creds.PublicKeyString())
	}
	cfg := c.cfg
	port := freeLocalPort(t)
	dir := t.TempDir()
	for _, kv := range [][2]string{
		{"relay.upstream", up.URL()},
		{"relay.host", "127.0.0.1"},
		{"relay.port", strconv.Itoa(port)},
		{"jetstream.url", ""},
		{"jetstream.replicas", "1"},
		{"jetstream.store_dir", filepath.Join(dir, "jetstream")},
		{"spool.path", filepath.Join(dir, "spool.db")},
		{"limits.shutdown_timeout", "5s"},
	} {
		if err := cfg.Override(kv[0], kv[1], "deployment test"); err != nil {
			t.Fatal(err)
		}
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("%s: the adapted config: %v", c.proc.where, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx, cfg, c.creds, slog.New(slog.NewTextHandler(io.Discard, nil))) }()
	defer func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Errorf("%s: the relay did not stop", c.proc.where)
		}
	}()
	client := &http.Client{Timeout: 5 * time.Second}
	for _, paths := range c.proc.probes {
		for _, path := range paths {
			deadline := time.Now().Add(30 * time.Second)
			for {
				status := 0
				resp, err := client.Get(fmt.Sprintf("http://127.0.0.1:%d%s", port, path))
				if err == nil {
					status = resp.StatusCode
					resp.Body.Close()
				}
				if status == http.StatusOK {
					break
				}
				if status != 0 && status != http.StatusServiceUnavailable {
					// Not "not ready yet": the relay does not serve this path.
					p.add(c.proc.where, "probe %s: answered %d, want 200", path, status)
					break
				}
				select {
				case err := <-done:
					p.add(c.proc.where, "the relay stopped before probe %s answered: %v", path, err)
					return
				default:
				}
				if time.Now().After(deadline) {
					p.add(c.proc.where, "probe %s: answered %d (%v), want 200", path, status, err)
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
	}
}

func freeLocalPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// natsVersion is the nats-server version the relay is built with (go.mod).
func natsVersion(t *testing.T) string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		t.Fatal("no build info")
	}
	for _, d := range bi.Deps {
		if d.Path == "github.com/nats-io/nats-server/v2" {
			return strings.TrimPrefix(d.Version, "v")
		}
	}
	t.Fatal("nats-server is not a dependency")
	return ""
}

var imageVersionRE = regexp.MustCompile(`^(\d+\.\d+\.\d+)(-[a-z0-9.]+)?$`)

// checkNATSImageTag requires the NATS image to be the nats-server version
// the relay is built and tested with: the config is parsed by that version.
func checkNATSImageTag(where, tag, want string, p *problems) {
	m := imageVersionRE.FindStringSubmatch(tag)
	if m == nil {
		p.add(where, "NATS image tag %q names no exact version (want %s, the nats-server in go.mod)", tag, want)
	} else if m[1] != want {
		p.add(where, "NATS image %s, but the relay is built and tested with nats-server %s (go.mod)", tag, want)
	}
}

// checkNATSCommand parses a nats-server command line and the config file it
// names with nats-server's own parser.
func checkNATSCommand(t *testing.T, where string, args []string, mounted map[string][]byte, p *problems) *server.Options {
	args = slices.Clone(args)
	for i := 0; i+1 < len(args); i++ {
		if args[i] == "--config" || args[i] == "-c" || args[i] == "-config" {
			content, ok := mounted[args[i+1]]
			if !ok {
				p.add(where, "nats-server config %s is not mounted", args[i+1])
				return nil
			}
			local := filepath.Join(t.TempDir(), "nats.conf")
			if err := os.WriteFile(local, content, 0o600); err != nil {
				t.Fatal(err)
			}
			args[i+1] = local
		}
	}
	fs := flag.NewFlagSet("nats-server", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	noop := func() {}
	opts, err := server.ConfigureOptions(fs, args, noop, noop, noop)
	if err != nil {
		p.add(where, "nats-server %s: %v", strings.Join(args, " "), err)
		return nil
	}
	if !opts.JetStream {
		p.add(where, "JetStream is not enabled")
	}
	if opts.ServerName == "" {
		p.add(where, "no server name: JetStream in a cluster needs a unique one")
	}
	return opts
}

// checkCompose checks one compose file.
func checkCompose(t *testing.T, f files, rel string, img image, p *problems) []*checked {
	content, err := f.read(rel)
	if err != nil {
		p.add(rel, "%v", err)
		return nil
	}
	abs := filepath.Join(f.root, rel)
	proj, err := loader.LoadWithContext(context.Background(), types.ConfigDetails{
		WorkingDir:  filepath.Dir(abs),
		ConfigFiles: []types.ConfigFile{{Filename: abs, Content: content}},
		Environment: types.Mapping{}, // nothing set: the files' defaults apply
	}, func(o *loader.Options) { o.SetProjectName("relay", true) })
	if err != nil {
		p.add(rel, "docker compose would refuse it: %v", err)
		return nil
	}

	natsVer := natsVersion(t)
	natsHosts := map[string]int{}
	hosts := map[string][]int{}
	var natsOpts []*server.Options
	var natsNames []string
	mountedFiles := func(s types.ServiceConfig) map[string][]byte {
		m := map[string][]byte{}
		for _, v := range s.Volumes {
			if v.Type == types.VolumeTypeBind {
				b, err := f.read(f.rel(v.Source))
				if err != nil {
					p.add(rel, "service %s mounts %s: %v", s.Name, v.Source, err)
					continue
				}
				m[v.Target] = b
			}
		}
		return m
	}
	volumes := func(s types.ServiceConfig) []string {
		var out []string
		for _, v := range s.Volumes {
			if v.Type == types.VolumeTypeVolume {
				out = append(out, v.Target)
			}
		}
		// Each VOLUME of the image that nothing else is mounted on gets an
		// anonymous volume per container, which compose keeps across a
		// recreate.
		for _, iv := range img.volumes {
			if !slices.ContainsFunc(s.Volumes, func(v types.ServiceVolumeConfig) bool { return v.Target == iv }) {
				out = append(out, iv)
			}
		}
		return out
	}

	// NATS servers first: the relays are checked against them.
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for n := range proj.Services {
			if !yield(n) {
				return
			}
		}
	}) {
		s := proj.Services[name]
		where := rel + ": service " + name
		img, tag, _ := strings.Cut(s.Image, ":")
		switch {
		case img == "nats":
			checkNATSImageTag(where, tag, natsVer, p)
			opts := checkNATSCommand(t, where, s.Command, mountedFiles(s), p)
			if opts == nil {
				continue
			}
			natsHosts[name] = opts.Port
			natsOpts = append(natsOpts, opts)
			natsNames = append(natsNames, name)
			if !onVolume(opts.StoreDir, volumes(s)) {
				p.add(where, "the JetStream store (%s) is not on a volume", opts.StoreDir)
			}
			if s.HealthCheck != nil && opts.HTTPPort > 0 && !strings.Contains(strings.Join(s.HealthCheck.Test, " "), ":"+strconv.Itoa(opts.HTTPPort)+"/") {
				p.add(where, "the healthcheck %v does not ask the monitoring port %d", s.HealthCheck.Test, opts.HTTPPort)
			}
		case slices.Equal(s.Entrypoint, []string{fakesentryBinary}):
			port := checkFakesentry(t, where, s.Command, p)
			hosts[name] = []int{port}
		}
	}
	for i, o := range natsOpts {
		where := rel + ": service " + natsNames[i]
		if o.Cluster.Name != natsOpts[0].Cluster.Name {
			p.add(where, "cluster name %q, %s has %q", o.Cluster.Name, natsNames[0], natsOpts[0].Cluster.Name)
		}
		for j, other := range natsOpts {
			if j != i && other.ServerName == o.ServerName {
				p.add(where, "server name %q is also %s's", o.ServerName, natsNames[j])
			}
		}
		var routes []string
		for _, r := range o.Routes {
			routes = append(routes, r.Hostname())
			if r.Port() != strconv.Itoa(natsOpts[0].Cluster.Port) {
				p.add(where, "route %s: the cluster port is %d", r, natsOpts[0].Cluster.Port)
			}
		}
		for _, n := range natsNames {
			if !slices.Contains(routes, n) {
				p.add(where, "the routes %v do not name %s", routes, n)
			}
		}
	}

	var out []*checked
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for n := range proj.Services {
			if !yield(n) {
				return
			}
		}
	}) {
		s := proj.Services[name]
		entry := img.entrypoint
		cmd := img.cmd
		if s.Entrypoint != nil {
			entry, cmd = s.Entrypoint, nil
		}
		if s.Command != nil {
			cmd = s.Command
		}
		if s.Build == nil && !strings.HasPrefix(s.Image, "relay") || len(entry) == 0 || entry[0] != relayBinary {
			continue // not a relay process
		}
		r := relayProc{
			where:   rel + ": service " + name,
			args:    append(slices.Clone(entry[1:]), cmd...),
			env:     map[string]string{},
			files:   mountedFiles(s),
			volumes: volumes(s),
			ports:   map[int]bool{},
			grace:   10 * time.Second, // docker's default
			nats:    natsHosts,
			natsN:   len(natsHosts),
			hosts:   hosts,
		}
		for k, v := range img.env {
			r.env[k] = v
		}
		for k, v := range s.Environment {
			if v == nil {
				p.add(r.where, "environment %s has no value", k)
				continue
			}
			r.env[k] = *v
		}
		for _, port := range s.Ports {
			r.ports[int(port.Target)] = true
		}
		for _, port := range s.Expose {
			r.ports[atoi(port)] = true
		}
		if s.StopGracePeriod != nil {
			r.grace = time.Duration(*s.StopGracePeriod)
		}
		if c := checkRelay(t, r, p); c != nil {
			out = append(out, c)
		}
	}
	return out
}

// checkFakesentry runs the demo upstream's command line through the real
// binary (on a free local port) and returns the port it was told to use.
func checkFakesentry(t *testing.T, where string, args []string, p *problems) int {
	args = slices.Clone(args)
	port := 0
	for i := 0; i+1 < len(args); i++ {
		if args[i] == "-listen" || args[i] == "--listen" {
			_, ps, err := net.SplitHostPort(args[i+1])
			if err != nil {
				p.add(where, "-listen %s: %v", args[i+1], err)
			}
			port = atoi(ps)
			args[i+1] = "127.0.0.1:0"
		}
	}
	if port == 0 {
		p.add(where, "fakesentry without -listen HOST:PORT listens on 127.0.0.1, out of other containers' reach")
	}
	bin := buildCommand(t, "../fakesentry")
	cmd := exec.Command(bin, args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var errOut bytes.Buffer
	cmd.Stderr = &errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	first := make([]byte, 64)
	n, _ := io.ReadAtLeast(out, first, 1)
	if _, _, err := net.SplitHostPort(strings.TrimSpace(string(first[:n]))); err != nil {
		_ = cmd.Wait()
		p.add(where, "fakesentry %s did not start: %s", strings.Join(args, " "), strings.TrimSpace(errOut.String()))
	}
	return port
}

// kubeObjects are the manifests of deploy/kubernetes, decoded strictly.
type kubeObjects struct {
	deployments  []appsv1.Deployment
	statefulSets []appsv1.StatefulSet
	services     []corev1.Service
	configMaps   []corev1.ConfigMap
	pdbs         []policyv1.PodDisruptionBudget
}

func decodeKube(f files, names []string, p *problems) kubeObjects {
	var k kubeObjects
	for _, name := range names {
		rel := kubeDir + "/" + name
		b, err := f.read(rel)
		if err != nil {
			p.add(rel, "%v", err)
			continue
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		for i := 0; ; i++ {
			var doc map[string]any
			if err := dec.Decode(&doc); err == io.EOF {
				break
			} else if err != nil {
				p.add(rel, "document %d: %v", i+1, err)
				break
			}
			if doc == nil {
				continue
			}
			js, err := json.Marshal(doc)
			if err != nil {
				p.add(rel, "document %d: %v", i+1, err)
				continue
			}
			where := fmt.Sprintf("%s: document %d (%v %v)", rel, i+1, doc["kind"], doc["metadata"])
			var target any
			switch fmt.Sprint(doc["apiVersion"], " ", doc["kind"]) {
			case "apps/v1 Deployment":
				k.deployments = append(k.deployments, appsv1.Deployment{})
				target = &k.deployments[len(k.deployments)-1]
			case "apps/v1 StatefulSet":
				k.statefulSets = append(k.statefulSets, appsv1.StatefulSet{})
				target = &k.statefulSets[len(k.statefulSets)-1]
			case "v1 Service":
				k.services = append(k.services, corev1.Service{})
				target = &k.services[len(k.services)-1]
			case "v1 ConfigMap":
				k.configMaps = append(k.configMaps, corev1.ConfigMap{})
				target = &k.configMaps[len(k.configMaps)-1]
			case "policy/v1 PodDisruptionBudget":
				k.pdbs = append(k.pdbs, policyv1.PodDisruptionBudget{})
				target = &k.pdbs[len(k.pdbs)-1]
			default:
				p.add(where, "a kind this test does not know: add it here with its checks")
				continue
			}
			if err := k8syaml.UnmarshalStrict(js, target); err != nil {
				p.add(where, "%v", err)
			}
		}
	}
	return k
}

// natsChart is the part of the NATS Helm chart's values the relay depends on.
type natsChart struct {
	release string
	values  struct {
		Config struct {
			Cluster struct {
				Enabled  bool `json:"enabled"`
				Replicas int  `json:"replicas"`
			} `json:"cluster"`
			JetStream struct {
				Enabled   bool `json:"enabled"`
				FileStore struct {
					Enabled bool `json:"enabled"`
				} `json:"fileStore"`
			} `json:"jetstream"`
		} `json:"config"`
		Container struct {
			Image struct {
				Tag string `json:"tag"`
			} `json:"image"`
		} `json:"container"`
	}
}

func checkKube(t *testing.T, f files, img image, p *problems) []*checked {
	entries, err := os.ReadDir(filepath.Join(f.root, kubeDir))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if !e.IsDir() && (strings.HasSuffix(e.Name(), ".yaml") || strings.HasSuffix(e.Name(), ".yml")) {
			names = append(names, e.Name())
		}
	}
	k := decodeKube(f, names, p)
	if len(k.deployments) == 0 || len(k.statefulSets) == 0 || len(k.configMaps) == 0 || len(k.services) == 0 || len(k.pdbs) == 0 {
		p.add(kubeDir, "want an ingest Deployment, a worker StatefulSet, Services, PodDisruptionBudgets and the ConfigMap; found %d, %d, %d, %d, %d",
			len(k.deployments), len(k.statefulSets), len(k.services), len(k.pdbs), len(k.configMaps))
	}

	// The NATS cluster of the Helm chart, as the README installs it.
	chart := natsChart{release: "nats"}
	if b, err := f.read(natsValuesPath); err != nil {
		p.add(natsValuesPath, "%v", err)
	} else if err := k8syaml.Unmarshal(b, &chart.values); err != nil {
		p.add(natsValuesPath, "%v", err)
	}
	v := chart.values.Config
	if !v.Cluster.Enabled || !v.JetStream.Enabled || !v.JetStream.FileStore.Enabled {
		p.add(natsValuesPath, "want config.cluster, config.jetstream and its fileStore enabled")
	}
	checkNATSImageTag(natsValuesPath, chart.values.Container.Image.Tag, natsVersion(t), p)
	natsHosts := map[string]int{}
	for i := 0; i < v.Cluster.Replicas; i++ {
		natsHosts[fmt.Sprintf("%s-%d.%s-headless", chart.release, i, chart.release)] = 4222
	}

	type workload struct {
		where  string
		labels map[string]string
		pod    corev1.PodSpec
		claims []string // volume claim template names
	}
	var workloads []workload
	for _, d := range k.deployments {
		workloads = append(workloads, workload{kubeDir + ": Deployment " + d.Name, d.Spec.Template.Labels, d.Spec.Template.Spec, nil})
		if !selects(d.Spec.Selector.MatchLabels, d.Spec.Template.Labels) {
			p.add(kubeDir+": Deployment "+d.Name, "its selector does not select its own pods")
		}
	}
	for _, s := range k.statefulSets {
		w := workload{where: kubeDir + ": StatefulSet " + s.Name, labels: s.Spec.Template.Labels, pod: s.Spec.Template.Spec}
		for _, c := range s.Spec.VolumeClaimTemplates {
			w.claims = append(w.claims, c.Name)
		}
		workloads = append(workloads, w)
		if !selects(s.Spec.Selector.MatchLabels, s.Spec.Template.Labels) {
			p.add(w.where, "its selector does not select its own pods")
		}
		if !slices.ContainsFunc(k.services, func(svc corev1.Service) bool {
			return svc.Name == s.Spec.ServiceName && svc.Spec.ClusterIP == corev1.ClusterIPNone
		}) {
			p.add(w.where, "serviceName %q is not a headless Service of these manifests", s.Spec.ServiceName)
		}
	}
	for _, svc := range k.services {
		var pods []workload
		for _, w := range workloads {
			if selects(svc.Spec.Selector, w.labels) {
				pods = append(pods, w)
			}
		}
		if len(pods) == 0 {
			p.add("Service "+svc.Name, "selects no pods of these manifests")
		}
		for _, port := range svc.Spec.Ports {
			for _, w := range pods {
				if _, ok := containerPort(w.pod, port.TargetPort); !ok {
					p.add("Service "+svc.Name, "targetPort %s is no port of %s", port.TargetPort.String(), w.where)
				}
			}
		}
	}
	for _, w := range workloads {
		if !slices.ContainsFunc(k.pdbs, func(b policyv1.PodDisruptionBudget) bool {
			return b.Spec.Selector != nil && selects(b.Spec.Selector.MatchLabels, w.labels)
		}) {
			p.add(w.where, "no PodDisruptionBudget covers it")
		}
	}

	var out []*checked
	for _, w := range workloads {
		grace := 30 * time.Second // Kubernetes' default
		if w.pod.TerminationGracePeriodSeconds != nil {
			grace = time.Duration(*w.pod.TerminationGracePeriodSeconds) * time.Second
		}
		for _, c := range w.pod.Containers {
			entry, cmd := img.entrypoint, img.cmd
			if c.Command != nil {
				entry, cmd = c.Command, nil
			}
			if c.Args != nil {
				cmd = c.Args
			}
			if len(entry) == 0 || entry[0] != relayBinary {
				p.add(w.where, "container %s does not run %s", c.Name, relayBinary)
				continue
			}
			r := relayProc{
				where:   w.where + " container " + c.Name,
				args:    append(slices.Clone(entry[1:]), cmd...),
				env:     map[string]string{},
				secrets: map[string]bool{},
				files:   map[string][]byte{},
				ports:   map[int]bool{},
				probes:  map[int][]string{},
				grace:   grace,
				nats:    natsHosts,
				natsN:   v.Cluster.Replicas,
			}
			for k, v := range img.env {
				r.env[k] = v
			}
			for _, e := range c.Env {
				switch {
				case e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil:
					r.secrets[e.Name] = true
				case e.ValueFrom != nil:
					p.add(r.where, "env %s: only literal values and secretKeyRef are checked here", e.Name)
				default:
					r.env[e.Name] = e.Value
				}
			}
			for _, port := range c.Ports {
				r.ports[int(port.ContainerPort)] = true
			}
			for _, m := range c.VolumeMounts {
				vol, ok := podVolume(w.pod, m.Name)
				switch {
				case slices.Contains(w.claims, m.Name):
					r.volumes = append(r.volumes, m.MountPath)
				case !ok:
					p.add(r.where, "mounts %s, which is no volume of the pod", m.Name)
				case vol.ConfigMap != nil:
					cm := findConfigMap(k.configMaps, vol.ConfigMap.Name)
					if cm == nil {
						p.add(r.where, "volume %s: ConfigMap %s is not in these manifests", m.Name, vol.ConfigMap.Name)
						continue
					}
					for key, data := range cm.Data {
						r.files[filepath.Join(m.MountPath, key)] = []byte(data)
					}
				case vol.PersistentVolumeClaim != nil:
					r.volumes = append(r.volumes, m.MountPath)
				}
			}
			for _, probe := range []*corev1.Probe{c.LivenessProbe, c.ReadinessProbe, c.StartupProbe} {
				if probe == nil {
					continue
				}
				if probe.HTTPGet == nil {
					p.add(r.where, "a probe that is not httpGet")
					continue
				}
				port, ok := containerPort(w.pod, probe.HTTPGet.Port)
				if !ok {
					p.add(r.where, "probe port %s is no port of the container", probe.HTTPGet.Port.String())
				}
				r.probes[port] = append(r.probes[port], probe.HTTPGet.Path)
			}
			if c := checkRelay(t, r, p); c != nil {
				out = append(out, c)
			}
		}
	}
	return out
}

func selects(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func containerPort(pod corev1.PodSpec, port intstr.IntOrString) (int, bool) {
	for _, c := range pod.Containers {
		for _, cp := range c.Ports {
			if (port.Type == intstr.String && cp.Name == port.StrVal) || (port.Type == intstr.Int && cp.ContainerPort == port.IntVal) {
				return int(cp.ContainerPort), true
			}
		}
	}
	return 0, false
}

func podVolume(pod corev1.PodSpec, name string) (corev1.Volume, bool) {
	for _, v := range pod.Volumes {
		if v.Name == name {
			return v, true
		}
	}
	return corev1.Volume{}, false
}

func findConfigMap(cms []corev1.ConfigMap, name string) *corev1.ConfigMap {
	for i := range cms {
		if cms[i].Name == name {
			return &cms[i]
		}
	}
	return nil
}

// checkDeployment runs every check over the repository's files (with
// overrides) and returns the problems and the relay processes of the
// Kubernetes manifests that passed (for checkProbes).
func checkDeployment(t *testing.T, overrides map[string][]byte) (problems, []*checked) {
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	f := files{root: root, overrides: overrides}
	var p problems
	img := parseDockerfile(f, &p)
	var all []*checked
	for _, rel := range composeFiles {
		all = append(all, checkCompose(t, f, rel, img, &p)...)
	}
	kube := checkKube(t, f, img, &p)
	all = append(all, kube...)

	// What the files must run, so that an emptied file cannot pass.
	roles := map[string]int{}
	for _, c := range all {
		file, _, _ := strings.Cut(c.proc.where, ":")
		roles[file+" "+c.cfg.Role()]++
	}
	for _, want := range []struct {
		file, role string
		n          int
	}{
		{"docker-compose.yml", config.RoleIngest, 2},
		{"docker-compose.yml", config.RoleWorker, 1},
		{"deploy/compose/single-box.yml", config.RoleAll, 1},
		{kubeDir, config.RoleIngest, 1},
		{kubeDir, config.RoleWorker, 1},
	} {
		if got := roles[want.file+" "+want.role]; got < want.n {
			p.add(want.file, "runs %d relay processes with role %s, want %d (found %v)", got, want.role, want.n, roles)
		}
	}
	for _, c := range kube {
		if c.cfg.Ingest.Enabled && len(c.proc.probes) == 0 {
			p.add(c.proc.where, "ingest without liveness and readiness probes")
		}
	}
	return p, kube
}

func TestDeploymentFiles(t *testing.T) {
	p, kube := checkDeployment(t, nil)
	for _, c := range kube {
		checkProbes(t, c, &p)
	}
	for _, problem := range p {
		t.Error(problem)
	}
}

// Each broken copy of a deployment file must be caught by the checks above.
func TestDeploymentFilesCatchDrift(t *testing.T) {
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	read := func(rel string) string {
		b, err := os.ReadFile(filepath.Join(root, rel))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	replace := func(rel, old, new string) map[string][]byte {
		s := read(rel)
		if !strings.Contains(s, old) {
			t.Fatalf("%s does not contain %q: update this test with the file", rel, old)
		}
		return map[string][]byte{rel: []byte(strings.Replace(s, old, new, 1))}
	}
	tests := []struct {
		name      string
		overrides map[string][]byte
		want      string // a problem containing this
	}{
		{"unknown relay flag in compose", replace("docker-compose.yml", `["run", "--role", "worker"]`, `["run", "--rol", "worker"]`), "unknown flag: --rol"},
		{"unknown role in compose", replace("docker-compose.yml", `["run", "--role", "worker"]`, `["run", "--role", "workers"]`), `"workers" is not one of`},
		{"unknown compose key", replace("docker-compose.yml", "stop_grace_period: 30s\n  depends_on", "stop_grace: 30s\n  depends_on"), "stop_grace"},
		{"env the relay does not read", replace("docker-compose.yml", "RELAY_UPSTREAM_URL: ${", "RELAY_UPSTREAM: ${"), "RELAY_UPSTREAM is not one the relay reads"},
		{"unknown config key", replace("deploy/compose/cluster/config.yml", "  replicas: 3", "  replica: 3"), `jetstream.replica: unknown key`},
		{"config no longer mounted", replace("docker-compose.yml", "/data/config.yml:ro\n\nvolumes", "/data/other.yml:ro\n\nvolumes"), "managed mode needs credentials"},
		{"spool off the volume", replace("docker-compose.yml", "- type: volume\n        target: /data\n", "- type: tmpfs\n        target: /data\n"), "is not on a volume"},
		{"unknown NATS key", replace("deploy/compose/nats.conf", "http_port: 8222", "http_prot: 8222"), "http_prot"},
		{"NATS image of another version", replace("docker-compose.yml", "image: nats:2.15.2-alpine", "image: nats:2.10.0-alpine"), "nats-server 2.15.2"},
		{"NATS route missing", replace("deploy/compose/nats.conf", "    nats-route://nats-3:6222\n", ""), "do not name nats-3"},
		{"relay pointed at a NATS port nothing listens on", replace("deploy/compose/cluster/config.yml", "nats://nats-3:4222", "nats://nats-3:4223"), "port 4223 of nats-3"},
		{"unknown fakesentry flag", replace("docker-compose.yml", `"-report", "10s"`, `"-reprt", "10s"`), "fakesentry"},
		{"unknown Kubernetes field", replace("deploy/kubernetes/ingest.yaml", "readinessProbe:", "readynessProbe:"), "readynessProbe"},
		{"unknown key in the ConfigMap", replace("deploy/kubernetes/configmap.yaml", "      format: json", "      formats: json"), "logging.formats: unknown key"},
		{"unknown relay flag in a manifest", replace("deploy/kubernetes/worker.yaml", `"run", "--role", "worker"`, `"run", "--roles", "worker"`), "unknown flag: --roles"},
		{"secret env the relay does not read", replace("deploy/kubernetes/worker.yaml", "- name: RELAY_ID", "- name: RELAY_IDENTITY"), "RELAY_IDENTITY is not one the relay reads"},
		{"grace period shorter than the shutdown", replace("deploy/kubernetes/worker.yaml", "terminationGracePeriodSeconds: 60", "terminationGracePeriodSeconds: 20"), "not below the time the orchestrator waits"},
		{"spool mount moved", replace("deploy/kubernetes/worker.yaml", "mountPath: /var/lib/relay", "mountPath: /var/lib/spool"), "is not on a volume"},
		{"PDB dropped", replace("deploy/kubernetes/worker.yaml", "kind: PodDisruptionBudget", "kind: ConfigMap"), "document 3"},
		{"NATS cluster smaller than the stream's replicas", replace(natsValuesPath, "    replicas: 3", "    replicas: 1"), "jetstream.replicas is 3"},
		{"emptied compose file", map[string][]byte{"docker-compose.yml": []byte("# nothing\n")}, "docker-compose.yml"},
		{"compose file without relays", map[string][]byte{"docker-compose.yml": []byte("services:\n  fakesentry:\n    image: relay:local\n")}, "docker-compose.yml: runs 0 relay processes with role ingest"},
		{"emptied manifest", map[string][]byte{"deploy/kubernetes/ingest.yaml": []byte("# nothing\n")}, "want an ingest Deployment"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, _ := checkDeployment(t, tt.overrides)
			for _, problem := range p {
				if strings.Contains(problem, tt.want) {
					return
				}
			}
			t.Errorf("no problem mentions %q; got %d:\n%s", tt.want, len(p), strings.Join(p, "\n"))
		})
	}
}

// A probe path the relay does not serve is caught by starting it, for the
// ingest Deployment and for the worker-only StatefulSet alike.
func TestDeploymentProbeDrift(t *testing.T) {
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	overrides := map[string][]byte{}
	for _, name := range []string{"ingest.yaml", "worker.yaml"} {
		rel := kubeDir + "/" + name
		s, err := os.ReadFile(filepath.Join(root, rel))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(s), "/api/relay/healthcheck/ready/") {
			t.Fatalf("%s has no readiness probe to break", rel)
		}
		overrides[rel] = []byte(strings.Replace(string(s), "/api/relay/healthcheck/ready/", "/healthz", 1))
	}
	p, kube := checkDeployment(t, overrides)
	if len(p) > 0 {
		t.Fatalf("unexpected problems: %v", p)
	}
	for _, c := range kube {
		checkProbes(t, c, &p)
	}
	for _, workload := range []string{"Deployment relay-ingest", "StatefulSet relay-worker"} {
		if !slices.ContainsFunc(p, func(s string) bool {
			return strings.Contains(s, workload) && strings.Contains(s, "probe /healthz: answered 404")
		}) {
			t.Errorf("%s: a probe of /healthz was not caught: %v", workload, p)
		}
	}
}

// buildCommand builds another command of this module (once per test run)
// and returns the binary's path.
func buildCommand(t *testing.T, pkgDir string) string {
	t.Helper()
	builds.Lock()
	defer builds.Unlock()
	key := "pkg:" + pkgDir
	if bin, ok := builds.bins[key]; ok {
		return bin
	}
	if builds.dir == "" {
		dir, err := os.MkdirTemp("", "relay-cmd-bin-")
		if err != nil {
			t.Fatal(err)
		}
		builds.dir = dir
	}
	bin := filepath.Join(builds.dir, filepath.Base(pkgDir))
	if out, err := exec.Command("go", "build", "-o", bin, pkgDir).CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkgDir, err, out)
	}
	builds.bins[key] = bin
	return bin
}
