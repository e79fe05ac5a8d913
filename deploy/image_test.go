package deploy

import (
	"bufio"
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// dockerfile is what the tests need of ../Dockerfile: its stages'
// instructions, continuation lines joined, comments dropped.
type dockerfile struct {
	stages []stage
}

type stage struct {
	from, name string
	instr      [][2]string // {"RUN", "rest of the line"}
}

func parseDockerfile(t *testing.T) dockerfile {
	t.Helper()
	raw, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	var df dockerfile
	var line string
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(l, "#") || (l == "" && line == "") {
			continue
		}
		if rest, ok := strings.CutSuffix(l, `\`); ok {
			line += rest + " "
			continue
		}
		line += l
		kw, rest, _ := strings.Cut(strings.TrimSpace(line), " ")
		line = ""
		kw, rest = strings.ToUpper(kw), strings.TrimSpace(rest)
		if kw == "" {
			continue
		}
		if kw == "FROM" {
			f := strings.Fields(rest)
			s := stage{from: f[0]}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				s.name = f[2]
			}
			df.stages = append(df.stages, s)
			continue
		}
		if len(df.stages) == 0 {
			t.Fatalf("Dockerfile: %s before FROM", kw)
		}
		s := &df.stages[len(df.stages)-1]
		s.instr = append(s.instr, [2]string{kw, rest})
	}
	if len(df.stages) < 2 {
		t.Fatalf("Dockerfile: %d stages, want a build stage and the image", len(df.stages))
	}
	return df
}

func (s stage) all(kw string) []string {
	var out []string
	for _, in := range s.instr {
		if in[0] == kw {
			out = append(out, in[1])
		}
	}
	return out
}

// last is the stage's last kw instruction ("" without one), as Docker reads it.
func (s stage) last(kw string) string {
	a := s.all(kw)
	if len(a) == 0 {
		return ""
	}
	return a[len(a)-1]
}

// execForm decodes a JSON-array instruction (ENTRYPOINT, CMD, VOLUME).
func execForm(t *testing.T, kw, v string) []string {
	t.Helper()
	var out []string
	if err := json.Unmarshal([]byte(v), &out); err != nil || len(out) == 0 {
		t.Fatalf("Dockerfile %s %s: not the exec (JSON array) form: distroless has no shell to run the shell form, and SIGTERM must reach verdict itself", kw, v)
	}
	return out
}

// image is the final stage as the container runtime sees it.
type image struct {
	base       string
	uid, gid   int
	env        []string
	volumes    []string
	ports      []string
	entrypoint []string
	cmd        []string
	copies     []copyFrom // COPY --from=build, in order
}

type copyFrom struct {
	src, dst string
	uid, gid int // -1: as built
}

func (df dockerfile) image(t *testing.T) image {
	t.Helper()
	s := df.stages[len(df.stages)-1]
	img := image{base: s.from}
	user := s.last("USER")
	u, g, _ := strings.Cut(user, ":")
	var err1, err2 error
	img.uid, err1 = strconv.Atoi(u)
	img.gid, err2 = strconv.Atoi(g)
	if err1 != nil || err2 != nil || img.uid == 0 || img.gid == 0 {
		// Kubernetes can only enforce runAsNonRoot on a numeric user.
		t.Fatalf("Dockerfile USER %q: want a numeric non-root uid:gid", user)
	}
	for _, e := range s.all("ENV") {
		k, v, ok := strings.Cut(e, "=")
		if !ok || strings.ContainsAny(k, " \t") {
			t.Fatalf("Dockerfile ENV %s: want KEY=value", e)
		}
		img.env = append(img.env, k+"="+strings.Trim(v, `"`))
	}
	for _, v := range s.all("VOLUME") {
		img.volumes = append(img.volumes, execForm(t, "VOLUME", v)...)
	}
	for _, p := range s.all("EXPOSE") {
		img.ports = append(img.ports, strings.Fields(p)...)
	}
	img.entrypoint = execForm(t, "ENTRYPOINT", s.last("ENTRYPOINT"))
	img.cmd = execForm(t, "CMD", s.last("CMD"))
	for _, c := range s.all("COPY") {
		f := strings.Fields(c)
		cp := copyFrom{uid: -1, gid: -1}
		var from string
		for len(f) > 2 && strings.HasPrefix(f[0], "--") {
			switch k, v, _ := strings.Cut(f[0], "="); k {
			case "--from":
				from = v
			case "--chown":
				u, g, _ := strings.Cut(v, ":")
				cp.uid, _ = strconv.Atoi(u)
				cp.gid, _ = strconv.Atoi(g)
			}
			f = f[1:]
		}
		if from == "" || len(f) != 2 {
			t.Fatalf("Dockerfile COPY %s: the image takes only files of the build stage, one at a time", c)
		}
		cp.src, cp.dst = f[0], f[1]
		img.copies = append(img.copies, cp)
	}
	return img
}

// TestDockerfile: the Dockerfile builds what docs/deploy.md says and what
// the Kubernetes Deployment expects: a static binary (CGO_ENABLED=0,
// -trimpath, the version stamped as make does) on a base without libc or
// shell, run as the numeric non-root user the pod runs as, in exec form,
// with the Deployment's arguments, the data directory the configuration
// names as a volume, and the configuration's ports exposed.
func TestDockerfile(t *testing.T) {
	df := parseDockerfile(t)
	img := df.image(t)
	if !strings.HasPrefix(img.base, "gcr.io/distroless/static") && img.base != "scratch" {
		t.Errorf("final stage FROM %s: want distroless static or scratch", img.base)
	}
	var build []string
	for _, s := range df.stages[:len(df.stages)-1] {
		for _, r := range s.all("RUN") {
			if strings.Contains(r, "go build") {
				build = append(build, r)
			}
		}
	}
	if len(build) != 1 {
		t.Fatalf("%d RUN lines with go build, want 1", len(build))
	}
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "-X main.version=", "./cmd/verdict"} {
		if !strings.Contains(build[0], want) {
			t.Errorf("the build %q lacks %s", build[0], want)
		}
	}

	dep := find[*appsv1.Deployment](objects(t, "kubernetes/base"))[0]
	pod := dep.Spec.Template.Spec
	if sc := pod.SecurityContext; sc.RunAsUser == nil || *sc.RunAsUser != int64(img.uid) || sc.RunAsGroup == nil || *sc.RunAsGroup != int64(img.gid) {
		t.Errorf("the pod runs as %v:%v, the image as %d:%d", sc.RunAsUser, sc.RunAsGroup, img.uid, img.gid)
	}
	c := pod.Containers[0]
	if len(c.Command) > 0 || !slices.Equal(c.Args, img.cmd) {
		t.Errorf("the Deployment runs command %q args %q, the image %q %q", c.Command, c.Args, img.entrypoint, img.cmd)
	}

	cfg := podConfig(t)
	if !slices.Contains(img.volumes, cfg.DataDir) {
		t.Errorf("data_dir %s is not a VOLUME of the image (%v): with a read-only root it must be mounted", cfg.DataDir, img.volumes)
	}
	if !slices.Contains(img.env, "VERDICT_DATA_DIR="+cfg.DataDir) {
		t.Errorf("the image's ENV %v does not set VERDICT_DATA_DIR to %s (the CLI in the container needs it)", img.env, cfg.DataDir)
	}
	var mounted bool
	for _, m := range c.VolumeMounts {
		mounted = mounted || m.MountPath == cfg.DataDir
	}
	if !mounted {
		t.Errorf("the Deployment mounts nothing at data_dir %s", cfg.DataDir)
	}
	for _, addr := range []string{cfg.Server.Addr, cfg.Server.AdminAddr, cfg.Server.GRPCAddr} {
		if addr == "" {
			continue
		}
		_, port, err := net.SplitHostPort(addr)
		if err != nil {
			t.Fatalf("server address %q: %v", addr, err)
		}
		if !slices.Contains(img.ports, port) {
			t.Errorf("port %s (%s) is not EXPOSEd (%v)", port, addr, img.ports)
		}
		var inPod bool
		for _, p := range c.Ports {
			inPod = inPod || strconv.Itoa(int(p.ContainerPort)) == port
		}
		if !inPod {
			t.Errorf("port %s is not a containerPort of the Deployment", port)
		}
	}
}

// podConfig is the configuration the ConfigMap of kubernetes/base carries,
// with its files.
type config struct {
	DataDir string `yaml:"data_dir"`
	Server  struct {
		Addr      string `yaml:"addr"`
		AdminAddr string `yaml:"admin_addr"`
		GRPCAddr  string `yaml:"grpc_addr"`
	} `yaml:"server"`
	files map[string]string
}

func podConfig(t *testing.T) config {
	t.Helper()
	cms := find[*corev1.ConfigMap](objects(t, "kubernetes/base"))
	if len(cms) != 1 {
		t.Fatalf("%d ConfigMaps", len(cms))
	}
	var cfg config
	if err := yaml.Unmarshal([]byte(cms[0].Data["verdict.yaml"]), &cfg); err != nil {
		t.Fatal(err)
	}
	cfg.files = cms[0].Data
	return cfg
}

// container runs the image's binary the way `docker run --read-only
// --cap-drop ALL --security-opt no-new-privileges` would, without a Docker
// engine: in its own mount namespace, chrooted into a root file system made
// of the Dockerfile's COPY instructions only and mounted read-only, as the
// image's numeric user with no capabilities and no_new_privs, with /proc,
// /dev, the configuration (read-only) and the data volume mounted. The
// network is the host's (as --network host).
type container struct {
	rootfs, data string
	img          image
	tools        map[string]string
}

func (c *container) command(ctx context.Context, env []string, args ...string) *exec.Cmd {
	script := strings.Join([]string{
		"set -e",
		fmt.Sprintf("%[1]s --bind %[2]s %[2]s", c.tools["mount"], c.rootfs),
		fmt.Sprintf("%s --bind %s %s%s", c.tools["mount"], c.data, c.rootfs, c.img.volumes[0]),
		fmt.Sprintf("%s --rbind /dev %s/dev", c.tools["mount"], c.rootfs),
		fmt.Sprintf("%s -t proc proc %s/proc", c.tools["mount"], c.rootfs),
		fmt.Sprintf("%s -o remount,bind,ro %s", c.tools["mount"], c.rootfs),
		// chroot needs CAP_SYS_CHROOT and, to switch user, CAP_SETUID and
		// CAP_SETGID: they stay in the bounding set only; the switch to a
		// non-zero uid clears every permitted and effective capability, and
		// no_new_privs keeps them from coming back (checked below).
		fmt.Sprintf(`exec %s --no-new-privs --inh-caps=-all --bounding-set=-all,+sys_chroot,+setuid,+setgid %s --userspec=%d:%d --groups= %s %s "$@"`,
			c.tools["setpriv"], c.tools["chroot"], c.img.uid, c.img.gid, c.rootfs, c.img.entrypoint[0]),
	}, "\n")
	argv := append([]string{"--mount", "--propagation", "private", "--fork", "/bin/sh", "-c", script, "sh"}, c.img.entrypoint[1:]...)
	cmd := exec.CommandContext(ctx, c.tools["unshare"], append(argv, args...)...)
	// The container's environment: the image's ENV and what docker run -e
	// adds, nothing of the host's.
	cmd.Env = append(slices.Clone(c.img.env), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// The process group, not just unshare, so that verdict gets it too.
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
	cmd.WaitDelay = 20 * time.Second
	return cmd
}

// TestImageRunsReadOnlyAsNonRoot builds the binary with the Dockerfile's own
// build command, lays out the image's file system from its COPY
// instructions, and runs it as the Dockerfile and the Deployment say
// (read-only root, non-root, no capabilities) with the ConfigMap's
// configuration, through what docs/deploy.md tells an operator to do:
// replace the bundle-signing key, add clients with the CLI on the data
// volume, serve, check /healthz and /readyz (503: no bundle), push a signed
// bundle to the admin port, then /readyz is 200 and a caller with a token
// gets a decision.
//
// It compiles every package anew (-trimpath), which takes minutes on a cold
// build cache, so it runs only with VERDICT_IMAGE_CHECK=1 (.ci/deploy-check,
// make deploy-check). It needs root (mount namespaces, chroot), util-linux
// (unshare, setpriv, mount) and coreutils' chroot: without them it skips,
// and fails under VERDICT_REQUIRE_INTEGRATION=1.
func TestImageRunsReadOnlyAsNonRoot(t *testing.T) {
	if os.Getenv("VERDICT_IMAGE_CHECK") != "1" {
		t.Skip("VERDICT_IMAGE_CHECK is not 1: the image check builds every package anew (minutes on a cold cache); .ci/deploy-check runs it")
	}
	missing := func(why string) {
		t.Helper()
		if os.Getenv("VERDICT_REQUIRE_INTEGRATION") == "1" {
			t.Fatal(why)
		}
		t.Skip(why)
	}
	if runtime.GOOS != "linux" {
		missing("the image check needs Linux namespaces")
	}
	if os.Geteuid() != 0 {
		missing("the image check needs root (a mount namespace and chroot, as a container engine does)")
	}
	tools := map[string]string{}
	for _, name := range []string{"unshare", "setpriv", "mount", "chroot"} {
		p, err := exec.LookPath(name)
		if err != nil {
			missing(name + " is not installed (util-linux, coreutils)")
		}
		tools[name] = p
	}

	df := parseDockerfile(t)
	img := df.image(t)
	if len(img.volumes) != 1 {
		t.Fatalf("VOLUME %v: the check mounts one data volume", img.volumes)
	}
	tmp := t.TempDir()

	// The build stage: COPY . . into WORKDIR, then its RUN lines, with the
	// repository for the work dir and a directory of ours for /out.
	out := filepath.Join(tmp, "out")
	build := df.stages[len(df.stages)-2]
	env := []string{"VERSION=deploy-check"}
	for _, a := range build.all("ARG") {
		if k, _, ok := strings.Cut(a, "="); ok && k != "VERSION" {
			env = append(env, a)
		}
	}
	for _, r := range build.all("RUN") {
		cmd := exec.Command("/bin/sh", "-ec", strings.ReplaceAll(r, "/out", out))
		cmd.Dir = ".."
		cmd.Env = append(os.Environ(), env...)
		start := time.Now()
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("RUN %s: %v\n%s", r, err, b)
		}
		t.Logf("RUN %s (%s)", r, time.Since(start).Round(time.Second))
	}

	// The image's file system: the COPY instructions of the final stage,
	// the mount points a container engine makes, and nothing else (no
	// libc, no shell: stricter than distroless, which adds /etc/passwd,
	// CA certificates and time zones).
	c := &container{rootfs: filepath.Join(tmp, "rootfs"), data: filepath.Join(tmp, "volume"), img: img, tools: tools}
	for _, d := range []string{"", "dev", "proc", "etc/verdict"} {
		if err := os.MkdirAll(filepath.Join(c.rootfs, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, cp := range img.copies {
		src := strings.Replace(cp.src, "/out", out, 1)
		dst := filepath.Join(c.rootfs, cp.dst)
		if err := copyTree(src, dst, cp.uid, cp.gid); err != nil {
			t.Fatalf("COPY %s %s: %v", cp.src, cp.dst, err)
		}
	}
	bin := filepath.Join(c.rootfs, img.entrypoint[0])
	if err := static(bin); err != nil {
		t.Fatalf("%s: %v: it cannot run on %s", img.entrypoint[0], err, img.base)
	}
	// A named volume starts as a copy of the image's directory (docker);
	// a PersistentVolumeClaim as an empty directory given to fsGroup.
	if err := copyTree(filepath.Join(c.rootfs, img.volumes[0]), c.data, -1, -1); err != nil {
		t.Fatalf("the data volume: %v", err)
	}

	// The ConfigMap, mounted read-only at /etc/verdict (inside the
	// read-only root here), with the operator's own bundle-signing key.
	cfg := podConfig(t)
	keys := filepath.Join(tmp, "keys")
	if b, err := exec.Command(bin, "bundle", "keygen", "--out", keys).CombinedOutput(); err != nil {
		t.Fatalf("bundle keygen: %v\n%s", err, b)
	}
	pub, err := os.ReadFile(filepath.Join(keys, "public.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := cfg.files["bundle-signing.pub.pem"]; !ok {
		t.Fatalf("the ConfigMap has no bundle-signing.pub.pem (docs/deploy.md tells operators to replace it)")
	}
	cfg.files["bundle-signing.pub.pem"] = string(pub)
	for name, content := range cfg.files {
		if err := os.WriteFile(filepath.Join(c.rootfs, "etc/verdict", name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	// Clients, with the CLI in the container on the data volume, as
	// docs/deploy.md's bootstrap pod does while the server is stopped.
	secrets := map[string]string{}
	for id, scopes := range map[string][]string{"ci": {"verdict:bundles:write"}, "gateway": {"verdict:decide"}} {
		args := []string{"client", "add", "--id", id, "--json"}
		for _, s := range scopes {
			args = append(args, "--scope", s)
		}
		var stdout, stderr bytes.Buffer
		cmd := c.command(ctx, nil, args...)
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("client add %s in the container: %v\n%s%s", id, err, stdout.String(), stderr.String())
		}
		var added struct {
			Secret string `json:"client_secret"`
		}
		if err := json.Unmarshal(stdout.Bytes(), &added); err != nil || added.Secret == "" {
			t.Fatalf("client add %s printed %q: %v", id, stdout.String(), err)
		}
		secrets[id] = added.Secret
	}

	// Serve with the image's CMD, on free loopback ports (docker run -e).
	addr, admin := freeAddr(t), freeAddr(t)
	var logs bytes.Buffer
	serve := c.command(ctx, []string{"VERDICT_SERVER_ADDR=" + addr, "VERDICT_SERVER_ADMIN_ADDR=" + admin}, img.cmd...)
	serve.Stdout, serve.Stderr = &logs, &logs
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	stopped, pid := false, 0
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		_ = serve.Cancel()
		_ = serve.Wait()
		// unshare may end first: wait for verdict's drain too.
		for i := 0; pid != 0 && i < 400; i++ {
			if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err != nil {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	defer func() {
		stop()
		if t.Failed() {
			t.Logf("verdict's log:\n%s", logs.String())
		}
	}()

	get := func(u string) int {
		resp, err := http.Get(u)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for i := 0; get("http://"+addr+"/healthz") != http.StatusOK; i++ {
		if i > 400 {
			t.Fatalf("/healthz never answered 200")
		}
		time.Sleep(25 * time.Millisecond)
	}
	if code := get("http://" + addr + "/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz before any bundle: %d, want 503", code)
	}
	if code := get("http://" + admin + "/metrics"); code != http.StatusOK {
		t.Errorf("admin /metrics: %d, want 200", code)
	}

	// What the process really runs as: verdict, the only child of unshare
	// (setpriv and chroot exec it).
	pid = child(t, serve.Process.Pid)
	status := procStatus(t, pid)
	for k, want := range map[string]string{
		"Uid": strings.Repeat(strconv.Itoa(img.uid)+"\t", 3) + strconv.Itoa(img.uid), "Gid": strings.Repeat(strconv.Itoa(img.gid)+"\t", 3) + strconv.Itoa(img.gid),
		"Groups": "", "CapPrm": "0000000000000000", "CapEff": "0000000000000000", "CapAmb": "0000000000000000", "NoNewPrivs": "1",
	} {
		if status[k] != want {
			t.Errorf("verdict's %s: %q, want %q", k, status[k], want)
		}
	}
	exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if filepath.Base(exe) != filepath.Base(img.entrypoint[0]) {
		t.Errorf("pid %d runs %s", pid, exe)
	}
	mounts := procMounts(t, pid)
	if !slices.Contains(strings.Split(mounts["/"], ","), "ro") {
		t.Errorf("the root file system is mounted %q, want ro", mounts["/"])
	}
	if !slices.Contains(strings.Split(mounts[img.volumes[0]], ","), "rw") {
		t.Errorf("the data volume is mounted %q, want rw", mounts[img.volumes[0]])
	}

	// A signed bundle, pushed to the admin port: then ready.
	bundle := filepath.Join(tmp, "quickstart.tar.gz")
	if b, err := exec.Command(bin, "bundle", "build", "../policies/quickstart", "-o", bundle,
		"--signing-key", filepath.Join(keys, "private.pem"), "--key-id", "ci").CombinedOutput(); err != nil {
		t.Fatalf("bundle build: %v\n%s", err, b)
	}
	// verdict bundle push gets its token from --server, and the admin
	// listener has no token endpoint: the token comes from the public port
	// (docs/deploy.md shows the same two requests with curl).
	archive, err := os.ReadFile(bundle)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, "http://"+admin+"/v1/bundles", bytes.NewReader(archive))
	req.Header.Set("Content-Type", "application/gzip")
	req.Header.Set("Authorization", "Bearer "+token(t, addr, "ci", secrets["ci"], "verdict:bundles:write"))
	var pushed struct {
		Activated bool `json:"activated"`
	}
	doJSON(t, req, &pushed)
	if !pushed.Activated {
		t.Errorf("the push did not activate the bundle")
	}
	if code := get("http://" + addr + "/readyz"); code != http.StatusOK {
		t.Errorf("/readyz after the push: %d, want 200", code)
	}

	// A gateway's token, then a decision.
	req, _ = http.NewRequest(http.MethodPost, "http://"+addr+"/v1/decide", strings.NewReader(
		`{"subject":{"type":"user","id":"ed","properties":{"roles":["editor"]}},"action":{"name":"update"},"resource":{"type":"document","id":"42","properties":{"owner":"olga"}}}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token(t, addr, "gateway", secrets["gateway"], "verdict:decide"))
	var dec struct {
		Decision bool `json:"decision"`
		Context  struct {
			Revision string `json:"revision"`
		} `json:"context"`
	}
	doJSON(t, req, &dec)
	if !dec.Decision || dec.Context.Revision == "" {
		t.Errorf("decision %+v, want an allow from the pushed bundle", dec)
	}

	// The state is in the volume, where the read-only root sent it.
	stop()
	for _, f := range []string{"verdict.db", "pepper"} {
		if _, err := os.Stat(filepath.Join(c.data, f)); err != nil {
			t.Errorf("the data volume: %v", err)
		}
	}
}

// token gets an access token by client credentials from addr.
func token(t *testing.T, addr, id, secret, scope string) string {
	t.Helper()
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {scope}}
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/oauth2/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(id, secret)
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	doJSON(t, req, &tok)
	return tok.AccessToken
}

func doJSON(t *testing.T, req *http.Request, v any) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		t.Fatalf("%s %s: %d %s", req.Method, req.URL.Path, resp.StatusCode, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s %s: %v: %s", req.Method, req.URL.Path, err, b)
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// static reports why the ELF file at p is not a static executable: one
// with an interpreter or shared libraries needs a libc the image lacks.
func static(p string) error {
	f, err := elf.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			return fmt.Errorf("dynamically linked (it has an interpreter)")
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		return fmt.Errorf("needs shared libraries %v", libs)
	}
	return nil
}

// copyTree copies a file or a directory tree, modes kept, owned by uid:gid
// when they are not -1 (COPY --chown).
func copyTree(src, dst string, uid, gid int) error {
	return filepath.Walk(src, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		to := filepath.Join(dst, rel)
		if fi.IsDir() {
			if err := os.MkdirAll(to, fi.Mode().Perm()); err != nil {
				return err
			}
		} else {
			if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
				return err
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			if err := os.WriteFile(to, b, fi.Mode().Perm()); err != nil {
				return err
			}
		}
		if err := os.Chmod(to, fi.Mode().Perm()); err != nil {
			return err
		}
		if uid >= 0 {
			return os.Lchown(to, uid, gid)
		}
		st := fi.Sys().(*syscall.Stat_t)
		return os.Lchown(to, int(st.Uid), int(st.Gid))
	})
}

// child is the one child process of pid.
func child(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b))
	if len(f) != 1 {
		t.Fatalf("unshare has children %q, want one", f)
	}
	c, err := strconv.Atoi(f[0])
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func procStatus(t *testing.T, pid int) map[string]string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok {
			out[k] = strings.TrimSpace(v)
		}
	}
	return out
}

// procMounts maps each mount point, as pid sees it, to its options.
func procMounts(t *testing.T, pid int) map[string]string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", pid))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 5 {
			out[f[4]] = f[5]
		}
	}
	return out
}
