package server

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/verdictpdp/verdict/authn"
	"github.com/verdictpdp/verdict/bundles"
	"github.com/verdictpdp/verdict/oauth"
	"github.com/verdictpdp/verdict/users"
)

// The console (/console): server-rendered pages for policy authors and
// operators, on the admin listener when one is set. No script: every
// action is a form (keyboard-usable, CSP default-src 'none' with one
// hashed style sheet), every form posts a CSRF token (double submit, and
// Sec-Fetch-Site when the browser sends it). Who may use it: an OAuth
// client with verdict:admin, signed in with its credentials (the console
// keeps the access token it gets in an HttpOnly, SameSite=Strict cookie
// scoped to /console and checks it on every request, revocation
// included), or a signed-in user whose roles include verdict:admin.

const (
	consolePath   = "/console"
	cookieConsole = "verdict_console"
)

// consoleRoutes are the console's rows of the route table.
func (s *Server) consoleRoutes() []route {
	auth := []fiber.Handler{s.consoleAuth}
	return []route{
		{fiber.MethodGet, consolePath, s.consoleOverview, auth},
		{fiber.MethodGet, consolePath + "/login", s.consoleLoginPage, nil},
		{fiber.MethodPost, consolePath + "/login", s.consoleLogin, nil},
		{fiber.MethodPost, consolePath + "/logout", s.consoleLogout, nil},
		{fiber.MethodGet, consolePath + "/revisions", s.consoleRevisions, auth},
		{fiber.MethodGet, consolePath + "/revisions/:revision/activate", s.consoleConfirmActivate, auth},
		{fiber.MethodPost, consolePath + "/revisions/:revision/activate", s.consoleActivate, auth},
		{fiber.MethodGet, consolePath + "/revisions/:revision/download", s.downloadBundle, auth},
		{fiber.MethodGet, consolePushPath, s.consolePushPage, auth},
		{fiber.MethodPost, consolePushPath, s.consolePush, auth},
		{fiber.MethodGet, consolePath + "/preview", s.consolePreviewPage, auth},
		{fiber.MethodPost, consolePath + "/preview", s.consolePreview, auth},
		{fiber.MethodGet, consolePath + "/decisions", s.consoleDecisions, auth},
		{fiber.MethodGet, consolePath + "/playground", s.consolePlayground, auth},
		{fiber.MethodPost, consolePath + "/playground", s.consoleDecide, auth},
		{fiber.MethodPost, consolePath + "/playground/testcase", s.consoleTestCase, auth},
	}
}

// consolePage is what every console template gets: page's Nav is the
// current section, Who the signed-in client id or user's email.
type consolePage struct {
	page
}

const consoleWho = "verdict.console.who"

func (s *Server) newConsolePage(c *fiber.Ctx, title, nav string) consolePage {
	p := consolePage{page: s.newPage(c, title)}
	p.Wide, p.Nav = true, nav
	p.Who, _ = c.Locals(consoleWho).(string)
	return p
}

// consoleAuth lets a request through with a console token of a client
// with verdict:admin, or the session of a user with the verdict:admin
// role; any other is sent to the sign-in page (a page, not a 401: the
// caller is a browser).
func (s *Server) consoleAuth(c *fiber.Ctx) error {
	if who, ok := s.consoleCaller(c); ok {
		c.Locals(consoleWho, who)
		return c.Next()
	}
	return c.Redirect(consolePath+"/login", fiber.StatusSeeOther)
}

// consoleCaller is who the request is signed in as, if anyone allowed.
func (s *Server) consoleCaller(c *fiber.Ctx) (string, bool) {
	if tok := c.Cookies(s.cookieName(cookieConsole)); tok != "" && s.verifier != nil {
		claims, err := s.verifier.Verify(c.UserContext(), tok)
		if err == nil && authn.HasScope(claims.Scopes(), ScopeAdmin) {
			id, _ := claims["client_id"].(string)
			return id, true
		}
	}
	if s.people != nil {
		if sess, u, ok, err := s.session(c); err == nil && ok && !sess.MFAPending && slices.Contains(u.Roles, ScopeAdmin) {
			return u.Email, true
		}
	}
	return "", false
}

func (s *Server) consoleLoginPage(c *fiber.Ctx) error {
	if _, ok := s.consoleCaller(c); ok {
		return c.Redirect(consolePath, fiber.StatusSeeOther)
	}
	return s.renderConsoleLogin(c, fiber.StatusOK, "", "")
}

func (s *Server) renderConsoleLogin(c *fiber.Ctx, status int, clientID, msg string) error {
	p := s.newConsolePage(c, "Sign in to the console", "")
	p.Error = msg
	return s.render(c, status, "console_login.html", pageCSP(false), struct {
		consolePage
		ClientID string
		People   bool
	}{p, clientID, s.people != nil})
}

// consoleLogin signs a client in with its credentials: the token service
// issues it an access token with verdict:admin (refused without that
// scope), which the console keeps in its cookie for the token's life.
func (s *Server) consoleLogin(c *fiber.Ctx) error {
	if !s.checkCSRF(c) {
		return s.renderConsoleLogin(c, fiber.StatusForbidden, "", "The form expired or came from another site; sign in again.")
	}
	id, secret := strings.TrimSpace(c.FormValue("client_id")), c.FormValue("client_secret")
	if id == "" || secret == "" {
		return s.renderConsoleLogin(c, fiber.StatusBadRequest, id, "Enter the client id and its secret.")
	}
	if s.tokens == nil {
		return s.renderConsoleLogin(c, fiber.StatusServiceUnavailable, id, "This server issues no tokens.")
	}
	resp, err := s.tokens.Token(c.UserContext(), oauth.TokenRequest{
		ClientCredentials: oauth.ClientCredentials{ClientID: id, ClientSecret: secret},
		GrantType:         "client_credentials", Scope: ScopeAdmin,
	})
	if err != nil {
		s.log.Info("console sign-in refused", "audit", true, "request_id", requestID(c), "client_id", id, "source", s.clientIP(c), "error", err)
		var oe *oauth.OAuthError
		if errors.As(err, &oe) && oe.Code == "invalid_scope" {
			return s.renderConsoleLogin(c, fiber.StatusForbidden, id, "This client may not use the console: it lacks the verdict:admin scope.")
		}
		return s.renderConsoleLogin(c, fiber.StatusUnauthorized, id, "Wrong client id or secret.")
	}
	s.log.Info("console sign-in", "audit", true, "request_id", requestID(c), "client_id", id, "source", s.clientIP(c))
	c.Cookie(&fiber.Cookie{
		Name: s.cookieName(cookieConsole), Value: resp.AccessToken, Path: s.consoleCookiePath(), MaxAge: int(resp.ExpiresIn),
		Secure: s.secureCookies(), HTTPOnly: true, SameSite: fiber.CookieSameSiteStrictMode,
	})
	return c.Redirect(consolePath, fiber.StatusSeeOther)
}

// consoleCookiePath scopes the token to the console; a __Host- cookie
// must have path /.
func (s *Server) consoleCookiePath() string {
	if s.secureCookies() {
		return "/"
	}
	return consolePath
}

// consoleLogout signs out: the console token is revoked (on every
// replica, through the revocation list) and forgotten; a person's session
// ends.
func (s *Server) consoleLogout(c *fiber.Ctx) error {
	if !s.checkCSRF(c) {
		return s.message(c, fiber.StatusForbidden, "Not signed out", "The form expired or came from another site.")
	}
	ctx := c.UserContext()
	if tok := c.Cookies(s.cookieName(cookieConsole)); tok != "" && s.tokens != nil {
		if err := s.tokens.RevokeHeld(ctx, tok); err != nil {
			// Not forgotten while the token still works: say so, and let
			// the person try again.
			s.log.Warn("console sign-out could not revoke its token", "request_id", requestID(c), "error", err)
			return s.message(c, fiber.StatusServiceUnavailable, "Not signed out",
				"The console's token could not be revoked (the store did not answer); try again.")
		}
	}
	if s.people != nil {
		if ses, _, ok, err := s.session(c); err == nil && ok {
			if err := s.people.EndSession(ctx, ses.ID, s.meta(c)); err != nil && !errors.Is(err, users.ErrNotFound) {
				return err
			}
			s.clearCookie(c, cookieSession)
		}
	}
	c.Cookie(&fiber.Cookie{
		Name: s.cookieName(cookieConsole), Value: "", Path: s.consoleCookiePath(), MaxAge: -1,
		Secure: s.secureCookies(), HTTPOnly: true, SameSite: fiber.CookieSameSiteStrictMode,
	})
	return c.Redirect(consolePath+"/login", fiber.StatusSeeOther)
}

// consoleRevisions lists the stored revisions, newest first, with what
// can be done to each.
func (s *Server) consoleRevisions(c *fiber.Ctx) error {
	return s.renderRevisions(c, fiber.StatusOK, "", c.Query("activated"))
}

func (s *Server) renderRevisions(c *fiber.Ctx, status int, msg, activated string) error {
	p := s.newConsolePage(c, "Revisions", "revisions")
	p.Error = msg
	if activated != "" {
		p.Notice = "Revision " + activated + " is active: it makes every decision now."
	}
	var revs []bundles.RevisionInfo
	if s.bundleAdmin == nil {
		p.Error = "This server keeps no revisions (no bundle store)."
	} else {
		var err error
		if revs, err = s.bundleAdmin.Revisions(c.UserContext()); err != nil {
			return err
		}
		slices.SortStableFunc(revs, func(a, b bundles.RevisionInfo) int { return b.PushedAt.Compare(a.PushedAt) })
	}
	return s.render(c, status, "console_revisions.html", pageCSP(false), struct {
		consolePage
		Revisions []bundles.RevisionInfo
	}{p, revs})
}

// consoleConfirmActivate asks before a revision replaces the active one.
func (s *Server) consoleConfirmActivate(c *fiber.Ctx) error {
	rev, err := s.revisionParam(c)
	if err != nil {
		return err
	}
	p := s.newConsolePage(c, "Activate "+rev+"?", "revisions")
	var active string
	if a := s.bundles.Active(); a != nil {
		active = a.Snapshot.Revision()
	}
	return s.render(c, fiber.StatusOK, "console_activate.html", pageCSP(false), struct {
		consolePage
		Revision, Active, Action string
	}{p, rev, active, consolePath + "/revisions/" + url.PathEscape(rev) + "/activate"})
}

// consoleActivate activates a stored revision (a rollback, or a roll
// forward), re-checked first: a revision that no longer compiles or
// passes its tests is refused and the active one keeps serving.
func (s *Server) consoleActivate(c *fiber.Ctx) error {
	rev, err := s.revisionParam(c)
	if err != nil {
		return err
	}
	if !s.checkCSRF(c) {
		return s.renderRevisions(c, fiber.StatusForbidden, "The form expired or came from another site; nothing was activated.", "")
	}
	if s.bundleAdmin == nil {
		return s.renderRevisions(c, fiber.StatusNotFound, "This server keeps no revisions.", "")
	}
	res, err := s.bundleAdmin.Activate(c.UserContext(), rev)
	if err != nil {
		_, code, msg, _ := Refusal(bundleError(err))
		return s.renderRevisions(c, fiber.StatusConflict, fmt.Sprintf("%s was not activated (%s): %s", rev, code, msg), "")
	}
	who, _ := c.Locals(consoleWho).(string)
	s.log.Info("bundle revision activated from the console", "audit", true, "revision", res.Revision, "by", who, "request_id", requestID(c))
	return c.Redirect(consolePath+"/revisions?activated="+url.QueryEscape(res.Revision), fiber.StatusSeeOther)
}

// consoleOverview shows what serves now.
func (s *Server) consoleOverview(c *fiber.Ctx) error {
	p := s.newConsolePage(c, "Overview", "overview")
	type overview struct {
		Revision, Source, LoadedAt, Age string
		Generation                      uint64
		Engines                         []string
		Tests                           bundles.TestSummary
		Policies                        map[string]int
		CacheHits, CacheMisses          uint64
		HitRate                         string
		Replica                         bool
		ReplicaHealthy, Reachable       bool
		SinceSync                       string
		Version, Uptime                 string
		Rates                           rateChart
		Coverage                        *bundles.Coverage
		Replicas                        consoleReplicas
	}
	o := overview{Version: s.version, Uptime: time.Since(s.started).Round(time.Second).String(), Rates: s.rates.chart(),
		Replicas: s.consoleReplicas(c.UserContext())}
	o.CacheHits, o.CacheMisses = s.dec.CacheStats()
	if n := o.CacheHits + o.CacheMisses; n > 0 {
		o.HitRate = fmt.Sprintf("%.1f%%", 100*float64(o.CacheHits)/float64(n))
	}
	if a := s.bundles.Active(); a != nil {
		o.Revision, o.Generation, o.Tests = a.Snapshot.Revision(), a.Generation, a.Tests
		o.LoadedAt = a.LoadedAt.UTC().Format(time.RFC3339)
		o.Age = time.Since(a.LoadedAt).Round(time.Second).String()
		o.Source = "paths"
		if a.Pushed {
			o.Source = "push"
		}
		o.Policies = a.Snapshot.Counts()
		o.Coverage = s.coverage(c.UserContext(), a)
		for _, k := range []string{bundles.KindCEL, bundles.KindRego} {
			if o.Policies[k] > 0 {
				o.Engines = append(o.Engines, k)
			}
		}
	}
	if r := s.replica; r != nil {
		o.Replica, o.ReplicaHealthy, o.Reachable = true, r.Healthy(), r.Reachable()
		o.SinceSync = r.SinceSync().Round(time.Second).String()
	}
	return s.render(c, fiber.StatusOK, "console_overview.html", pageCSP(false), struct {
		consolePage
		O overview
	}{p, o})
}

// coverage is the rule coverage of the active bundles' own test cases,
// computed once per activation (a generation) and kept.
func (s *Server) coverage(ctx context.Context, a *bundles.Active) *bundles.Coverage {
	if cur := s.covered.Load(); cur != nil && cur.gen == a.Generation {
		return cur.cov
	}
	_, cov := bundles.RunTestsCovered(ctx, a.Snapshot, a.Cases)
	s.covered.Store(&generationCoverage{gen: a.Generation, cov: cov})
	return cov
}

type generationCoverage struct {
	gen uint64
	cov *bundles.Coverage
}
