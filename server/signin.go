package server

import (
	"context"
	"errors"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/verdictpdp/verdict/oauth"
	"github.com/verdictpdp/verdict/users"
)

// People is what the sign-in pages need of the users service.
type People interface {
	SignIn(ctx context.Context, email, password string, m users.Meta) (users.User, error)
	StartSession(ctx context.Context, u users.User, amr []string, mfaPending bool, m users.Meta) (string, users.Session, error)
	Resume(ctx context.Context, cookie string) (users.Session, users.User, error)
	EndSession(ctx context.Context, id string, m users.Meta) error
	EndSessions(ctx context.Context, userID, except string) (int, error)
	VerifySecondFactor(ctx context.Context, userID, code string, m users.Meta) (string, error)
	HasConsent(ctx context.Context, userID, clientID string, scopes []string) (bool, error)
	GrantConsent(ctx context.Context, userID, clientID string, scopes []string, m users.Meta) error
	BeginTOTP(ctx context.Context, userID string) (users.Enrolment, error)
	ConfirmTOTP(ctx context.Context, userID, code string, m users.Meta) ([]string, error)
	Sessions(ctx context.Context, userID string) ([]users.Session, error)
	Get(ctx context.Context, id string) (users.User, error)
	Config() users.Config
}

var _ People = (*users.Service)(nil)

// WithSignIn serves the people-facing routes: the authorization endpoint
// of the code flow, the sign-in, second-factor and consent pages, the
// account page, userinfo and RP-initiated logout. It needs WithTokens
// (the issuer) and WithJWKS.
func WithSignIn(p People, a *oauth.Authorizer) Option {
	return func(s *Server) { s.people, s.authorizer = p, a }
}

func (s *Server) meta(c *fiber.Ctx) users.Meta {
	return users.Meta{IP: s.clientIP(c), UserAgent: c.Get(fiber.HeaderUserAgent), RequestID: requestID(c)}
}

// session returns the browser's signed-in session (not one waiting for
// its second factor), or ok false.
func (s *Server) session(c *fiber.Ctx) (users.Session, users.User, bool, error) {
	ses, u, err := s.people.Resume(c.UserContext(), c.Cookies(s.cookieName(cookieSession)))
	if errors.Is(err, users.ErrNoSession) || (err == nil && ses.MFAPending) {
		return users.Session{}, users.User{}, false, nil
	}
	return ses, u, err == nil, err
}

// startSession opens a session for u, ends the browser's previous one
// (the id changes at every sign-in and privilege change), sets the cookie
// and returns its value.
func (s *Server) startSession(c *fiber.Ctx, u users.User, amr []string, pending bool) (string, error) {
	ctx := c.UserContext()
	if old := c.Cookies(s.cookieName(cookieSession)); old != "" {
		if err := s.people.EndSession(ctx, users.SessionID(old), s.meta(c)); err != nil && !errors.Is(err, users.ErrNotFound) {
			return "", err
		}
	}
	cookie, _, err := s.people.StartSession(ctx, u, amr, pending, s.meta(c))
	if err != nil {
		return "", err
	}
	cfg := s.people.Config().Sessions
	life := cfg.Absolute
	if pending {
		life = cfg.MFAPending
	}
	s.setCookie(c, cookieSession, cookie, int(life/time.Second), fiber.CookieSameSiteLaxMode)
	return cookie, nil
}

// safeReturn keeps a return address only if it is one of Verdict's own
// sign-in paths (never another site: no open redirect).
// On the admin listener (where the sign-in pages are also answered, for
// the console) only the console's paths are, as nothing else is served
// there.
func safeReturn(c *fiber.Ctx, r string) string {
	if strings.ContainsAny(r, "\\\r\n") {
		r = ""
	}
	console := r == consolePath || strings.HasPrefix(r, consolePath+"/")
	if fromAdmin(c) {
		if console {
			return r
		}
		return consolePath
	}
	if strings.HasPrefix(r, "/oauth2/authorize?") || r == "/account" || strings.HasPrefix(r, "/account/") || console {
		return r
	}
	return "/account"
}

func (s *Server) signInEnabled() error {
	if s.people == nil || s.authorizer == nil {
		return newError(fiber.StatusNotFound, CodeNotFound, "sign-in is not enabled on this server")
	}
	return nil
}

// loginPage is GET /login.
func (s *Server) loginPage(c *fiber.Ctx) error {
	if err := s.signInEnabled(); err != nil {
		return err
	}
	ret := safeReturn(c, c.Query("return"))
	if _, _, ok, err := s.session(c); err != nil {
		return err
	} else if ok && !strings.Contains(ret, "prompt=login") {
		return c.Redirect(ret, fiber.StatusSeeOther)
	}
	return s.renderLogin(c, fiber.StatusOK, ret, "", "")
}

func (s *Server) renderLogin(c *fiber.Ctx, status int, ret, email, msg string) error {
	p := s.newPage(c, "Sign in")
	p.Error = msg
	return s.render(c, status, "login.html", pageCSP(false, s.returnOrigin(c, ret)...), struct {
		page
		Return, Email string
	}{page: p, Return: ret, Email: email})
}

// login is POST /login: the password step.
func (s *Server) login(c *fiber.Ctx) error {
	if err := s.signInEnabled(); err != nil {
		return err
	}
	ret := safeReturn(c, c.FormValue("return"))
	email := c.FormValue("email")
	if !s.checkCSRF(c) {
		return s.renderLogin(c, fiber.StatusForbidden, ret, email, "The form expired. Please sign in again.")
	}
	u, err := s.people.SignIn(c.UserContext(), email, c.FormValue("password"), s.meta(c))
	var locked *users.LockedError
	switch {
	case errors.As(err, &locked):
		c.Set(fiber.HeaderRetryAfter, strconv.Itoa(int(locked.RetryAfter(time.Now())/time.Second)))
		return s.renderLogin(c, fiber.StatusTooManyRequests, ret, email,
			"Too many failed sign-ins. Try again in "+locked.RetryAfter(time.Now()).String()+".")
	case errors.Is(err, users.ErrBadCredentials):
		return s.renderLogin(c, fiber.StatusUnauthorized, ret, email, "The email or password is wrong.")
	case err != nil:
		return err
	}
	if u.MFAEnabled() {
		if _, err := s.startSession(c, u, []string{users.AMRPassword}, true); err != nil {
			return err
		}
		return c.Redirect("/login/mfa?return="+url.QueryEscape(ret), fiber.StatusSeeOther)
	}
	if _, err := s.startSession(c, u, []string{users.AMRPassword}, false); err != nil {
		return err
	}
	return c.Redirect(stripPromptLogin(ret), fiber.StatusSeeOther)
}

// returnOrigin is the origin a sign-in form's redirects end at when it
// returns to an authorization request: browsers hold the redirects that
// follow a form post to the page's form-action. Only a redirect URI the
// client registered counts (the request is checked as /oauth2/authorize
// will check it).
func (s *Server) returnOrigin(c *fiber.Ctx, ret string) []string {
	_, query, ok := strings.Cut(ret, "?")
	if !ok || !strings.HasPrefix(ret, "/oauth2/authorize?") {
		return nil
	}
	q, err := url.ParseQuery(query)
	if err != nil {
		return nil
	}
	az, err := s.authorizer.Check(c.UserContext(), authorizeParams(q.Get))
	var ae *oauth.AuthorizeError
	switch {
	case err == nil:
		return []string{origin(az.RedirectURI)}
	case errors.As(err, &ae) && ae.Redirect:
		return []string{origin(ae.RedirectURI)} // checked: an error goes back there
	}
	return nil
}

// stripPromptLogin removes prompt=login and max_age from an
// authorization request once the user has just signed in: both asked for
// a fresh sign-in, which now happened (the ID token's auth_time says
// when), so asking again would loop.
func stripPromptLogin(ret string) string {
	path, query, ok := strings.Cut(ret, "?")
	if !ok {
		return ret
	}
	q, err := url.ParseQuery(query)
	if err != nil || (q.Get("prompt") != "login" && !q.Has("max_age")) {
		return ret
	}
	if q.Get("prompt") == "login" {
		q.Del("prompt")
	}
	q.Del("max_age")
	return path + "?" + q.Encode()
}

// pendingSession is the browser's session that waits for its second
// factor.
func (s *Server) pendingSession(c *fiber.Ctx) (users.Session, users.User, bool, error) {
	ses, u, err := s.people.Resume(c.UserContext(), c.Cookies(s.cookieName(cookieSession)))
	if errors.Is(err, users.ErrNoSession) || (err == nil && !ses.MFAPending) {
		return users.Session{}, users.User{}, false, nil
	}
	return ses, u, err == nil, err
}

func (s *Server) renderMFA(c *fiber.Ctx, status int, ret, msg string) error {
	p := s.newPage(c, "Two-step sign-in")
	p.Error = msg
	return s.render(c, status, "mfa.html", pageCSP(false, s.returnOrigin(c, ret)...), struct {
		page
		Return string
	}{page: p, Return: ret})
}

// mfaPage is GET /login/mfa.
func (s *Server) mfaPage(c *fiber.Ctx) error {
	if err := s.signInEnabled(); err != nil {
		return err
	}
	ret := safeReturn(c, c.Query("return"))
	if _, _, ok, err := s.pendingSession(c); err != nil || !ok {
		if err != nil {
			return err
		}
		return c.Redirect("/login?return="+url.QueryEscape(ret), fiber.StatusSeeOther)
	}
	return s.renderMFA(c, fiber.StatusOK, ret, "")
}

// mfa is POST /login/mfa: the second step.
func (s *Server) mfa(c *fiber.Ctx) error {
	if err := s.signInEnabled(); err != nil {
		return err
	}
	ret := safeReturn(c, c.FormValue("return"))
	if !s.checkCSRF(c) {
		return s.renderMFA(c, fiber.StatusForbidden, ret, "The form expired. Please try again.")
	}
	_, u, ok, err := s.pendingSession(c)
	if err != nil {
		return err
	}
	if !ok {
		return c.Redirect("/login?return="+url.QueryEscape(ret), fiber.StatusSeeOther)
	}
	_, err = s.people.VerifySecondFactor(c.UserContext(), u.ID, c.FormValue("code"), s.meta(c))
	var locked *users.LockedError
	switch {
	case errors.As(err, &locked):
		c.Set(fiber.HeaderRetryAfter, strconv.Itoa(int(locked.RetryAfter(time.Now())/time.Second)))
		return s.renderMFA(c, fiber.StatusTooManyRequests, ret, "Too many wrong codes. Try again in "+locked.RetryAfter(time.Now()).String()+".")
	case errors.Is(err, users.ErrBadCode):
		return s.renderMFA(c, fiber.StatusUnauthorized, ret, "The code is wrong or was already used.")
	case err != nil:
		return err
	}
	if _, err := s.startSession(c, u, []string{users.AMRPassword, users.AMROTP, users.AMRMFA}, false); err != nil {
		return err
	}
	return c.Redirect(stripPromptLogin(ret), fiber.StatusSeeOther)
}
