# The OpenID AuthZEN Authorization API 1.0 certification scenario in Rego:
# the same logic as policies/authzen-certification-cel/authzen.verdict.yaml,
# rule for rule, with the CEL rule ids as reasons. Both bundles hold the same
# data.json and authzen_test.yaml (bundles/examples_test.go checks it). Change
# both together; the CEL file explains the fixture and the eight decisions.
#
# Trust: a subject's role is looked up by input.subject.id in
# data.entities.user; a role the caller sends is ignored. A record's status is
# the stored one; the caller's status counts only for records data does not
# know.
package verdict

# The decision: deny-overrides, like the CEL policy.
decision := {"decision": false, "reasons": sort(denies)} if {
	count(denies) > 0
} else := {"decision": true, "reasons": sort(allows)} if {
	count(allows) > 0
} else := {"decision": false, "reasons": ["verdict:no-matching-allow"]}

# The stored user with this subject's id (undefined for an unknown one).
stored_user := user if {
	input.subject.type == "user"
	some user in data.entities.user
	user.id == input.subject.id
}

# The stored user's role, "" when the user is unknown or has none.
role := r if {
	r := stored_user.properties.role
	is_string(r)
} else := ""

# The actions data.grants gives this user on records.
grants := g if {
	input.subject.type == "user"
	g := data.grants[input.subject.id]
} else := []

# The stored record with this resource's id (undefined for an unknown one).
stored_record := record if {
	input.resource.type == "record"
	some record in data.entities.record
	record.id == input.resource.id
}

# The record's status: the stored one for a known record, else what the
# caller sent (a string), else "".
status := s if {
	s := stored_record.properties.status
} else := s if {
	not stored_record
	s := input.resource.properties.status
	is_string(s)
} else := ""

# A user may do on records what data.grants lists for it.
allows contains "granted" if {
	input.resource.type == "record"
	input.action.name in {"read", "write", "delete"}
	input.action.name in grants
}

# An admin (by its stored role) may write an archived record.
allows contains "admin-writes-archived" if {
	input.resource.type == "record"
	input.action.name == "write"
	status == "archived"
	role == "admin"
}

# Nobody but an admin writes an archived record, whatever the grants say.
denies contains "archived-admins-only" if {
	input.resource.type == "record"
	input.action.name == "write"
	status == "archived"
	role != "admin"
}

# A delete must be a soft one (action.properties.soft true).
denies contains "soft-delete-only" if {
	input.action.name == "delete"
	not input.action.properties.soft == true
}
