package bundles

import (
	"strings"
	"testing"
)

// TestYAMLErrorsInTestAndDataFiles: test files and data.yaml report YAML
// problems as policies do (and data.json its own), at file:line:col of the offending line, in words
// without Go type names (issue 10: a mis-indented test was "invalid test
// file: yaml: line 8: …" for a problem on line 9).
func TestYAMLErrorsInTestAndDataFiles(t *testing.T) {
	const good = "tests:\n  - name: ok\n    input:\n      subject: {type: user, id: a}\n      action: {name: approve}\n      resource: {type: invoice, id: \"1\"}\n    expect: true\n"
	for _, tc := range []struct{ name, file, body, want string }{
		{"test key indented more", "invoices_test.yaml", good + "  - name: bad\n     input: {}\n",
			`invoices_test.yaml:9:6: mapping values are not allowed in this context: check the indentation of this line, or quote a value that holds ": "`},
		{"test key indented less", "invoices_test.yaml", strings.Replace(good, "    expect", "   expect", 1),
			"invoices_test.yaml:7:4: did not find expected '-' indicator: check the indentation of this line"},
		{"test item indented more", "invoices_test.yaml", good + "   - name: bad\n",
			"invoices_test.yaml:8:4: did not find expected '-' indicator: check the indentation of this line"},
		{"expect of the wrong type", "invoices_test.yaml", strings.Replace(good, "expect: true", "expect: maybe", 1),
			`invoices_test.yaml:7:13: test "ok": tests[0].expect: must be true or false, got a string (maybe)`},
		{"tests of the wrong type", "invoices_test.yaml", "tests: {name: x}\n",
			"invoices_test.yaml:1:8: tests: must be a list, got a mapping"},
		{"empty test file", "invoices_test.yaml", "", "invoices_test.yaml: empty test file: it needs a list of tests"},
		{"data item indented less", "data.yaml", "roles:\n  admin:\n    - read\n   - write\n",
			"data.yaml:4:4: did not find expected key: check the indentation of this line"},
		{"data key twice", "data.yaml", "roles: {}\nlimits: 1\nroles: []\n",
			`data.yaml:3:1: key "roles" is defined twice (first at line 1)`},
		{"data.json too", "data.json", "{\n  \"roles\": {\n    \"admin\": [\"*\"],\n  }\n}\n",
			// The strict decoder points at the trailing comma itself.
			"data.json:3:19: invalid JSON: invalid character ',' at start of value (in /roles)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := FromFiles(map[string][]byte{tc.file: []byte(tc.body)}, DefaultLimits())
			if err != nil {
				t.Fatal(err)
			}
			if strings.HasPrefix(tc.file, "data.") {
				_, err = b.Data()
			} else {
				_, err = b.Tests()
			}
			if err == nil || err.Error() != tc.want {
				t.Errorf("got  %v\nwant %s", err, tc.want)
			}
		})
	}
}
