package server

import (
	"errors"
	"net/url"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/verdictpdp/verdict/oauth"
	"github.com/verdictpdp/verdict/users"
)

// authorizeRequest reads the authorization request from the query.
func authorizeRequest(c *fiber.Ctx) oauth.AuthorizeRequest {
	return authorizeParams(func(k string) string { return c.Query(k) })
}

// authorizeParams reads an authorization request's parameters with get
// (the request's query, or a sign-in page's return address).
func authorizeParams(get func(string) string) oauth.AuthorizeRequest {
	return oauth.AuthorizeRequest{
		ResponseType: get("response_type"), ClientID: get("client_id"),
		RedirectURI: get("redirect_uri"), Scope: get("scope"), State: get("state"),
		Nonce: get("nonce"), CodeChallenge: get("code_challenge"),
		CodeChallengeMethod: get("code_challenge_method"), Prompt: get("prompt"),
		MaxAge: get("max_age"), ResponseMode: get("response_mode"),
		Request: get("request"), RequestURI: get("request_uri"),
	}
}

// authorizeFail answers a refused authorization request: back to the
// client when its redirect URI was checked, else a page (never a
// redirect to an unchecked address).
func (s *Server) authorizeFail(c *fiber.Ctx, err error) error {
	var ae *oauth.AuthorizeError
	if !errors.As(err, &ae) {
		return err
	}
	s.log.Info("authorization refused", "audit", true, "request_id", requestID(c),
		"client_id", c.Query("client_id"), "error", ae.Code, "redirect", ae.Redirect)
	if !ae.Redirect {
		return s.message(c, fiber.StatusBadRequest, "This sign-in link is not valid", ae.Description+".")
	}
	return c.Redirect(ae.Location(s.issuer), fiber.StatusSeeOther)
}

func (s *Server) redirectError(c *fiber.Ctx, az oauth.Authorization, code, desc string) error {
	return s.authorizeFail(c, &oauth.AuthorizeError{Code: code, Description: desc, Redirect: true, RedirectURI: az.RedirectURI, State: az.State})
}

// authorize is GET /oauth2/authorize (RFC 6749 §4.1.1, OpenID Connect
// Core §3.1.2): check the request, make sure the user is signed in
// (recently enough for max_age, again for prompt=login) and consented,
// then send the browser back with a code.
func (s *Server) authorize(c *fiber.Ctx) error {
	if err := s.signInEnabled(); err != nil {
		return err
	}
	az, err := s.authorizer.Check(c.UserContext(), authorizeRequest(c))
	if err != nil {
		return s.authorizeFail(c, err)
	}
	ses, u, ok, err := s.session(c)
	if err != nil {
		return err
	}
	stale := ok && az.MaxAge >= 0 && time.Since(ses.AuthTime) > az.MaxAge
	if !ok || stale || az.Prompt == "login" {
		if az.Prompt == "none" {
			return s.redirectError(c, az, oauth.OAuthLoginRequired, "the user is not signed in")
		}
		if stale {
			// Sign in again: the old session cannot prove a recent sign-in.
			if err := s.people.EndSession(c.UserContext(), ses.ID, s.meta(c)); err != nil && !errors.Is(err, users.ErrNotFound) {
				return err
			}
		}
		return c.Redirect("/login?return="+url.QueryEscape(c.OriginalURL()), fiber.StatusSeeOther)
	}
	if !az.Client.FirstParty {
		has, err := s.people.HasConsent(c.UserContext(), u.ID, az.Client.ID, oauth.UserScopes(u, az.Scopes))
		if err != nil {
			return err
		}
		if !has || az.Prompt == "consent" {
			if az.Prompt == "none" {
				return s.redirectError(c, az, oauth.OAuthConsentRequired, "the user has not allowed this client these scopes")
			}
			return s.consentPage(c, az, u)
		}
	}
	return s.issueCode(c, az, ses, u)
}

func (s *Server) issueCode(c *fiber.Ctx, az oauth.Authorization, ses users.Session, u users.User) error {
	loc, err := s.authorizer.IssueCode(c.UserContext(), az, oauth.SignIn{User: u, SessionID: ses.ID, AuthTime: ses.AuthTime, AMR: ses.AMR})
	if err != nil {
		return err
	}
	s.log.Info("authorization code issued", "audit", true, "request_id", requestID(c), "client_id", az.Client.ID, "user_id", u.ID)
	// The redirect follows a form post on the consent page: the page's
	// form-action allowed the client's origin.
	return c.Redirect(loc, fiber.StatusSeeOther)
}

// scopeTexts say what each scope lets a client do, on the consent page.
var scopeTexts = map[string]string{
	oauth.ScopeOpenID:  "know who you are",
	oauth.ScopeProfile: "see your name",
	oauth.ScopeEmail:   "see your email address",
	"verdict:decide":   "ask Verdict for decisions as you",
}

func (s *Server) consentPage(c *fiber.Ctx, az oauth.Authorization, u users.User) error {
	type scope struct{ Name, Text string }
	var list []scope
	for _, sc := range oauth.UserScopes(u, az.Scopes) {
		list = append(list, scope{Name: sc, Text: scopeTexts[sc]})
	}
	name := az.Client.Name
	if name == "" {
		name = az.Client.ID
	}
	return s.render(c, fiber.StatusOK, "consent.html", pageCSP(false, origin(az.RedirectURI)), struct {
		page
		ClientName, Email, Action string
		Scopes                    []scope
	}{page: s.newPage(c, "Allow access?"), ClientName: name, Email: u.Email, Action: c.OriginalURL(), Scopes: list})
}

// authorizeConsent is POST /oauth2/authorize: the consent page's answer
// (the request itself is still in the query).
func (s *Server) authorizeConsent(c *fiber.Ctx) error {
	if err := s.signInEnabled(); err != nil {
		return err
	}
	az, err := s.authorizer.Check(c.UserContext(), authorizeRequest(c))
	if err != nil {
		return s.authorizeFail(c, err)
	}
	if !s.checkCSRF(c) {
		return s.message(c, fiber.StatusForbidden, "The form expired", "Go back to the application and sign in again.")
	}
	ses, u, ok, err := s.session(c)
	if err != nil {
		return err
	}
	if !ok {
		return c.Redirect("/login?return="+url.QueryEscape(c.OriginalURL()), fiber.StatusSeeOther)
	}
	if c.FormValue("decision") != "allow" {
		s.log.Info("consent denied", "audit", true, "request_id", requestID(c), "client_id", az.Client.ID, "user_id", u.ID)
		return s.redirectError(c, az, oauth.OAuthAccessDenied, "the user denied the request")
	}
	if err := s.people.GrantConsent(c.UserContext(), u.ID, az.Client.ID, oauth.UserScopes(u, az.Scopes), s.meta(c)); err != nil {
		return err
	}
	return s.issueCode(c, az, ses, u)
}
