package pdp

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"maps"
	"math"

	"github.com/verdictpdp/verdict/bundles"
	"github.com/verdictpdp/verdict/engine"
)

// SearchKind is the entity an AuthZEN search looks for.
type SearchKind byte

// The kinds of search.
const (
	SearchSubject SearchKind = iota + 1
	SearchResource
	SearchAction
)

// String is subject, resource or action.
func (k SearchKind) String() string {
	switch k {
	case SearchSubject:
		return "subject"
	case SearchResource:
		return "resource"
	}
	return "action"
}

// searchRequest is a decoded, validated AuthZEN search body.
type searchRequest struct {
	kind SearchKind
	// base is the input every candidate is evaluated with, the searched
	// entity's id (or the action's name) a placeholder.
	base *engine.Input
	// props are the properties the request gives the searched entity;
	// they win over the candidate's stored properties.
	props map[string]any
	// token is page.token ("" on a first page); limit is page.limit, 0 for
	// none given.
	token string
	limit int
}

// searchPlaceholder stands for the searched entity's id while the rest of
// the request is validated and hashed; it is never evaluated.
const searchPlaceholder = "\x00"

// parseSearch validates a search body: subject, action and resource as in
// an evaluation, except that the searched entity needs only its type (a
// stray id is ignored) and an action search ignores any action. page is an
// optional {token, limit}; unknown fields anywhere are ignored. Errors are
// 400s naming the field.
func parseSearch(body []byte, maxDepth int, kind SearchKind) (*searchRequest, error) {
	doc, err := DecodeObject(body, maxDepth)
	if err != nil {
		return nil, err
	}
	delete(doc, "token") // claims come only from verified credentials
	r := &searchRequest{kind: kind}
	searched := kind.String()
	if kind == SearchAction {
		doc["action"] = map[string]any{"name": searchPlaceholder}
	} else if m, ok := doc[searched].(map[string]any); ok {
		m = maps.Clone(m)
		m["id"] = searchPlaceholder
		doc[searched] = m
	}
	in, err := engine.ParseInput(doc, "")
	if err != nil {
		return nil, newError(CodeInvalidInput, inputMessage(err, "page", "options"))
	}
	r.base = in
	switch kind {
	case SearchSubject:
		r.props = in.Subject.Properties
	case SearchResource:
		r.props = in.Resource.Properties
	}
	if v, ok := doc["page"]; ok && v != nil {
		page, ok := v.(map[string]any)
		if !ok {
			return nil, newError(CodeInvalidInput, "page: must be an object")
		}
		for _, k := range []string{"token", "next_token"} { // next_token: drafts before 1.0
			if t, ok := page[k]; ok && t != nil {
				if r.token, ok = t.(string); !ok {
					return nil, newError(CodeInvalidInput, "page."+k+": must be a string")
				}
				break
			}
		}
		if l, ok := page["limit"]; ok && l != nil {
			if r.limit, err = pageLimit(l); err != nil {
				return nil, err
			}
		}
	}
	return r, nil
}

func pageLimit(v any) (int, error) {
	switch n := v.(type) {
	case int64:
		if n >= 0 {
			return int(min(n, math.MaxInt32)), nil
		}
	case float64:
		if n >= 0 && n == math.Trunc(n) {
			return int(min(n, math.MaxInt32)), nil
		}
	}
	return 0, newError(CodeInvalidInput, "page.limit: must be a non-negative integer")
}

// candidates are the entities of the searched type the catalog declares.
// An unknown type has none.
func (r *searchRequest) candidates(c bundles.Catalog) []bundles.CatalogEntry {
	switch r.kind {
	case SearchSubject:
		return c.Entities[r.base.Subject.Type]
	case SearchResource:
		return c.Entities[r.base.Resource.Type]
	}
	return c.Actions
}

// input is base with cand filled in as the searched entity: its stored
// properties, overlaid by those of the request.
func (r *searchRequest) input(cand bundles.CatalogEntry) *engine.Input {
	in := *r.base
	props := cand.Properties
	if len(r.props) > 0 {
		props = maps.Clone(cand.Properties)
		if props == nil {
			props = make(map[string]any, len(r.props))
		}
		maps.Copy(props, r.props)
	}
	switch r.kind {
	case SearchSubject:
		in.Subject.ID, in.Subject.Properties = cand.ID, props
	case SearchResource:
		in.Resource.ID, in.Resource.Properties = cand.ID, props
	default:
		in.Action.Name, in.Action.Properties = cand.ID, cand.Properties
	}
	return &in
}

// queryHash identifies the query and the bundle generation a page token
// belongs to.
func (r *searchRequest) queryHash(gen uint64) [8]byte {
	k := inputKey(gen, r.base)
	h := sha256.New()
	var b [9]byte
	b[0] = byte(r.kind)
	binary.LittleEndian.PutUint64(b[1:], gen)
	h.Write(b[:])
	h.Write(k.sum[:])
	var out [8]byte
	copy(out[:], h.Sum(nil))
	return out
}

const pageTokenVersion = 1

// pageToken is opaque to callers: a version, the query hash, the offset of
// the next result and the page size.
func pageToken(sum [8]byte, offset, limit int) string {
	b := append([]byte{pageTokenVersion}, sum[:]...)
	b = binary.AppendUvarint(b, uint64(offset))
	b = binary.AppendUvarint(b, uint64(limit))
	return base64.RawURLEncoding.EncodeToString(b)
}

// readPageToken returns the offset and page size of tok, a 400 when tok was
// not made by this server for the same query over the same bundle.
func readPageToken(tok string, sum [8]byte) (offset, limit int, err error) {
	bad := newError(CodeInvalidPageToken, "page.token: not a token this server issued")
	b, derr := base64.RawURLEncoding.DecodeString(tok)
	if derr != nil || len(b) < 1+len(sum) || b[0] != pageTokenVersion {
		return 0, 0, bad
	}
	if subtle.ConstantTimeCompare(b[1:1+len(sum)], sum[:]) != 1 {
		return 0, 0, newError(CodeInvalidPageToken,
			"page.token: it belongs to another query or to a bundle that is no longer active; start again without a token")
	}
	rest := b[1+len(sum):]
	off, n := binary.Uvarint(rest)
	if n <= 0 || off > math.MaxInt32 {
		return 0, 0, bad
	}
	lim, m := binary.Uvarint(rest[n:])
	if m <= 0 || lim > math.MaxInt32 || n+m != len(rest) {
		return 0, 0, bad
	}
	return int(off), int(lim), nil
}

// SearchPage is the page object of a search response; the struct keeps it
// the first key, as AuthZEN recommends.
type SearchPage struct {
	NextToken string `json:"next_token"`
	Count     int    `json:"count"`
	Total     int    `json:"total"`
}

// SearchResponse is the answer to a search: a page of results, each the
// identity of an allowed entity ({type, id}) or action ({name}).
type SearchResponse struct {
	Page    SearchPage `json:"page"`
	Results []any      `json:"results"`
}

// EntityRef and ActionRef are the search results (SearchResponse.Results): only the identity, as
// AuthZEN clients compare whole objects.
type EntityRef struct {
	Type string `json:"type"`
	ID   string `json:"id"`
}

type ActionRef struct {
	Name string `json:"name"`
}

// Search answers an AuthZEN search of kind from its JSON body: every
// candidate the active bundles declare for the searched type (at most
// MaxSearchCandidates) is evaluated with the request's other entities
// through the decision cache, and those allowed are the results, in id
// (name) order, a page of page.limit at a time. Errors are *Error: the
// body's problems, a page token of another query or bundle, a search too
// broad, or one not finished within RequestTimeout (a partial result would
// look complete).
func (s *Service) Search(ctx context.Context, kind SearchKind, body []byte) (SearchResponse, error) {
	req, err := parseSearch(body, s.cfg.MaxDepth, kind)
	if err != nil {
		return SearchResponse{}, err
	}
	active := s.bundles.Active()
	var gen uint64
	var cands []bundles.CatalogEntry
	if active != nil {
		gen = active.Generation
		cands = req.candidates(active.Catalog)
	}
	sum := req.queryHash(gen)
	offset, limit := 0, req.limit
	if req.token != "" {
		off, lim, err := readPageToken(req.token, sum)
		if err != nil {
			return SearchResponse{}, err
		}
		offset = off
		if limit == 0 {
			limit = lim
		}
	}
	if len(cands) > s.cfg.MaxSearchCandidates {
		return SearchResponse{}, newError(CodeSearchTooBroad, fmt.Sprintf(
			"%s search: the bundle declares %d candidates of this type, more than server.max_search_candidates (%d)",
			kind, len(cands), s.cfg.MaxSearchCandidates))
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	defer cancel()
	found, err := s.allowed(ctx, active, req, cands)
	if err != nil {
		return SearchResponse{}, err
	}
	end := len(found)
	offset = min(offset, end)
	if limit > 0 && offset+limit < end {
		end = offset + limit
	}
	out := SearchResponse{Page: SearchPage{Count: end - offset, Total: len(found)}, Results: make([]any, 0, end-offset)}
	if end < len(found) {
		out.Page.NextToken = pageToken(sum, end, limit)
	}
	for _, e := range found[offset:end] {
		switch kind {
		case SearchSubject:
			out.Results = append(out.Results, EntityRef{Type: req.base.Subject.Type, ID: e.ID})
		case SearchResource:
			out.Results = append(out.Results, EntityRef{Type: req.base.Resource.Type, ID: e.ID})
		default:
			out.Results = append(out.Results, ActionRef{Name: e.ID})
		}
	}
	return out, nil
}

// allowed decides every candidate (through the decision cache) and returns
// those permitted, in order. A search that does not finish by ctx's
// deadline is a 503: a partial result would look complete.
func (s *Service) allowed(ctx context.Context, active *bundles.Active, req *searchRequest, cands []bundles.CatalogEntry) ([]bundles.CatalogEntry, error) {
	var found []bundles.CatalogEntry
	for _, cand := range cands {
		d, _ := s.decideCached(ctx, active, req.input(cand), false, 0)
		s.obs.Counted(EndpointSearch, d)
		if ctx.Err() != nil {
			return nil, newError(CodeSearchTimeout,
				"the search did not finish within server.request_timeout; narrow it or retry")
		}
		if d.Allow {
			found = append(found, cand)
		}
	}
	return found, nil
}
