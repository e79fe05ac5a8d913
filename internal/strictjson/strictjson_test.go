package strictjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/verdictpdp/verdict/engine"
)

func TestDecodeAccepts(t *testing.T) {
	tests := []struct {
		in   string
		want any
	}{
		{`{"a":1,"b":[true,null,"x"],"c":{"d":1.5}}`, map[string]any{"a": int64(1), "b": []any{true, nil, "x"}, "c": map[string]any{"d": 1.5}}},
		{`9223372036854775807`, int64(9223372036854775807)},
		{`9223372036854775808`, 9223372036854775808.0},
		{`1e308`, 1e308},
		{`-0.5e-3`, -0.0005},
		{`"h\u00e9 \ud83d\ude00"`, "hé 😀"},
		{` [] `, []any{}},
		{`{"a":{"a":1},"b":{"a":2}}`, map[string]any{"a": map[string]any{"a": int64(1)}, "b": map[string]any{"a": int64(2)}}},
	}
	for _, tt := range tests {
		got, err := Decode([]byte(tt.in), 64)
		if err != nil {
			t.Errorf("Decode(%s): %v", tt.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Decode(%s) = %#v, want %#v", tt.in, got, tt.want)
		}
	}
}

func TestDecodeRefuses(t *testing.T) {
	tests := []struct {
		name, in string
		// want are substrings of the message.
		want []string
	}{
		{"duplicate member", `{"subject":{"type":"user","id":"ed","id":"root"}}`, []string{`duplicate member "id"`, "/subject"}},
		{"duplicate at top", `{"a":1,"a":1}`, []string{`duplicate member "a"`}},
		{"invalid UTF-8", "{\"id\":\"e\xffd\"}", []string{"UTF-8", "/id"}},
		{"lone surrogate", `{"id":"\ud800"}`, []string{"surrogate"}},
		{"out of range", `{"n":1e400}`, []string{"1e400", "out of the range", "/n"}},
		{"negative out of range", `[-1e999]`, []string{"-1e999"}},
		{"trailing data", `{} {}`, []string{"after the top-level value"}},
		{"trailing garbage", `{} x`, []string{"invalid character"}},
		{"truncated", `{"a":`, []string{"unexpected end of input"}},
		{"empty", ``, []string{"unexpected end of input"}},
		{"bad literal", `{"a":tru}`, []string{"invalid"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode([]byte(tt.in), 64)
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Decode(%q) = %v, want an *Error", tt.in, err)
			}
			for _, w := range tt.want {
				if !strings.Contains(e.Error(), w) {
					t.Errorf("Decode(%q) error %q lacks %q", tt.in, e.Error(), w)
				}
			}
		})
	}
}

func TestDecodeDepth(t *testing.T) {
	ok := strings.Repeat("[", 5) + strings.Repeat("]", 5)
	if _, err := Decode([]byte(ok), 5); err != nil {
		t.Fatalf("depth 5 with bound 5: %v", err)
	}
	deep := strings.Repeat(`{"a":`, 6) + "1" + strings.Repeat("}", 6)
	_, err := Decode([]byte(deep), 5)
	if !errors.Is(err, ErrTooDeep) {
		t.Fatalf("depth 6 with bound 5: %v, want ErrTooDeep", err)
	}
	if !strings.Contains(err.Error(), "deeper than 5") {
		t.Errorf("message %q", err)
	}
}

func TestDuplicateOffsetAndPointer(t *testing.T) {
	in := `{"subject":{"type":"user","id":"ed","id":"root"}}`
	_, err := Decode([]byte(in), 0)
	var e *Error
	if !errors.As(err, &e) {
		t.Fatal(err)
	}
	if e.Pointer != "/subject" {
		t.Errorf("pointer %q, want /subject", e.Pointer)
	}
	if at := strings.LastIndex(in, `"id"`); e.Offset != int64(at) {
		t.Errorf("offset %d, want %d (the second \"id\")", e.Offset, at)
	}
}

func TestDecodeObject(t *testing.T) {
	for in, want := range map[string]string{"": "empty", "  ": "empty", "[]": "not an array", `"x"`: "not a string"} {
		if _, err := DecodeObject([]byte(in), 10); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("DecodeObject(%q) = %v, want %q", in, err, want)
		}
	}
	m, err := DecodeObject([]byte(`{"a":"b"}`), 10)
	if err != nil || m["a"] != "b" {
		t.Fatalf("DecodeObject: %v %v", m, err)
	}
}

func TestLineCol(t *testing.T) {
	b := []byte("{\n  \"a\": 1,\n  \"a\": 2\n}")
	off := int64(strings.LastIndex(string(b), `"a"`))
	if l, c := LineCol(b, off); l != 3 || c != 3 {
		t.Errorf("LineCol = %d:%d, want 3:3", l, c)
	}
	if l, c := LineCol(b, 0); l != 1 || c != 1 {
		t.Errorf("LineCol(0) = %d:%d", l, c)
	}
}

func FuzzDecode(f *testing.F) {
	for _, s := range []string{`{"a":[1,2.5,"x",null,true]}`, `{"a":1,"a":2}`, "\"\xff\"", `1e400`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		// The one-pass decoder accepts exactly what the jsontext path
		// accepts, as the same values.
		fv, fok := decodeFast(b, 32)
		sv, serr := decodeSlow(b, 32)
		if fok != (serr == nil) {
			t.Fatalf("%q: the fast path says ok=%v, the jsontext path %v", b, fok, serr)
		}
		if fok && !reflect.DeepEqual(fv, sv) {
			t.Fatalf("%q: fast %#v, jsontext %#v", b, fv, sv)
		}
		v, err := Decode(b, 32)
		if err != nil {
			if _, ok := errors.AsType[*Error](err); !ok {
				t.Fatalf("error %T %v is not an *Error", err, err)
			}
			return
		}
		// Whatever the strict decoder accepts, encoding/json reads the
		// same way (it is only stricter, never different).
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		var want any
		if err := dec.Decode(&want); err != nil {
			t.Fatalf("strict accepted %q, encoding/json refused it: %v", b, err)
		}
		if !reflect.DeepEqual(v, engine.NormalizeJSON(want)) {
			t.Fatalf("%q: strict %#v, encoding/json %#v", b, v, want)
		}
	})
}
