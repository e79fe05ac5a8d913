package scim

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/elimity-com/scim"
	scimerrors "github.com/elimity-com/scim/errors"
	"github.com/elimity-com/scim/optional"
	"github.com/elimity-com/scim/schema"
)

// Resource types as the store names them.
const (
	TypeUser  = "User"
	TypeGroup = "Group"
)

// Entry is a provisioned resource as stored (package store's
// DirectoryEntry, field for field).
type Entry struct {
	Type       string
	ID         string
	ExternalID string
	Key        string
	Attributes json.RawMessage
	Version    int64
	Created    time.Time
	Modified   time.Time
}

// Errors of the Store the handlers branch on.
var (
	ErrNotFound = errors.New("no such resource")
	ErrConflict = errors.New("conflict")
)

// Store keeps provisioned users and groups (see package store's
// Directory; the wiring maps its errors to ErrNotFound and ErrConflict).
type Store interface {
	CreateEntry(ctx context.Context, e Entry) (Entry, error)
	ReplaceEntry(ctx context.Context, e Entry, ifVersion int64) (Entry, error)
	Entry(ctx context.Context, typ, id string) (Entry, error)
	Entries(ctx context.Context, typ string) ([]Entry, error)
	DeleteEntry(ctx context.Context, typ, id string, ifVersion int64) error
}

// MaxFilterLength bounds a filter's text (MaxFilterDepth its nesting).
const MaxFilterLength = 1024

// New returns the SCIM service provider over st, whose resources' meta
// locations start with baseURL (Verdict's URL + "/scim/v2"). changed,
// when not nil, is called after every successful write (the facts
// policies see are rebuilt from the store); its error is logged.
func New(st Store, baseURL string, log *slog.Logger, changed func(context.Context) error) (http.Handler, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if changed != nil {
		st = notifying{Store: st, changed: changed, log: log}
	}
	users := &handler{st: st, typ: TypeUser, keyAttr: "userName"}
	groups := &handler{st: st, typ: TypeGroup, keyAttr: "displayName"}
	users.groups = groups
	srv, err := scim.NewServer(&scim.ServerArgs{
		ServiceProviderConfig: &scim.ServiceProviderConfig{
			DocumentationURI: optional.NewString("https://github.com/verdictpdp/verdict/blob/main/docs/scim.md"),
			SupportFiltering: true,
			SupportPatch:     true,
			MaxResults:       200,
			AuthenticationSchemes: []scim.AuthenticationScheme{{
				Type: scim.AuthenticationTypeOauthBearerToken, Name: "Bearer token or API key", Primary: true,
				Description: "A Verdict access token, or an API key (Authorization: Bearer, ApiKey or X-API-Key), with scope verdict:scim.",
			}},
		},
		ResourceTypes: []scim.ResourceType{
			{ID: optional.NewString("User"), Name: "User", Endpoint: "/Users", Description: optional.NewString("User Account"),
				Schema: schema.CoreUserSchema(), Handler: users,
				// Entra ID sends the enterprise extension (employeeNumber,
				// department, manager) with every user.
				SchemaExtensions: []scim.SchemaExtension{{Schema: schema.ExtensionEnterpriseUser()}}},
			{ID: optional.NewString("Group"), Name: "Group", Endpoint: "/Groups", Description: optional.NewString("Group"),
				Schema: schema.CoreGroupSchema(), Handler: groups},
		},
	}, scim.WithBaseURL(baseURL))
	if err != nil {
		return nil, err
	}
	return &front{next: srv, log: log}, nil
}

// handler is the resource handler of one type.
type handler struct {
	st      Store
	typ     string
	keyAttr string
	// groups, for users: their memberships are shown as "groups".
	groups *handler
}

var _ scim.ResourceHandler = (*handler)(nil)

func newID() string { return strings.ToLower(rand.Text()) }

func scimErr(err error, id string) error {
	switch {
	case errors.Is(err, ErrNotFound):
		return scimerrors.ScimErrorResourceNotFound(id)
	case errors.Is(err, ErrConflict):
		return scimerrors.ScimError{ScimType: scimerrors.ScimTypeUniqueness, Detail: "the " + "resource's unique name is taken, or it changed since the version sent in If-Match", Status: http.StatusConflict}
	}
	return err
}

// keyOf is the unique key of attrs: the key attribute, lower-cased.
func (h *handler) keyOf(attrs scim.ResourceAttributes) (string, error) {
	for k, v := range attrs {
		if strings.EqualFold(k, h.keyAttr) {
			if s, ok := v.(string); ok && strings.TrimSpace(s) != "" {
				return strings.ToLower(strings.TrimSpace(s)), nil
			}
		}
	}
	return "", scimerrors.ScimErrorBadRequest(h.keyAttr + " is required")
}

func externalID(attrs scim.ResourceAttributes) string {
	s, _ := attrs["externalId"].(string)
	return s
}

// stored is attrs without what the server sets (id, meta, schemas, and a
// user's read-only groups).
func stored(attrs scim.ResourceAttributes) ([]byte, error) {
	clean := scim.ResourceAttributes{}
	for k, v := range attrs {
		switch strings.ToLower(k) {
		case "id", "meta", "schemas", "groups":
			continue
		}
		clean[k] = v
	}
	return json.Marshal(clean)
}

// resource is a stored entry as the library answers it; memberOf, for
// users, maps a user id to its "groups" attribute (memberships).
func (h *handler) resource(e Entry, memberOf map[string][]any) (scim.Resource, error) {
	attrs := scim.ResourceAttributes{}
	d := json.NewDecoder(bytes.NewReader(e.Attributes))
	d.UseNumber()
	if err := d.Decode(&attrs); err != nil {
		return scim.Resource{}, fmt.Errorf("scim: stored %s %s: %w", e.Type, e.ID, err)
	}
	if gs := memberOf[e.ID]; len(gs) > 0 {
		attrs["groups"] = gs
	}
	created, modified := e.Created, e.Modified
	r := scim.Resource{ID: e.ID, Attributes: attrs, Meta: scim.Meta{Created: &created, LastModified: &modified, Version: etag(e.Version)}}
	if e.ExternalID != "" {
		r.ExternalID = optional.NewString(e.ExternalID)
	}
	return r, nil
}

// memberships maps each user id to the groups whose members include it,
// as a user's "groups" attribute shows them; nil for the groups handler.
// One read of the groups serves a whole listing.
func (h *handler) memberships(ctx context.Context) (map[string][]any, error) {
	if h.groups == nil {
		return nil, nil
	}
	all, err := h.st.Entries(ctx, TypeGroup)
	if err != nil {
		return nil, err
	}
	out := map[string][]any{}
	for _, g := range decodeGroups(all) {
		for _, m := range g.Members {
			out[m] = append(out[m], map[string]any{"value": g.ID, "display": g.DisplayName, "type": "direct"})
		}
	}
	return out, nil
}

// group is what memberships and Facts read of a stored group.
type group struct {
	ID, DisplayName, ExternalID string
	// Members are the member ids (users' ids).
	Members []string
}

// decodeGroups reads the stored groups; one that does not decode is left
// out.
func decodeGroups(es []Entry) []group {
	out := make([]group, 0, len(es))
	for _, e := range es {
		var a struct {
			DisplayName string `json:"displayName"`
			Members     []struct {
				Value string `json:"value"`
			} `json:"members"`
		}
		if json.Unmarshal(e.Attributes, &a) != nil {
			continue
		}
		g := group{ID: e.ID, DisplayName: a.DisplayName, ExternalID: e.ExternalID}
		for _, m := range a.Members {
			g.Members = append(g.Members, m.Value)
		}
		out = append(out, g)
	}
	return out
}

// answer is e as the library answers it, with its memberships.
func (h *handler) answer(ctx context.Context, e Entry) (scim.Resource, error) {
	m, err := h.memberships(ctx)
	if err != nil {
		return scim.Resource{}, err
	}
	return h.resource(e, m)
}

func etag(v int64) string { return `W/"` + strconv.FormatInt(v, 10) + `"` }

// ifMatch is the version an If-Match header asks for: 0 for none or "*".
func ifMatch(r *http.Request) (int64, error) {
	v := strings.TrimSpace(r.Header.Get("If-Match"))
	if v == "" || v == "*" {
		return 0, nil
	}
	v = strings.Trim(strings.TrimPrefix(v, "W/"), `"`)
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 1 {
		return 0, scimerrors.ScimErrorBadRequest("If-Match must be an ETag this server gave")
	}
	return n, nil
}

func preconditionFailed(err error, version int64) error {
	if version != 0 && errors.Is(err, ErrConflict) {
		return scimerrors.ScimError{Detail: "the resource changed since the version in If-Match", Status: http.StatusPreconditionFailed}
	}
	return nil
}

// Create stores a new resource.
func (h *handler) Create(r *http.Request, attrs scim.ResourceAttributes) (scim.Resource, error) {
	k, err := h.keyOf(attrs)
	if err != nil {
		return scim.Resource{}, err
	}
	data, err := stored(attrs)
	if err != nil {
		return scim.Resource{}, err
	}
	now := time.Now().UTC()
	e, err := h.st.CreateEntry(r.Context(), Entry{Type: h.typ, ID: newID(), ExternalID: externalID(attrs), Key: k, Attributes: data, Created: now, Modified: now})
	if err != nil {
		return scim.Resource{}, scimErr(err, "")
	}
	return h.answer(r.Context(), e)
}

// Get returns one resource.
func (h *handler) Get(r *http.Request, id string) (scim.Resource, error) {
	e, err := h.st.Entry(r.Context(), h.typ, id)
	if err != nil {
		return scim.Resource{}, scimErr(err, id)
	}
	return h.answer(r.Context(), e)
}

// GetAll filters and pages the resources of the type.
func (h *handler) GetAll(r *http.Request, params scim.ListRequestParams) (scim.Page, error) {
	all, err := h.st.Entries(r.Context(), h.typ)
	if err != nil {
		return scim.Page{}, err
	}
	memberOf, err := h.memberships(r.Context())
	if err != nil {
		return scim.Page{}, err
	}
	var match []scim.Resource
	for _, e := range all {
		res, err := h.resource(e, memberOf)
		if err != nil {
			return scim.Page{}, err
		}
		if params.FilterValidator != nil {
			doc := map[string]any{"id": res.ID}
			for k, v := range res.Attributes {
				doc[k] = v
			}
			if e.ExternalID != "" {
				doc["externalId"] = e.ExternalID
			}
			pass, err := passes(params.FilterValidator, doc)
			if err != nil {
				return scim.Page{}, err
			}
			if !pass {
				continue
			}
		}
		match = append(match, res)
	}
	page := scim.Page{TotalResults: len(match), Resources: []scim.Resource{}}
	start := max(params.StartIndex, 1) - 1
	if start < len(match) && params.Count > 0 {
		page.Resources = match[start:min(len(match), start+params.Count)]
	}
	return page, nil
}

// passes reports whether doc passes the filter of v. The filter library
// panics on some filters it parsed (a value comparison of a complex
// attribute, such as emails eq "x"): such a filter is an invalid filter
// (400), never a 500.
func passes(v interface{ PassesFilter(map[string]any) error }, doc map[string]any) (ok bool, err error) {
	defer func() {
		if r := recover(); r != nil {
			ok, err = false, scimerrors.ScimError{ScimType: scimerrors.ScimTypeInvalidFilter, Status: http.StatusBadRequest,
				Detail: "the filter cannot be applied to these attributes (compare a complex attribute by a sub-attribute, such as emails[value eq \"x\"])"}
		}
	}()
	return v.PassesFilter(doc) == nil, nil
}

// Replace replaces every attribute of a resource.
func (h *handler) Replace(r *http.Request, id string, attrs scim.ResourceAttributes) (scim.Resource, error) {
	version, err := ifMatch(r)
	if err != nil {
		return scim.Resource{}, err
	}
	cur, err := h.st.Entry(r.Context(), h.typ, id)
	if err != nil {
		return scim.Resource{}, scimErr(err, id)
	}
	return h.save(r, cur, attrs, version)
}

func (h *handler) save(r *http.Request, cur Entry, attrs scim.ResourceAttributes, version int64) (scim.Resource, error) {
	k, err := h.keyOf(attrs)
	if err != nil {
		return scim.Resource{}, err
	}
	data, err := stored(attrs)
	if err != nil {
		return scim.Resource{}, err
	}
	cur.Key, cur.Attributes, cur.ExternalID, cur.Modified = k, data, externalID(attrs), time.Now().UTC()
	e, err := h.st.ReplaceEntry(r.Context(), cur, version)
	if err != nil {
		if pf := preconditionFailed(err, version); pf != nil {
			return scim.Resource{}, pf
		}
		return scim.Resource{}, scimErr(err, cur.ID)
	}
	return h.answer(r.Context(), e)
}

// Delete removes a resource (and, for a user, nothing else: groups keep
// the member id until the provider patches them, as IdPs do).
func (h *handler) Delete(r *http.Request, id string) error {
	version, err := ifMatch(r)
	if err != nil {
		return err
	}
	err = h.st.DeleteEntry(r.Context(), h.typ, id, version)
	if pf := preconditionFailed(err, version); pf != nil {
		return pf
	}
	if err != nil {
		return scimErr(err, id)
	}
	return nil
}

// Patch applies operations to a resource.
func (h *handler) Patch(r *http.Request, id string, ops []scim.PatchOperation) (scim.Resource, error) {
	version, err := ifMatch(r)
	if err != nil {
		return scim.Resource{}, err
	}
	cur, err := h.st.Entry(r.Context(), h.typ, id)
	if err != nil {
		return scim.Resource{}, scimErr(err, id)
	}
	res, err := h.resource(cur, nil) // without the read-only groups
	if err != nil {
		return scim.Resource{}, err
	}
	attrs := res.Attributes
	if cur.ExternalID != "" {
		attrs["externalId"] = cur.ExternalID
	}
	for _, op := range ops {
		if err := applyPatch(attrs, op); err != nil {
			return scim.Resource{}, scimerrors.ScimErrorBadRequest(err.Error())
		}
	}
	return h.save(r, cur, attrs, version)
}

// notifying calls changed after every successful write of Store.
type notifying struct {
	Store
	changed func(context.Context) error
	log     *slog.Logger
}

func (n notifying) after(ctx context.Context, err error) {
	if err == nil {
		if cerr := n.changed(ctx); cerr != nil {
			n.log.Error("provisioned data stored but not applied to the policies yet", "error", cerr)
		}
	}
}

func (n notifying) CreateEntry(ctx context.Context, e Entry) (Entry, error) {
	out, err := n.Store.CreateEntry(ctx, e)
	n.after(ctx, err)
	return out, err
}

func (n notifying) ReplaceEntry(ctx context.Context, e Entry, v int64) (Entry, error) {
	out, err := n.Store.ReplaceEntry(ctx, e, v)
	n.after(ctx, err)
	return out, err
}

func (n notifying) DeleteEntry(ctx context.Context, typ, id string, v int64) error {
	err := n.Store.DeleteEntry(ctx, typ, id, v)
	n.after(ctx, err)
	return err
}
