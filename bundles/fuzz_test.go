package bundles

import (
	"bytes"
	"encoding/json"
	"errors"
	"maps"
	"path"
	"strings"
	"testing"
)

// FuzzReadArchive: any input is read or refused with a *ReadError, never a
// panic, and what is read stays inside the root and the limits.
func FuzzReadArchive(f *testing.F) {
	t := &testing.T{}
	good := tarGz(t, []entry{{name: "/a.verdict.yaml", body: okPolicy}, {name: "/.manifest", body: `{"revision":"x"}`}})
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add(rawTarGz([]byte("../x"), "y"))
	f.Add([]byte("not gzip"))
	l := DefaultLimits()
	l.MaxBytes = 1 << 20
	l.MaxFileBytes = 1 << 19
	l.MaxFiles = 50
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := ReadArchive(bytes.NewReader(data), l)
		if err != nil {
			var re *ReadError
			if !errors.As(err, &re) {
				t.Fatalf("not a ReadError: %v", err)
			}
			return
		}
		var total int64
		for name, body := range b.Files {
			if name == "." || path.Clean(name) != name || strings.HasPrefix(name, "../") || name == ".." || path.IsAbs(name) {
				t.Fatalf("unsafe name %q", name)
			}
			total += int64(len(body))
		}
		if total > l.MaxBytes || len(b.Files) > l.MaxFiles {
			t.Fatalf("limits broken: %d bytes, %d files", total, len(b.Files))
		}
	})
}

// FuzzVerifySignature: any .signatures.json is accepted only if it is the
// real one; anything else is a *SignatureError, never a panic.
func FuzzVerifySignature(f *testing.F) {
	k := newKeyPair(&testing.T{}, "ec")
	b, _ := FromFiles(map[string][]byte{"a.rego": []byte("package a\n"), "data.json": []byte(`{"x":1}`)}, DefaultLimits())
	sig, err := Sign(b, k.priv, "ci", "ES256", "")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(sig)
	f.Add([]byte(`{"signatures":["e30.e30.e30"]}`))
	f.Add([]byte(`{"signatures":[]}`))
	cfg := signingCfg("ci", VerificationKey{Algorithm: "ES256", Key: k.pubPEM})
	cfg, _ = cfg.Load()
	f.Fuzz(func(t *testing.T, data []byte) {
		files := maps.Clone(b.Files)
		files[SignaturesFile] = data
		sb, err := FromFiles(files, DefaultLimits())
		if err != nil {
			t.Fatal(err)
		}
		err = Verify(sb, cfg)
		var se *SignatureError
		if err != nil && !errors.As(err, &se) {
			t.Fatalf("not a SignatureError: %v", err)
		}
		if err == nil {
			// Only re-encodings of the real JWS may pass.
			var got, want signatures
			json.Unmarshal(data, &got)
			json.Unmarshal(sig, &want)
			if len(got.Signatures) != 1 || got.Signatures[0] != want.Signatures[0] {
				t.Fatalf("a forged signature file verified: %q", data)
			}
		}
	})
}
