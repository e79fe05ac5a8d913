package redisstore

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/redis/go-redis/v9"
)

// URL schemes Open accepts.
const (
	schemeRedis    = "redis"
	schemeTLS      = "rediss"
	schemeSentinel = "redis+sentinel"
	schemeSentTLS  = "rediss+sentinel"
	schemeCluster  = "redis+cluster"
	schemeClusTLS  = "rediss+cluster"
)

// IsURL reports whether s names a Redis store (one of the schemes Open
// accepts) rather than the embedded one.
func IsURL(s string) bool {
	scheme, _, ok := strings.Cut(s, "://")
	if !ok {
		return false
	}
	switch strings.ToLower(scheme) {
	case schemeRedis, schemeTLS, schemeSentinel, schemeSentTLS, schemeCluster, schemeClusTLS:
		return true
	}
	return false
}

// Redact returns s with any password replaced by "xxxxx", for logs and
// errors; a string that does not parse as a URL is returned as "redis://?"
// so that nothing of it can leak.
func Redact(s string) string {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		return "redis://?"
	}
	end := strings.IndexAny(rest, "/?")
	if end < 0 {
		end = len(rest)
	}
	// The last '@' of the authority ends the userinfo, whatever a careless
	// (unescaped) password holds.
	at := strings.LastIndex(rest[:end], "@")
	if at < 0 {
		return scheme + "://" + redactQuery(rest)
	}
	auth, host := rest[:at], rest[at+1:]
	if user, _, hasPass := strings.Cut(auth, ":"); hasPass {
		auth = user + ":xxxxx"
	} else {
		auth = "xxxxx" // a lone userinfo is the password (redis+sentinel://pass@...)
	}
	return scheme + "://" + auth + "@" + redactQuery(host)
}

// redactQuery hides the values of query parameters that carry secrets.
func redactQuery(s string) string {
	base, q, ok := strings.Cut(s, "?")
	if !ok {
		return s
	}
	vals, err := url.ParseQuery(q)
	if err != nil {
		return base + "?xxxxx"
	}
	for k := range vals {
		if strings.Contains(strings.ToLower(k), "password") {
			vals[k] = []string{"xxxxx"}
		}
	}
	return base + "?" + vals.Encode()
}

// clientOptions turns a store URL into go-redis options:
//
//	redis://[user:pass@]host:port[/db][?options]             one server
//	rediss://...                                             the same over TLS
//	redis+sentinel://[user:pass@]h1:p1[,h2:p2...]/master[/db][?options]
//	rediss+sentinel://...                                    Sentinel, TLS
//	redis+cluster://[user:pass@]h1:p1[,h2:p2...][?options]   Cluster
//	rediss+cluster://...                                     Cluster, TLS
//
// The userinfo authenticates to the data nodes (for Sentinel, to the
// master and replicas; a password for the sentinels themselves goes in the
// sentinel_password query parameter). key_prefix=P sets the key prefix
// (Options.Prefix wins when set). Other query options are go-redis's
// (dial_timeout, read_timeout, pool_size, ...).
func clientOptions(raw string) (*redis.UniversalOptions, error) {
	uo, _, err := parseURL(raw)
	return uo, err
}

// parseURL is clientOptions that also returns the key_prefix query
// parameter (empty when absent), Verdict's own beside go-redis's.
func parseURL(raw string) (*redis.UniversalOptions, string, error) {
	raw, own, err := popParams(raw, "key_prefix", "sentinel_password")
	if err != nil {
		return nil, "", err
	}
	uo, err := goRedisOptions(raw, own["sentinel_password"])
	if err != nil {
		return nil, "", err
	}
	return uo, own["key_prefix"], nil
}

// popParams removes the named query parameters from raw and returns them.
func popParams(raw string, names ...string) (string, map[string]string, error) {
	out := map[string]string{}
	base, query, ok := strings.Cut(raw, "?")
	if !ok {
		return raw, out, nil
	}
	q, err := url.ParseQuery(query)
	if err != nil {
		return "", nil, cleanErr(err)
	}
	for _, n := range names {
		if q.Has(n) {
			out[n] = q.Get(n)
			q.Del(n)
		}
	}
	if len(q) == 0 {
		return base, out, nil
	}
	return base + "?" + q.Encode(), out, nil
}

// goRedisOptions parses a URL without Verdict's own parameters.
func goRedisOptions(raw, sentinelPass string) (*redis.UniversalOptions, error) {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return nil, errors.New("redis store URL needs a scheme such as redis://")
	}
	scheme = strings.ToLower(scheme)
	tls := strings.HasPrefix(scheme, "rediss")
	base := schemeRedis
	if tls {
		base = schemeTLS
	}
	switch scheme {
	case schemeRedis, schemeTLS:
		o, err := redis.ParseURL(raw)
		if err != nil {
			return nil, cleanErr(err)
		}
		return &redis.UniversalOptions{
			Addrs: []string{o.Addr}, DB: o.DB, Username: o.Username, Password: o.Password,
			TLSConfig: o.TLSConfig, DialTimeout: o.DialTimeout, ReadTimeout: o.ReadTimeout,
			WriteTimeout: o.WriteTimeout, PoolSize: o.PoolSize, ClientName: o.ClientName,
			MaxRetries: o.MaxRetries, Protocol: o.Protocol,
		}, nil
	case schemeCluster, schemeClusTLS:
		u, err := multiHost(base, rest)
		if err != nil {
			return nil, err
		}
		if u.Path != "" && u.Path != "/" {
			return nil, errors.New("redis+cluster URL has no database path: a Redis Cluster has only database 0")
		}
		o, err := redis.ParseClusterURL(u.String())
		if err != nil {
			return nil, cleanErr(err)
		}
		return &redis.UniversalOptions{
			Addrs: o.Addrs, Username: o.Username, Password: o.Password, TLSConfig: o.TLSConfig,
			DialTimeout: o.DialTimeout, ReadTimeout: o.ReadTimeout, WriteTimeout: o.WriteTimeout,
			PoolSize: o.PoolSize, ClientName: o.ClientName, MaxRetries: o.MaxRetries,
			IsClusterMode: true, Protocol: o.Protocol,
		}, nil
	case schemeSentinel, schemeSentTLS:
		u, err := multiHost(base, rest)
		if err != nil {
			return nil, err
		}
		parts := strings.FieldsFunc(u.Path, func(r rune) bool { return r == '/' })
		if len(parts) == 0 || len(parts) > 2 {
			return nil, errors.New("redis+sentinel URL needs the master name as its path: redis+sentinel://host:port/mymaster[/db]")
		}
		q := u.Query()
		q.Set("master_name", parts[0])
		u.RawQuery = q.Encode()
		u.Path = ""
		if len(parts) == 2 {
			u.Path = "/" + parts[1]
		}
		user, pass := "", ""
		if u.User != nil {
			user = u.User.Username()
			pass, _ = u.User.Password()
			if _, set := u.User.Password(); !set {
				user, pass = "", user // redis+sentinel://pass@host: a password alone
			}
			u.User = nil
		}
		o, err := redis.ParseFailoverURL(u.String())
		if err != nil {
			return nil, cleanErr(err)
		}
		return &redis.UniversalOptions{
			Addrs: o.SentinelAddrs, MasterName: o.MasterName, DB: o.DB,
			Username: user, Password: pass, SentinelPassword: sentinelPass,
			TLSConfig: o.TLSConfig, DialTimeout: o.DialTimeout, ReadTimeout: o.ReadTimeout,
			WriteTimeout: o.WriteTimeout, PoolSize: o.PoolSize, ClientName: o.ClientName,
			MaxRetries: o.MaxRetries, Protocol: o.Protocol,
		}, nil
	}
	return nil, fmt.Errorf("redis store URL scheme %q is not one of redis, rediss, redis+sentinel, rediss+sentinel, redis+cluster, rediss+cluster", scheme)
}

// multiHost parses "[userinfo@]h1:p1,h2:p2[/path][?query]" into a URL of
// scheme base whose host is h1:p1 and whose query adds addr=h2:p2 for the
// others, the form go-redis's ParseClusterURL and ParseFailoverURL read.
func multiHost(base, rest string) (*url.URL, error) {
	end := strings.IndexAny(rest, "/?")
	if end < 0 {
		end = len(rest)
	}
	authority, tail := rest[:end], rest[end:]
	userinfo := ""
	if i := strings.LastIndex(authority, "@"); i >= 0 {
		userinfo, authority = authority[:i+1], authority[i+1:]
	}
	hosts := strings.Split(authority, ",")
	for _, h := range hosts {
		if h == "" {
			return nil, errors.New("redis store URL has an empty host in its host list")
		}
	}
	u, err := url.Parse(base + "://" + userinfo + hosts[0] + tail)
	if err != nil {
		return nil, cleanErr(err)
	}
	q := u.Query()
	for _, h := range hosts[1:] {
		q.Add("addr", h)
	}
	u.RawQuery = q.Encode()
	return u, nil
}

// cleanErr drops the URL (and so any password) from a url or go-redis
// parse error.
func cleanErr(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("invalid redis store URL: %v", ue.Err)
	}
	return fmt.Errorf("invalid redis store URL: %v", err)
}
