package server

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"html/template"
	"net/url"
	"strings"

	"github.com/gofiber/fiber/v2"
)

// The sign-in pages: server-rendered, no script, one inline style
// sheet allowed by its hash.
//
//go:embed pages/*.html pages/style.css
var pageFiles embed.FS

var (
	pageCSS   = mustRead("pages/style.css")
	pageTmpl  = template.Must(template.ParseFS(pageFiles, "pages/*.html"))
	styleHash = func() string {
		sum := sha256.Sum256([]byte(pageCSS))
		return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
	}()
)

func mustRead(name string) string {
	b, err := pageFiles.ReadFile(name)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// page is what every page template gets, with its own fields in Data.
type page struct {
	Title  string
	Error  string
	Notice string
	CSRF   string
	CSS    template.CSS
	// Wide lays the page out for tables; Nav, when set, is the console
	// section shown in its navigation, Who the console's signed-in caller.
	Wide     bool
	Nav, Who string
}

// pageCSP is the policy of an HTML page: nothing loads but its own style
// sheet (and data: images where a QR code is shown); forms post only to
// Verdict and, after a redirect, to the origins in formTargets; never
// framed.
func pageCSP(images bool, formTargets ...string) string {
	var b strings.Builder
	b.WriteString("default-src 'none'; style-src ")
	b.WriteString(styleHash)
	if images {
		b.WriteString("; img-src data:")
	}
	b.WriteString("; form-action 'self'")
	for _, t := range formTargets {
		b.WriteString(" ")
		b.WriteString(t)
	}
	b.WriteString("; frame-ancestors 'none'; base-uri 'none'")
	return b.String()
}

// origin is the CSP source of a redirect URI: its scheme and host, or
// its scheme alone for a native app's private-use scheme.
func origin(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	if u.Host == "" {
		return u.Scheme + ":"
	}
	return u.Scheme + "://" + u.Host
}

// render writes an HTML page with status and the page's policy.
func (s *Server) render(c *fiber.Ctx, status int, name string, csp string, data any) error {
	var buf bytes.Buffer
	if err := pageTmpl.ExecuteTemplate(&buf, name, data); err != nil {
		return err
	}
	c.Set(fiber.HeaderContentSecurityPolicy, csp)
	c.Set(fiber.HeaderXFrameOptions, "DENY")
	c.Set(fiber.HeaderCacheControl, "no-store")
	c.Type("html", "utf-8")
	return c.Status(status).Send(buf.Bytes())
}

// newPage fills the common fields.
func (s *Server) newPage(c *fiber.Ctx, title string) page {
	return page{Title: title, CSRF: s.csrfToken(c), CSS: template.CSS(pageCSS)}
}

// message shows a page with a title and a sentence.
func (s *Server) message(c *fiber.Ctx, status int, title, text string) error {
	return s.render(c, status, "message.html", pageCSP(false), struct {
		page
		Text, Link, LinkText string
	}{page: s.newPage(c, title), Text: text})
}

// Cookies of the sign-in pages. With an https issuer they are Secure and
// carry the __Host- prefix (bound to this host, path /).
const (
	cookieSession = "verdict_session"
	cookieCSRF    = "verdict_csrf"
)

func (s *Server) secureCookies() bool { return strings.HasPrefix(s.issuer, "https://") }

func (s *Server) cookieName(base string) string {
	if s.secureCookies() {
		return "__Host-" + base
	}
	return base
}

func (s *Server) setCookie(c *fiber.Ctx, name, value string, maxAge int, sameSite string) {
	c.Cookie(&fiber.Cookie{
		Name: s.cookieName(name), Value: value, Path: "/", MaxAge: maxAge,
		Secure: s.secureCookies(), HTTPOnly: true, SameSite: sameSite,
	})
}

func (s *Server) clearCookie(c *fiber.Ctx, name string) {
	c.Cookie(&fiber.Cookie{
		Name: s.cookieName(name), Value: "", Path: "/", MaxAge: -1,
		Secure: s.secureCookies(), HTTPOnly: true, SameSite: fiber.CookieSameSiteLaxMode,
	})
}

// csrfToken returns the page's CSRF token: the value of the CSRF cookie,
// made and set now when the browser has none (double submit: a site that
// is not Verdict can neither read the cookie nor set it).
func (s *Server) csrfToken(c *fiber.Ctx) string {
	if v := c.Cookies(s.cookieName(cookieCSRF)); len(v) >= 32 && len(v) <= 64 {
		return v
	}
	if v, ok := c.Locals("csrf").(string); ok {
		return v
	}
	v := randomToken()
	c.Locals("csrf", v)
	s.setCookie(c, cookieCSRF, v, 0, fiber.CookieSameSiteStrictMode)
	return v
}

// checkCSRF reports whether a form post carries the CSRF cookie's value
// and, when the browser says where it came from, comes from this site.
func (s *Server) checkCSRF(c *fiber.Ctx) bool {
	if site := c.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
		return false
	}
	cookie := c.Cookies(s.cookieName(cookieCSRF))
	form := c.FormValue("csrf")
	return len(cookie) >= 32 && subtle.ConstantTimeCompare([]byte(cookie), []byte(form)) == 1
}

func randomToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b[:])
}
