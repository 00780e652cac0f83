package activation_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	mathrand "math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/sys/unix"

	"github.com/secretd/secretd/activation"
	"github.com/secretd/secretd/internal/interop"
	"github.com/secretd/secretd/manifest"
	"github.com/secretd/secretd/ramfs"
)

// badInput is one way a manifest, an encrypted file, an identity or the host can be wrong.
type badInput struct {
	name string
	// input returns the manifest as the CLI would read it, starting from the good one as a
	// JSON object; it may prepare files and mounts too.
	input func(f *fixture, m jsonObject) []byte
	// want are the parts the error must hold: the secret, file or JSON location at fault.
	want []string
	// check, if set, verifies more after the failure.
	check func(t *testing.T, f *fixture)
}

type jsonObject = map[string]any

func secretAt(m jsonObject, i int) jsonObject { return m["secrets"].([]any)[i].(jsonObject) }

func templateAt(m jsonObject, i int) jsonObject { return m["templates"].([]any)[i].(jsonObject) }

func addSecret(m jsonObject, s jsonObject) { m["secrets"] = append(m["secrets"].([]any), s) }

func encode(m jsonObject) []byte {
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		panic(err)
	}
	return data
}

// withSecret sets fields of secret i.
func withSecret(i int, fields jsonObject) func(f *fixture, m jsonObject) []byte {
	return func(f *fixture, m jsonObject) []byte {
		for k, v := range fields {
			secretAt(m, i)[k] = v
		}
		return encode(m)
	}
}

// withFile makes secret i read the file prepare returns.
func withFile(i int, prepare func(f *fixture) string, fields jsonObject) func(f *fixture, m jsonObject) []byte {
	return func(f *fixture, m jsonObject) []byte {
		secretAt(m, i)["file"] = prepare(f)
		for k, v := range fields {
			secretAt(m, i)[k] = v
		}
		return encode(m)
	}
}

func writeFile(f *fixture, name string, data []byte) string {
	p := filepath.Join(f.dir, name)
	os.MkdirAll(filepath.Dir(p), 0o755)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		f.t.Fatal(err)
	}
	return p
}

func interopBytes(f *fixture, name string) []byte {
	data, err := os.ReadFile(interop.Enc(f.t, name))
	if err != nil {
		f.t.Fatal(err)
	}
	return data
}

func passphraseProtectedKey(f *fixture) []byte {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		f.t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKeyWithPassphrase(key, "test", []byte("correct horse"))
	if err != nil {
		f.t.Fatal(err)
	}
	return pem.EncodeToMemory(block)
}

// mountTmpfs mounts a tmpfs at dir for the rest of the test.
func mountTmpfs(f *fixture, dir string) {
	os.MkdirAll(dir, 0o755)
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=1m"); err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
}

func badInputs() []badInput {
	moved := func(from, to string) func(f *fixture, m jsonObject) []byte {
		return func(f *fixture, m jsonObject) []byte {
			good := encode(m)
			if !bytes.Contains(good, []byte(from)) {
				f.t.Fatalf("%q not in the manifest", from)
			}
			return bytes.Replace(good, []byte(from), []byte(to), 1)
		}
	}
	return []badInput{
		// The manifest's JSON.
		{name: "malformed JSON: truncated", input: func(f *fixture, m jsonObject) []byte {
			good := encode(m)
			return good[:len(good)/2]
		}, want: []string{"malformed JSON"}},
		{name: "malformed JSON: stray comma", input: moved(`"version": 1`, `"version": 1,`),
			want: []string{"malformed JSON at line", "column"}},
		{name: "not an object", input: func(f *fixture, m jsonObject) []byte { return []byte(`[1]`) },
			want: []string{"expected"}},
		{name: "trailing data", input: func(f *fixture, m jsonObject) []byte { return append(encode(m), "{}"...) },
			want: []string{"malformed JSON at line", "after top-level value"}},
		{name: "missing version", input: func(f *fixture, m jsonObject) []byte { delete(m, "version"); return encode(m) },
			want: []string{"version: missing"}},
		{name: "unknown version", input: func(f *fixture, m jsonObject) []byte { m["version"] = 2; return encode(m) },
			want: []string{"version: 2 is not supported"}},
		{name: "version not a number", input: func(f *fixture, m jsonObject) []byte { m["version"] = "1"; return encode(m) },
			want: []string{"version", "string"}},
		{name: "unknown top-level field", input: func(f *fixture, m jsonObject) []byte { m["secretDir"] = "/run/x"; return encode(m) },
			want: []string{`"secretDir"`}},
		{name: "unknown field in a secret", input: withSecret(1, jsonObject{"ownr": "nobody"}),
			want: []string{"secrets[1]", `"ownr"`}},
		{name: "wrong type in a secret", input: withSecret(1, jsonObject{"mode": 440}),
			want: []string{"secrets[1]", "mode"}},

		// Names.
		{name: "duplicate names", input: withSecret(1, jsonObject{"name": "token"}),
			want: []string{"secrets[1] (token).name", `"token" is already used by secrets[0]`}},
		{name: "name with ..", input: withSecret(1, jsonObject{"name": "../escape"}),
			want: []string{"secrets[1] (../escape).name", `".." segment`}},
		{name: "name with a leading /", input: withSecret(1, jsonObject{"name": "/etc/shadow"}),
			want: []string{"secrets[1] (/etc/shadow).name", "absolute"}},
		{name: "name with NUL", input: withSecret(1, jsonObject{"name": "a\x00b"}),
			want: []string{"secrets[1]", ".name", "without control characters"}},
		{name: "name with an empty segment", input: withSecret(1, jsonObject{"name": "a//b"}),
			want: []string{"secrets[1] (a//b).name", "empty path segment"}},
		{name: "name with a trailing /", input: withSecret(1, jsonObject{"name": "dir/"}),
			want: []string{"secrets[1] (dir/).name", "empty path segment"}},
		{name: "empty name", input: withSecret(1, jsonObject{"name": ""}),
			want: []string{"secrets[1].name", "empty"}},
		{name: "name is a directory of another", input: func(f *fixture, m jsonObject) []byte {
			addSecret(m, jsonObject{"name": "token/inner", "file": interop.Enc(f.t, "token.age")})
			return encode(m)
		}, want: []string{"secrets[2] (token/inner).name", `needs "token" to be a directory`, "secrets[0] (token)"}},
		{name: "name inside rendered/", input: withSecret(1, jsonObject{"name": "rendered/x"}),
			want: []string{"secrets[1] (rendered/x).name", "rendered templates"}},

		// Ownership and modes.
		{name: "mode 0999", input: withSecret(0, jsonObject{"mode": "0999"}),
			want: []string{`secrets[0] (token).mode: "0999" is not an octal mode`}},
		{name: "mode abc", input: withSecret(0, jsonObject{"mode": "abc"}),
			want: []string{`secrets[0] (token).mode: "abc" is not an octal mode`}},
		{name: "mode 01777", input: withSecret(0, jsonObject{"mode": "01777"}),
			want: []string{`secrets[0] (token).mode: "01777" has bits beyond 0777`}},
		{name: "template mode -1", input: func(f *fixture, m jsonObject) []byte { templateAt(m, 0)["mode"] = "-1"; return encode(m) },
			want: []string{`templates[0] (greeting.conf).mode`}},
		{name: "owner and uid", input: withSecret(0, jsonObject{"uid": 5}),
			want: []string{"secrets[0] (token).uid", "not both"}},
		{name: "negative gid", input: func(f *fixture, m jsonObject) []byte {
			delete(secretAt(m, 1), "group")
			secretAt(m, 1)["gid"] = -3
			return encode(m)
		}, want: []string{"secrets[1] (nested/multi).gid", "negative"}},
		{name: "uid beyond 32 bits", input: func(f *fixture, m jsonObject) []byte {
			delete(secretAt(m, 0), "owner")
			secretAt(m, 0)["uid"] = 1 << 32
			return encode(m)
		}, want: []string{"secrets[0] (token).uid"}},
		{name: "unknown owner", input: withSecret(0, jsonObject{"owner": "no-such-user-secretd"}),
			want: []string{`secret "token"`, `unknown user "no-such-user-secretd"`}},
		{name: "unknown group", input: withSecret(1, jsonObject{"group": "no-such-group-secretd"}),
			want: []string{`secret "nested/multi"`, `unknown group "no-such-group-secretd"`}},
		{name: "unknown template owner", input: func(f *fixture, m jsonObject) []byte {
			templateAt(m, 0)["owner"] = "no-such-user-secretd"
			return encode(m)
		}, want: []string{`template "greeting.conf"`, `unknown user "no-such-user-secretd"`}},

		// Path symlinks.
		{name: "path inside mountPoint", input: func(f *fixture, m jsonObject) []byte {
			secretAt(m, 1)["path"] = filepath.Join(f.mountPoint, "x")
			return encode(m)
		}, want: []string{"secrets[1] (nested/multi).path", "inside mountPoint"}},
		{name: "path inside secretsDir", input: func(f *fixture, m jsonObject) []byte {
			secretAt(m, 1)["path"] = filepath.Join(f.secretsDir, "x")
			return encode(m)
		}, want: []string{"secrets[1] (nested/multi).path", "inside secretsDir"}},
		{name: "relative path", input: withSecret(1, jsonObject{"path": "home/alice/x"}),
			want: []string{"secrets[1] (nested/multi).path", "clean absolute path"}},
		{name: "unclean path", input: withSecret(1, jsonObject{"path": "/home/alice/../bob/x"}),
			want: []string{"secrets[1] (nested/multi).path", "clean absolute path"}},
		{name: "path used twice", input: func(f *fixture, m jsonObject) []byte {
			secretAt(m, 1)["path"] = secretAt(m, 0)["path"]
			return encode(m)
		}, want: []string{"secrets[1] (nested/multi).path", "already used by secrets[0] (token)"}},
		{name: "path over a directory", input: func(f *fixture, m jsonObject) []byte {
			p := filepath.Join(f.dir, "home", "bob", "dir")
			os.MkdirAll(p, 0o755)
			secretAt(m, 1)["path"] = p
			return encode(m)
		}, want: []string{`secret "nested/multi"`, "home/bob/dir", "is a directory"}},
		{name: "path under a regular file", input: func(f *fixture, m jsonObject) []byte {
			p := writeFile(f, "home/bob/file", []byte("x"))
			secretAt(m, 1)["path"] = filepath.Join(p, "below", "link")
			return encode(m)
		}, want: []string{`secret "nested/multi"`, "home/bob/file", "not a directory"}},

		// Templates and placeholders.
		{name: "undeclared placeholder", input: func(f *fixture, m jsonObject) []byte {
			templateAt(m, 0)["content"] = "x = <SECRETD:nope>\n"
			return encode(m)
		}, want: []string{"templates[0] (greeting.conf).content", "<SECRETD:nope> is not a declared placeholder"}},
		{name: "placeholder of no secret", input: func(f *fixture, m jsonObject) []byte {
			m["placeholders"].(jsonObject)["ghost"] = "<SECRETD:ghost>"
			return encode(m)
		}, want: []string{`placeholders["ghost"]`, `no secret is named "ghost"`}},
		{name: "malformed placeholder token", input: func(f *fixture, m jsonObject) []byte {
			m["placeholders"].(jsonObject)["nested/multi"] = "{{multi}}"
			return encode(m)
		}, want: []string{`placeholders["nested/multi"]`, "not of the form"}},

		// Formats and keys.
		{name: "unknown format", input: withSecret(1, jsonObject{"format": "toml"}),
			want: []string{"secrets[1] (nested/multi).format", `"toml"`}},
		{name: "key on a binary secret", input: withSecret(1, jsonObject{"key": "password"}),
			want: []string{"secrets[1] (nested/multi).key", "binary"}},
		{name: "key missing from the plaintext", input: withFile(1, func(f *fixture) string {
			return f.encrypt("app.json", []byte(`{"user": "app-user-name", "password": "app-password-1234"}`))
		}, jsonObject{"format": "json", "key": "passwd"}),
			want: []string{`secret "nested/multi"`, "app.json", "passwd"}},
		{name: "plaintext not in the declared format", input: withFile(1, func(f *fixture) string {
			return f.encrypt("not.json", []byte("password hunter2-correct-horse-battery\n"))
		}, jsonObject{"format": "json", "key": "password"}),
			want: []string{`secret "nested/multi"`, "not.json", "json"}},
		{name: "plaintext with a duplicate key", input: withFile(1, func(f *fixture) string {
			return f.encrypt("dup.json", []byte(`{"not-a-key-but-maybe-secret-material": 1, "not-a-key-but-maybe-secret-material": 2}`))
		}, jsonObject{"format": "json", "key": "password"}),
			want: []string{`secret "nested/multi"`, "dup.json", "duplicate key at line 1, column"}},

		// Encrypted files.
		{name: "file missing", input: withSecret(1, jsonObject{"file": "/nonexistent/secretd/db.age"}),
			want: []string{`secret "nested/multi"`, "/nonexistent/secretd/db.age", "no such file"}},
		{name: "file relative", input: withSecret(1, jsonObject{"file": "db.age"}),
			want: []string{"secrets[1] (nested/multi).file", "absolute"}},
		{name: "file not given", input: func(f *fixture, m jsonObject) []byte { delete(secretAt(m, 1), "file"); return encode(m) },
			want: []string{"secrets[1] (nested/multi).file", "missing"}},
		{name: "file not encrypted", input: withFile(1, func(f *fixture) string {
			return writeFile(f, "plain/db.txt", []byte("db-password-in-the-clear\n"))
		}, nil), want: []string{`secret "nested/multi"`, "plain/db.txt", "neither an age file"}},
		{name: "file a directory", input: withFile(1, func(f *fixture) string {
			p := filepath.Join(f.dir, "adir.age")
			os.Mkdir(p, 0o755)
			return p
		}, nil), want: []string{`secret "nested/multi"`, "adir.age", "directory"}},
		{name: "wrong recipient", input: withSecret(1, jsonObject{"file": "WRONG"}),
			want: []string{`secret "nested/multi"`, "wrong-recipient.age", "other recipients"}},
		{name: "truncated age file", input: withFile(1, func(f *fixture) string {
			data := interopBytes(f, "multi-recipient.age")
			return writeFile(f, "truncated.age", data[:len(data)-20])
		}, nil), want: []string{`secret "nested/multi"`, "truncated.age"}},
		{name: "truncated age header", input: withFile(1, func(f *fixture) string {
			data := interopBytes(f, "multi-recipient.age")
			return writeFile(f, "header.age", data[:60])
		}, nil), want: []string{`secret "nested/multi"`, "header.age"}},
		{name: "corrupted age payload", input: withFile(1, func(f *fixture) string {
			data := interopBytes(f, "multi-recipient.age")
			data[len(data)-3] ^= 1
			return writeFile(f, "corrupted.age", data)
		}, nil), want: []string{`secret "nested/multi"`, "corrupted.age"}},
		{name: "corrupted armored age file", input: withFile(1, func(f *fixture) string {
			data := interopBytes(f, "multiline.armored.age")
			i := bytes.LastIndex(data, []byte("-----END"))
			data[i-6] = '!'
			return writeFile(f, "corrupted.armored.age", data)
		}, nil), want: []string{`secret "nested/multi"`, "corrupted.armored.age"}},

		// Identities.
		{name: "no identity paths", input: func(f *fixture, m jsonObject) []byte { m["identities"] = []any{}; return encode(m) },
			want: []string{"identities", "no identity paths"}},
		{name: "relative identity", input: func(f *fixture, m jsonObject) []byte { m["identities"] = []any{"etc/ssh/key"}; return encode(m) },
			want: []string{"identities[0]", "absolute"}},
		{name: "no usable identity", input: func(f *fixture, m jsonObject) []byte {
			m["identities"] = []any{"/nonexistent/ssh_host_ed25519_key", "/nonexistent/ssh_host_rsa_key"}
			return encode(m)
		}, want: []string{"no usable identity", "/nonexistent/ssh_host_ed25519_key", "/nonexistent/ssh_host_rsa_key"}},
		{name: "identity is a directory", input: func(f *fixture, m jsonObject) []byte {
			p := filepath.Join(f.dir, "keys", "ssh_host_ed25519_key")
			os.MkdirAll(p, 0o700)
			m["identities"] = append(m["identities"].([]any), p)
			return encode(m)
		}, want: []string{"identity " + "KEYDIR", "directory"}},
		{name: "passphrase-protected identity", input: func(f *fixture, m jsonObject) []byte {
			p := writeFile(f, "keys/protected_key", passphraseProtectedKey(f))
			os.Chmod(p, 0o600)
			m["identities"] = append(m["identities"].([]any), p)
			return encode(m)
		}, want: []string{"identity " + "PROTECTED", "passphrase-protected"}},
		{name: "malformed identity", input: func(f *fixture, m jsonObject) []byte {
			p := writeFile(f, "keys/garbage_key", []byte("not-a-key-but-maybe-secret-material\n"))
			os.Chmod(p, 0o600)
			m["identities"] = append(m["identities"].([]any), p)
			return encode(m)
		}, want: []string{"identity " + "GARBAGE", "neither an OpenSSH private key nor an age identity"}},

		// The host's directories.
		{name: "mountPoint holds a tmpfs", input: func(f *fixture, m jsonObject) []byte {
			p := filepath.Join(f.dir, "run", "tmpfs")
			mountTmpfs(f, p)
			m["mountPoint"] = p
			return encode(m)
		}, want: []string{"run/tmpfs", "tmpfs"}},
		{name: "mountPoint holds unrelated files", input: func(f *fixture, m jsonObject) []byte {
			writeFile(f, "run/busy/keep-me", []byte("someone else's"))
			m["mountPoint"] = filepath.Join(f.dir, "run", "busy")
			return encode(m)
		}, want: []string{"run/busy", "keep-me"}, check: func(t *testing.T, f *fixture) {
			if data, _ := os.ReadFile(filepath.Join(f.dir, "run/busy/keep-me")); string(data) != "someone else's" {
				t.Error("the file in mountPoint is gone or hidden")
			}
		}},
		{name: "mountPoint is a symlink", input: func(f *fixture, m jsonObject) []byte {
			os.MkdirAll(filepath.Join(f.dir, "elsewhere"), 0o755)
			os.Symlink(filepath.Join(f.dir, "elsewhere"), filepath.Join(f.dir, "run", "via-link"))
			m["mountPoint"] = filepath.Join(f.dir, "run", "via-link")
			return encode(m)
		}, want: []string{"run/via-link", "symlink"}},
		{name: "secretsDir a non-empty real directory", input: func(f *fixture, m jsonObject) []byte {
			writeFile(f, "run/other-secrets/left-by-another-tool", []byte("theirs"))
			m["secretsDir"] = filepath.Join(f.dir, "run", "other-secrets")
			return encode(m)
		}, want: []string{"run/other-secrets", "real directory"}, check: func(t *testing.T, f *fixture) {
			if data, _ := os.ReadFile(filepath.Join(f.dir, "run/other-secrets/left-by-another-tool")); string(data) != "theirs" {
				t.Error("the other tool's file was removed")
			}
		}},
		{name: "secretsDir a regular file", input: func(f *fixture, m jsonObject) []byte {
			m["secretsDir"] = writeFile(f, "run/secrets-file", []byte("x"))
			return encode(m)
		}, want: []string{"run/secrets-file", "neither a symlink nor a directory"}},
		{name: "secretsDir inside mountPoint", input: func(f *fixture, m jsonObject) []byte {
			m["secretsDir"] = filepath.Join(f.mountPoint, "secrets")
			return encode(m)
		}, want: []string{"secretsDir", "must not contain one another"}},
		{name: "relative mountPoint", input: func(f *fixture, m jsonObject) []byte { m["mountPoint"] = "run/secrets.d"; return encode(m) },
			want: []string{"mountPoint", "clean absolute path"}},
		{name: "negative keepGenerations", input: func(f *fixture, m jsonObject) []byte { m["keepGenerations"] = -1; return encode(m) },
			want: []string{"keepGenerations", "at least 0"}},
		{name: "bad unit name", input: withSecret(0, jsonObject{"restartUnits": []any{"nginx"}}),
			want: []string{"secrets[0] (token).restartUnits[0]", `"nginx"`}},

		// sops files.
		{name: "sops: MAC tampered", input: withSecret(1, jsonObject{"file": "SOPS:tampered-mac.sops.json", "format": "json", "key": "api_key"}),
			want: []string{`secret "nested/multi"`, "tampered-mac.sops.json", "authenticated"}},
		{name: "sops: values swapped", input: withSecret(1, jsonObject{"file": "SOPS:tampered-swap.sops.json", "format": "json", "key": "api_key"}),
			want: []string{`secret "nested/multi"`, "tampered-swap.sops.json", "authentication"}},
		{name: "sops: key missing", input: withSecret(1, jsonObject{"file": "SOPS:secrets.sops.yaml", "format": "yaml", "key": "github/no_such_token"}),
			want: []string{`secret "nested/multi"`, "secrets.sops.yaml", "no_such_token"}},
		{name: "sops: no identity of the host can decrypt it", input: func(f *fixture, m jsonObject) []byte {
			m["identities"] = []any{interop.Key(f.t, "ssh_host_rsa_key")}
			secretAt(m, 0)["file"] = interop.Enc(f.t, "binary.rsa.age")
			secretAt(m, 1)["file"] = interop.Enc(f.t, "secrets.sops.json")
			secretAt(m, 1)["format"] = "json"
			secretAt(m, 1)["key"] = "api_key"
			return encode(m)
		}, want: []string{`secret "nested/multi"`, "secrets.sops.json", "age1"}},
		{name: "sops: format differs", input: withSecret(1, jsonObject{"file": "SOPS:secrets.sops.yaml", "format": "json", "key": "github/oauth_token"}),
			want: []string{`secret "nested/multi"`, "secrets.sops.yaml", "sops yaml file"}},
	}
}

// goodManifest is what every bad input starts from and what stays live.
func goodManifest(f *fixture) (*manifest.Manifest, [][]byte) {
	m := f.manifest(
		manifest.Secret{Name: "token", File: interop.Enc(f.t, "token.age"),
			Ownership: manifest.Ownership{Owner: "nobody", Mode: "0400"}, Path: filepath.Join(f.dir, "home", "alice", "token")},
		manifest.Secret{Name: "nested/multi", File: interop.Enc(f.t, "multi-recipient.age"),
			Ownership: manifest.Ownership{Group: "nogroup", Mode: "0440"}},
	)
	m.Placeholders = map[string]string{"token": "<SECRETD:token>"}
	m.Templates = []manifest.Template{{Name: "greeting.conf", Content: "token = <SECRETD:token>\n"}}
	return f.normalize(m), [][]byte{interop.Expected(f.t, "token"), interop.Expected(f.t, "multi")}
}

// liveSnapshot is everything a failed activation must leave as it was.
type liveSnapshot struct {
	generation  int
	files       map[string]wantFile
	generations []int
	state       []byte
	link        string
}

func (f *fixture) snapshot() liveSnapshot {
	f.t.Helper()
	gen, files, err := liveFiles(f.secretsDir, f.mountPoint)
	if err != nil {
		f.t.Fatal(err)
	}
	gens, _ := ramfs.Store{Root: f.mountPoint}.Generations()
	state, _ := os.ReadFile(filepath.Join(f.mountPoint, activation.StateFile))
	link, _ := os.Readlink(filepath.Join(f.dir, "home", "alice", "token"))
	return liveSnapshot{generation: gen, files: files, generations: gens, state: state, link: link}
}

func (f *fixture) expectUnchanged(before liveSnapshot) {
	f.t.Helper()
	after := f.snapshot()
	if after.generation != before.generation {
		f.t.Errorf("live generation moved from %d to %d", before.generation, after.generation)
	}
	if diffs := differences(after.files, before.files); len(diffs) > 0 {
		f.t.Errorf("live files changed: %v", diffs)
	}
	if fmt.Sprint(after.generations) != fmt.Sprint(before.generations) {
		f.t.Errorf("generations %v became %v", before.generations, after.generations)
	}
	if !bytes.Equal(after.state, before.state) {
		f.t.Error("the recorded state changed")
	}
	if after.link != before.link {
		f.t.Errorf("path symlink %q became %q", before.link, after.link)
	}
	if l := leftovers(f.dir); len(l) > 0 {
		f.t.Errorf("left behind: %v", l)
	}
}

// TestBadInputMatrix feeds each bad input to a host with a live generation, as `secretd
// activate` would (load the manifest, then activate), and expects one error naming what is at
// fault, no plaintext in it or in the log, and the live generation untouched.
func TestBadInputMatrix(t *testing.T) {
	cases := badInputs()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t)
			good, plaintexts := goodManifest(f)
			f.mustActivate(good, activation.Options{})
			before := f.snapshot()

			var m jsonObject
			if err := json.Unmarshal(encode(toObject(t, good)), &m); err != nil {
				t.Fatal(err)
			}
			data := c.input(f, m)
			data = resolveMarkers(t, f, data)
			err := activateData(f, data)
			if err == nil {
				t.Fatal("the bad input was accepted")
			}
			msg := err.Error()
			for _, want := range c.want {
				want = resolveMarker(f, want)
				if !strings.Contains(msg, want) {
					t.Errorf("error does not mention %q:\n%s", want, msg)
				}
			}
			f.noPlaintextIn(append(plaintexts,
				[]byte("app-password-1234"), []byte("app-user-name"), []byte("hunter2-correct-horse-battery"),
				[]byte("db-password-in-the-clear"), []byte("not-a-key-but-maybe-secret-material")), msg)
			f.expectUnchanged(before)
			if c.check != nil {
				c.check(t, f)
			}
		})
	}
	t.Logf("%d bad inputs", len(cases))
}

func toObject(t *testing.T, m *manifest.Manifest) jsonObject {
	data, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var obj jsonObject
	if err := json.Unmarshal(data, &obj); err != nil {
		t.Fatal(err)
	}
	return obj
}

// resolveMarkers replaces the stand-ins cases use for corpus files.
func resolveMarkers(t *testing.T, f *fixture, data []byte) []byte {
	data = bytes.ReplaceAll(data, []byte(`"WRONG"`), []byte(`"`+interop.Enc(t, "wrong-recipient.age")+`"`))
	data = bytes.ReplaceAll(data, []byte(`"SOPS:`), []byte(`"`+interop.Enc(t, "")+"/"))
	return data
}

func resolveMarker(f *fixture, s string) string {
	r := strings.NewReplacer(
		"KEYDIR", filepath.Join(f.dir, "keys", "ssh_host_ed25519_key"),
		"PROTECTED", filepath.Join(f.dir, "keys", "protected_key"),
		"GARBAGE", filepath.Join(f.dir, "keys", "garbage_key"),
	)
	return r.Replace(s)
}

// activateData does what `secretd activate` does with a manifest file's bytes.
func activateData(f *fixture, data []byte) error {
	m, err := manifest.Decode(data)
	if err != nil {
		return err
	}
	_, err = activation.Activate(context.Background(), m, activation.Options{Log: f.log, ManifestPath: "bad.json"})
	return err
}

func TestEmptyRealSecretsDirIsReplaced(t *testing.T) {
	f := newFixture(t)
	if err := os.MkdirAll(f.secretsDir, 0o755); err != nil {
		t.Fatal(err)
	}
	good, plaintexts := goodManifest(f)
	f.mustActivate(good, activation.Options{})
	if fi, err := os.Lstat(f.secretsDir); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("secretsDir is not a symlink now: %v", err)
	}
	f.expectFile("token", plaintexts[0], 65534, 0, 0o400)
}

func TestHundredMegabyteSecret(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 100 MB")
	}
	f := newFixture(t)
	content := make([]byte, 100<<20)
	var seed [32]byte
	rand.Read(seed[:])
	mathrand.NewChaCha8(seed).Read(content)
	want := sha256.Sum256(content)
	file := f.encrypt("big.age", content)
	clear(content)
	content = nil

	start := time.Now()
	f.mustActivate(f.manifest(manifest.Secret{Name: "big", File: file, Ownership: manifest.Ownership{Owner: "nobody", Mode: "0400"}}), activation.Options{})
	took := time.Since(start)
	got, info, err := digestBeneath(f.secretsDir+"/", "big")
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("content mismatch (%d bytes)", info.Size)
	}
	if info.Size != 100<<20 || info.UID != 65534 || info.Mode != 0o400 {
		t.Fatalf("size %d uid %d mode %04o", info.Size, info.UID, info.Mode)
	}
	t.Logf("100 MiB secret activated in %v", took.Round(time.Millisecond))
}

func digestBeneath(dir, rel string) ([32]byte, ramfs.FileInfo, error) {
	file, err := ramfs.OpenBeneath(dir, rel)
	if err != nil {
		return [32]byte{}, ramfs.FileInfo{}, err
	}
	defer file.Close()
	info, err := ramfs.Stat(dir, rel)
	if err != nil {
		return [32]byte{}, info, err
	}
	h := sha256.New()
	if _, err := io.Copy(h, file); err != nil {
		return [32]byte{}, info, err
	}
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	return sum, info, nil
}

func TestHundredThousandSecrets(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 100 000 files")
	}
	const count, files = 100_000, 10
	f := newFixture(t)
	var paths []string
	var contents [][]byte
	for i := range files {
		c := []byte(fmt.Sprintf("shared-content-of-file-%d", i))
		contents = append(contents, c)
		paths = append(paths, f.encrypt(fmt.Sprintf("many-%d.age", i), c))
	}
	secrets := make([]manifest.Secret, count)
	for i := range secrets {
		secrets[i] = manifest.Secret{Name: fmt.Sprintf("d%03d/s%05d", i%1000, i), File: paths[i%files]}
	}
	m := f.manifest(secrets...)
	data, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	decoded, err := manifest.Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	decodeTook := time.Since(start)
	start = time.Now()
	if _, err := activation.Activate(context.Background(), decoded, activation.Options{Log: f.log}); err != nil {
		t.Fatal(err)
	}
	firstTook := time.Since(start)
	start = time.Now()
	plan, err := activation.Activate(context.Background(), decoded, activation.Options{Log: f.log})
	if err != nil {
		t.Fatal(err)
	}
	againTook := time.Since(start)
	if plan.NewGeneration {
		t.Error("the same 100 000 secrets again made a new generation")
	}
	_, live, err := liveFiles(f.secretsDir, f.mountPoint)
	if err != nil {
		t.Fatal(err)
	}
	if len(live) != count {
		t.Fatalf("%d files live, want %d", len(live), count)
	}
	for i := 0; i < count; i += 997 {
		name := fmt.Sprintf("d%03d/s%05d", i%1000, i)
		if w := live[name]; !bytes.Equal(w.content, contents[i%files]) || w.uid != 0 || w.mode != 0o400 {
			t.Fatalf("%s: content or ownership mismatch", name)
		}
	}
	t.Logf("100 000 secrets from %d files: decode %v, first activation %v, unchanged re-activation %v",
		files, decodeTook.Round(time.Millisecond), firstTook.Round(time.Millisecond), againTook.Round(time.Millisecond))
}
