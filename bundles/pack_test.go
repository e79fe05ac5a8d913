package bundles

import (
	"bytes"
	"maps"
	"testing"
)

func TestPackRoundTrips(t *testing.T) {
	files := map[string][]byte{".manifest": []byte(`{"revision":"p1"}`), "a/b.verdict.yaml": []byte(okPolicy), "data.json": []byte(`{"admins":[]}`)}
	b, err := FromFiles(files, DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	raw, err := Pack(b)
	if err != nil {
		t.Fatal(err)
	}
	again, err := Pack(b)
	if err != nil || !bytes.Equal(raw, again) {
		t.Fatal("packing is not deterministic")
	}
	back, err := ReadArchive(bytes.NewReader(raw), DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	if back.Digest != b.Digest || back.Revision() != "p1" || !maps.EqualFunc(back.Files, files, bytes.Equal) {
		t.Fatalf("round trip: %s %s %v", back.Digest, b.Digest, back.Files)
	}
}
