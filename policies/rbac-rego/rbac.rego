# RBAC + ABAC in Rego: the same logic as policies/rbac-cel/rbac.verdict.yaml,
# rule for rule. The reasons are the CEL rule ids, so both bundles give the
# same decisions and the same reasons (bundles/examples_test.go runs
# testdata/decisions.yaml against both). Change both together.
#
# data.roles (data.json) maps each role to permissions "resourceType:action",
# where "*" stands for any resource type or any action.
#
# The rules read input.subject, input.action and input.resource only, never
# input.now: decisions depend only on the input and are cached.
package verdict

# The decision: deny-overrides, like the CEL policy. Reasons are the ids of
# the matching deny rules on a deny, of the matching allow rules on an allow,
# and Verdict's own "no allow matched" code when nothing matched.
decision := {"decision": false, "reasons": sort(denies)} if {
	count(denies) > 0
} else := {"decision": true, "reasons": sort(allows)} if {
	count(allows) > 0
} else := {"decision": false, "reasons": ["verdict:no-matching-allow"]}

# The subject's role list; anything else (absent, a string, an object) is no roles.
roles := r if {
	r := input.subject.properties.roles
	is_array(r)
} else := []

# The permissions that would grant this request, wildcards included.
wanted := {
	concat(":", [input.resource.type, input.action.name]),
	concat(":", [input.resource.type, "*"]),
	concat(":", ["*", input.action.name]),
	"*:*",
}

# The subject's clearance when it is a number, else 0.
clearance := c if {
	c := input.subject.properties.clearance
	is_number(c)
} else := 0

# One of the subject's roles grants resourceType:action (or a wildcard of it).
allows contains "role-permission" if {
	some role in roles
	is_string(role)
	some permission in data.roles[role]
	permission in wanted
}

# The owner of a resource may update and delete it.
allows contains "owner-manage" if {
	input.action.name in {"update", "delete"}
	input.resource.properties.owner == input.subject.id
}

# A subject may read resources of its own department (a non-empty string on both).
allows contains "department-read" if {
	input.action.name == "read"
	department := input.resource.properties.department
	is_string(department)
	department != ""
	department == input.subject.properties.department
}

# A suspended subject may do nothing.
denies contains "subject-suspended" if {
	input.subject.properties.suspended == true
}

# A resource with a sensitivity needs a numeric clearance at least as high; a
# sensitivity that is not a number can never be met.
denies contains "insufficient-clearance" if {
	sensitivity := input.resource.properties.sensitivity
	not cleared_for(sensitivity)
}

cleared_for(sensitivity) if {
	is_number(sensitivity)
	clearance >= sensitivity
}
