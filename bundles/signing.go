package bundles

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	opabundle "github.com/open-policy-agent/opa/v1/bundle"
	opautil "github.com/open-policy-agent/opa/v1/util"

	"github.com/verdictpdp/verdict/internal/strictjson"
)

// SignaturesFile is the name of the file, at the bundle root, that holds a
// bundle's signature in OPA's format: {"signatures": ["<JWS compact>"]}.
const SignaturesFile = ".signatures.json"

// howToSign ends the message for an unsigned bundle that must be signed.
const howToSign = "sign it with `verdict bundle sign DIR --signing-key KEY.pem --key-id ID` and configure the public key under bundles.keys.ID, " +
	"or set bundles.require_signature: false (with bundles.acknowledge_unsigned: true outside --dev)"

// hashAlgorithm is the file hash Sign writes, as `opa build` and `opa sign`.
const hashAlgorithm = "SHA-256"

// Algorithms are the JWS algorithms bundle signatures may use. HMAC and
// "none" are not among them: a signature must be checkable with a public key.
var Algorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// VerificationKey is a public key that bundle signatures are verified with,
// as in OPA's keys configuration.
type VerificationKey struct {
	// Algorithm is the JWS algorithm the key signs with (RS256, ES256, EdDSA,
	// ...); empty means RS256, as in OPA. A signature made with any other
	// algorithm is rejected.
	Algorithm string `yaml:"algorithm"`
	// Key is the PEM-encoded public key (PUBLIC KEY, RSA PUBLIC KEY or
	// CERTIFICATE).
	Key string `yaml:"key"`
	// KeyFile is a file holding the PEM-encoded public key, used when Key is
	// empty; relative to the configuration file.
	KeyFile string `yaml:"key_file"`
	// Scope, when set, must equal the scope the signature carries; when
	// empty, the signature must carry none (as in OPA).
	Scope string `yaml:"scope"`

	pub crypto.PublicKey // set by Load
}

func (k VerificationKey) algorithm() string {
	if k.Algorithm == "" {
		return "RS256"
	}
	return k.Algorithm
}

// Load returns k with its public key parsed from Key or read from KeyFile,
// so that verifying a bundle parses no PEM. It returns every problem with k,
// joined: an algorithm that is not one of Algorithms, neither or both of Key
// and KeyFile, an unreadable file, a PEM that is not a public key, a key
// whose type does not fit the algorithm, an RSA key under 2048 bits.
func (k VerificationKey) Load() (VerificationKey, error) {
	var errs []error
	alg := k.algorithm()
	if !allowedAlg(alg) {
		errs = append(errs, fmt.Errorf("algorithm %q is not allowed (use one of %s)", alg, strings.Join(Algorithms, ", ")))
	}
	var data []byte
	switch {
	case k.Key != "" && k.KeyFile != "":
		errs = append(errs, errors.New("set key or key_file, not both"))
	case k.Key != "":
		data = []byte(k.Key)
	case k.KeyFile != "":
		b, err := os.ReadFile(k.KeyFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("key_file: %w", err))
		}
		data = b
	default:
		errs = append(errs, errors.New("key or key_file (a PEM public key) is required"))
	}
	if data != nil {
		pub, err := ParsePublicKeyPEM(data)
		if err != nil {
			errs = append(errs, err)
		} else if allowedAlg(alg) {
			if err := checkKeyAlg(pub, alg); err != nil {
				errs = append(errs, err)
			} else {
				k.pub = pub
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return k, err
	}
	return k, nil
}

// Validate reports every problem with k, joined (see Load).
func (k VerificationKey) Validate() error {
	_, err := k.Load()
	return err
}

// SigningConfig says which bundles are trusted. The zero value trusts any
// bundle and verifies no signature.
type SigningConfig struct {
	// Required rejects any bundle without a valid .signatures.json.
	Required bool
	// Keys are the verification keys by key id (a signature's kid). A bundle
	// that carries a .signatures.json is verified against them whenever
	// there is at least one, Required or not.
	Keys map[string]VerificationKey
	// Exclude are path.Match patterns of files the signature need not list,
	// as OPA's exclude_files.
	Exclude []string
}

// Validate reports every problem with c's keys and patterns, joined.
func (c SigningConfig) Validate() error {
	_, err := c.Load()
	return err
}

// Load returns c with every key loaded (see VerificationKey.Load), so that
// PEMs are parsed once at start rather than for every bundle. It returns
// every problem, each naming its key id.
func (c SigningConfig) Load() (SigningConfig, error) {
	var errs []error
	keys := make(map[string]VerificationKey, len(c.Keys))
	for _, kid := range sortedKeyIDs(c.Keys) {
		if kid == "" {
			errs = append(errs, errors.New("a bundle key id must not be empty"))
			continue
		}
		k, err := c.Keys[kid].Load()
		if err != nil {
			errs = append(errs, fmt.Errorf("key %s: %w", kid, err))
		}
		keys[kid] = k
	}
	for _, p := range c.Exclude {
		if _, err := path.Match(p, ""); err != nil {
			errs = append(errs, fmt.Errorf("exclude pattern %q: %w", p, err))
		}
	}
	c.Keys = keys
	return c, errors.Join(errs...)
}

func sortedKeyIDs(m map[string]VerificationKey) []string {
	ids := make([]string, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// SignatureError is a bundle whose signature is missing, malformed or does
// not match its files. File names the file concerned: .signatures.json
// itself, or a bundle file that is unlisted, missing or altered.
type SignatureError struct {
	File string
	Err  error
}

// Error returns the problem, naming the file when known.
func (e *SignatureError) Error() string {
	if e.File != "" {
		return fmt.Sprintf("bundle signature: %s: %v", e.File, e.Err)
	}
	return "bundle signature: " + e.Err.Error()
}

// Unwrap returns the cause.
func (e *SignatureError) Unwrap() error { return e.Err }

func sigErr(file, format string, args ...any) *SignatureError {
	return &SignatureError{File: file, Err: fmt.Errorf(format, args...)}
}

// FileInfo is one file of a signature's payload.
type FileInfo struct {
	Name      string `json:"name"`
	Hash      string `json:"hash"`
	Algorithm string `json:"algorithm"`
}

// payload is the JWT payload of a bundle signature. Other claims (iat, iss,
// ...) may be present, as OPA allows custom claims, and are ignored.
type payload struct {
	Files []FileInfo `json:"files"`
	KeyID string     `json:"keyid,omitempty"`
	Scope string     `json:"scope,omitempty"`
	// Dir is the folder path every listed name starts with, written by
	// SignAs ("" for names from the bundle root): a claim of Verdict's own,
	// which OPA ignores, that binds the names to their place in the bundle
	// wherever the bundle lies (an archive pushed from the directory, a copy).
	Dir string `json:"verdict_dir,omitempty"`
}

type signatures struct {
	Signatures []string `json:"signatures"`
	Plugin     string   `json:"plugin,omitempty"`
}

// Verify checks b's .signatures.json against cfg, as OPA's bundle reader
// does: one JWS, its kid (header, else the payload's keyid) a configured
// key, its alg that key's algorithm, its scope the key's scope, every file
// of the bundle but .signatures.json and the excluded ones listed with the
// right hash, and every listed file present. An unsigned bundle passes only
// when cfg.Required is false; a signed one is verified whenever a key is
// configured. Any failure is a *SignatureError.
func Verify(b *Bundle, cfg SigningConfig) error {
	raw, signed := b.Files[SignaturesFile]
	if !signed || len(cfg.Keys) == 0 {
		switch {
		case !cfg.Required:
			return nil // nothing required, and nothing to verify with
		case !signed:
			return &SignatureError{Err: errors.New("the bundle is not signed (no .signatures.json) and signatures are required " +
				"(bundles.require_signature, on by default outside --dev): " + howToSign)}
		default:
			return &SignatureError{File: SignaturesFile, Err: errors.New("signatures are required but no key is configured to verify them: " +
				"configure the signer's public key under bundles.keys.<key id>, or set bundles.require_signature: false (with bundles.acknowledge_unsigned: true outside --dev)")}
		}
	}
	for name := range b.Files {
		if name != SignaturesFile && path.Base(name) == SignaturesFile {
			return sigErr(name, "a .signatures.json is only allowed at the bundle root")
		}
	}
	if _, err := strictjson.Decode(raw, 0); err != nil {
		return sigErr(SignaturesFile, "malformed: %s", strictjson.Position(raw, err))
	}
	var sc signatures
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&sc); err != nil {
		return sigErr(SignaturesFile, "malformed: want {\"signatures\": [\"<JWS>\"]}: %v", err)
	}
	if sc.Plugin != "" && sc.Plugin != "_default" { // opa build writes "_default"
		return sigErr(SignaturesFile, "signature plugin %q is not supported", sc.Plugin)
	}
	if len(sc.Signatures) != 1 {
		return sigErr(SignaturesFile, "want exactly one signature, got %d", len(sc.Signatures))
	}
	kid, p, err := verifyToken(sc.Signatures[0], cfg)
	if err != nil {
		return err
	}
	names, hint, err := signedNames(p, b)
	if err != nil {
		return err
	}
	listed := make(map[string]FileInfo, len(names))
	for _, f := range names {
		if _, dup := listed[f.Name]; dup {
			return sigErr(SignaturesFile, "file %s is listed twice", f.Name)
		}
		listed[f.Name] = f
	}
	for _, name := range sortedNames(b.Files, func(n string) bool { return n != SignaturesFile }) {
		f, ok := listed[name]
		delete(listed, name)
		if !ok {
			if excluded(name, cfg.Exclude) {
				continue
			}
			return sigErr(name, "file is not listed in the signature (signed by key %s): the bundle was changed after signing%s", kid, hint)
		}
		if err := checkHash(name, b.Files[name], f); err != nil {
			return err
		}
	}
	if len(listed) > 0 {
		missing := make([]string, 0, len(listed))
		for n := range listed {
			missing = append(missing, n)
		}
		sort.Strings(missing)
		return sigErr(missing[0], "file is listed in the signature but missing from the bundle (all missing: %s)%s", strings.Join(missing, ", "), hint)
	}
	return nil
}

// signedNames returns a signature's files named as the bundle names them,
// and a hint for the messages when the names look like another directory's.
//
// OPA lists the files of a directory bundle by the path it was given
// (v1/bundle/file.go dirLoader: filepath.Join(root, file), without a
// leading "/" or "./"), and `opa run -b` matches them against the path it
// is given in turn: `opa sign --bundle policies/main`, run from the folder
// above policies, lists policies/main/p.rego. Verdict accepts, besides the
// names from the bundle root (archives, `opa sign --bundle .`):
//
//   - for a bundle that carries the verdict_dir claim (SignAs), the names
//     under exactly that signed folder path, wherever the bundle lies;
//   - for a directory, the names under a folder path that ends its absolute
//     path, segment by segment (policies/main, main or the whole path for
//     /work/policies/main, as OPA run from /work, /work/policies or with
//     the absolute path names them), with or without symbolic links
//     resolved.
//
// Nothing else is stripped: an archive cannot move its files out of a
// folder they were signed in (which would move data.json's documents), and
// a directory cannot take another directory's names. Of the readings, the
// one that names the most files of the bundle wins (the names as listed on
// a tie), so that a mismatch is reported on the names as read; every file
// must still be listed once, with its hash, under the one reading.
func signedNames(p *payload, b *Bundle) ([]FileInfo, string, error) {
	if p.Dir != "" {
		if !plainPath(p.Dir) {
			return nil, "", sigErr(SignaturesFile, "malformed: verdict_dir %q is not a folder path of plain names", p.Dir)
		}
		names, ok := stripFolder(p.Files, p.Dir)
		if !ok {
			return nil, "", sigErr(SignaturesFile, "malformed: a listed file is not under verdict_dir %q", p.Dir)
		}
		return names, "", nil
	}
	count := func(fs []FileInfo) int {
		n := 0
		for _, f := range fs {
			if _, ok := b.Files[f.Name]; ok {
				n++
			}
		}
		return n
	}
	best, bestN := p.Files, count(p.Files)
	if bestN == len(p.Files) {
		return best, "", nil
	}
	for _, dir := range b.dirs {
		segs := strings.Split(dir, "/")
		for i := len(segs) - 1; i >= 0; i-- {
			names, ok := stripFolder(p.Files, strings.Join(segs[i:], "/"))
			if !ok {
				continue
			}
			if n := count(names); n > bestN {
				best, bestN = names, n
			}
		}
	}
	hint := ""
	if folder := sharedFolder(p.Files); folder != "" && bestN < len(p.Files) {
		where := "an archive's signature must list its files from its root"
		if len(b.dirs) > 0 {
			where = fmt.Sprintf("this directory's path, %s, does not end in %s", "/"+b.dirs[0], folder)
		}
		hint = fmt.Sprintf(" (the signature lists every file under %s/, as `opa sign --bundle %s` run elsewhere writes them: %s; sign it again where it lies, or with `verdict bundle sign`)", folder, folder, where)
	}
	return best, hint, nil
}

// stripFolder returns files named without the folder path dir, and false
// unless every name lies under it.
func stripFolder(files []FileInfo, dir string) ([]FileInfo, bool) {
	out := make([]FileInfo, 0, len(files))
	for _, f := range files {
		rest, ok := strings.CutPrefix(f.Name, dir+"/")
		if !ok || rest == "" {
			return nil, false
		}
		f.Name = rest
		out = append(out, f)
	}
	return out, true
}

// sharedFolder returns the longest folder path of plain names under which
// every file is listed, "" when there is none.
func sharedFolder(files []FileInfo) string {
	if len(files) == 0 {
		return ""
	}
	segs := strings.Split(files[0].Name, "/")
	n := len(segs) - 1 // the last segment is a file name
	for _, f := range files[1:] {
		other := strings.Split(f.Name, "/")
		n = min(n, len(other)-1)
		for i := 0; i < n; i++ {
			if other[i] != segs[i] {
				n = i
				break
			}
		}
	}
	if n == 0 || !plainPath(strings.Join(segs[:n], "/")) {
		return ""
	}
	return strings.Join(segs[:n], "/")
}

// plainPath reports whether p is a relative slash-separated path of plain
// names: no empty, "." or ".." segment, no leading or trailing slash.
func plainPath(p string) bool {
	if p == "" {
		return false
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return false
		}
	}
	return true
}

// OPADirName is how OPA names the files of a directory bundle given as dir
// on its command line (`opa sign --bundle dir`, `opa run -b dir`): dir
// cleaned, with slashes and no leading one (an absolute path loses only its
// "/"); "" for ".". It may start with "..", which SignAs refuses.
func OPADirName(dir string) string {
	d := strings.TrimPrefix(filepath.ToSlash(filepath.Clean(dir)), "/")
	if d == "." {
		return ""
	}
	return d
}

// dirNames returns the absolute path of the directory root as OPA names an
// absolute path (OPADirName), and the same with symbolic links resolved
// when that differs: the folder paths signedNames may strip end one of them.
func dirNames(root string) []string {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil
	}
	out := []string{OPADirName(abs)}
	if real, err := filepath.EvalSymlinks(abs); err == nil && OPADirName(real) != out[0] {
		out = append(out, OPADirName(real))
	}
	if out[0] == "" { // the file system's root: nothing to strip
		return nil
	}
	return out
}

// verifyToken checks the JWS and returns its key id and verified payload.
func verifyToken(token string, cfg SigningConfig) (string, *payload, error) {
	msg, err := jws.Parse([]byte(token), jws.WithCompact())
	if err != nil {
		return "", nil, sigErr(SignaturesFile, "malformed JWS: %v", err)
	}
	if len(msg.Signatures()) != 1 {
		return "", nil, sigErr(SignaturesFile, "want exactly one JWS signature")
	}
	hdr := msg.Signatures()[0].ProtectedHeaders()
	kid, _ := hdr.KeyID()
	if kid == "" {
		var unverified payload
		if err := strictjson.Unmarshal(msg.Payload(), &unverified); err != nil {
			return "", nil, sigErr(SignaturesFile, "malformed payload: %v", err)
		}
		kid = unverified.KeyID // OPA's fallback: the keyid claim
	}
	if kid == "" {
		return "", nil, sigErr(SignaturesFile, "the signature names no key (no kid header, no keyid claim)")
	}
	key, ok := cfg.Keys[kid]
	if !ok {
		return "", nil, sigErr(SignaturesFile, "unknown key id %q: configure its public key under bundles.keys.%s", kid, kid)
	}
	if key.pub == nil {
		if key, err = key.Load(); err != nil {
			return "", nil, sigErr(SignaturesFile, "key %s: %v", kid, err)
		}
	}
	halg, _ := hdr.Algorithm()
	if halg.String() != key.algorithm() {
		return "", nil, sigErr(SignaturesFile, "signed with alg %q, but key %s is configured for %s", halg.String(), kid, key.algorithm())
	}
	alg, _ := jwa.LookupSignatureAlgorithm(key.algorithm())
	verified, err := jws.Verify([]byte(token), jws.WithKey(alg, key.pub), jws.WithCompact(), jws.WithCritValidation(true))
	if err != nil {
		return "", nil, sigErr(SignaturesFile, "the signature does not verify with key %s: %v", kid, err)
	}
	var p payload
	if err := strictjson.Unmarshal(verified, &p); err != nil {
		return "", nil, sigErr(SignaturesFile, "malformed payload: %v", err)
	}
	if p.Scope != key.Scope {
		return "", nil, sigErr(SignaturesFile, "scope mismatch: the signature has scope %q, key %s expects %q", p.Scope, kid, key.Scope)
	}
	return kid, &p, nil
}

func excluded(name string, patterns []string) bool {
	for _, p := range patterns {
		if ok, _ := path.Match(p, name); ok {
			return true
		}
	}
	return false
}

// hashableAlgs are the file hash algorithms accepted; OPA also knows MD5 and
// SHA-1, which no longer protect anything.
var hashableAlgs = map[string]bool{"SHA-224": true, "SHA-256": true, "SHA-384": true, "SHA-512": true, "SHA-512-224": true, "SHA-512-256": true}

func checkHash(name string, data []byte, f FileInfo) error {
	if !hashableAlgs[f.Algorithm] {
		return sigErr(name, "hash algorithm %q is not accepted (use SHA-256)", f.Algorithm)
	}
	got, err := fileHash(name, data, f.Algorithm)
	if err != nil {
		return err
	}
	want, err := hex.DecodeString(f.Hash)
	if err != nil {
		return sigErr(name, "the listed hash is not hex: %v", err)
	}
	if !bytes.Equal(got, want) {
		return sigErr(name, "hash mismatch: the file was changed after signing (listed %s, got %x)", f.Hash, got)
	}
	return nil
}

// fileHash hashes a file as OPA does: data.json, data.yaml and .manifest
// as their canonical JSON (sorted keys, no spaces), so that reformatting
// them keeps the signature valid; every other file as its bytes. It uses
// OPA's own hasher so that the two cannot drift.
func fileHash(name string, data []byte, alg string) ([]byte, error) {
	h, err := opabundle.NewSignatureHasher(opabundle.HashingAlgorithm(alg))
	if err != nil {
		return nil, sigErr(name, "%v", err)
	}
	var v any = data
	if opabundle.IsStructuredDoc(name) {
		var doc any
		if err := opautil.Unmarshal(data, &doc); err != nil {
			return nil, sigErr(name, "cannot hash: invalid document: %v", err)
		}
		v = doc
	}
	sum, err := h.HashFile(v)
	if err != nil {
		return nil, sigErr(name, "%v", err)
	}
	return sum, nil
}

// Sign returns the content of a .signatures.json for b: one JWS whose
// payload lists every file but .signatures.json with its SHA-256 hash (as
// `opa sign` does), with kid (also as the keyid claim) and scope when not
// empty. key is a crypto.Signer (*rsa.PrivateKey, *ecdsa.PrivateKey,
// ed25519.PrivateKey) or a private jwk.Key; alg empty means the usual one for
// the key (RS256, ES256/384/512 by curve, EdDSA). It returns an error for a
// key that does not fit alg or an algorithm not in Algorithms.
func Sign(b *Bundle, key any, kid, alg, scope string) ([]byte, error) {
	return SignAs(b, "", key, kid, alg, scope)
}

// SignAs is Sign listing each file under the folder path dir ("" for
// none), and naming dir in the verdict_dir claim: OPADirName of a directory
// as `opa run -b` will be given it, so that OPA verifies the directory (it
// matches the names against the path it was given), and Verify accepts it
// wherever it lies, an archive packed from it included. It returns an
// error for a dir that is not a folder path of plain names (one climbing
// out with "..", say).
func SignAs(b *Bundle, dir string, key any, kid, alg, scope string) ([]byte, error) {
	if dir != "" && !plainPath(dir) {
		return nil, fmt.Errorf("cannot list the files under %q: a folder path of plain names is needed (no \"..\")", dir)
	}
	jk, ok := key.(jwk.Key)
	if !ok {
		var err error
		if jk, err = jwk.Import(key); err != nil {
			return nil, fmt.Errorf("signing key: %w", err)
		}
	}
	if priv, err := jwk.IsPrivateKey(jk); err != nil || !priv {
		return nil, errors.New("signing key: a private key is required")
	}
	pk, err := jk.PublicKey()
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	var pub any
	if err := jwk.Export(pk, &pub); err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	if alg == "" {
		if alg, err = DefaultAlgorithm(pub); err != nil {
			return nil, err
		}
	}
	if !allowedAlg(alg) {
		return nil, fmt.Errorf("algorithm %q is not allowed (use one of %s)", alg, strings.Join(Algorithms, ", "))
	}
	if err := checkKeyAlg(pub, alg); err != nil {
		return nil, err
	}
	p := payload{KeyID: kid, Scope: scope, Dir: dir, Files: []FileInfo{}}
	for _, name := range sortedNames(b.Files, func(n string) bool { return n != SignaturesFile }) {
		if path.Base(name) == SignaturesFile {
			return nil, sigErr(name, "a .signatures.json is only allowed at the bundle root")
		}
		sum, err := fileHash(name, b.Files[name], hashAlgorithm)
		if err != nil {
			return nil, err
		}
		listedAs := name
		if dir != "" {
			listedAs = dir + "/" + name
		}
		p.Files = append(p.Files, FileInfo{Name: listedAs, Hash: hex.EncodeToString(sum), Algorithm: hashAlgorithm})
	}
	body, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	hdr := jws.NewHeaders()
	if err := hdr.Set(jws.TypeKey, "JWT"); err != nil {
		return nil, err
	}
	if kid != "" {
		if err := hdr.Set(jws.KeyIDKey, kid); err != nil {
			return nil, err
		}
	}
	sa, _ := jwa.LookupSignatureAlgorithm(alg)
	token, err := jws.Sign(body, jws.WithKey(sa, jk, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		return nil, fmt.Errorf("signing: %w", err)
	}
	out, err := json.MarshalIndent(signatures{Signatures: []string{string(token)}}, "", " ")
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}

func allowedAlg(alg string) bool {
	for _, a := range Algorithms {
		if a == alg {
			return true
		}
	}
	return false
}

// DefaultAlgorithm returns the usual algorithm for a public key: RS256 for
// RSA, ES256/ES384/ES512 for P-256/P-384/P-521, EdDSA for Ed25519. It
// returns an error for any other key.
func DefaultAlgorithm(pub crypto.PublicKey) (string, error) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return "RS256", nil
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return "ES256", nil
		case elliptic.P384():
			return "ES384", nil
		case elliptic.P521():
			return "ES512", nil
		}
	case ed25519.PublicKey:
		return "EdDSA", nil
	}
	return "", fmt.Errorf("unsupported key type %T", pub)
}

// checkKeyAlg reports whether pub can verify alg: RSA of at least 2048 bits
// for RS*/PS*, the matching curve for ES*, Ed25519 for EdDSA.
func checkKeyAlg(pub crypto.PublicKey, alg string) error {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if !strings.HasPrefix(alg, "RS") && !strings.HasPrefix(alg, "PS") {
			return fmt.Errorf("an RSA key cannot be used with %s", alg)
		}
		if k.N.BitLen() < 2048 {
			return fmt.Errorf("the RSA key has %d bits; at least 2048 are required", k.N.BitLen())
		}
		return nil
	case *ecdsa.PublicKey:
		want := map[string]elliptic.Curve{"ES256": elliptic.P256(), "ES384": elliptic.P384(), "ES512": elliptic.P521()}[alg]
		if want == nil || k.Curve != want {
			return fmt.Errorf("an ECDSA %s key cannot be used with %s", k.Curve.Params().Name, alg)
		}
		return nil
	case ed25519.PublicKey:
		if alg != "EdDSA" {
			return fmt.Errorf("an Ed25519 key cannot be used with %s", alg)
		}
		return nil
	}
	return fmt.Errorf("unsupported key type %T", pub)
}

// ParsePublicKeyPEM parses a PEM public key: PUBLIC KEY (PKIX), RSA PUBLIC
// KEY (PKCS #1) or CERTIFICATE (its key). A private key is an error, so that
// one is never configured where a public key belongs.
func ParsePublicKeyPEM(data []byte) (crypto.PublicKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("not a PEM-encoded key")
	}
	switch block.Type {
	case "PUBLIC KEY":
		return x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		return x509.ParsePKCS1PublicKey(block.Bytes)
	case "CERTIFICATE":
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, err
		}
		return cert.PublicKey, nil
	case "PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY":
		return nil, fmt.Errorf("the PEM holds a private key (%s); configure the public key instead", block.Type)
	}
	return nil, fmt.Errorf("unsupported PEM block %q (want PUBLIC KEY)", block.Type)
}

// ParsePrivateKeyPEM parses a PEM private key: PRIVATE KEY (PKCS #8), RSA
// PRIVATE KEY (PKCS #1) or EC PRIVATE KEY (SEC 1). Encrypted PEMs are not
// supported.
func ParsePrivateKeyPEM(data []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("not a PEM-encoded key")
	}
	var (
		k   any
		err error
	)
	switch block.Type {
	case "PRIVATE KEY":
		k, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		k, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(block.Bytes)
	case "PUBLIC KEY", "RSA PUBLIC KEY", "CERTIFICATE":
		return nil, fmt.Errorf("the PEM holds a %s; signing needs the private key", strings.ToLower(block.Type))
	default:
		return nil, fmt.Errorf("unsupported PEM block %q (want PRIVATE KEY)", block.Type)
	}
	if err != nil {
		return nil, err
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("unsupported private key type %T", k)
	}
	return s, nil
}
