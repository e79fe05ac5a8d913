// Package pgtest starts a real PostgreSQL server for a test: initdb into a
// directory of t.TempDir(), then the postgres server on a free port of
// 127.0.0.1, with its unix socket in that directory too, fsync off, and
// killed when the test ends. It never touches a PostgreSQL the machine
// already runs (on 5432 or elsewhere).
//
// PostgreSQL refuses to run as root: when the test runs as root, initdb and
// postgres run as the "postgres" OS user (which the Debian package
// creates), and the directory is handed to that user.
//
// The binaries are looked up on PATH, then in /usr/lib/postgresql/*/bin
// (where Debian's postgresql package puts them), newest version first.
// When they are missing the test is skipped with a message saying so,
// unless the environment sets VERDICT_REQUIRE_INTEGRATION=1 (RequireEnv,
// shared with internal/redistest), in which case it fails: CI sets it so
// that the PostgreSQL tests can never be skipped there.
package pgtest
