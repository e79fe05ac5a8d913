package scim

import (
	"fmt"
	"slices"
	"strings"

	"github.com/elimity-com/scim"
	filter "github.com/scim2/filter-parser/v2"
)

// applyPatch applies RFC 7644 §3.5.2 operations to attrs, as the library
// validated them: without a path the value is a map of attributes; a
// path names an attribute, optionally a sub-attribute, and optionally
// filters the elements of a multi-valued one (members[value eq "x"],
// emails[type eq "work"].value). Add appends to multi-valued attributes
// (without duplicates), replace sets, remove deletes (the matching
// elements, or those listed in the value).
func applyPatch(attrs scim.ResourceAttributes, op scim.PatchOperation) error {
	if op.Path == nil {
		m, ok := op.Value.(map[string]any)
		if !ok {
			return fmt.Errorf("an operation without a path needs an object value")
		}
		for k, v := range m {
			if strings.Contains(k, ".") {
				// Entra ID: {"name.givenName": "x"} without a path.
				parent, sub, _ := strings.Cut(k, ".")
				setSub(attrs, parent, sub, v)
				continue
			}
			if err := applyAttr(attrs, op.Op, k, v); err != nil {
				return err
			}
		}
		return nil
	}
	name := op.Path.AttributePath.AttributeName
	if op.Path.AttributePath.SubAttribute != nil && op.Path.ValueExpression == nil {
		sub := *op.Path.AttributePath.SubAttribute
		if op.Op == scim.PatchOperationRemove {
			if m, ok := attrs[key(attrs, name)].(map[string]any); ok {
				delete(m, sub)
			}
			return nil
		}
		setSub(attrs, name, sub, op.Value)
		return nil
	}
	if op.Path.ValueExpression != nil {
		return applyFiltered(attrs, op, name)
	}
	return applyAttr(attrs, op.Op, name, op.Value)
}

// key is the name attrs uses for attribute name (SCIM names are case
// insensitive), name itself when absent.
func key(attrs scim.ResourceAttributes, name string) string {
	for k := range attrs {
		if strings.EqualFold(k, name) {
			return k
		}
	}
	return name
}

func setSub(attrs scim.ResourceAttributes, parent, sub string, v any) {
	k := key(attrs, parent)
	m, _ := attrs[k].(map[string]any)
	if m == nil {
		m = map[string]any{}
	}
	m[sub] = v
	attrs[k] = m
}

func applyAttr(attrs scim.ResourceAttributes, op, name string, v any) error {
	k := key(attrs, name)
	switch op {
	case scim.PatchOperationReplace:
		attrs[k] = v
	case scim.PatchOperationAdd:
		cur, curList := attrs[k].([]any)
		add, addList := v.([]any)
		if curList && addList {
			for _, a := range add {
				if !slices.ContainsFunc(cur, func(c any) bool { return sameValue(c, a) }) {
					cur = append(cur, a)
				}
			}
			attrs[k] = cur
			return nil
		}
		attrs[k] = v
	case scim.PatchOperationRemove:
		// Entra ID removes members by listing them in the value.
		if drop, ok := v.([]any); ok && len(drop) > 0 {
			cur, _ := attrs[k].([]any)
			attrs[k] = slices.DeleteFunc(slices.Clone(cur), func(c any) bool {
				return slices.ContainsFunc(drop, func(d any) bool { return sameValue(c, d) })
			})
			return nil
		}
		delete(attrs, k)
	default:
		return fmt.Errorf("unknown op %q", op)
	}
	return nil
}

// sameValue reports whether two elements of a multi-valued attribute are
// the same: equal "value" members, else equal as they are.
func sameValue(a, b any) bool {
	am, aok := a.(map[string]any)
	bm, bok := b.(map[string]any)
	if aok && bok {
		return fmt.Sprint(am["value"]) == fmt.Sprint(bm["value"])
	}
	return fmt.Sprint(a) == fmt.Sprint(b)
}

// applyFiltered applies op to the elements of the multi-valued attribute
// name that its value filter selects.
func applyFiltered(attrs scim.ResourceAttributes, op scim.PatchOperation, name string) error {
	expr, ok := op.Path.ValueExpression.(*filter.AttributeExpression)
	if !ok || expr.Operator != filter.EQ {
		return fmt.Errorf("a path filter must be one \"attribute eq value\" comparison")
	}
	field := expr.AttributePath.AttributeName
	match := func(e any) bool {
		m, ok := e.(map[string]any)
		return ok && strings.EqualFold(fmt.Sprint(m[field]), fmt.Sprint(expr.CompareValue))
	}
	k := key(attrs, name)
	cur, _ := attrs[k].([]any)
	switch op.Op {
	case scim.PatchOperationRemove:
		if op.Path.SubAttribute != nil {
			for _, e := range cur {
				if m, ok := e.(map[string]any); ok && match(e) {
					delete(m, *op.Path.SubAttribute)
				}
			}
			return nil
		}
		attrs[k] = slices.DeleteFunc(slices.Clone(cur), match)
	case scim.PatchOperationAdd, scim.PatchOperationReplace:
		found := false
		for _, e := range cur {
			m, ok := e.(map[string]any)
			if !ok || !match(e) {
				continue
			}
			found = true
			if op.Path.SubAttribute != nil {
				m[*op.Path.SubAttribute] = op.Value
			} else if v, ok := op.Value.(map[string]any); ok {
				for vk, vv := range v {
					m[vk] = vv
				}
			}
		}
		if !found {
			// emails[type eq "work"].value on a user without one: add it.
			el := map[string]any{field: expr.CompareValue}
			if op.Path.SubAttribute != nil {
				el[*op.Path.SubAttribute] = op.Value
			} else if v, ok := op.Value.(map[string]any); ok {
				for vk, vv := range v {
					el[vk] = vv
				}
			}
			cur = append(cur, el)
		}
		attrs[k] = cur
	}
	return nil
}
