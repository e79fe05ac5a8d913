package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type envInner struct {
	Max    int           `yaml:"max"`
	Window time.Duration `yaml:"window"`
}

type envServer struct {
	Addr        string            `yaml:"addr"`
	ReadTimeout time.Duration     `yaml:"read_timeout"`
	Metrics     bool              `yaml:"metrics"`
	Origins     []string          `yaml:"origins"`
	Limit       envInner          `yaml:"limit"`
	Headers     map[string]string `yaml:"headers"`
	Secret      string            `yaml:"secret"`
	Ratio       float64           `yaml:"ratio"`
}

type envConfig struct {
	DataDir string     `yaml:"data_dir"`
	Server  envServer  `yaml:"server"`
	Opt     *envInner  `yaml:"opt"`
	Skip    string     `yaml:"-"`
	List    []envInner `yaml:"list"`
}

func TestEnvSetsKeysOverTheFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "c.yaml")
	if err := os.WriteFile(p, []byte("server:\n  addr: 127.0.0.1:1\n  origins: [a]\n  headers: {x: '1'}\n  limit: {max: 5, window: 1m}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var c envConfig
	if _, err := Read(p, &c); err != nil {
		t.Fatal(err)
	}
	err := Env([]string{
		"PATH=/bin",
		"VERDICT_SERVER_ADDR=0.0.0.0:8700",
		"VERDICT_SERVER_READ_TIMEOUT=15s",
		"VERDICT_SERVER_METRICS=true",
		"VERDICT_SERVER_ORIGINS=[https://a.example, https://b.example]",
		"VERDICT_SERVER_LIMIT_MAX=7",
		"VERDICT_SERVER_HEADERS={y: '2'}",
		"VERDICT_SERVER_SECRET=a#b: c=d",
		"VERDICT_SERVER_RATIO=0.25",
		"VERDICT_DATA_DIR=/var/lib/verdict",
		"VERDICT_OPT={max: 3}",
		"VERDICT_LIST=[{max: 1}, {window: 2s}]",
		"VERDICT_CLIENT_SECRET=not ours",    // another tool's variable
		"VERDICT_REQUIRE_INTEGRATION=1",     // the tests' own
		"NOT_VERDICT_SERVER_ADDR=1.2.3.4:5", // another prefix
	}, &c)
	if err != nil {
		t.Fatal(err)
	}
	s := c.Server
	if s.Addr != "0.0.0.0:8700" || s.ReadTimeout != 15*time.Second || !s.Metrics || s.Ratio != 0.25 {
		t.Errorf("scalars: %+v", s)
	}
	if strings.Join(s.Origins, ",") != "https://a.example,https://b.example" {
		t.Errorf("a list replaces the file's: %q", s.Origins)
	}
	if s.Limit.Max != 7 || s.Limit.Window != time.Minute {
		t.Errorf("one key of a section set, the file's other kept: %+v", s.Limit)
	}
	if s.Headers["x"] != "1" || s.Headers["y"] != "2" {
		t.Errorf("a mapping's entries are added: %v", s.Headers)
	}
	if s.Secret != "a#b: c=d" {
		t.Errorf("a string is taken as it is: %q", s.Secret)
	}
	if c.DataDir != "/var/lib/verdict" || c.Opt == nil || c.Opt.Max != 3 {
		t.Errorf("top level and pointer section: %q %+v", c.DataDir, c.Opt)
	}
	if len(c.List) != 2 || c.List[0].Max != 1 || c.List[1].Window != 2*time.Second {
		t.Errorf("a list of sections: %+v", c.List)
	}
}

func TestEnvProblemsAreAllReportedWithoutValues(t *testing.T) {
	var c envConfig
	err := Env([]string{
		"VERDICT_SERVER_ADR=x",
		"VERDICT_SERVER_READ_TIMEOUT=soon-secret",
		"VERDICT_SERVER_METRICS=",
		"VERDICT_SERVER_LIMIT={max: 1, nope: 2}",
		"VERDICT_SERVER_ORIGINS=[unclosed",
		"VERDICT_SERVER_LIMIT_MAX=lots",
		"VERDICT_OTHER_TOOL=1",
	}, &c)
	if err == nil {
		t.Fatal("no error")
	}
	msg := err.Error()
	for _, want := range []string{
		"VERDICT_SERVER_ADR: no configuration key server_adr; did you mean VERDICT_SERVER_ADDR?",
		"VERDICT_SERVER_READ_TIMEOUT (server.read_timeout)",
		"a duration",
		"VERDICT_SERVER_METRICS (server.metrics): empty",
		"VERDICT_SERVER_LIMIT (server.limit): field nope not found",
		"VERDICT_SERVER_ORIGINS (server.origins): not valid YAML",
		"VERDICT_SERVER_LIMIT_MAX (server.limit.max)",
		"a whole number",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("%q missing from:\n%s", want, msg)
		}
	}
	for _, leak := range []string{"soon-secret", "lots", "OTHER_TOOL", "envServer", "time.Duration", "line "} {
		if strings.Contains(msg, leak) {
			t.Errorf("%q in the errors:\n%s", leak, msg)
		}
	}
}

func TestEnvNames(t *testing.T) {
	names, err := EnvNames(envConfig{})
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(names, " ")
	for _, want := range []string{"VERDICT_DATA_DIR", "VERDICT_SERVER", "VERDICT_SERVER_READ_TIMEOUT", "VERDICT_SERVER_LIMIT_WINDOW", "VERDICT_OPT_MAX", "VERDICT_LIST"} {
		if !strings.Contains(" "+got+" ", " "+want+" ") {
			t.Errorf("%s missing from %s", want, got)
		}
	}
	if strings.Contains(got, "SKIP") || strings.Contains(got, "VERDICT_LIST_MAX") {
		t.Errorf("a yaml:\"-\" field or a list's element keys listed: %s", got)
	}
	type clash struct {
		A struct {
			BC int `yaml:"b_c"`
		} `yaml:"a"`
		AB struct {
			C int `yaml:"c"`
		} `yaml:"a_b"`
		Fine int `yaml:"fine"`
	}
	if _, err := EnvNames(clash{}); err == nil || !strings.Contains(err.Error(), "a.b_c and a_b.c") {
		t.Errorf("a collision is not reported: %v", err)
	}
}
