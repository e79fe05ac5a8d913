# The OpenID AuthZEN interop "Todo" scenario in Rego: the same logic as
# policies/authzen-todo-cel/todo.verdict.yaml, rule for rule, with the CEL rule
# ids as reasons. Both bundles hold the same data.json and todo_test.yaml
# (bundles/examples_test.go checks it). Change both together; the CEL file
# explains the scenario (openid/authzen, interop/authzen-todo-backend), its
# users and its five permissions.
#
# Trust: roles and email are looked up by input.subject.id in
# data.entities.user; roles or an email the caller sends are ignored, and an
# unknown subject is denied everything.
package verdict

# The decision: deny-overrides, like the CEL policy (which has no deny rule).
decision := {"decision": true, "reasons": sort(allows)} if {
	count(allows) > 0
} else := {"decision": false, "reasons": ["verdict:no-matching-allow"]}

# The stored user with this subject's id (undefined for an unknown one).
stored_user := user if {
	input.subject.type == "user"
	some user in data.entities.user
	user.id == input.subject.id
}

# The stored user's roles, [] when the user is unknown or has none.
roles := r if {
	r := stored_user.properties.roles
	is_array(r)
} else := []

# Whether the subject owns the todo: the todo's ownerID is the stored user's
# email.
owner if {
	owner_id := input.resource.properties.ownerID
	is_string(owner_id)
	owner_id == stored_user.properties.email
}

todo if input.resource.type == "todo"

# Any known user may read a user's information.
allows contains "read-user" if {
	input.action.name == "can_read_user"
	input.resource.type == "user"
	stored_user
}

# Any known user may read the shared todo list.
allows contains "read-todos" if {
	input.action.name == "can_read_todos"
	todo
	stored_user
}

# An admin or an editor may create a todo.
allows contains "create-todo" if {
	input.action.name == "can_create_todo"
	todo
	some role in roles
	role in {"admin", "editor"}
}

# An evil genius may (un)complete anybody's todo.
allows contains "evil-genius-updates-any" if {
	input.action.name == "can_update_todo"
	todo
	"evil_genius" in roles
}

# An admin may delete anybody's todo.
allows contains "admin-deletes-any" if {
	input.action.name == "can_delete_todo"
	todo
	"admin" in roles
}

# An editor may (un)complete and delete the todos it owns.
allows contains "editor-changes-own" if {
	input.action.name in {"can_update_todo", "can_delete_todo"}
	todo
	"editor" in roles
	owner
}
