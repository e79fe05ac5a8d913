package rego

import (
	"math"
	"slices"
	"strings"

	"github.com/verdictpdp/verdict/engine/plan"
)

// Whether two conditions can hold together decides whether two values of
// a rule conflict. Besides the syntactic test (exclusive), satisfiable
// decides it by trying, for every attribute the conditions test, one value
// of each class of values that the tests cannot tell apart: absent, true,
// false, each number constant and a number of each type in each interval
// between them, each string boundary and the string just after it, lists
// holding each subset of the constants tested for, an empty object. Every
// test of a plan leaf depends on the value at its own path only, so a
// satisfying resource exists iff one made of these values does; attributes
// nested in others are not independent and are not decided.

// maxModels bounds the resources satisfiable tries.
const maxModels = 20000

// satisfiable reports whether n holds for some resource; decided is false
// when it cannot tell.
func satisfiable(n *plan.Node) (sat, decided bool) {
	leaves := map[string][]*plan.Node{}
	var collect func(*plan.Node)
	collect = func(n *plan.Node) {
		for _, a := range n.Args {
			collect(a)
		}
		if len(n.Path) > 0 {
			k := pathKey(n.Path)
			leaves[k] = append(leaves[k], n)
		}
	}
	collect(n)
	keys := slices.Sorted(func(yield func(string) bool) {
		for k := range leaves {
			if !yield(k) {
				return
			}
		}
	})
	for i, a := range keys {
		for _, b := range keys[i+1:] {
			if strings.HasPrefix(b, a+"\x00") {
				return false, false // nested attributes
			}
		}
	}
	cands := make([][]any, len(keys))
	total := 1
	for i, k := range keys {
		cands[i] = candidates(leaves[k])
		total *= len(cands[i])
		if total > maxModels {
			return false, false
		}
	}
	paths := make([][]string, len(keys))
	for i, k := range keys {
		paths[i] = leaves[k][0].Path
	}
	idx := make([]int, len(keys))
	for {
		res := map[string]any{"type": "t", "id": "", "properties": map[string]any{}}
		for i, p := range paths {
			if v := cands[i][idx[i]]; v != absent {
				set(res, p, v)
			}
		}
		if n.Eval(res) {
			return true, true
		}
		i := 0
		for ; i < len(idx); i++ {
			idx[i]++
			if idx[i] < len(cands[i]) {
				break
			}
			idx[i] = 0
		}
		if i == len(idx) {
			return false, true
		}
	}
}

// absent marks the candidate of an attribute that is not there.
var absent = &struct{}{}

func set(res map[string]any, path []string, v any) {
	m := res
	for _, k := range path[:len(path)-1] {
		next, ok := m[k].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[k] = next
		}
		m = next
	}
	m[path[len(path)-1]] = v
}

// candidates are one value of each class of values the leaves (all of one
// path) cannot tell apart.
func candidates(leaves []*plan.Node) []any {
	var nums []float64
	var strs []string
	var elems []any
	for _, l := range leaves {
		vals := l.Values
		if l.Value != nil {
			vals = append(slices.Clone(vals), l.Value)
		}
		for _, v := range vals {
			if l.Op == plan.OpContains {
				elems = append(elems, v)
				continue
			}
			switch x := v.(type) {
			case string:
				strs = append(strs, x)
				if l.Op == plan.OpStartsWith {
					if up, ok := successor(x); ok {
						strs = append(strs, up)
					}
				}
			case int64:
				nums = append(nums, float64(x))
			case float64:
				nums = append(nums, x)
			}
		}
	}
	out := []any{}
	if len(leaves[0].Path) == 1 && leaves[0].Path[0] == "id" {
		// the id is a string in every resource
	} else {
		out = append(out, absent, true, false, map[string]any{})
		out = append(out, numberCandidates(nums)...)
		if len(elems) > 6 {
			elems = elems[:6] // more subsets than maxModels allows anyway
		}
		for mask := range 1 << len(elems) {
			l := []any{}
			for i, e := range elems {
				if mask&(1<<i) != 0 {
					l = append(l, e)
				}
			}
			out = append(out, l)
		}
	}
	out = append(out, "")
	for _, s := range strs {
		out = append(out, s, s+"\x00")
	}
	return out
}

// successor is the least string after every string that starts with p.
func successor(p string) (string, bool) {
	b := []byte(p)
	for len(b) > 0 && b[len(b)-1] == 0xff {
		b = b[:len(b)-1]
	}
	if len(b) == 0 {
		return "", false
	}
	b[len(b)-1]++
	return string(b), true
}

// numberCandidates are each constant as an int and a double, and an int
// (where there is one) and a double in each interval between them.
func numberCandidates(nums []float64) []any {
	slices.Sort(nums)
	nums = slices.Compact(nums)
	var out []any
	point := func(x float64) {
		if x == math.Trunc(x) && math.Abs(x) < 1<<53 {
			out = append(out, int64(x))
		}
		out = append(out, x)
	}
	between := func(lo, hi float64) { // lo < x < hi; infinite ends allowed
		if i := math.Floor(lo) + 1; !math.IsInf(lo, 0) && i < hi {
			out = append(out, int64(i))
		} else if i := math.Ceil(hi) - 1; math.IsInf(lo, 0) && !math.IsInf(hi, 0) {
			out = append(out, int64(i))
		}
		switch {
		case math.IsInf(lo, 0) && math.IsInf(hi, 0):
			out = append(out, 0.5)
		case math.IsInf(lo, 0):
			out = append(out, hi-0.5)
		case math.IsInf(hi, 0):
			out = append(out, lo+0.5)
		default:
			out = append(out, lo+(hi-lo)/2)
		}
	}
	if len(nums) == 0 {
		out = append(out, int64(0))
		between(math.Inf(-1), math.Inf(1))
		return out
	}
	between(math.Inf(-1), nums[0])
	for i, x := range nums {
		point(x)
		hi := math.Inf(1)
		if i+1 < len(nums) {
			hi = nums[i+1]
		}
		between(x, hi)
	}
	return out
}
