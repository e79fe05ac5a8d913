package config

import (
	"bytes"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Render writes v (a configuration struct) as YAML the way a file would
// hold it: keys by their yaml tags in declaration order, durations as
// strings ("10s", never nanoseconds), maps in key order. mask, when not
// nil, is given each scalar with its dotted key path (e.g.
// "forward_auth.shared_secret") and returns what to print instead; it is
// how secrets stay out of the output.
func Render(v any, mask func(path, value string) string) ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(node(reflect.ValueOf(v), "", mask)); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

var durationType = reflect.TypeOf(time.Duration(0))

func node(v reflect.Value, path string, mask func(string, string) string) *yaml.Node {
	scalar := func(tag, s string) *yaml.Node {
		if mask != nil {
			s = mask(path, s)
		}
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: s}
	}
	if v.Type() == durationType {
		return scalar("!!str", time.Duration(v.Int()).String())
	}
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Value: "null"}
		}
		return node(v.Elem(), path, mask)
	case reflect.Struct:
		out := &yaml.Node{Kind: yaml.MappingNode}
		t := v.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if !f.IsExported() || name == "-" || name == "" {
				continue
			}
			out.Content = append(out.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: name}, node(v.Field(i), join(path, name), mask))
		}
		return out
	case reflect.Map:
		out := &yaml.Node{Kind: yaml.MappingNode}
		keys := v.MapKeys()
		slices.SortFunc(keys, func(a, b reflect.Value) int { return strings.Compare(fmt.Sprint(a), fmt.Sprint(b)) })
		for _, k := range keys {
			name := fmt.Sprint(k)
			out.Content = append(out.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: name}, node(v.MapIndex(k), join(path, name), mask))
		}
		return out
	case reflect.Slice, reflect.Array:
		out := &yaml.Node{Kind: yaml.SequenceNode, Style: yaml.FlowStyle}
		for i := range v.Len() {
			e := node(v.Index(i), path, mask)
			if e.Kind != yaml.ScalarNode {
				out.Style = 0 // a list of sections is easier to read in block style
			}
			out.Content = append(out.Content, e)
		}
		return out
	case reflect.String:
		return scalar("!!str", v.String())
	case reflect.Bool:
		return scalar("!!bool", strconv.FormatBool(v.Bool()))
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return scalar("!!int", strconv.FormatInt(v.Int(), 10))
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return scalar("!!int", strconv.FormatUint(v.Uint(), 10))
	case reflect.Float32, reflect.Float64:
		return scalar("", strconv.FormatFloat(v.Float(), 'g', -1, 64))
	}
	return scalar("!!str", fmt.Sprint(v.Interface()))
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}
