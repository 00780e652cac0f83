package authoring

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"filippo.io/age"
	"filippo.io/age/armor"
	"filippo.io/age/plugin"
	"golang.org/x/crypto/ssh"

	"github.com/secretd/secretd/identity"
	"github.com/secretd/secretd/manifest"
	"github.com/secretd/secretd/sops"
)

// Author edits, encrypts, decrypts and re-keys files to the recipients their rules name.
type Author struct {
	// RulesPath, when set, is the rule file for every file; else the nearest above each file.
	RulesPath string
	// Identities loads the identities to decrypt with; it is called only when one is needed.
	Identities func() ([]age.Identity, error)
	// Now stamps sops' lastmodified.
	Now func() time.Time
	// UI answers age plugins that need a user.
	UI *plugin.ClientUI

	rules map[string]*Rules
	ids   []age.Identity
}

func (a *Author) identities() ([]age.Identity, error) {
	if a.ids == nil {
		ids, err := a.Identities()
		if err != nil {
			return nil, err
		}
		a.ids = ids
	}
	return a.ids, nil
}

func (a *Author) rulesAt(path string) (*Rules, error) {
	if r, ok := a.rules[path]; ok {
		return r, nil
	}
	r, err := LoadRules(path)
	if err != nil {
		return nil, err
	}
	if a.rules == nil {
		a.rules = map[string]*Rules{}
	}
	a.rules[path] = r
	return r, nil
}

// RuleFor returns the rule that governs file.
func (a *Author) RuleFor(file string) (*Rule, error) {
	path := a.RulesPath
	if path == "" {
		var err error
		if path, err = FindRules(file); err != nil {
			return nil, err
		}
	}
	r, err := a.rulesAt(path)
	if err != nil {
		return nil, err
	}
	return r.For(file)
}

// secret is a decrypted (or new) file and how to encrypt it again.
type secret struct {
	plain []byte
	seal  func(plain []byte) ([]byte, error)
	close func()
}

// open decrypts file, or starts it empty when it does not exist or is empty.
func (a *Author) open(file string, rule *Rule) (*secret, error) {
	data, err := os.ReadFile(file)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if len(data) == 0 {
		if rule.Age {
			return &secret{seal: a.ageSealer(rule), close: func() {}}, nil
		}
		o, err := sops.New(sopsFormat(file), rule.Settings)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		o.UI = a.UI
		return &secret{seal: func(p []byte) ([]byte, error) { return o.Seal(p, rule.Recipients, a.now()) }, close: o.Close}, nil
	}
	ids, err := a.identities()
	if err != nil {
		return nil, err
	}
	if _, ok := sops.Detect(data); ok {
		o, err := sops.Open(data, ids)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		o.UI = a.UI
		return &secret{plain: o.Plain, seal: func(p []byte) ([]byte, error) { return o.Seal(p, rule.Recipients, a.now()) }, close: o.Close}, nil
	}
	plain, err := ageDecrypt(data, ids)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return &secret{plain: plain, seal: a.ageSealer(rule), close: func() { clear(plain) }}, nil
}

// sopsFormat picks a new sops file's format from its name, as sops does.
func sopsFormat(file string) string {
	switch strings.ToLower(filepath.Ext(file)) {
	case ".yaml", ".yml":
		return manifest.FormatYAML
	case ".json":
		return manifest.FormatJSON
	case ".env":
		return manifest.FormatDotenv
	case ".ini":
		return manifest.FormatINI
	}
	return manifest.FormatBinary
}

func ageDecrypt(data []byte, ids []age.Identity) ([]byte, error) {
	var src io.Reader = bytes.NewReader(data)
	if bytes.HasPrefix(bytes.TrimSpace(data), []byte(armor.Header)) {
		src = armor.NewReader(bytes.NewReader(bytes.TrimSpace(data)))
	} else if !bytes.HasPrefix(data, []byte("age-encryption.org/")) {
		return nil, errors.New("neither an age file nor a sops file")
	}
	r, err := age.Decrypt(src, ids...)
	if err != nil {
		return nil, err
	}
	return io.ReadAll(r)
}

func (a *Author) ageSealer(rule *Rule) func([]byte) ([]byte, error) {
	return func(plain []byte) ([]byte, error) {
		recipients, err := a.parseRecipients(rule.Recipients)
		if err != nil {
			return nil, err
		}
		var buf bytes.Buffer
		var dst io.WriteCloser = nopCloser{&buf}
		if rule.Armor {
			dst = armor.NewWriter(&buf)
		}
		w, err := age.Encrypt(dst, recipients...)
		if err != nil {
			return nil, err
		}
		if _, err := w.Write(plain); err != nil {
			return nil, err
		}
		if err := w.Close(); err != nil {
			return nil, err
		}
		if err := dst.Close(); err != nil {
			return nil, err
		}
		return buf.Bytes(), nil
	}
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

func (a *Author) parseRecipients(list []string) ([]age.Recipient, error) {
	var out []age.Recipient
	for _, s := range list {
		r, err := identity.ParseRecipient(s, a.UI)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// Decrypt returns file's plaintext, or with key the value at that key of a sops file.
func (a *Author) Decrypt(file, key string) ([]byte, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	ids, err := a.identities()
	if err != nil {
		return nil, err
	}
	if _, ok := sops.Detect(data); ok {
		if key != "" {
			doc, err := sops.Decrypt(data, ids)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", file, err)
			}
			v, err := doc.Value(key)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", file, err)
			}
			return v, nil
		}
		o, err := sops.Open(data, ids)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		// Close wipes the data key, and the plaintext the caller does not get.
		defer o.Close()
		return bytes.Clone(o.Plain), nil
	}
	if key != "" {
		return nil, fmt.Errorf("%s: --key applies to sops files only", file)
	}
	plain, err := ageDecrypt(data, ids)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return plain, nil
}

// Encrypt writes plain to file, encrypted as file's rule says. An existing file is replaced.
func (a *Author) Encrypt(file string, plain []byte) error {
	rule, err := a.RuleFor(file)
	if err != nil {
		return err
	}
	var out []byte
	if rule.Age {
		out, err = a.ageSealer(rule)(plain)
	} else {
		var o *sops.Opened
		if o, err = sops.New(sopsFormat(file), rule.Settings); err == nil {
			defer o.Close()
			o.UI = a.UI
			out, err = o.Seal(plain, rule.Recipients, a.now())
		}
	}
	if err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	return writeAtomic(file, out)
}

func (a *Author) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

// writeAtomic replaces file with data (ciphertext) through a rename, keeping file's mode and,
// where allowed, its owner and group: run as root to decrypt with a host key, an edit must not
// leave a file in a user's checkout owned by root.
func writeAtomic(file string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(file), ".secretd-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	err = fillReplacement(tmp, file, data)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(tmp.Name(), file)
}

// fillReplacement writes data to tmp with the attributes of the file it replaces, and syncs it:
// a crash must leave the old file or the new one, not an empty one.
func fillReplacement(tmp *os.File, file string, data []byte) error {
	if _, err := tmp.Write(data); err != nil {
		return err
	}
	mode := fs.FileMode(0o644)
	if fi, err := os.Stat(file); err == nil {
		mode = fi.Mode().Perm()
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			// Only root may give a file away; others write it as their own.
			if err := tmp.Chown(int(st.Uid), int(st.Gid)); err != nil && !errors.Is(err, fs.ErrPermission) {
				return err
			}
		}
	}
	// After Chown, which clears set-id bits.
	if err := tmp.Chmod(mode); err != nil {
		return err
	}
	return tmp.Sync()
}

// RekeyResult says what Rekey did (or would do) to one file.
type RekeyResult struct {
	File string
	// Changed is false for a file already encrypted to its rule's recipients, left as it was.
	Changed bool
}

// Rekey re-encrypts files (or every file the rules name, when none are given) to the
// recipients their rules name now. sops files get their data key re-wrapped, values untouched;
// age files are decrypted and encrypted again unless their header already names exactly the
// rule's ssh recipients. With dryRun nothing is written.
func (a *Author) Rekey(files []string, dryRun bool) ([]RekeyResult, error) {
	if len(files) == 0 {
		path := a.RulesPath
		if path == "" {
			cwd, err := os.Getwd()
			if err != nil {
				return nil, err
			}
			if path, err = FindRules(filepath.Join(cwd, "-")); err != nil {
				return nil, err
			}
		}
		r, err := a.rulesAt(path)
		if err != nil {
			return nil, err
		}
		if files, err = r.Files(); err != nil {
			return nil, err
		}
	}
	var results []RekeyResult
	var errs []error
	for _, f := range files {
		changed, err := a.rekeyOne(f, dryRun)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		results = append(results, RekeyResult{File: f, Changed: changed})
	}
	return results, errors.Join(errs...)
}

func (a *Author) rekeyOne(file string, dryRun bool) (bool, error) {
	rule, err := a.RuleFor(file)
	if err != nil {
		return false, err
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return false, err
	}
	if _, ok := sops.Detect(data); ok {
		current, err := sops.Recipients(data)
		if err != nil {
			return false, fmt.Errorf("%s: %w", file, err)
		}
		if sops.SameRecipients(current, rule.Recipients) {
			return false, nil
		}
		if dryRun {
			return true, nil
		}
		ids, err := a.identities()
		if err != nil {
			return false, err
		}
		out, _, err := sops.UpdateKeys(data, ids, rule.Recipients, a.UI)
		if err != nil {
			return false, fmt.Errorf("%s: %w", file, err)
		}
		return true, writeAtomic(file, out)
	}
	if ageHeaderMatches(data, rule.Recipients) {
		return false, nil
	}
	if dryRun {
		return true, nil
	}
	s, err := a.open(file, rule)
	if err != nil {
		return false, err
	}
	defer s.close()
	out, err := s.seal(s.plain)
	if err != nil {
		return false, fmt.Errorf("%s: %w", file, err)
	}
	return true, writeAtomic(file, out)
}

// ageHeaderMatches reports whether an age file's stanzas are exactly one per recipient, each
// an ssh stanza tagged with that recipient's key. X25519 stanzas do not name their recipient,
// so a file with age1… recipients never matches.
func ageHeaderMatches(data []byte, recipients []string) bool {
	src := io.Reader(bytes.NewReader(data))
	if bytes.HasPrefix(bytes.TrimSpace(data), []byte(armor.Header)) {
		src = armor.NewReader(bytes.NewReader(bytes.TrimSpace(data)))
	}
	header, err := age.ExtractHeader(src)
	if err != nil {
		return false
	}
	var stanzas []string
	for _, line := range strings.Split(string(header), "\n") {
		if rest, ok := strings.CutPrefix(line, "-> "); ok {
			f := strings.Fields(rest)
			if len(f) < 2 {
				return false
			}
			stanzas = append(stanzas, f[0]+" "+f[1])
		}
	}
	var want []string
	for _, r := range recipients {
		pk, _, _, _, err := ssh.ParseAuthorizedKey([]byte(r))
		if err != nil {
			return false
		}
		sum := sha256.Sum256(pk.Marshal())
		want = append(want, pk.Type()+" "+base64.RawStdEncoding.EncodeToString(sum[:4]))
	}
	slices.Sort(stanzas)
	slices.Sort(want)
	return slices.Equal(stanzas, want)
}

// ErrUnchanged is returned by Edit when the editor left the plaintext as it was: the file is
// not rewritten.
var ErrUnchanged = errors.New("unchanged")

// Edit decrypts file (or starts it empty) into a private file in scratch, runs edit on it and
// encrypts the result back to file's rule. The plaintext is removed however Edit returns,
// including when ctx is cancelled (an interrupt) while the editor runs. A failing editor writes
// nothing; an unchanged plaintext leaves file as it was and returns ErrUnchanged. When the
// edited plaintext cannot be encrypted (malformed YAML, say) and again returns true, the editor
// is run again on it, as `sops edit` offers.
func (a *Author) Edit(ctx context.Context, file, scratch string, edit func(ctx context.Context, path string) error, again func(error) bool) error {
	rule, err := a.RuleFor(file)
	if err != nil {
		return err
	}
	s, err := a.open(file, rule)
	if err != nil {
		return err
	}
	defer s.close()
	dir, err := os.MkdirTemp(scratch, "secretd-edit-")
	if err != nil {
		return err
	}
	path := filepath.Join(dir, filepath.Base(file))
	defer wipe(dir, path)
	if err := os.WriteFile(path, s.plain, 0o600); err != nil {
		return err
	}
	for {
		err = edit(ctx, path)
		if ctx.Err() != nil {
			return fmt.Errorf("interrupted, %s not changed", file)
		}
		if err != nil {
			return fmt.Errorf("editor failed, %s not changed: %w", file, err)
		}
		edited, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if bytes.Equal(edited, s.plain) {
			clear(edited)
			return ErrUnchanged
		}
		out, err := s.seal(edited)
		clear(edited)
		if err == nil {
			return writeAtomic(file, out)
		}
		if again == nil || !again(err) {
			return fmt.Errorf("%s not changed: %w", file, err)
		}
	}
}

// wipe overwrites the plaintext file and removes its directory.
func wipe(dir, path string) {
	if fi, err := os.Stat(path); err == nil {
		if f, err := os.OpenFile(path, os.O_WRONLY, 0); err == nil {
			f.Write(make([]byte, fi.Size()))
			f.Close()
		}
	}
	os.RemoveAll(dir)
}
