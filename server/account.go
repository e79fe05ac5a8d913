package server

import (
	"encoding/base64"
	"errors"
	"html/template"

	"github.com/gofiber/fiber/v2"

	"github.com/verdictpdp/verdict/users"
)

// requireSession sends a browser without a session to the sign-in page,
// to come back to path.
func (s *Server) requireSession(c *fiber.Ctx, path string) (users.Session, users.User, bool, error) {
	ses, u, ok, err := s.session(c)
	if err != nil || ok {
		return ses, u, ok, err
	}
	return ses, u, false, c.Redirect("/login?return="+path, fiber.StatusSeeOther)
}

// account is GET /account: who is signed in, their second factor and
// sessions.
func (s *Server) account(c *fiber.Ctx) error {
	if err := s.signInEnabled(); err != nil {
		return err
	}
	_, u, ok, err := s.requireSession(c, "/account")
	if !ok {
		return err
	}
	list, err := s.people.Sessions(c.UserContext(), u.ID)
	if err != nil {
		return err
	}
	p := s.newPage(c, "Your account")
	p.Notice = c.Query("notice")
	if p.Notice != "" && p.Notice != "signed-out-elsewhere" {
		p.Notice = ""
	} else if p.Notice != "" {
		p.Notice = "Every other session is signed out."
	}
	return s.render(c, fiber.StatusOK, "account.html", pageCSP(false), struct {
		page
		User     users.Public
		Sessions []users.Session
	}{page: p, User: u.Public(), Sessions: list})
}

// enrolPage is GET /account/mfa: a new TOTP secret as a QR code.
func (s *Server) enrolPage(c *fiber.Ctx) error {
	if err := s.signInEnabled(); err != nil {
		return err
	}
	_, u, ok, err := s.requireSession(c, "/account/mfa")
	if !ok {
		return err
	}
	en, err := s.people.BeginTOTP(c.UserContext(), u.ID)
	if errors.Is(err, users.ErrMFAState) {
		return c.Redirect("/account", fiber.StatusSeeOther)
	}
	if err != nil {
		return err
	}
	return s.renderEnrol(c, fiber.StatusOK, en, "")
}

func (s *Server) renderEnrol(c *fiber.Ctx, status int, en users.Enrolment, msg string) error {
	p := s.newPage(c, "Set up two-step sign-in")
	p.Error = msg
	var qr string
	if len(en.QRPNG) > 0 {
		qr = "data:image/png;base64," + base64.StdEncoding.EncodeToString(en.QRPNG)
	}
	return s.render(c, status, "enrol.html", pageCSP(true), struct {
		page
		QR     template.URL
		Secret string
	}{page: p, QR: template.URL(qr), Secret: en.Secret}) //nolint:gosec // a data: URL of our own PNG
}

// enrol is POST /account/mfa: confirm the app's first code; the
// recovery codes are shown once, and the session is renewed (a
// privilege change).
func (s *Server) enrol(c *fiber.Ctx) error {
	if err := s.signInEnabled(); err != nil {
		return err
	}
	ses, u, ok, err := s.requireSession(c, "/account/mfa")
	if !ok {
		return err
	}
	if !s.checkCSRF(c) {
		return s.message(c, fiber.StatusForbidden, "The form expired", "Open your account page and try again.")
	}
	codes, err := s.people.ConfirmTOTP(c.UserContext(), u.ID, c.FormValue("code"), s.meta(c))
	switch {
	case errors.Is(err, users.ErrBadCode):
		return s.renderEnrol(c, fiber.StatusUnauthorized, users.Enrolment{}, "The code is wrong. Check the time on your phone and start again from your account page.")
	case errors.Is(err, users.ErrMFAState):
		return c.Redirect("/account", fiber.StatusSeeOther)
	case err != nil:
		return err
	}
	amr := append(append([]string{}, ses.AMR...), users.AMROTP, users.AMRMFA)
	cookie, err := s.startSession(c, u, amr, false)
	if err != nil {
		return err
	}
	if _, err := s.people.EndSessions(c.UserContext(), u.ID, users.SessionID(cookie)); err != nil {
		return err
	}
	return s.render(c, fiber.StatusOK, "recovery.html", pageCSP(false), struct {
		page
		Codes []string
	}{page: s.newPage(c, "Save your recovery codes"), Codes: codes})
}

// accountLogout is POST /account/logout: end this session (or every
// session of the user, with everywhere=1) and its tokens.
func (s *Server) accountLogout(c *fiber.Ctx) error {
	if err := s.signInEnabled(); err != nil {
		return err
	}
	if !s.checkCSRF(c) {
		return s.message(c, fiber.StatusForbidden, "The form expired", "Open your account page and try again.")
	}
	ses, u, ok, err := s.session(c)
	if err != nil {
		return err
	}
	if ok {
		if c.FormValue("everywhere") == "1" {
			_, err = s.people.EndSessions(c.UserContext(), u.ID, "")
		} else {
			err = s.people.EndSession(c.UserContext(), ses.ID, s.meta(c))
		}
		if err != nil && !errors.Is(err, users.ErrNotFound) {
			return err
		}
	}
	s.clearCookie(c, cookieSession)
	return s.message(c, fiber.StatusOK, "Signed out", "You are signed out.")
}
