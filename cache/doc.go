// Package cache provides Cache, a bounded, concurrent cache over ristretto that
// never returns a value stored under another key, and counts hits and misses.
package cache
