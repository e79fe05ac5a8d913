package bundles

// VerificationKey is a public key that bundle signatures are verified with,
// as in OPA's keys configuration.
type VerificationKey struct {
	// Algorithm is the JWS algorithm the key signs with (RS256, ES256, EdDSA,
	// ...); empty means RS256, as in OPA.
	Algorithm string `yaml:"algorithm"`
	// Key is the PEM-encoded public key.
	Key string `yaml:"key"`
	// KeyFile is a file holding the PEM-encoded public key, used when Key is
	// empty; relative to the configuration file.
	KeyFile string `yaml:"key_file"`
	// Scope, when set, must equal the scope the signature carries.
	Scope string `yaml:"scope"`
}

// SigningConfig says which bundles are trusted.
type SigningConfig struct {
	// Required rejects any bundle without a valid .signatures.json.
	Required bool
	// Keys are the verification keys by key id (a signature's kid).
	Keys map[string]VerificationKey
}
