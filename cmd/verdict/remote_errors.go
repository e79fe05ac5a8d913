package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/spf13/cobra"
	"golang.org/x/oauth2"
)

// peer names the server a command talked to and the client it
// authenticated as, for the messages of explain.
type peer struct {
	base     string // the server's base URL
	clientID string // "" when the command sent no token
	scope    string // the scope the token was asked for
	timeout  string // the --timeout flag in effect, "" if the command has none
}

// explain turns a failure to talk to the server into what the user can act
// on, each kind once and the URL once: the server could not be reached, the
// client could not authenticate or lacks a scope, or the server refused the
// request (what names the refusal: "bundle rejected"). It prints a refusal
// and returns exitError{1} for a rejected bundle (and a rejection the
// caller counts as one, via rejected), exitError{2} for any other refusal,
// and an error (exit 2) otherwise.
func (p peer) explain(cmd *cobra.Command, what string, err error, rejected func(*apiFailure) bool) error {
	if f, ok := errors.AsType[*apiFailure](err); ok {
		switch {
		case f.status == http.StatusUnauthorized && p.clientID == "":
			return fmt.Errorf("the server at %s requires an access token: give --client-id (a client with scope %s) and its secret in $%s", p.base, p.scope, secretEnv)
		case f.status == http.StatusUnauthorized:
			return fmt.Errorf("authentication failed: the server at %s did not accept the access token of client %q (%s: %s)", p.base, p.clientID, f.code, f.message)
		case f.status == http.StatusForbidden:
			return fmt.Errorf("client %q may not do this on %s: it needs scope %s (%s: %s)", p.clientID, p.base, p.scope, f.code, f.message)
		}
		fmt.Fprintf(cmd.ErrOrStderr(), "%s: %s\n", what, f.Error())
		if f.rejected() || (rejected != nil && rejected(f)) {
			return exitError{1}
		}
		return exitError{2}
	}
	if re, ok := errors.AsType[*oauth2.RetrieveError](err); ok {
		return p.tokenRefused(re)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		if p.timeout != "" {
			return fmt.Errorf("no answer from the server at %s within %s (--timeout)", p.base, p.timeout)
		}
		return fmt.Errorf("no answer from the server at %s in time", p.base)
	}
	if ue, ok := errors.AsType[*url.Error](err); ok {
		// The innermost cause, without the "Post URL:" of each layer.
		cause := ue.Err
		for {
			inner, ok := errors.AsType[*url.Error](cause)
			if !ok {
				break
			}
			cause = inner.Err
		}
		return fmt.Errorf("cannot reach the server at %s: %v (is verdict serve running there, and is --server right?)", p.base, cause)
	}
	return err
}

// tokenRefused explains a refusal of the token endpoint.
func (p peer) tokenRefused(re *oauth2.RetrieveError) error {
	detail := re.ErrorCode
	if re.ErrorDescription != "" {
		detail += ": " + re.ErrorDescription
	}
	switch {
	case re.ErrorCode == "invalid_client" || (re.Response != nil && re.Response.StatusCode == http.StatusUnauthorized):
		return fmt.Errorf("authentication failed: the server at %s did not accept client %q with the secret in $%s (%s); check --client-id and $%s (verdict client rotate-secret %s makes a new secret)",
			p.base, p.clientID, secretEnv, detail, secretEnv, p.clientID)
	case re.ErrorCode == "invalid_scope":
		return fmt.Errorf("client %q may not get a token with scope %s from %s (%s): use a client with that scope (verdict client add --scope %s)",
			p.clientID, p.scope, p.base, detail, p.scope)
	case re.ErrorCode == "too_many_requests":
		wait := ""
		if re.Response != nil && re.Response.Header.Get("Retry-After") != "" {
			wait = " in " + re.Response.Header.Get("Retry-After") + " s"
		}
		return fmt.Errorf("the server at %s refuses token requests for now: too many failed ones for client %q or from this address; try again%s, after checking --client-id and $%s",
			p.base, p.clientID, wait, secretEnv)
	case re.ErrorCode == "unauthorized_client":
		return fmt.Errorf("client %q may not use the client_credentials grant on %s (%s)", p.clientID, p.base, detail)
	case re.ErrorCode != "":
		return fmt.Errorf("the server at %s refused a token to client %q (%s)", p.base, p.clientID, detail)
	}
	status := "no answer"
	if re.Response != nil {
		status = re.Response.Status
	}
	return fmt.Errorf("getting a token from %s failed (%s, not an OAuth error): is --server the URL of a Verdict server?", p.base, status)
}
