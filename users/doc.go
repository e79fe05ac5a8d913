// Package users keeps the people who sign in to Verdict: their records
// (normalised email, Argon2id password hash, status, roles and groups),
// password rules (length, a zxcvbn strength score, an optional list of
// breached passwords), sign-in with per-account and per-address throttling
// and lockout, TOTP second factors with hashed recovery codes, server-side
// sessions with idle and absolute timeouts, consents, audit events, and the
// data-subject rights (export, erasure).
//
// It knows nothing of HTTP or OAuth: the authorization server (package
// oauth) and the transports use it. Durable state is kept behind the small
// store interfaces declared here; internal/storeadapt adapts package store
// to them.
package users
