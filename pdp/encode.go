package pdp

import (
	"encoding/json"
	"strconv"
)

// AppendJSON appends the body of r (as Body renders it) to b, exactly as
// encoding/json would write it, without reflection for the usual answer: a
// decision, its reasons and ids. Anything rarer (an explanation, warnings)
// is handed to encoding/json.
func (r Result) AppendJSON(b []byte) ([]byte, error) {
	if !r.Batch {
		return r.Evaluations[0].AppendJSON(b)
	}
	b = append(b, `{"evaluations":[`...)
	for i := range r.Evaluations {
		if i > 0 {
			b = append(b, ',')
		}
		var err error
		if b, err = r.Evaluations[i].AppendJSON(b); err != nil {
			return nil, err
		}
	}
	return append(b, "]}"...), nil
}

// AppendJSON appends r as encoding/json writes it ({"decision": …} alone
// when r.Bare).
func (r *Response) AppendJSON(b []byte) ([]byte, error) {
	if r.Bare {
		b = append(b, `{"decision":`...)
		b = strconv.AppendBool(b, r.Decision)
		return append(b, '}'), nil
	}
	c := &r.Context
	if len(c.Explain) > 0 || len(c.Warnings) > 0 {
		out, err := json.Marshal(r)
		return append(b, out...), err
	}
	b = append(b, `{"decision":`...)
	b = strconv.AppendBool(b, r.Decision)
	b = append(b, `,"context":{"reasons":`...)
	if c.Reasons == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i, s := range c.Reasons {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, s)
		}
		b = append(b, ']')
	}
	b = append(b, `,"revision":`...)
	b = appendString(b, c.Revision)
	for _, f := range [...]struct{ name, v string }{
		{`,"decision_id":`, c.DecisionID}, {`,"error":`, c.Error}, {`,"code":`, c.Code}, {`,"reason":`, c.Reason},
	} {
		if f.v != "" {
			b = append(b, f.name...)
			b = appendString(b, f.v)
		}
	}
	if c.TTL != 0 {
		b = append(b, `,"ttl":`...)
		b = strconv.AppendInt(b, int64(c.TTL), 10)
	}
	if c.Signature != "" {
		b = append(b, `,"signature":`...)
		b = appendString(b, c.Signature)
	}
	return append(b, "}}"...), nil
}

// appendString appends s as a JSON string. Plain printable ASCII is
// copied; anything encoding/json escapes (quotes, backslashes, control
// characters, <, >, &, non-ASCII) goes through encoding/json itself, so
// that the bytes are always the same as its own.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			out, _ := json.Marshal(s) // a string always encodes
			return append(b, out...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
