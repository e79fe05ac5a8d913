// Package bundles reads policy bundles (a directory or a .tar.gz in the OPA
// bundle layout, plus Verdict's CEL policy files and test cases), compiles
// them into an engine.Snapshot, runs their tests, and activates them
// all-or-nothing: a bundle that fails to read, compile or pass its tests never
// replaces the active one.
package bundles
