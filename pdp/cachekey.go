package pdp

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"sync"

	"github.com/verdictpdp/verdict/engine"
)

// Key identifies a cached decision: the generation of the bundle that
// made it and a SHA-256 of the canonical input. Two inputs share a key only if
// they are equal (short of a SHA-256 collision), and the cache compares whole
// keys, so a 64-bit index collision is only a miss. The zero Key is the key
// of no input.
type Key struct {
	gen uint64
	sum [sha256.Size]byte
}

// Index is the 64-bit hash the cache files k under.
func (k Key) Index() uint64 {
	return binary.LittleEndian.Uint64(k.sum[:8]) ^ (k.gen * 0x9E3779B97F4A7C15)
}

// inputKey hashes everything a policy sees of in except the time. Map keys
// are sorted and every value is tagged with its type, so equal inputs hash
// equally and different ones (1 vs "1" vs 1.0) do not. The canonical form
// is written into a pooled buffer and hashed once (no hash.Hash interface
// on the way: writing through it made every string escape).
func inputKey(gen uint64, in *engine.Input) Key {
	bp := keyBufs.Get().(*[]byte)
	h := hasher{b: (*bp)[:0]}
	h.str(in.Subject.Type)
	h.str(in.Subject.ID)
	h.value(in.Subject.Properties)
	h.str(in.Action.Name)
	h.value(in.Action.Properties)
	h.str(in.Resource.Type)
	h.str(in.Resource.ID)
	h.value(in.Resource.Properties)
	h.value(in.Context)
	h.value(in.Token)
	k := Key{gen: gen, sum: sha256.Sum256(h.b)}
	if cap(h.b) <= maxPooledKeyBuf {
		*bp = h.b
		keyBufs.Put(bp)
	}
	return k
}

// keyBufs holds the buffers of canonical inputs; one that grew past
// maxPooledKeyBuf (a huge input) is left to the collector.
var keyBufs = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

const maxPooledKeyBuf = 64 << 10

type hasher struct {
	b []byte
}

func (h *hasher) tag(t byte, n uint64) {
	h.b = append(h.b, t)
	h.b = binary.LittleEndian.AppendUint64(h.b, n)
}

func (h *hasher) str(s string) {
	h.tag('s', uint64(len(s)))
	h.b = append(h.b, s...)
}

func (h *hasher) value(v any) {
	switch t := v.(type) {
	case nil:
		h.tag('n', 0)
	case bool:
		if t {
			h.tag('b', 1)
		} else {
			h.tag('b', 0)
		}
	case string:
		h.str(t)
	case int64:
		h.tag('i', uint64(t))
	case int:
		h.tag('i', uint64(t))
	case float64:
		h.tag('f', math.Float64bits(t))
	case []any:
		h.tag('a', uint64(len(t)))
		for _, e := range t {
			h.value(e)
		}
	case map[string]any:
		if t == nil {
			h.tag('n', 0)
			return
		}
		var small [16]string
		keys := small[:0]
		for k := range t {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		h.tag('m', uint64(len(keys)))
		for _, k := range keys {
			h.str(k)
			h.value(t[k])
		}
	default:
		// Only JSON-shaped values reach here; anything else must never share
		// a key with something else.
		h.tag('?', 0)
		h.str(fmt.Sprintf("%T %#v", t, t))
	}
}
