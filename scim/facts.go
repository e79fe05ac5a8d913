package scim

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
)

// Facts is what policies see of the provisioned users and groups, the
// data overlay of every bundle:
//
//	data.directory.users[<userName, lower-cased>] = {id, userName, displayName, active, emails, groups, externalId}
//	data.directory.groups[<displayName>]          = {id, displayName, members (userNames), externalId}
//	data.entities.user                            = [{id: <userName>, properties: {displayName, active, groups}}]
//
// groups lists the display names of the groups whose members include the
// user; data.entities makes the users candidates of the AuthZEN subject
// search. Users who are not active are listed with active false. Before
// anything is provisioned the facts are empty (no data.directory). The
// document is JSON-shaped (objects, arrays, strings, numbers, booleans).
func Facts(ctx context.Context, st Store) (map[string]any, error) {
	users, err := st.Entries(ctx, TypeUser)
	if err != nil {
		return nil, err
	}
	groups, err := st.Entries(ctx, TypeGroup)
	if err != nil {
		return nil, err
	}
	type userAttrs struct {
		UserName    string `json:"userName"`
		DisplayName string `json:"displayName"`
		Active      *bool  `json:"active"`
		Emails      []struct {
			Value string `json:"value"`
		} `json:"emails"`
	}
	byID := map[string]string{} // user id → userName key
	for _, u := range users {
		byID[u.ID] = u.Key
	}
	memberOf := map[string][]string{}
	groupDocs := map[string]any{}
	for _, g := range decodeGroups(groups) {
		var members []string
		for _, id := range g.Members {
			if name, ok := byID[id]; ok {
				members = append(members, name)
				memberOf[id] = append(memberOf[id], g.DisplayName)
			}
		}
		slices.Sort(members)
		groupDocs[g.DisplayName] = map[string]any{"id": g.ID, "displayName": g.DisplayName, "members": nonNil(members), "externalId": g.ExternalID}
	}
	userDocs := map[string]any{}
	var entities []any
	for _, u := range users {
		var a userAttrs
		if json.Unmarshal(u.Attributes, &a) != nil {
			continue
		}
		active := a.Active == nil || *a.Active
		var emails []string
		for _, e := range a.Emails {
			emails = append(emails, strings.ToLower(e.Value))
		}
		gs := memberOf[u.ID]
		slices.Sort(gs)
		userDocs[u.Key] = map[string]any{"id": u.ID, "userName": a.UserName, "displayName": a.DisplayName, "active": active,
			"emails": nonNil(emails), "groups": nonNil(gs), "externalId": u.ExternalID}
		entities = append(entities, map[string]any{"id": u.Key, "properties": map[string]any{
			"displayName": a.DisplayName, "active": active, "groups": toAny(nonNil(gs))}})
	}
	// Nothing at all until something is provisioned: a deployment that
	// does not use SCIM keeps its bundles' data as it is (a bundle's own
	// data.directory, "user" not a searchable type of every bundle).
	out := map[string]any{}
	if len(users) > 0 || len(groups) > 0 {
		out["directory"] = map[string]any{"users": userDocs, "groups": groupDocs}
	}
	if len(entities) > 0 {
		out["entities"] = map[string]any{"user": entities}
	}
	// JSON-shaped, as a bundle's data.json is: the engines size and
	// convert data of that shape only.
	raw, err := json.Marshal(out)
	if err != nil {
		return nil, err
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, err
	}
	return doc, nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func toAny(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}
