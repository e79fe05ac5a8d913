package pdp

import (
	"encoding/json"
	"time"
)

// DecisionJWTType is the typ header of a signed decision. No verifier of
// access tokens (typ at+jwt, with exp, aud and jti) or ID tokens (aud,
// exp) accepts one, and a decision verifier accepts nothing else.
const DecisionJWTType = "verdict-decision+jwt"

// CodeSigningUnavailable refuses a request whose decisions were to be
// signed but could not be (no key may sign now): nothing is answered
// unsigned in its place, and the caller retries.
const CodeSigningUnavailable = "signing_unavailable"

// Signer signs decisions: Sign returns a compact JWS over payload whose
// protected header carries typ, the signing key's kid and its alg. The
// key is one published in the issuer's JWKS (authn.Keyring, whose keys
// sign Verdict's access tokens). An error means nothing was signed.
type Signer interface {
	Sign(typ string, payload []byte) (string, error)
}

// DecisionClaims are the payload of a signed decision (context.signature).
type DecisionClaims struct {
	// Issuer is the server's token issuer URL (tokens.issuer), whose JWKS
	// verifies the signature.
	Issuer string `json:"iss"`
	// IssuedAt is when the decision was answered, in Unix seconds.
	IssuedAt int64 `json:"iat"`
	// Decision is the decision signed.
	Decision bool `json:"decision"`
	// DecisionID is the answer's decision id (in the decision log too).
	DecisionID string `json:"decision_id"`
	// Revision is the revision of the bundles that decided.
	Revision string `json:"revision"`
	// InputSHA256 is InputHash of the evaluated input; "" for an AuthZEN
	// batch item that was no valid input (a deny, never evaluated).
	InputSHA256 string `json:"input_sha256"`
	// Caller is the client_id (else the subject) of the credential the
	// request came with; "" on a route open without one (serve --dev).
	Caller string `json:"caller"`
	// CallerIssuer is the iss of that credential; absent when Caller is "".
	CallerIssuer string `json:"caller_iss,omitempty"`
}

// WithSigner lets requests ask for signed decisions ("options": {"signed":
// true}) and lets Config.SignAll sign every one: sig signs them, and
// issuer is their iss. Without it a request for a signature is refused
// (CodeInvalidInput) and Config.SignAll fails New.
func WithSigner(sig Signer, issuer string) Option {
	return func(s *Service) { s.signer, s.issuer = sig, issuer }
}

// wantSigned reports whether the decisions of a request that asked for
// signatures or not (signed) are signed.
func (s *Service) wantSigned(signed bool) bool {
	return (signed || s.cfg.SignAll) && s.signer != nil
}

// checkSignable refuses a request for signatures the service cannot make,
// before anything is decided.
func (s *Service) checkSignable(req *Request) error {
	if req.Signed && s.signer == nil {
		return newError(CodeInvalidInput, "options.signed: this server signs no decisions (it has no signing keys)")
	}
	return nil
}

// signAll puts a signature on every decision of res, whose item i was
// decided on the input of hash hashes(i). On any failure nothing of res
// may be answered: the error is CodeSigningUnavailable, and the cause is
// logged.
func (s *Service) signAll(res *Result, m Meta, hashes func(i int) string) error {
	iat := time.Now().Unix()
	for i := range res.Evaluations {
		ev := &res.Evaluations[i]
		payload, err := json.Marshal(DecisionClaims{
			Issuer: s.issuer, IssuedAt: iat, Decision: ev.Decision, DecisionID: ev.Context.DecisionID,
			Revision: ev.Context.Revision, InputSHA256: hashes(i), Caller: m.Caller, CallerIssuer: callerIssuer(m),
		})
		if err == nil {
			ev.Context.Signature, err = s.signer.Sign(DecisionJWTType, payload)
		}
		if err != nil {
			s.log.Error("a decision could not be signed; the request is refused (503), never answered unsigned",
				"request_id", m.RequestID, "decision_id", ev.Context.DecisionID, "error", err)
			for j := range res.Evaluations {
				res.Evaluations[j].Context.Signature = ""
			}
			return newError(CodeSigningUnavailable, "the decision could not be signed now; retry")
		}
	}
	return nil
}

func callerIssuer(m Meta) string {
	if m.Caller == "" {
		return ""
	}
	return m.CallerIssuer
}

// signRequest signs res, the answer to req, when req or the configuration
// asks for it.
func (s *Service) signRequest(req *Request, res *Result, m Meta) error {
	if !s.wantSigned(req.Signed) {
		return nil
	}
	return s.signAll(res, m, func(i int) string {
		if in := req.Inputs[i]; in != nil {
			return InputHash(in)
		}
		return ""
	})
}
