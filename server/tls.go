package server

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/verdictpdp/verdict/internal/pemutil"

	"github.com/gofiber/fiber/v2"
)

// TLS configures HTTPS on the server's listeners (the public one and the
// admin one). With no CertFile the listeners speak plain HTTP.
type TLS struct {
	// CertFile and KeyFile are the PEM certificate chain and its private
	// key: both or neither. They are read again when either changes
	// (checked at most once a second, when a client connects), so a renewed
	// certificate is served without a restart; a pair that does not load is
	// logged and the previous one kept.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// MinVersion is the oldest TLS version accepted: "1.2" (the default)
	// or "1.3".
	MinVersion string `yaml:"min_version"`
	// ClientCAFile holds the PEM CA certificates client certificates are
	// verified against (mTLS); read again as the pair is. Needs
	// ClientCertRoutes.
	ClientCAFile string `yaml:"client_ca_file"`
	// ClientCertRoutes are the path prefixes (whole segments: "/v1/admin"
	// covers /v1/admin/clients) whose requests must come with a client
	// certificate that verifies against ClientCAFile, else 403
	// client_certificate_required. "/" is every route: a client without a
	// certificate is then refused in the handshake.
	ClientCertRoutes []string `yaml:"client_cert_routes"`
	// HSTSMaxAge is the max-age of the Strict-Transport-Security header on
	// every answer over TLS; 0 sends none. Default 365 days.
	HSTSMaxAge time.Duration `yaml:"hsts_max_age"`
}

// DefaultHSTSMaxAge is a year, what browsers' preload lists ask for.
const DefaultHSTSMaxAge = 365 * 24 * time.Hour

// CodeClientCertRequired answers a request on a route of
// server.tls.client_cert_routes that came without a verified client
// certificate.
const CodeClientCertRequired = "client_certificate_required"

// Enabled reports whether the listeners speak TLS.
func (t TLS) Enabled() bool { return t.CertFile != "" || t.KeyFile != "" }

func (t TLS) everyRoute() bool {
	for _, r := range t.ClientCertRoutes {
		if r == "/" {
			return true
		}
	}
	return false
}

// validate reports every problem of t, loading its files as a start would.
func (t TLS) validate(grpcClientCert bool) []error {
	var errs []error
	if !t.Enabled() {
		if t.ClientCAFile != "" || len(t.ClientCertRoutes) > 0 {
			errs = append(errs, errors.New("server tls.client_ca_file and tls.client_cert_routes need tls.cert_file and tls.key_file"))
		}
		return errs
	}
	if t.CertFile == "" || t.KeyFile == "" {
		errs = append(errs, errors.New("server tls.cert_file and tls.key_file: set both or neither"))
	} else if _, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile); err != nil {
		errs = append(errs, fmt.Errorf("server tls.cert_file/key_file: %w", err))
	}
	if _, err := tlsVersion(t.MinVersion); err != nil {
		errs = append(errs, err)
	}
	if t.ClientCAFile != "" {
		if _, err := pemutil.LoadCAs(t.ClientCAFile); err != nil {
			errs = append(errs, fmt.Errorf("server tls.client_ca_file: %w", err))
		}
		if len(t.ClientCertRoutes) == 0 && !grpcClientCert {
			errs = append(errs, errors.New("server tls.client_ca_file needs tls.client_cert_routes: the route prefixes that require a client certificate (\"/\" for every route), or server.grpc_client_cert"))
		}
	} else if len(t.ClientCertRoutes) > 0 {
		errs = append(errs, errors.New("server tls.client_cert_routes needs tls.client_ca_file: the CA certificates client certificates are verified against"))
	}
	for i, r := range t.ClientCertRoutes {
		if !strings.HasPrefix(r, "/") || (len(r) > 1 && strings.HasSuffix(r, "/")) || strings.ContainsAny(r, " :*?#") {
			errs = append(errs, fmt.Errorf("server tls.client_cert_routes[%d] %q: a path prefix such as /v1/admin (\"/\" for every route; no trailing slash, no parameters)", i, r))
		}
	}
	if t.HSTSMaxAge < 0 {
		errs = append(errs, errors.New("server tls.hsts_max_age must not be negative (0 sends no Strict-Transport-Security)"))
	}
	return errs
}

func tlsVersion(v string) (uint16, error) {
	switch v {
	case "", "1.2":
		return tls.VersionTLS12, nil
	case "1.3":
		return tls.VersionTLS13, nil
	}
	return 0, fmt.Errorf("server tls.min_version %q: 1.2 or 1.3", v)
}

// hstsValue is the Strict-Transport-Security header of t, "" for none.
func (t TLS) hstsValue() string {
	if !t.Enabled() || t.HSTSMaxAge <= 0 {
		return ""
	}
	return "max-age=" + strconv.FormatInt(int64(t.HSTSMaxAge/time.Second), 10)
}

// certReloader gives each handshake the current certificate and client
// CAs, loading the files again when they changed.
type certReloader struct {
	cfg     TLS
	log     *slog.Logger
	minVer  uint16
	mu      sync.Mutex
	checked time.Time
	stamp   string
	current *tls.Config
	now     func() time.Time
}

// reloadEvery bounds how often the files are looked at.
const reloadEvery = time.Second

func newCertReloader(cfg TLS, log *slog.Logger) (*certReloader, error) {
	v, err := tlsVersion(cfg.MinVersion)
	if err != nil {
		return nil, err
	}
	r := &certReloader{cfg: cfg, log: log, minVer: v, now: time.Now}
	r.stamp = r.fileStamp()
	if r.current, err = r.load(); err != nil {
		return nil, err
	}
	r.checked = r.now()
	return r, nil
}

// fileStamp changes when any of the files is replaced or rewritten.
func (r *certReloader) fileStamp() string {
	var b strings.Builder
	for _, p := range []string{r.cfg.CertFile, r.cfg.KeyFile, r.cfg.ClientCAFile} {
		if p == "" {
			continue
		}
		if fi, err := os.Stat(p); err == nil {
			fmt.Fprintf(&b, "%d/%d;", fi.ModTime().UnixNano(), fi.Size())
		} else {
			b.WriteString("missing;")
		}
	}
	return b.String()
}

func (r *certReloader) load() (*tls.Config, error) {
	pair, err := tls.LoadX509KeyPair(r.cfg.CertFile, r.cfg.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("server tls.cert_file/key_file: %w", err)
	}
	c := &tls.Config{
		Certificates: []tls.Certificate{pair},
		MinVersion:   r.minVer,
		NextProtos:   []string{"http/1.1"},
	}
	if r.cfg.ClientCAFile != "" {
		if c.ClientCAs, err = pemutil.LoadCAs(r.cfg.ClientCAFile); err != nil {
			return nil, fmt.Errorf("server tls.client_ca_file: %w", err)
		}
		c.ClientAuth = tls.VerifyClientCertIfGiven
		if r.cfg.everyRoute() {
			c.ClientAuth = tls.RequireAndVerifyClientCert
		}
	}
	return c, nil
}

// config is tls.Config.GetConfigForClient.
func (r *certReloader) config(*tls.ClientHelloInfo) (*tls.Config, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if now := r.now(); now.Sub(r.checked) >= reloadEvery {
		r.checked = now
		if st := r.fileStamp(); st != r.stamp {
			// Remembered even when the files do not load: a pair written
			// one file at a time loads once the second file changes too.
			r.stamp = st
			c, err := r.load()
			if err != nil {
				r.log.Error("TLS: the changed certificate files do not load; serving the previous certificate", "error", err)
			} else {
				r.current = c
				r.log.Info("TLS: certificate files reloaded", "cert_file", r.cfg.CertFile)
			}
		}
	}
	return r.current, nil
}

// listener wraps ln: connections from the admin listener are marked, and
// with TLS every connection is a TLS one.
func (s *Server) listener(ln net.Listener, admin bool) net.Listener {
	if admin {
		ln = adminListener{ln}
	}
	if s.tls == nil {
		return ln
	}
	return tls.NewListener(ln, &tls.Config{GetConfigForClient: s.tls.config, MinVersion: s.tls.minVer})
}

// requireClientCert refuses a request without a verified client
// certificate (server.tls.client_cert_routes).
func requireClientCert(c *fiber.Ctx) error {
	if cs := c.Context().TLSConnectionState(); cs == nil || len(cs.VerifiedChains) == 0 {
		return newError(fiber.StatusForbidden, CodeClientCertRequired,
			"this route needs a client certificate signed by a CA of server.tls.client_ca_file")
	}
	return c.Next()
}

// underPrefix reports whether the route template p lies under prefix, by
// whole segments.
func underPrefix(p, prefix string) bool {
	return prefix == "/" || p == prefix || strings.HasPrefix(p, prefix+"/")
}
