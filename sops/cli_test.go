package sops

import (
	"bytes"
	"crypto/rand"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/secretd/secretd/internal/interop"
	"github.com/secretd/secretd/internal/testenv"
	"github.com/secretd/secretd/manifest"
	"github.com/secretd/secretd/structured"
)

// These tests check Decrypt against the real sops CLI: files are encrypted by `sops --encrypt`
// to the host's ssh-to-age recipient and the native age key, then decrypted both by
// `sops --decrypt` (with the native key) and by this package (with the ssh host key).

type cliKey struct {
	// key is the secretd key path; extract the sops --extract path.
	key, extract string
	// bare marks a non-string scalar: `sops --extract` prints it with a final newline that
	// secretd does not add.
	bare bool
	// want, when set, is the expected value, for paths sops reads differently: sops counts
	// comments as list items.
	want string
}

type cliCase struct {
	name, format, plaintext string
	flags                   []string
	keys                    []cliKey
	// cleartext must still be readable in the encrypted file; hidden must not.
	cleartext, hidden []string
}

var cliCases = []cliCase{
	{
		name: "yaml", format: manifest.FormatYAML,
		plaintext: `github:
  oauth_token: gho_cli_token
  scopes: [repo, "read:org"]
guest_accounts.json: '[{"user": "guest"}]'
npmrc: |
  //registry.npmjs.org/:_authToken=npm_cli
  always-auth=true
number: 42
ratio: 2.50
whole_float: 1.0
huge: 1.5e300
flag: true
off: false
when: 2001-12-14
empty: ""
nothing: ~
unicode: "päss wörd ✓"
port_unencrypted: 8080
ratio_unencrypted: 2.50
flag_unencrypted: True
note_unencrypted: visible-note
when_unencrypted: 2001-12-14
servers:
  - name: alpha
    token: alpha-token
  - beta-token
`,
		flags: []string{"--unencrypted-suffix", "_unencrypted"},
		keys: []cliKey{
			{"github/oauth_token", `["github"]["oauth_token"]`, false, ""},
			{"github/scopes/1", `["github"]["scopes"][1]`, false, ""},
			{"guest_accounts.json", `["guest_accounts.json"]`, false, ""},
			{"npmrc", `["npmrc"]`, false, ""},
			{"number", `["number"]`, true, ""},
			{"ratio", `["ratio"]`, true, ""},
			{"whole_float", `["whole_float"]`, true, ""},
			{"huge", `["huge"]`, true, ""},
			{"flag", `["flag"]`, true, ""},
			{"off", `["off"]`, true, ""},
			{"when", `["when"]`, true, ""},
			{"empty", `["empty"]`, false, ""},
			{"unicode", `["unicode"]`, false, ""},
			{"port_unencrypted", `["port_unencrypted"]`, true, ""},
			{"ratio_unencrypted", `["ratio_unencrypted"]`, true, ""},
			{"flag_unencrypted", `["flag_unencrypted"]`, true, ""},
			{"note_unencrypted", `["note_unencrypted"]`, false, ""},
			{"servers/0/token", `["servers"][0]["token"]`, false, ""},
			{"servers/1", `["servers"][1]`, false, ""},
			{"github", `["github"]`, false, ""},
		},
		cleartext: []string{"visible-note", "8080"},
		hidden:    []string{"gho_cli_token", "npm_cli", "alpha-token", "beta-token"},
	},
	{
		name: "yaml-encrypted-regex", format: manifest.FormatYAML,
		plaintext: `apiVersion: v1
kind: Secret
metadata:
  name: app-secret
  labels: [a, b]
data:
  password: aHVudGVyMg==
stringData:
  token: string-data-token
  nested:
    deep: deep-secret
`,
		flags: []string{"--encrypted-regex", "^(data|stringData)$"},
		keys: []cliKey{
			{"data/password", `["data"]["password"]`, false, ""},
			{"stringData/nested/deep", `["stringData"]["nested"]["deep"]`, false, ""},
			{"metadata/name", `["metadata"]["name"]`, false, ""},
			{"metadata/labels/0", `["metadata"]["labels"][0]`, false, ""},
		},
		cleartext: []string{"app-secret"},
		hidden:    []string{"aHVudGVyMg==", "string-data-token", "deep-secret"},
	},
	{
		name: "yaml-unencrypted-regex", format: manifest.FormatYAML,
		plaintext: "public:\n  url: https://example.org\n  port: 443\nmeta_info: shown\nsecret: hidden-value\n",
		flags:     []string{"--unencrypted-regex", "^(public|meta_.*)$"},
		keys: []cliKey{
			{"public/url", `["public"]["url"]`, false, ""},
			{"public/port", `["public"]["port"]`, true, ""},
			{"meta_info", `["meta_info"]`, false, ""},
			{"secret", `["secret"]`, false, ""},
		},
		cleartext: []string{"https://example.org", "shown"},
		hidden:    []string{"hidden-value"},
	},
	{
		name: "yaml-encrypted-suffix", format: manifest.FormatYAML,
		plaintext: "db_secret: suffix-secret\ndb_host: db.example.org\ngroup_secret:\n  inner: inner-secret\n",
		flags:     []string{"--encrypted-suffix", "_secret"},
		keys: []cliKey{
			{"db_secret", `["db_secret"]`, false, ""},
			{"db_host", `["db_host"]`, false, ""},
			{"group_secret/inner", `["group_secret"]["inner"]`, false, ""},
		},
		cleartext: []string{"db.example.org"},
		hidden:    []string{"suffix-secret", "inner-secret"},
	},
	{
		name: "yaml-mac-only-encrypted", format: manifest.FormatYAML,
		plaintext: "password: mac-only-secret\nhost: mac-only-host\ncount: 3\n",
		flags:     []string{"--mac-only-encrypted", "--encrypted-regex", "^password$"},
		keys: []cliKey{
			{"password", `["password"]`, false, ""},
			{"host", `["host"]`, false, ""},
			{"count", `["count"]`, true, ""},
		},
		cleartext: []string{"mac-only-host"},
		hidden:    []string{"mac-only-secret"},
	},
	{
		name: "yaml-multi-document", format: manifest.FormatYAML,
		plaintext: "first: doc-one\n---\nsecond: doc-two\n",
		keys:      []cliKey{{"first", `["first"]`, false, ""}},
		hidden:    []string{"doc-one", "doc-two"},
	},
	{
		name: "yaml-encrypted-comment-regex", format: manifest.FormatYAML,
		plaintext: `# sops:enc
password: comment-secret
public: visible-comment-value
nested:
    # sops:enc
    token: nested-comment-secret
    plain: nested-visible
# sops:enc
whole:
    a: whole-secret-a
    b: whole-secret-b
list:
    # sops:enc
    - list-secret
    - list-visible
tail: tail-visible # sops:enc
after: after-value
`,
		flags: []string{"--encrypted-comment-regex", "sops:enc"},
		keys: []cliKey{
			{"password", `["password"]`, false, ""},
			{"public", `["public"]`, false, ""},
			{"nested/token", `["nested"]["token"]`, false, ""},
			{"nested/plain", `["nested"]["plain"]`, false, ""},
			{"whole/b", `["whole"]["b"]`, false, ""},
			{"list/0", "", false, "list-secret"},
			{"list/1", "", false, "list-visible"},
			{"tail", `["tail"]`, false, ""},
			{"after", `["after"]`, false, ""},
		},
		cleartext: []string{"visible-comment-value", "nested-visible", "list-visible"},
		hidden:    []string{"comment-secret", "nested-comment-secret", "whole-secret-a", "whole-secret-b", "list-secret"},
	},
	{
		name: "yaml-unencrypted-comment-regex", format: manifest.FormatYAML,
		plaintext: `# public
host: shown-host
password: hidden-password
nested:
    # public
    url: shown-url
    key: hidden-key
`,
		flags: []string{"--unencrypted-comment-regex", "public"},
		keys: []cliKey{
			{"host", `["host"]`, false, ""},
			{"password", `["password"]`, false, ""},
			{"nested/url", `["nested"]["url"]`, false, ""},
			{"nested/key", `["nested"]["key"]`, false, ""},
		},
		cleartext: []string{"shown-host", "shown-url"},
		hidden:    []string{"hidden-password", "hidden-key"},
	},
	{
		name: "dotenv-encrypted-comment-regex", format: manifest.FormatDotenv,
		plaintext: "#sops:enc\nSECRET=dotenv-comment-secret\nPLAIN=dotenv-visible\n",
		flags:     []string{"--encrypted-comment-regex", "sops:enc"},
		keys: []cliKey{
			{"SECRET", `["SECRET"]`, false, ""},
			{"PLAIN", `["PLAIN"]`, false, ""},
		},
		cleartext: []string{"dotenv-visible"},
		hidden:    []string{"dotenv-comment-secret"},
	},
	{
		name: "json", format: manifest.FormatJSON,
		plaintext: `{
  "db": {"password": "json-secret", "port": 5432, "ratio": 1.50, "enabled": true, "user": null},
  "api_key": "k<&>",
  "list": ["x", {"y": "list-secret"}],
  "port_unencrypted": 8080,
  "label_unencrypted": "visible-label"
}`,
		keys: []cliKey{
			{"db/password", `["db"]["password"]`, false, ""},
			{"db/port", `["db"]["port"]`, true, ""},
			{"db/ratio", `["db"]["ratio"]`, true, ""},
			{"db/enabled", `["db"]["enabled"]`, true, ""},
			{"api_key", `["api_key"]`, false, ""},
			{"list/1/y", `["list"][1]["y"]`, false, ""},
			{"port_unencrypted", `["port_unencrypted"]`, true, ""},
			{"label_unencrypted", `["label_unencrypted"]`, false, ""},
			{"db", `["db"]`, false, ""},
			{"list", `["list"]`, false, ""},
		},
		cleartext: []string{"visible-label", "8080"},
		hidden:    []string{"json-secret", "list-secret"},
	},
	{
		name: "json-encrypted-regex", format: manifest.FormatJSON,
		plaintext: `{"data": {"token": "regex-secret"}, "meta": {"name": "regex-visible"}}`,
		flags:     []string{"--encrypted-regex", "^data$"},
		keys: []cliKey{
			{"data/token", `["data"]["token"]`, false, ""},
			{"meta/name", `["meta"]["name"]`, false, ""},
		},
		cleartext: []string{"regex-visible"},
		hidden:    []string{"regex-secret"},
	},
	{
		name: "dotenv", format: manifest.FormatDotenv,
		plaintext: "# a comment\nDB_PASSWORD=dotenv secret=with equals\nMULTI=line1\\nline2\nHOST_unencrypted=\"db.example.org\"\nEMPTY=\n",
		keys: []cliKey{
			{"DB_PASSWORD", `["DB_PASSWORD"]`, false, ""},
			{"MULTI", `["MULTI"]`, false, ""},
			{"HOST_unencrypted", `["HOST_unencrypted"]`, false, ""},
			{"EMPTY", `["EMPTY"]`, false, ""},
		},
		cleartext: []string{`"db.example.org"`},
		hidden:    []string{"dotenv secret"},
	},
	{
		name: "ini", format: manifest.FormatINI,
		plaintext: "top = level-secret\n\n[database]\npassword = ini-secret\nuser_unencrypted = admin-visible\n\n[other]\nkey = \"  padded  \"\n",
		keys: []cliKey{
			{"top", `["DEFAULT"]["top"]`, false, ""},
			{"database/password", `["database"]["password"]`, false, ""},
			{"database/user_unencrypted", `["database"]["user_unencrypted"]`, false, ""},
			{"other/key", `["other"]["key"]`, false, ""},
		},
		cleartext: []string{"admin-visible"},
		hidden:    []string{"level-secret", "ini-secret"},
	},
}

// cliEnv runs sops in a clean environment: no user configuration, the native age key for
// decryption.
type cliEnv struct {
	sops, dir string
	env       []string
}

func newCLIEnv(t *testing.T) (*cliEnv, string) {
	t.Helper()
	sops := testenv.Tool(t, "sops", "go install github.com/getsops/sops/v3/cmd/sops@v3.12.2")
	corpus := interop.Dir(t)
	dir := t.TempDir()
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + dir,
		"SOPS_AGE_KEY_FILE=" + interop.Key(t, "age.key"),
	}
	hostRecipient := strings.TrimSpace(string(readFile(t, interop.Key(t, "ssh_host_ed25519_key.age-recipient"))))
	native, ok := nativeIdentities(t, corpus)[0].(*age.X25519Identity)
	if !ok {
		t.Fatal("keys/age.key does not hold an X25519 identity")
	}
	return &cliEnv{sops: sops, dir: dir, env: env}, hostRecipient + "," + native.Recipient().String()
}

func (c *cliEnv) run(t *testing.T, args ...string) ([]byte, error) {
	t.Helper()
	cmd := exec.Command(c.sops, args...)
	cmd.Dir = c.dir
	cmd.Env = c.env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		// sops' errors name keys and master keys, not values.
		t.Logf("sops %s: %v: %s", args[0], err, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), err
}

func (c *cliEnv) write(t *testing.T, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(c.dir, name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestAgainstSopsCLI(t *testing.T) {
	cli, recipients := newCLIEnv(t)
	dir := interop.Dir(t)
	hostIDs := hostIdentities(t, dir)
	nativeIDs := nativeIdentities(t, dir)

	for _, c := range cliCases {
		t.Run(c.name, func(t *testing.T) {
			plain := cli.write(t, c.name+".plain", []byte(c.plaintext))
			args := append([]string{"--encrypt", "--age", recipients, "--input-type", c.format, "--output-type", c.format}, c.flags...)
			enc, err := cli.run(t, append(args, plain)...)
			if err != nil {
				t.Fatal("sops --encrypt failed")
			}
			for _, s := range c.cleartext {
				if !bytes.Contains(enc, []byte(s)) {
					t.Errorf("a value meant to stay in cleartext is not readable in the sops file")
				}
			}
			for _, s := range c.hidden {
				if bytes.Contains(enc, []byte(s)) {
					t.Errorf("a value meant to be encrypted is readable in the sops file")
				}
			}
			encPath := cli.write(t, c.name+".enc", enc)

			if format, ok := Detect(enc); !ok || format != c.format {
				t.Fatalf("Detect = %q, %v; want %q", format, ok, c.format)
			}
			doc, err := Decrypt(enc, hostIDs)
			if err != nil {
				t.Fatalf("Decrypt with the ssh host key: %v", err)
			}
			asSopsPrints(doc)
			if _, err := Decrypt(enc, nativeIDs); err != nil {
				t.Fatalf("Decrypt with the native age key: %v", err)
			}

			want, err := cli.run(t, "--decrypt", "--input-type", c.format, "--output-type", c.format, encPath)
			if err != nil {
				t.Fatal("sops --decrypt failed")
			}
			got, err := doc.Value("")
			if err != nil {
				t.Fatalf("Value(\"\"): %v", err)
			}
			sameBytes(t, "whole document", got, want)

			for _, k := range c.keys {
				if err := HasKey(enc, k.key); err != nil && !errors.Is(err, structured.ErrListIndex) {
					t.Errorf("HasKey(%q): %v", k.key, err)
				}
				want := []byte(k.want)
				if k.extract != "" {
					if want, err = cli.run(t, "--decrypt", "--input-type", c.format, "--output-type", c.format, "--extract", k.extract, encPath); err != nil {
						t.Errorf("sops --extract %s failed", k.extract)
						continue
					}
				}
				if k.bare {
					want = bytes.TrimSuffix(want, []byte("\n"))
				}
				got, err := doc.Value(k.key)
				if err != nil {
					t.Errorf("Value(%q): %v", k.key, err)
					continue
				}
				sameBytes(t, "key "+k.key, got, want)
			}
			if err := HasKey(enc, "no/such/key"); err == nil {
				t.Error("HasKey accepted a missing key")
			}

			// Flip one character of one encrypted value's ciphertext (not a comment's, which
			// sops tolerates): both must refuse.
			i := firstEncryptedValue(enc)
			if i < 0 {
				t.Fatal("no encrypted value in the sops file")
			}
			tampered := bytes.Clone(enc)
			pos := i + len("ENC[AES256_GCM,data:")
			if tampered[pos] == 'A' {
				tampered[pos] = 'B'
			} else {
				tampered[pos] = 'A'
			}
			if _, err := Decrypt(tampered, hostIDs); err == nil {
				t.Error("Decrypt accepted a tampered file")
			}
			if _, err := cli.run(t, "--decrypt", "--input-type", c.format, "--output-type", c.format, cli.write(t, c.name+".tampered", tampered)); err == nil {
				t.Error("sops accepted the tampered file, so the tampering test proves nothing")
			}
		})
	}
}

func TestAgainstSopsCLIBinary(t *testing.T) {
	cli, recipients := newCLIEnv(t)
	blob := make([]byte, 777)
	if _, err := rand.Read(blob); err != nil {
		t.Fatal(err)
	}
	plain := cli.write(t, "blob.bin", blob)
	enc, err := cli.run(t, "--encrypt", "--age", recipients, "--input-type", "binary", "--output-type", "binary", plain)
	if err != nil {
		t.Fatal("sops --encrypt failed")
	}
	if format, ok := Detect(enc); !ok || format != manifest.FormatBinary {
		t.Fatalf("Detect = %q, %v", format, ok)
	}
	doc, err := Decrypt(enc, hostIdentities(t, interop.Dir(t)))
	if err != nil {
		t.Fatal(err)
	}
	got, err := doc.Value("")
	if err != nil {
		t.Fatal(err)
	}
	sameBytes(t, "binary", got, blob)
	want, err := cli.run(t, "--decrypt", "--input-type", "binary", "--output-type", "binary", cli.write(t, "blob.enc", enc))
	if err != nil {
		t.Fatal("sops --decrypt failed")
	}
	sameBytes(t, "binary vs sops", got, want)
}

// firstEncryptedValue returns the offset of the first ENC[...] that is a value, not a comment.
func firstEncryptedValue(data []byte) int {
	for from := 0; ; {
		i := bytes.Index(data[from:], []byte("ENC[AES256_GCM,data:"))
		if i < 0 {
			return -1
		}
		i += from
		if i > 0 && data[i-1] != '#' && !bytes.HasPrefix(data[i-2:], []byte("# ")) {
			return i
		}
		from = i + 1
	}
}
