package main

import (
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jwt"
	"github.com/spf13/cobra"

	"github.com/verdictpdp/verdict/bundles"
)

// The private_key_jwt helpers: a key pair whose public half is the JWK set
// `client add --jwks` registers, and assertions signed with it, so that
// the method can be tried (and scripted) without other tools.

func newClientKeygen() *cobra.Command {
	var alg, out string
	cmd := &cobra.Command{
		Use:   "keygen --out DIR [--alg ES256]",
		Short: "Create a key pair for private_key_jwt: DIR/private.pem (0600) and DIR/jwks.json",
		Long: `Create a key pair for a client that authenticates with private_key_jwt:
DIR/private.pem (PKCS #8, mode 0600; it stays with the client) and
DIR/jwks.json (the public JWK set to register with "verdict client add --jwks").
The key's kid is its RFC 7638 thumbprint; its alg is --alg (ES256, ES384,
EdDSA, RS256 or PS256). Existing files are never overwritten. Exit status: 0
when written, 2 on bad usage or when a file exists.`,
		Example: `  verdict client keygen --out svc-key
  verdict client add --id svc --scope verdict:decide --jwks svc-key/jwks.json --no-secret`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return missingFlag(cmd, "--out DIR (the directory to write private.pem and jwks.json to)")
			}
			switch alg {
			case "ES256", "ES384", "EdDSA", "RS256", "PS256":
			default:
				return fmt.Errorf("--alg %q: private_key_jwt takes ES256, ES384, EdDSA, RS256 or PS256", alg)
			}
			priv, err := generateKey(alg)
			if err != nil {
				return err
			}
			pub, err := jwk.Import(priv.Public())
			if err != nil {
				return err
			}
			if err := jwk.AssignKeyID(pub); err != nil {
				return err
			}
			sa, _ := jwa.LookupSignatureAlgorithm(alg)
			if err := pub.Set(jwk.AlgorithmKey, sa); err != nil {
				return err
			}
			if err := pub.Set(jwk.KeyUsageKey, "sig"); err != nil {
				return err
			}
			set := jwk.NewSet()
			if err := set.AddKey(pub); err != nil {
				return err
			}
			jwks, err := json.MarshalIndent(set, "", "  ")
			if err != nil {
				return err
			}
			pemKey, err := privatePEM(priv)
			if err != nil {
				return err
			}
			privPath, jwksPath := filepath.Join(out, "private.pem"), filepath.Join(out, "jwks.json")
			for _, p := range []string{privPath, jwksPath} {
				if _, err := os.Lstat(p); err == nil {
					return fmt.Errorf("%s exists; not overwriting a key (choose another --out)", p)
				}
			}
			if err := os.MkdirAll(out, 0o700); err != nil {
				return err
			}
			if err := writeExclusive(privPath, pemKey, 0o600); err != nil {
				return err
			}
			if err := writeExclusive(jwksPath, append(jwks, '\n'), 0o644); err != nil {
				return err
			}
			kid, _ := pub.KeyID()
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s (private, 0600) and %s (public JWK set), kid %s, algorithm %s\n", privPath, jwksPath, kid, alg)
			return nil
		},
	}
	cmd.Flags().StringVar(&alg, "alg", "ES256", "algorithm: ES256, ES384, EdDSA, RS256 or PS256")
	cmd.Flags().StringVar(&out, "out", "", "directory to write private.pem and jwks.json to (created 0700 if missing)")
	return cmd
}

func newClientAssertion() *cobra.Command {
	var (
		clientID, keyFile, aud, alg string
		ttl                         time.Duration
	)
	cmd := &cobra.Command{
		Use:   "assertion --client-id ID --key private.pem --aud TOKEN_URL",
		Short: "Print a private_key_jwt client assertion (RFC 7523) signed with the client's key",
		Long: `Print a client assertion for private_key_jwt: a JWT with iss and sub the client
id, aud --aud (the token endpoint URL, <tokens.issuer>/oauth2/token, as the
server's /.well-known/oauth-authorization-server names it), a random jti
(each assertion is good once), iat now and exp --ttl later (at most 5m). Its
kid is the key's RFC 7638 thumbprint, as "verdict client keygen" wrote it
into jwks.json. Send it as client_assertion with client_assertion_type
urn:ietf:params:oauth:client-assertion-type:jwt-bearer.`,
		Example: `  curl -s http://127.0.0.1:8700/oauth2/token -d grant_type=client_credentials \
    -d client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer \
    -d client_assertion=$(verdict client assertion --client-id svc --key svc-key/private.pem \
        --aud http://127.0.0.1:8700/oauth2/token)`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if clientID == "" || keyFile == "" || aud == "" {
				return missingFlag(cmd, "--client-id ID, --key private.pem and --aud TOKEN_URL (all three are needed)")
			}
			if ttl <= 0 || ttl > 5*time.Minute {
				return fmt.Errorf("--ttl %s: must be more than 0 and at most 5m (the server refuses longer assertions)", ttl)
			}
			raw, err := os.ReadFile(keyFile)
			if err != nil {
				return fmt.Errorf("--key: %w", err)
			}
			priv, err := bundles.ParsePrivateKeyPEM(raw)
			if err != nil {
				return fmt.Errorf("--key %s: %w", keyFile, err)
			}
			if alg == "" {
				if alg, err = bundles.DefaultAlgorithm(priv.Public()); err != nil {
					return fmt.Errorf("--key %s: %w", keyFile, err)
				}
			}
			sa, ok := jwa.LookupSignatureAlgorithm(alg)
			if !ok {
				return fmt.Errorf("--alg %q is not a JWS algorithm", alg)
			}
			key, err := jwk.Import(priv)
			if err != nil {
				return fmt.Errorf("--key %s: %w", keyFile, err)
			}
			if err := jwk.AssignKeyID(key); err != nil {
				return err
			}
			jti := make([]byte, 16)
			if _, err := rand.Read(jti); err != nil {
				return err
			}
			now := time.Now()
			tok, err := jwt.NewBuilder().Issuer(clientID).Subject(clientID).Audience([]string{aud}).
				IssuedAt(now).Expiration(now.Add(ttl)).JwtID(hex.EncodeToString(jti)).Build()
			if err != nil {
				return err
			}
			signed, err := jwt.Sign(tok, jwt.WithKey(sa, key))
			if err != nil {
				return fmt.Errorf("signing with --alg %s: %w", alg, err)
			}
			fmt.Fprintln(cmd.OutOrStdout(), string(signed))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&clientID, "client-id", "", "the client id (iss and sub)")
	f.StringVar(&keyFile, "key", "", "the client's PEM private key (as client keygen wrote it)")
	f.StringVar(&aud, "aud", "", "the token endpoint URL the assertion is for")
	f.StringVar(&alg, "alg", "", "signing algorithm (default: ES256/ES384 by curve, EdDSA, RS256 for RSA)")
	f.DurationVar(&ttl, "ttl", time.Minute, "how long the assertion is valid (at most 5m)")
	return cmd
}

// privatePEM encodes key as a PKCS #8 PEM block.
func privatePEM(key any) ([]byte, error) {
	p8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: p8}), nil
}
