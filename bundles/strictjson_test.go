package bundles

import (
	"errors"
	"strings"
	"testing"

	"github.com/verdictpdp/verdict/engine"
)

// TestBundleJSONIsStrict: the JSON files of a bundle (data, manifest,
// signatures) are read by the same strict decoder as requests, and a
// problem in a data file is located by line and column.
func TestBundleJSONIsStrict(t *testing.T) {
	data := "{\n  \"admins\": [\"ed\"],\n  \"admins\": [\"eve\"]\n}\n"
	b, err := FromFiles(map[string][]byte{"data.json": []byte(data)}, DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	_, err = b.Data()
	var ce engine.CompileErrors
	if !errors.As(err, &ce) || len(ce) != 1 {
		t.Fatalf("duplicate data member: %v", err)
	}
	if ce[0].File != "data.json" || ce[0].Line != 3 || ce[0].Col != 3 || !strings.Contains(ce[0].Message, `duplicate member "admins"`) {
		t.Fatalf("located as %+v, want data.json:3:3 duplicate member", ce[0])
	}
	for name, raw := range map[string]string{
		"data.json (invalid UTF-8)": "{\"a\": \"\xff\"}",
		"data.json (1e400)":         `{"a": 1e400}`,
	} {
		b, _ := FromFiles(map[string][]byte{"data.json": []byte(raw)}, DefaultLimits())
		if _, err := b.Data(); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
	_, err = FromFiles(map[string][]byte{".manifest": []byte(`{"revision":"a","revision":"b"}`)}, DefaultLimits())
	var re *ReadError
	if !errors.As(err, &re) || !strings.Contains(err.Error(), `1:17: duplicate member "revision"`) {
		t.Fatalf("duplicate manifest member: %v", err)
	}
}
