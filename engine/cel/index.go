package cel

import "github.com/verdictpdp/verdict/engine"

// ruleIndex finds the rules that can apply to a request without looking at
// the others, so that a decision costs what the rules it touches cost, not
// what the policy holds. Rules are indexed by the resource types and by the
// action names they list; a request walks the shorter of its two candidate
// lists (the rules naming its type or action, merged in file order with the
// rules that name none), and each candidate is still checked in full.
type ruleIndex struct {
	byResource, byAction   map[string][]int32
	anyResource, anyAction []int32 // rules that match every type, every action
}

func newRuleIndex(rules []compiledRule) ruleIndex {
	ix := ruleIndex{byResource: map[string][]int32{}, byAction: map[string][]int32{}}
	for i := range rules {
		r := &rules[i]
		if r.resources == nil {
			ix.anyResource = append(ix.anyResource, int32(i))
		}
		for t := range r.resources {
			ix.byResource[t] = append(ix.byResource[t], int32(i))
		}
		if r.actions == nil {
			ix.anyAction = append(ix.anyAction, int32(i))
		}
		for a := range r.actions {
			ix.byAction[a] = append(ix.byAction[a], int32(i))
		}
	}
	return ix
}

// candidates returns the rules that can apply to in, in file order: the
// rules naming its type merged with those naming no type, or the same by
// action, whichever is shorter.
func (ix *ruleIndex) candidates(in *engine.Input) ruleIter {
	byType, byAct := ix.byResource[in.Resource.Type], ix.byAction[in.Action.Name]
	if len(byType)+len(ix.anyResource) <= len(byAct)+len(ix.anyAction) {
		return ruleIter{byType, ix.anyResource}
	}
	return ruleIter{byAct, ix.anyAction}
}

// ruleIter merges two ascending, disjoint lists of rule indexes.
type ruleIter struct{ a, b []int32 }

// next returns the smallest index not yet returned, or false at the end.
func (it *ruleIter) next() (int, bool) {
	var n int32
	switch {
	case len(it.a) == 0 && len(it.b) == 0:
		return 0, false
	case len(it.b) == 0 || (len(it.a) > 0 && it.a[0] < it.b[0]):
		n, it.a = it.a[0], it.a[1:]
	default:
		n, it.b = it.b[0], it.b[1:]
	}
	return int(n), true
}
