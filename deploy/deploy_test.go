package deploy

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	sigsyaml "sigs.k8s.io/yaml"
)

// render builds a kustomization directory as `kubectl apply -k` would
// (kustomize's own library) and returns its objects as YAML documents.
func render(t *testing.T, dir string) [][]byte {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	m, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	var docs [][]byte
	for _, r := range m.Resources() {
		y, err := r.AsYAML()
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, y)
	}
	return docs
}

// strict decodes a manifest into the Kubernetes API type of its kind,
// refusing any field the type does not have (a misspelt or misplaced key)
// and any value of the wrong type: the schema check.
func strict(t *testing.T, doc []byte) any {
	t.Helper()
	var meta struct {
		Kind string `json:"kind"`
	}
	if err := sigsyaml.Unmarshal(doc, &meta); err != nil {
		t.Fatal(err)
	}
	var obj any
	switch meta.Kind {
	case "Namespace":
		obj = &corev1.Namespace{}
	case "ServiceAccount":
		obj = &corev1.ServiceAccount{}
	case "ConfigMap":
		obj = &corev1.ConfigMap{}
	case "Service":
		obj = &corev1.Service{}
	case "PersistentVolumeClaim":
		obj = &corev1.PersistentVolumeClaim{}
	case "Deployment":
		obj = &appsv1.Deployment{}
	case "PodDisruptionBudget":
		obj = &policyv1.PodDisruptionBudget{}
	case "NetworkPolicy":
		obj = &networkingv1.NetworkPolicy{}
	default:
		t.Fatalf("kind %q has no check here: add its API type", meta.Kind)
	}
	if err := sigsyaml.UnmarshalStrict(doc, obj); err != nil {
		t.Fatalf("%s does not match its schema: %v\n%s", meta.Kind, err, doc)
	}
	return obj
}

// objects renders dir and decodes every object strictly.
func objects(t *testing.T, dir string) []any {
	var out []any
	for _, d := range render(t, dir) {
		out = append(out, strict(t, d))
	}
	return out
}

func find[T any](objs []any) []T {
	var out []T
	for _, o := range objs {
		if v, ok := o.(T); ok {
			out = append(out, v)
		}
	}
	return out
}

// TestKubernetesManifests: both overlays render, every object matches the
// schema of its API type, and the deployment is what docs/deploy.md
// promises: probes on /healthz and /readyz, requests and limits, non-root,
// read-only root file system, every capability dropped, a
// PodDisruptionBudget, the config from the ConfigMap; the Redis overlay
// runs three replicas that may lose one, with the store from a secret.
func TestKubernetesManifests(t *testing.T) {
	for _, tc := range []struct {
		dir          string
		replicas     int32
		minAvailable int
	}{{"kubernetes/base", 1, 0}, {"kubernetes/redis", 3, 2}} {
		t.Run(tc.dir, func(t *testing.T) {
			objs := objects(t, tc.dir)
			deps := find[*appsv1.Deployment](objs)
			if len(deps) != 1 {
				t.Fatalf("%d deployments", len(deps))
			}
			d := deps[0]
			if d.Namespace != "verdict" || *d.Spec.Replicas != tc.replicas {
				t.Errorf("namespace %q replicas %d", d.Namespace, *d.Spec.Replicas)
			}
			pod := d.Spec.Template.Spec
			if pod.SecurityContext == nil || pod.SecurityContext.RunAsNonRoot == nil || !*pod.SecurityContext.RunAsNonRoot ||
				pod.SecurityContext.SeccompProfile == nil || pod.SecurityContext.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
				t.Errorf("pod security context %+v", pod.SecurityContext)
			}
			if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
				t.Error("the service account token is mounted: Verdict never calls the API server")
			}
			c := pod.Containers[0]
			if c.LivenessProbe == nil || c.LivenessProbe.HTTPGet.Path != "/healthz" || c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" {
				t.Errorf("probes: liveness %+v readiness %+v", c.LivenessProbe, c.ReadinessProbe)
			}
			if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
				t.Errorf("resources %+v", c.Resources)
			}
			sc := c.SecurityContext
			if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
				sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0 {
				t.Errorf("container security context %+v", sc)
			}
			mounts := map[string]string{}
			for _, m := range c.VolumeMounts {
				mounts[m.MountPath] = m.Name
			}
			if mounts["/etc/verdict"] == "" || mounts["/var/lib/verdict"] == "" {
				t.Errorf("mounts %v: the config and the data dir", mounts)
			}
			pdbs := find[*policyv1.PodDisruptionBudget](objs)
			if len(pdbs) != 1 {
				t.Fatalf("%d PodDisruptionBudgets", len(pdbs))
			}
			if tc.minAvailable > 0 && (pdbs[0].Spec.MinAvailable == nil || pdbs[0].Spec.MinAvailable.IntValue() != tc.minAvailable || pdbs[0].Spec.MaxUnavailable != nil) {
				t.Errorf("PDB %+v, want minAvailable %d", pdbs[0].Spec, tc.minAvailable)
			}
			// The selectors select the pod.
			for _, sel := range []map[string]string{d.Spec.Selector.MatchLabels, pdbs[0].Spec.Selector.MatchLabels, find[*corev1.Service](objs)[0].Spec.Selector} {
				for k, v := range sel {
					if d.Spec.Template.Labels[k] != v {
						t.Errorf("selector %v does not select the pod (labels %v)", sel, d.Spec.Template.Labels)
					}
				}
			}
			env := map[string]bool{}
			for _, e := range c.Env {
				env[e.Name] = true
			}
			pvcs := find[*corev1.PersistentVolumeClaim](objs)
			if tc.replicas > 1 && (!env["VERDICT_STORE"] || len(pvcs) != 0 || d.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType) {
				t.Errorf("several replicas need the shared store and no volume of their own: env %v, %d PVCs, strategy %s", env, len(pvcs), d.Spec.Strategy.Type)
			}
			if tc.replicas == 1 && (len(pvcs) != 1 || d.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType) {
				t.Errorf("one replica on the embedded store: %d PVCs, strategy %s (never two pods on one store)", len(pvcs), d.Spec.Strategy.Type)
			}
		})
	}
}

// TestKubernetesConfigValidates: the configuration the ConfigMap carries
// passes `verdict config validate` (what serve refuses outside dev
// included), with the key file where the pod mounts it moved by a
// VERDICT_ variable, as an operator may.
func TestKubernetesConfigValidates(t *testing.T) {
	cms := find[*corev1.ConfigMap](objects(t, "kubernetes/base"))
	if len(cms) != 1 {
		t.Fatalf("%d ConfigMaps", len(cms))
	}
	dir := t.TempDir()
	for name, content := range cms[0].Data {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var cfg struct {
		Bundles struct {
			Keys map[string]struct {
				KeyFile string `yaml:"key_file"`
			} `yaml:"keys"`
		} `yaml:"bundles"`
	}
	if err := yaml.Unmarshal([]byte(cms[0].Data["verdict.yaml"]), &cfg); err != nil {
		t.Fatal(err)
	}
	for _, k := range cfg.Bundles.Keys {
		if !strings.HasPrefix(k.KeyFile, "/etc/verdict/") {
			t.Fatalf("key_file %s is not in the ConfigMap's mount", k.KeyFile)
		}
	}
	cmd := exec.Command("go", "run", "./cmd/verdict", "config", "validate", filepath.Join(dir, "verdict.yaml"))
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), "VERDICT_BUNDLES_KEYS={ci: {algorithm: ES256, key_file: "+filepath.Join(dir, "bundle-signing.pub.pem")+"}}")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("verdict config validate: %v\n%s", err, out)
	}
}

var (
	metricName = regexp.MustCompile(`\b((?:verdict|go|process)_[a-z_]+)`)
	// A selector with its matchers, and a by or without clause.
	selector = regexp.MustCompile(`\b((?:verdict|go|process)_[a-z_]+)\{([^}]*)\}`)
	matcher  = regexp.MustCompile(`(\w+)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"`)
	grouping = regexp.MustCompile(`\b(?:by|without)\s*\(([^)]*)\)`)
)

// series maps each exported series name to its labels and their values.
type series map[string]map[string]map[string]bool

// exported starts a real verdict serve and returns the metric names it
// exports (histograms with their _bucket, _sum and _count series), and the
// labels and values of their series (Verdict creates every labelled series
// it can at start: each outcome, reason, stage, code...; a route's with its
// first request).
func exported(t *testing.T) (map[string]bool, series) {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "verdict")
	build := exec.Command("go", "build", "-o", bin, "./cmd/verdict")
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	serve := exec.CommandContext(ctx, bin, "serve", "--dev", "--addr", addr, "--data-dir", t.TempDir(), "--bundle", "../policies/quickstart")
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = serve.Wait() })
	var body []byte
	for i := 0; ; i++ {
		// A route's series appear with its first request: the scrape
		// counts only once a decision was answered (the server may start
		// listening between the two requests).
		resp, err := http.Post("http://"+addr+"/v1/decide", "application/json", strings.NewReader(
			`{"subject":{"type":"user","id":"ed"},"action":{"name":"read"},"resource":{"type":"document","id":"1"}}`))
		if err == nil {
			resp.Body.Close()
			resp, err = http.Get("http://" + addr + "/metrics")
		}
		if err == nil {
			body, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
			break
		}
		if i > 200 {
			t.Fatalf("verdict serve never answered: %v", err)
		}
		time.Sleep(25 * time.Millisecond)
	}
	names, labels := map[string]bool{}, series{}
	sc := bufio.NewScanner(strings.NewReader(string(body)))
	for sc.Scan() {
		if name, rest, ok := strings.Cut(sc.Text(), "{"); ok && !strings.HasPrefix(name, "#") {
			if labels[name] == nil {
				labels[name] = map[string]map[string]bool{}
			}
			body, _, _ := strings.Cut(rest, "}")
			for _, m := range matcher.FindAllStringSubmatch(body, -1) {
				if labels[name][m[1]] == nil {
					labels[name][m[1]] = map[string]bool{}
				}
				labels[name][m[1]][m[3]] = true
			}
		}
		f := strings.Fields(sc.Text())
		if len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
			names[f[2]] = true
			if f[3] == "histogram" || f[3] == "summary" {
				for _, s := range []string{"_bucket", "_sum", "_count"} {
					names[f[2]+s] = true
				}
			}
		}
	}
	// Exported only with a Redis store (docs/operations.md, Metrics).
	for _, n := range []string{"verdict_replica_generation", "verdict_replica_seconds_since_sync", "verdict_replica_healthy",
		"verdict_replica_repairs_total", "verdict_replica_mirror_answers_total"} {
		if names[n] {
			t.Fatalf("%s is exported without Redis: drop it from this list", n)
		}
		names[n] = true
	}
	return names, labels
}

// targetLabels are added by Prometheus (job, instance) or are a
// histogram's bucket bound.
var targetLabels = map[string]bool{"job": true, "instance": true, "le": true}

// checkLabels reports the labels and values that expr selects or groups by
// which no exported series has: a selector that can never match, or a sum
// by a label that is not there, makes an alert that never fires and a
// panel that stays empty.
func checkLabels(t *testing.T, file, expr string, labels series) {
	t.Helper()
	used := map[string]bool{}
	for _, sel := range selector.FindAllStringSubmatch(expr, -1) {
		used[sel[1]] = true
		have, ok := labels[sel[1]]
		if !ok {
			continue // no series here (the verdict_replica_* ones need Redis)
		}
		for _, m := range matcher.FindAllStringSubmatch(sel[2], -1) {
			if targetLabels[m[1]] {
				continue
			}
			if have[m[1]] == nil {
				t.Errorf("%s: %s has no label %s (%s)", file, sel[1], m[1], expr)
			} else if m[2] == "=" && !have[m[1]][m[3]] {
				t.Errorf("%s: %s{%s} has no value %q (%s)", file, sel[1], m[1], m[3], expr)
			}
		}
	}
	for _, g := range grouping.FindAllStringSubmatch(expr, -1) {
		for _, l := range strings.Split(g[1], ",") {
			if l = strings.TrimSpace(l); l == "" || targetLabels[l] {
				continue
			}
			found, known := false, false
			for m := range used {
				if have, ok := labels[m]; ok {
					known = true
					found = found || have[l] != nil
				}
			}
			if known && !found {
				t.Errorf("%s: no metric of %q has the label %s", file, expr, l)
			}
		}
	}
}

// TestAlertsAndDashboardUseExportedMetrics: every metric name the alert
// rules and the dashboard query is one a running Verdict exports.
func TestAlertsAndDashboardUseExportedMetrics(t *testing.T) {
	names, labels := exported(t)
	check := func(file string, exprs []string) {
		t.Helper()
		for _, e := range exprs {
			checkLabels(t, file, e, labels)
		}
		seen := 0
		for _, m := range metricName.FindAllStringSubmatch(strings.Join(exprs, "\n"), -1) {
			seen++
			if !names[m[1]] {
				t.Errorf("%s queries %s, which Verdict does not export", file, m[1])
			}
		}
		if seen == 0 {
			t.Errorf("%s queries no metric", file)
		}
	}
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
				Expr  string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	raw, err := os.ReadFile("prometheus/verdict-alerts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(raw, &rules); err != nil {
		t.Fatal(err)
	}
	var exprs []string
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			exprs = append(exprs, r.Expr)
		}
	}
	check("verdict-alerts.yaml", exprs)

	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	raw, err = os.ReadFile("grafana/verdict-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("the dashboard is not JSON: %v", err)
	}
	exprs = nil
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, q := range p.Targets {
			exprs = append(exprs, q.Expr)
		}
	}
	check("verdict-dashboard.json", exprs)
}

// TestPromtool: the alert rules pass `promtool check rules` and their unit
// tests (`promtool test rules`), with Prometheus's own tool.
func TestPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if gobin := filepath.Join(goEnv(t, "GOPATH"), "bin", "promtool"); fileExists(gobin) {
			promtool, err = gobin, nil
		}
	}
	if err != nil {
		if os.Getenv("VERDICT_REQUIRE_INTEGRATION") == "1" {
			t.Fatal("promtool is not installed (.ci/deploy-check installs it)")
		}
		t.Skip("promtool is not installed: run .ci/deploy-check, or go install github.com/prometheus/prometheus/cmd/promtool@v0.316.0")
	}
	for _, args := range [][]string{{"check", "rules", "verdict-alerts.yaml"}, {"test", "rules", "verdict-alerts_test.yaml"}} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = "prometheus"
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

func goEnv(t *testing.T, key string) string {
	out, err := exec.Command("go", "env", key).Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil || !errors.Is(err, os.ErrNotExist)
}

// TestBootstrapPodIsRestricted: the one-off pod docs/deploy.md runs with
// kubectl run --overrides (client add on the data volume) matches the Pod
// schema and passes the namespace's Pod Security "restricted" admission
// checks, as the Deployment's pod does.
func TestBootstrapPodIsRestricted(t *testing.T) {
	doc, err := os.ReadFile("../docs/deploy.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), "--overrides='")
	overrides, _, closed := strings.Cut(rest, "'")
	if !ok || !closed {
		t.Fatal("docs/deploy.md has no kubectl run --overrides='…'")
	}
	var pod corev1.Pod
	if err := sigsyaml.UnmarshalStrict([]byte(overrides), &pod); err != nil {
		t.Fatalf("the bootstrap pod does not match the Pod schema: %v\n%s", err, overrides)
	}
	psc := pod.Spec.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod security context %+v: restricted needs runAsNonRoot and the RuntimeDefault seccomp profile", psc)
	}
	if len(pod.Spec.Containers) != 1 {
		t.Fatalf("%d containers", len(pod.Spec.Containers))
	}
	c := pod.Spec.Containers[0]
	sc := c.SecurityContext
	if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0 {
		t.Errorf("container security context %+v: restricted needs allowPrivilegeEscalation false and every capability dropped", sc)
	}
	dep := find[*appsv1.Deployment](objects(t, "kubernetes/base"))[0]
	var claim string
	for _, v := range dep.Spec.Template.Spec.Volumes {
		if v.PersistentVolumeClaim != nil {
			claim = v.PersistentVolumeClaim.ClaimName
		}
	}
	if len(pod.Spec.Volumes) != 1 || pod.Spec.Volumes[0].PersistentVolumeClaim == nil || pod.Spec.Volumes[0].PersistentVolumeClaim.ClaimName != claim {
		t.Errorf("the bootstrap pod's volumes %+v: want the Deployment's claim %q", pod.Spec.Volumes, claim)
	}
	if psc != nil && (psc.RunAsUser == nil || *psc.RunAsUser != *dep.Spec.Template.Spec.SecurityContext.RunAsUser) {
		t.Errorf("the bootstrap pod runs as %v, the Deployment as %d", psc.RunAsUser, *dep.Spec.Template.Spec.SecurityContext.RunAsUser)
	}
}
