package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/verdictpdp/verdict/authn"
	"github.com/verdictpdp/verdict/internal/strictjson"
	"github.com/verdictpdp/verdict/pdp"
)

// maxVerifyDoc bounds what `decision verify` reads: a signature or an
// answer, a JWKS, an input.
const maxVerifyDoc = 1 << 20

func newDecision() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "decision",
		Short: "Work with decisions a server answered (verify a signed decision)",
	}
	cmd.AddCommand(newDecisionVerify())
	return cmd
}

func newDecisionVerify() *cobra.Command {
	var (
		jwks, input, issuer string
		timeout             time.Duration
	)
	cmd := &cobra.Command{
		Use:   "verify [SIGNATURE|-] --jwks URL|FILE [--input FILE] [--issuer URL]",
		Short: "Check a signed decision against a JWKS and print its verified claims",
		Long: `Check one signed decision (context.signature of an answer to a request with
"options": {"signed": true}, or of every answer under server.sign_decisions):
a compact JWS of typ verdict-decision+jwt whose signature verifies with the key
its kid names in the JWKS (--jwks: the server's /.well-known/jwks.json, as a
URL or a saved file). With --input, the hash of that input (the evaluated
input: subject, action, resource, context) must be the signed input_sha256;
with --issuer, iss must be that URL.

SIGNATURE is the JWS, or - (the default) to read it from stdin; what is read
may also be a whole single-decision answer, whose context.signature is taken.

On success the verified claims are printed as JSON (exit 0). A signature that
does not verify, a JWS that is no signed decision, or an input or issuer that
does not match is reported on stderr with exit 1; bad usage, or a JWKS that
cannot be fetched or read, exits 2.`,
		Example: `  curl -s localhost:8700/v1/decide -H 'Content-Type: application/json' \
    -d '{"subject":{"type":"user","id":"alice"},"action":{"name":"read"},"resource":{"type":"document","id":"1"},"options":{"signed":true}}' \
    | verdict decision verify --jwks http://localhost:8700/.well-known/jwks.json
  verdict decision verify "$SIG" --jwks jwks.json --input request.json`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 1 {
				return &usageError{cmd: cmd, msg: fmt.Sprintf("too many arguments: it takes SIGNATURE, got %s", quoteAll(args))}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if jwks == "" {
				return missingFlag(cmd, "--jwks URL|FILE (the server's /.well-known/jwks.json, or a copy of it)")
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			token, err := readSignature(cmd, args)
			if err != nil {
				return err
			}
			keys, err := readJWKS(ctx, jwks)
			if err != nil {
				return err
			}
			var hash string
			if input != "" {
				if hash, err = inputHashOf(ctx, input); err != nil {
					return err
				}
			}
			claims, err := verifyDecision(ctx, token, keys, issuer, input != "", hash)
			if err != nil {
				fmt.Fprintln(cmd.ErrOrStderr(), "verdict decision verify:", err)
				return exitError{1}
			}
			enc := json.NewEncoder(cmd.OutOrStdout())
			enc.SetIndent("", "  ")
			return enc.Encode(claims)
		},
	}
	f := cmd.Flags()
	f.StringVar(&jwks, "jwks", "", "the JWKS: an http(s) URL (the server's /.well-known/jwks.json) or a file")
	f.StringVar(&input, "input", "", "a file with the evaluated input (a /v1/decide body of one decision) whose hash must be the signed one")
	f.StringVar(&issuer, "issuer", "", "the iss the decision must name (the server's tokens.issuer)")
	f.DurationVar(&timeout, "timeout", 10*time.Second, "how long fetching the JWKS may take")
	return cmd
}

// readSignature is the JWS of args, or read from stdin (no argument, or
// -): the JWS itself, or an answer whose context.signature it is.
func readSignature(cmd *cobra.Command, args []string) (string, error) {
	var raw string
	if len(args) == 1 && args[0] != "-" {
		raw = args[0]
	} else {
		b, err := io.ReadAll(io.LimitReader(cmd.InOrStdin(), maxVerifyDoc+1))
		if err != nil {
			return "", err
		}
		if len(b) > maxVerifyDoc {
			return "", fmt.Errorf("stdin is over %d bytes", maxVerifyDoc)
		}
		raw = string(b)
	}
	raw = strings.TrimSpace(raw)
	if !strings.HasPrefix(raw, "{") {
		if raw == "" {
			return "", &usageError{cmd: cmd, msg: "missing SIGNATURE (the signed decision, as an argument or on stdin)"}
		}
		return raw, nil
	}
	var answer struct {
		Context *struct {
			Signature string `json:"signature"`
		} `json:"context"`
		Evaluations []json.RawMessage `json:"evaluations"`
	}
	if err := strictjson.Unmarshal([]byte(raw), &answer); err != nil {
		return "", fmt.Errorf("stdin is neither a signature nor a decision answer: %s", strictjson.Position([]byte(raw), err))
	}
	switch {
	case len(answer.Evaluations) > 0:
		return "", fmt.Errorf("a batch answer holds one signature per item (evaluations[i].context.signature): pass one of them")
	case answer.Context == nil || answer.Context.Signature == "":
		return "", errors.New(`the answer has no context.signature: ask with "options": {"signed": true}, or set server.sign_decisions`)
	}
	return answer.Context.Signature, nil
}

// readJWKS reads the key set at src: an http(s) URL or a file.
func readJWKS(ctx context.Context, src string) ([]byte, error) {
	if !strings.HasPrefix(src, "https://") && !strings.HasPrefix(src, "http://") {
		b, err := os.ReadFile(src)
		if err != nil {
			return nil, fmt.Errorf("--jwks: %w", err)
		}
		return b, nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, src, nil)
	if err != nil {
		return nil, fmt.Errorf("--jwks: %w", err)
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("--jwks: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxVerifyDoc+1))
	switch {
	case err != nil:
		return nil, fmt.Errorf("--jwks %s: %w", src, err)
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("--jwks %s: %s", src, resp.Status)
	case len(b) > maxVerifyDoc:
		return nil, fmt.Errorf("--jwks %s: over %d bytes", src, maxVerifyDoc)
	}
	return b, nil
}

// inputHashOf is the input hash of the decision request in file, read as
// /v1/decide reads one (a single decision; no subject_token, which only a
// server can verify).
func inputHashOf(ctx context.Context, file string) (string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("--input: %w", err)
	}
	req, err := pdp.Parse(ctx, b, pdp.Limits{MaxDepth: 64, MaxBatch: 1000}, pdp.ParseOptions{}, nil)
	if err != nil {
		return "", fmt.Errorf("--input %s: %w", file, err)
	}
	if req.Batch {
		return "", fmt.Errorf("--input %s: a batch; give the one evaluated input of the item (its entities with the defaults it took)", file)
	}
	return pdp.InputHash(req.Inputs[0]), nil
}

// verifyDecision checks token, a signed decision, against jwks and
// returns its claims: typ verdict-decision+jwt, a signature that verifies
// with the key of its kid, the claims of a decision, iss equal to issuer
// (when given) and, when checkInput, input_sha256 equal to hash.
func verifyDecision(ctx context.Context, token string, jwks []byte, issuer string, checkInput bool, hash string) (authn.Claims, error) {
	jws, err := authn.ParseCompact(token)
	if err != nil {
		return nil, err
	}
	if !jws.HasTyp || jws.Typ != pdp.DecisionJWTType {
		return nil, fmt.Errorf("not a signed decision: typ %q, want %s", jws.Typ, pdp.DecisionJWTType)
	}
	if err := jws.VerifyJWKS(ctx, jwks); err != nil {
		return nil, err
	}
	c := jws.Claims
	for _, name := range []string{"iss", "decision_id", "revision", "input_sha256", "caller"} {
		if _, ok := c[name].(string); !ok {
			return nil, fmt.Errorf("not a signed decision: claim %s missing or not a string", name)
		}
	}
	if _, ok := c["decision"].(bool); !ok {
		return nil, errors.New("not a signed decision: claim decision missing or not a boolean")
	}
	if _, ok := c["iat"].(int64); !ok {
		return nil, errors.New("not a signed decision: claim iat missing or not a whole number")
	}
	if issuer != "" && c.Issuer() != issuer {
		return nil, fmt.Errorf("iss is %q, not %q", c.Issuer(), issuer)
	}
	if got, _ := c["input_sha256"].(string); checkInput && got != hash {
		return nil, fmt.Errorf("the input does not match: its hash is %s, the decision was signed for %q", hash, got)
	}
	return c, nil
}
