package rego_test

import (
	"math/rand/v2"
	"testing"

	"github.com/verdictpdp/verdict/engine"
	"github.com/verdictpdp/verdict/engine/rego"
)

// formPolicies exercise each form a plan translates.
var formPolicies = map[string]string{
	// An object decision from partial sets, deny-overrides with else.
	"sets": `package verdict

decision := {"decision": false, "reasons": sort(denies)} if {
	count(denies) > 0
} else := {"decision": true, "reasons": sort(allows)} if {
	count(allows) >= 1
} else := {"decision": false, "reasons": ["none"]}

allows contains "owner" if input.resource.properties.owner == input.subject.id

allows contains "public" if {
	input.action.name == "read"
	input.resource.properties.public
}

allows contains "small" if {
	input.resource.properties.size < 10
	2.5 <= input.resource.properties.size
}

allows contains "path" if {
	p := input.resource.properties.path
	is_string(p)
	startswith(p, "/pub/")
}

allows contains "dept" if input.resource.properties.dept in input.subject.properties.depts

allows contains "tagged" if {
	is_array(input.resource.properties.tags)
	input.subject.id in input.resource.properties.tags
}

allows contains "big" if {
	is_number(input.resource.properties.size)
	input.resource.properties.size > 100
}

allows contains "nested" if input.resource.properties.meta.level != 3

allows contains "special" if startswith(input.resource.id, "spec")

denies contains "locked" if {
	input.resource.properties.locked
	not input.resource.properties.locked == false
	input.subject.id != "root"
}

denies contains "purge-small-only" if {
	input.action.name == "purge"
	not input.resource.properties.size < 9
}
`,
	// A boolean decision with a default, complete rules with values and
	// else chains, functions (one with else, one with several bodies).
	"rules": `package verdict

default decision := false

decision if {
	level(input.resource.properties.meta) >= 2
	not archived
}

decision if {
	status == "open"
	input.action.name == "read"
}

decision if {
	grade(input.resource.properties.size) == "big"
	input.resource.properties.path >= "/m"
}

level(m) := m.level if is_number(m.level)
else := 0

archived if input.resource.properties.status == "archived"

status := s if {
	s := input.resource.properties.status
	is_string(s)
} else := "open" if {
	not input.resource.properties.status
} else := "unknown"

grade(n) := "big" if n > 100

grade(n) := "small" if n < 10

grade(n) := "mid" if {
	n >= 10
	n <= 100
}
`,
	// A decision computed as a boolean, data looked up by an attribute,
	// the resource as a whole, membership in constant collections.
	"values": `package verdict

decision := {"decision": count(denies) == 0, "reasons": denies}

denies contains "no-owner" if not input.resource.properties.owner

denies contains "archived" if data.archived[input.resource.properties.status]

denies contains "not-a-string" if {
	r := input.resource
	r.type == "doc"
	not is_string(r.properties.owner)
}

denies contains "kind" if input.resource.properties.kind in {"secret", "hidden", 7}

denies contains "not-mine" if {
	input.action.name == "delete"
	input.resource.properties.owner != input.subject.id
}

denies contains "unflagged" if {
	flagged := input.resource.properties.flag == true
	flagged == false
	input.action.name == "purge"
}
`,
	// A boolean entrypoint over set membership, known iteration, types.
	"members": `package verdict

decision if allows.owner

decision if {
	some x in ["public", "shared"]
	allows[x]
	input.action.name == "read"
}

decision if {
	input.action.name == "delete"
	is_boolean(input.resource.properties.locked)
	not input.resource.properties.locked
	not is_object(input.resource.properties.meta)
	input.subject.properties.level > 2
}

decision if {
	input.action.name == "purge"
	"/pub/" == input.resource.properties.path
	input.resource.id in {"1", "2", "special"}
}

allows contains "owner" if input.resource.properties.owner == input.subject.id

allows contains "public" if input.resource.properties.public == true

allows contains "shared" if "shared" == input.resource.properties.kind
`,
	// Iteration over a list of the resource that tests for an element.
	"iteration": `package verdict

default decision := false

decision if {
	is_array(input.resource.properties.tags)
	some t in input.resource.properties.tags
	t == input.subject.id
}

decision if {
	is_array(input.resource.properties.tags)
	input.resource.properties.tags[_] == "z"
	input.action.name == "delete"
}

decision if {
	input.action.name == "purge"
	is_array(input.resource.properties.tags)
	some i, t in input.resource.properties.tags
	"alice" == t
	not "z" in input.resource.properties.tags
}
`,
}

// TestPlanForms: each form a plan translates predicts Evaluate on random
// resources, for several subjects and actions.
func TestPlanForms(t *testing.T) {
	requests := []engine.Input{}
	for _, s := range []engine.Entity{
		{Type: "user", ID: "alice", Properties: map[string]any{"depts": []any{"eng", "ops"}, "level": int64(3)}},
		{Type: "user", ID: "bob", Properties: map[string]any{"level": int64(1)}},
		{Type: "user", ID: "root"},
	} {
		for _, a := range []string{"read", "delete", "purge"} {
			requests = append(requests, engine.Input{Subject: s, Action: engine.Action{Name: a}})
		}
	}
	pool := append([]any{"alice", "bob", "root", "eng", "ops", "/pub/a", "/PUB/a", "/pub", "/m", "/z", "special", "spec",
		"open", "archived", "gone", "kept", "secret", "hidden", "shared",
		int64(2), int64(7), int64(9), int64(10), int64(100), int64(101), int64(150), 2.4, 12.0, 7.0,
		[]any{"alice", "z"}, map[string]any{"level": int64(3)}, map[string]any{"level": int64(4)},
		map[string]any{"level": "high"}, map[string]any{"level": 2.0}}, genericValues...)
	keys := []string{"owner", "public", "size", "path", "dept", "tags", "meta", "locked", "status", "kind", "flag"}
	ids := []any{"1", "2", "special", "spec-1", "x"}
	rnd := rand.New(rand.NewPCG(3, 4))
	pc := planCase{requests: requests, types: []string{"doc", "folder"},
		resources: randomResources(rnd, []string{"doc", "folder"}, keys, pool, ids, 400)}
	data := map[string]any{"archived": map[string]any{"archived": true, "gone": true, "kept": false}}
	for name, src := range formPolicies {
		t.Run(name, func(t *testing.T) {
			p := mustCompile(t, []rego.Module{mod(name+".rego", src)}, rego.Options{Data: data})
			if n := checkPlans(t, p, pc); n == 0 {
				t.Fatal("no plan was conditional")
			}
		})
	}
}
