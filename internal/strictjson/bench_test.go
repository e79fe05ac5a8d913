package strictjson

import "testing"

// BenchmarkDecode decodes a typical decision request body.
//
//	go test ./internal/strictjson -run '^$' -bench Decode -benchmem
func BenchmarkDecode(b *testing.B) {
	in := []byte(`{"subject":{"type":"user","id":"user-2","properties":{"department":"sales","roles":["guest"]}},` +
		`"action":{"name":"read"},"resource":{"type":"report","id":"q3","properties":{"department":"finance"}},"context":{"ip":"10.0.0.1"}}`)
	b.ReportAllocs()
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		if _, err := DecodeObject(in, 32); err != nil {
			b.Fatal(err)
		}
	}
}
