package redisstore

import (
	"strings"
	"testing"
)

func TestClientOptions(t *testing.T) {
	tests := []struct {
		url     string
		addrs   []string
		master  string
		db      int
		user    string
		pass    string
		sentPw  string
		cluster bool
		tls     bool
	}{
		{url: "redis://localhost:6379/2", addrs: []string{"localhost:6379"}, db: 2},
		{url: "redis://u:p@h:1/0", addrs: []string{"h:1"}, user: "u", pass: "p"},
		{url: "rediss://:p@h:1", addrs: []string{"h:1"}, pass: "p", tls: true},
		{url: "redis+cluster://a:1,b:2,c:3", addrs: []string{"a:1", "b:2", "c:3"}, cluster: true},
		{url: "rediss+cluster://u:p@a:1,b:2?dial_timeout=2s", addrs: []string{"a:1", "b:2"}, cluster: true, user: "u", pass: "p", tls: true},
		{url: "redis+sentinel://s1:26379,s2:26379/mymaster", addrs: []string{"s1:26379", "s2:26379"}, master: "mymaster"},
		{url: "redis+sentinel://pw@s1:26379/mymaster/3", addrs: []string{"s1:26379"}, master: "mymaster", db: 3, pass: "pw"},
		{url: "redis+sentinel://u:p@s1:26379/m?sentinel_password=sp", addrs: []string{"s1:26379"}, master: "m", user: "u", pass: "p", sentPw: "sp"},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			o, err := clientOptions(tt.url)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(o.Addrs, ",") != strings.Join(tt.addrs, ",") || o.MasterName != tt.master || o.DB != tt.db ||
				o.Username != tt.user || o.Password != tt.pass || o.SentinelPassword != tt.sentPw ||
				o.IsClusterMode != tt.cluster || (o.TLSConfig != nil) != tt.tls {
				t.Fatalf("got addrs %v master %q db %d user %q pass %q sentinel pass %q cluster %v tls %v",
					o.Addrs, o.MasterName, o.DB, o.Username, o.Password, o.SentinelPassword, o.IsClusterMode, o.TLSConfig != nil)
			}
		})
	}
}

func TestClientOptionsErrors(t *testing.T) {
	for _, url := range []string{
		"", "localhost:6379", "http://h:1", "redis://h:1/notadb", "redis+cluster://a:1/1",
		"redis+sentinel://s:1", "redis+sentinel://s:1/m/0/x", "redis+cluster://a:1,,b:2",
		"redis://u:s3cret@h:1/x",
	} {
		_, err := clientOptions(url)
		if err == nil {
			t.Errorf("%q: no error", url)
			continue
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%q: error %q contains the password", url, err)
		}
	}
}

func TestRedact(t *testing.T) {
	tests := map[string]string{
		"redis://u:s3cret@h:1/0":                     "redis://u:xxxxx@h:1/0",
		"redis://:s3cret@h:1":                        "redis://:xxxxx@h:1",
		"redis+sentinel://s3cret@s:1/m":              "redis+sentinel://xxxxx@s:1/m",
		"redis://h:1/0":                              "redis://h:1/0",
		"redis+cluster://a:1,b:2":                    "redis+cluster://a:1,b:2",
		"redis+sentinel://s:1/m?sentinel_password=x": "redis+sentinel://s:1/m?sentinel_password=xxxxx",
		"garbage s3cret":                             "redis://?",
	}
	for in, want := range tests {
		if got := Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestIsURL(t *testing.T) {
	for s, want := range map[string]bool{
		"redis://h:1": true, "REDISS://h": true, "redis+sentinel://s/m": true, "redis+cluster://a": true,
		"": false, "bolt": false, "/var/lib/verdict": false, "http://h": false,
	} {
		if got := IsURL(s); got != want {
			t.Errorf("IsURL(%q) = %v", s, got)
		}
	}
}

func TestOptionsValidate(t *testing.T) {
	if err := (Options{}).Validate(); err != nil {
		t.Errorf("zero Options: %v", err)
	}
	if err := (Options{Prefix: "a{b}"}).Validate(); err == nil {
		t.Error("a prefix with braces was accepted")
	}
	if err := (Options{DialTimeout: -1, ReadTimeout: -1}).Validate(); err == nil || !strings.Contains(err.Error(), "dial") || !strings.Contains(err.Error(), "read") {
		t.Errorf("negative timeouts: %v", err)
	}
}
