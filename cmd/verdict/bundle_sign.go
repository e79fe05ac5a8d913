package main

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"strings"

	"github.com/verdictpdp/verdict/internal/app"

	"github.com/spf13/cobra"

	"github.com/verdictpdp/verdict/bundles"
)

// signFlags are the flags `bundle sign` and `bundle build` share.
type signFlags struct {
	keyFile string
	kid     string
	alg     string
	scope   string
}

func (s *signFlags) register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&s.keyFile, "signing-key", "", "PEM private key file to sign with (PKCS #8, PKCS #1 or SEC 1)")
	f.StringVar(&s.kid, "key-id", "", "key id written as the signature's kid; serve verifies with bundles.keys.<key-id>")
	f.StringVar(&s.alg, "alg", "", "signing algorithm: "+strings.Join(bundles.Algorithms, ", ")+" (default: RS256 for RSA, ES256/ES384/ES512 by curve, EdDSA for Ed25519)")
	f.StringVar(&s.scope, "scope", "", "scope claim; must equal bundles.keys.<key-id>.scope")
}

// sign returns the .signatures.json content for b, its files listed under
// the folder path dir ("" for an archive: names from its root). Problems
// with the flags or the key are usage errors (exit 2).
func (s *signFlags) sign(b *bundles.Bundle, dir string) ([]byte, error) {
	if s.kid == "" {
		return nil, errors.New("--key-id is required with --signing-key: serve finds the public key by it (bundles.keys.<key-id>)")
	}
	raw, err := os.ReadFile(s.keyFile)
	if err != nil {
		return nil, fmt.Errorf("--signing-key: %w", err)
	}
	key, err := bundles.ParsePrivateKeyPEM(raw)
	if err != nil {
		return nil, fmt.Errorf("--signing-key %s: %w", s.keyFile, err)
	}
	sig, err := bundles.SignAs(b, dir, key, s.kid, s.alg, s.scope)
	if err != nil {
		return nil, fmt.Errorf("--signing-key %s: %w", s.keyFile, err)
	}
	return sig, nil
}

// loadForTool reads the bundle at p with the limits of the configuration
// at cfgPath (defaults when empty).
func loadForTool(cfgPath, p string) (*bundles.Bundle, app.Config, error) {
	cfg, err := app.LoadConfig(cfgPath)
	if err != nil {
		return nil, cfg, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, cfg, fmt.Errorf("invalid configuration:\n%w", err)
	}
	b, err := bundles.Load(p, cfg.BundleLimits)
	return b, cfg, err
}

func newBundleSign() *cobra.Command {
	var (
		sf      signFlags
		outDir  string
		opaPath string
		cfgPath string
	)
	cmd := &cobra.Command{
		Use:   "sign DIR --signing-key KEY.pem --key-id ID",
		Short: "Write DIR/.signatures.json, signing every file of the bundle directory",
		Long: `Sign the bundle directory DIR as ` + "`opa sign --bundle`" + ` does: write a .signatures.json
(OPA's format: one JWS whose payload lists every file with its SHA-256 hash)
into DIR, or into --output-file-path. data.json, data.yaml and .manifest are
hashed as canonical JSON, every other file as its bytes; an existing
.signatures.json is replaced, never listed.

The files are listed as ` + "`opa sign --bundle DIR`" + ` lists them, under DIR as given
(DIR/p.rego; an absolute DIR without its leading /), because OPA matches the
names against the path ` + "`opa run -b`" + ` is given: run OPA from the same folder with
the same DIR, or name that path with --opa-path. Verdict verifies the
directory wherever it lies, and the archive ` + "`verdict bundle push`" + ` packs from it.

verdict serve (outside --dev) and OPA both verify the result with the public
key configured for the key id. Exit status: 0 when signed, 1 when the bundle
cannot be read, 2 on bad usage or an unusable key.`,
		Example: `  verdict bundle keygen --out keys
  verdict bundle sign policies/quickstart --signing-key keys/private.pem --key-id ci`,
		Args: argsExactly("DIR (the bundle directory to sign)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if sf.keyFile == "" {
				return missingFlag(cmd, "--signing-key KEY.pem (the private key to sign with: verdict bundle keygen makes one)")
			}
			if fi, err := os.Stat(args[0]); err == nil && !fi.IsDir() {
				return fmt.Errorf("%s is not a directory: sign a directory, or sign while archiving with `verdict bundle build DIR -o FILE --signing-key KEY`", args[0])
			}
			b, _, err := loadForTool(cfgPath, args[0])
			if err != nil {
				fmt.Fprintln(cmd.OutOrStdout(), err)
				return exitError{1}
			}
			// The files are listed as OPA lists a directory given as
			// args[0] (opa sign --bundle DIR), or as --opa-path, so that
			// `opa run -b DIR` from the same folder verifies it too;
			// Verdict reads it wherever it lies (the verdict_dir claim).
			opaDir := bundles.OPADirName(args[0])
			if cmd.Flags().Changed("opa-path") {
				opaDir = bundles.OPADirName(opaPath)
			}
			if opaDir == ".." || strings.HasPrefix(opaDir, "../") {
				return fmt.Errorf("OPA would name the files of %s as %s/…, which climbs out of this folder: sign from %s's parent folder or above, or give --opa-path with the path you will give `opa run -b`", args[0], opaDir, args[0])
			}
			sig, err := sf.sign(b, opaDir)
			if err != nil {
				return err
			}
			dir := args[0]
			if outDir != "" {
				dir = outDir
			}
			dst := filepath.Join(dir, bundles.SignaturesFile)
			if err := writeAtomic(dst, sig, 0o644); err != nil {
				return err
			}
			n := len(b.Files)
			if _, ok := b.Files[bundles.SignaturesFile]; ok {
				n--
			}
			fmt.Fprintf(cmd.OutOrStdout(), "signed %d files of %s with key %s: wrote %s\n", n, args[0], sf.kid, dst)
			if opaDir != "" {
				fmt.Fprintf(cmd.OutOrStdout(), "files listed as %s/…, as opa sign --bundle %s writes them: opa run -b %s verifies it from this folder; Verdict reads it from anywhere\n", opaDir, opaDir, opaDir)
			} else {
				fmt.Fprintln(cmd.OutOrStdout(), "files listed from the bundle root: Verdict reads it from anywhere; OPA verifies such names in an archive (verdict bundle build), not in a directory")
			}
			return nil
		},
	}
	sf.register(cmd)
	cmd.Flags().StringVar(&outDir, "output-file-path", "", "directory to write .signatures.json to (default: DIR itself)")
	cmd.Flags().StringVar(&opaPath, "opa-path", "", "the path `opa run -b` will be given for DIR, which OPA matches the listed names against (default: DIR as given; an absolute path works from anywhere; \".\" lists names from the bundle root)")
	cmd.Flags().StringVar(&cfgPath, "config", "", "configuration file whose bundle limits apply (as under serve)")
	return cmd
}

func newBundleBuild() *cobra.Command {
	var (
		sf       signFlags
		out      string
		revision string
		cfgPath  string
	)
	cmd := &cobra.Command{
		Use:   "build DIR -o bundle.tar.gz",
		Short: "Compile a bundle and write it as an OPA-layout .tar.gz, signed when a key is given",
		Long: `Read the bundle at DIR (a directory or .tar.gz), check that every CEL and Rego
file compiles, and write it to -o as a gzip-compressed tar in the layout
` + "`opa build`" + ` writes (entries /data.json, /.manifest, /.signatures.json, ...,
in path order and without time stamps, so the same input gives the same
bytes). Verdict and OPA both load it.

--revision sets the .manifest revision (other manifest fields are kept).
--signing-key signs the result (see verdict bundle sign); without it, a
.signatures.json already in DIR is kept, unless --revision would invalidate
it. Exit status: 0 when written, 1 when the bundle cannot be read or does not
compile, 2 on bad usage or an unusable key.`,
		Example: `  verdict bundle build policies/quickstart -o quickstart.tar.gz --revision 2026-12-01.1 \
    --signing-key keys/private.pem --key-id ci`,
		Args: argsExactly("DIR (the bundle directory to build)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return missingFlag(cmd, "-o FILE.tar.gz (the archive to write)")
			}
			if sf.keyFile == "" && (sf.kid != "" || sf.alg != "" || sf.scope != "") {
				return errors.New("--key-id, --alg and --scope need --signing-key")
			}
			stdout := cmd.OutOrStdout()
			fail := func(err error) error {
				fmt.Fprintln(stdout, err)
				fmt.Fprintf(stdout, "FAIL\t%s\t(bundle not built)\n", args[0])
				return exitError{1}
			}
			b, cfg, err := loadForTool(cfgPath, args[0])
			if err != nil {
				var re *bundles.ReadError
				if errors.As(err, &re) || errors.Is(err, os.ErrNotExist) {
					return fail(err)
				}
				return err
			}
			if revision != "" {
				_, signed := b.Files[bundles.SignaturesFile]
				if signed && sf.keyFile == "" {
					return fmt.Errorf("%s carries a .signatures.json that --revision would invalidate: give --signing-key to sign again", args[0])
				}
				if b, err = b.WithRevision(revision); err != nil {
					return fail(err)
				}
			}
			if _, err := bundles.Compile(cmd.Context(), []*bundles.Bundle{b}, cfg.Engine); err != nil {
				return fail(err)
			}
			if sf.keyFile != "" {
				sig, err := sf.sign(b, "")
				if err != nil {
					return err
				}
				files := maps.Clone(b.Files)
				files[bundles.SignaturesFile] = sig
				if b, err = bundles.FromFiles(files, cfg.BundleLimits); err != nil {
					return fail(err)
				}
			}
			var buf bytes.Buffer
			if err := bundles.WriteArchive(&buf, b); err != nil {
				return err
			}
			if err := writeAtomic(out, buf.Bytes(), 0o644); err != nil {
				return err
			}
			state := "unsigned"
			if sf.keyFile != "" {
				state = "signed with key " + sf.kid
			} else if _, ok := b.Files[bundles.SignaturesFile]; ok {
				state = "with its existing signature"
			}
			fmt.Fprintf(stdout, "built %s: %d files, revision %s, %s, %s\n", out, len(b.Files), b.Revision(), b.Digest, state)
			return nil
		},
	}
	sf.register(cmd)
	cmd.Flags().StringVarP(&out, "output", "o", "", "the .tar.gz file to write")
	cmd.Flags().StringVar(&revision, "revision", "", "revision to set in .manifest")
	cmd.Flags().StringVar(&cfgPath, "config", "", "configuration file whose engine and bundle limits apply (as under serve)")
	return cmd
}

func newBundleKeygen() *cobra.Command {
	var (
		alg string
		out string
	)
	cmd := &cobra.Command{
		Use:   "keygen --out DIR [--alg ES256]",
		Short: "Create a key pair for signing bundles: DIR/private.pem (0600) and DIR/public.pem",
		Long: `Create a bundle-signing key pair: DIR/private.pem (PKCS #8, mode 0600; keep it
in your CI secrets, never in the bundle) and DIR/public.pem (PKIX; configure
it under bundles.keys). --alg picks the key: ES256/ES384/ES512 (P-256/P-384/
P-521), EdDSA (Ed25519), RS*/PS* (RSA 3072). Existing files are never
overwritten. Exit status: 0 when written, 2 on bad usage or when a file exists.`,
		Example: `  verdict bundle keygen --out keys --alg ES256`,
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return missingFlag(cmd, "--out DIR (the directory to write private.pem and public.pem to)")
			}
			priv, err := generateKey(alg)
			if err != nil {
				return err
			}
			p8, err := x509.MarshalPKCS8PrivateKey(priv)
			if err != nil {
				return err
			}
			pk, err := x509.MarshalPKIXPublicKey(priv.Public())
			if err != nil {
				return err
			}
			privPath, pubPath := filepath.Join(out, "private.pem"), filepath.Join(out, "public.pem")
			for _, p := range []string{privPath, pubPath} {
				if _, err := os.Lstat(p); err == nil {
					return fmt.Errorf("%s exists; not overwriting a key (choose another --out)", p)
				}
			}
			if err := os.MkdirAll(out, 0o700); err != nil {
				return err
			}
			if err := writeExclusive(privPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: p8}), 0o600); err != nil {
				return err
			}
			if err := writeExclusive(pubPath, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pk}), 0o644); err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "wrote %s (private, 0600) and %s (public), algorithm %s\n\n", privPath, pubPath, alg)
			fmt.Fprintf(w, "sign:      verdict bundle sign DIR --signing-key %s --key-id ci\n", privPath)
			fmt.Fprintf(w, "configure: bundles:\n             keys:\n               ci: {algorithm: %s, key_file: %s}\n", alg, pubPath)
			return nil
		},
	}
	cmd.Flags().StringVar(&alg, "alg", "ES256", "algorithm the key is for: "+strings.Join(bundles.Algorithms, ", "))
	cmd.Flags().StringVar(&out, "out", "", "directory to write private.pem and public.pem to (created 0700 if missing)")
	return cmd
}

func generateKey(alg string) (crypto.Signer, error) {
	switch alg {
	case "ES256":
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "ES384":
		return ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case "ES512":
		return ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	case "EdDSA":
		_, k, err := ed25519.GenerateKey(rand.Reader)
		return k, err
	case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512":
		return rsa.GenerateKey(rand.Reader, 3072)
	}
	return nil, fmt.Errorf("--alg %q is not one of %s", alg, strings.Join(bundles.Algorithms, ", "))
}

// writeAtomic writes data to a temporary file beside p and renames it over
// p, so that a reader never sees half a file.
func writeAtomic(p string, data []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(p), "."+filepath.Base(p)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // after a successful rename, there is nothing left to remove
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), p)
}

// writeExclusive creates p with mode, failing if it exists.
func writeExclusive(p string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, bytes.NewReader(data)); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
