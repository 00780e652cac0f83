package activation

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync"

	"filippo.io/age"
	"filippo.io/age/armor"

	"github.com/secretd/secretd/identity"
	"github.com/secretd/secretd/manifest"
	"github.com/secretd/secretd/sops"
	"github.com/secretd/secretd/structured"
)

// Kinds of encrypted file, told apart by their own header or structure.
const (
	FileAge        = "age"
	FileAgeArmored = "age (armored)"
	FileSops       = "sops"
)

// ageMagic starts every binary age file.
var ageMagic = []byte("age-encryption.org/v1\n")

// DetectFile tells what kind of encrypted file data is. For sops files it also returns the
// document format (yaml, json, dotenv, ini, binary).
func DetectFile(data []byte) (kind, sopsFormat string, err error) {
	switch {
	case bytes.HasPrefix(data, ageMagic):
		return FileAge, "", nil
	case bytes.HasPrefix(bytes.TrimLeft(data, " \t\r\n"), []byte(armor.Header)):
		return FileAgeArmored, "", nil
	}
	if format, ok := sops.Detect(data); ok {
		return FileSops, format, nil
	}
	return "", "", errors.New("neither an age file (binary or armored) nor a sops file")
}

// decryptedFile is one encrypted file, decrypted once however many secrets use it.
type decryptedFile struct {
	kind       string
	sopsFormat string
	plaintext  []byte               // age files
	sopsDoc    *structured.Document // sops files
	parsed     map[string]*structured.Document
	err        error
}

func (f *decryptedFile) wipe() {
	clear(f.plaintext)
}

// decryptFiles decrypts every distinct file in parallel, one worker per core.
func decryptFiles(paths []string, ids *identity.Set) map[string]*decryptedFile {
	results := make(map[string]*decryptedFile, len(paths))
	for _, p := range paths {
		results[p] = &decryptedFile{}
	}
	work := make(chan string)
	var wg sync.WaitGroup
	workers := min(runtime.NumCPU(), len(paths))
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range work {
				decryptFile(p, ids.Identities(), results[p])
			}
		}()
	}
	for _, p := range paths {
		work <- p
	}
	close(work)
	wg.Wait()
	return results
}

func decryptFile(path string, ids []age.Identity, out *decryptedFile) {
	data, err := os.ReadFile(path)
	if err != nil {
		out.err = err
		return
	}
	out.kind, out.sopsFormat, out.err = DetectFile(data)
	if out.err != nil {
		return
	}
	switch out.kind {
	case FileAge, FileAgeArmored:
		var src io.Reader = bytes.NewReader(data)
		if out.kind == FileAgeArmored {
			src = armor.NewReader(bytes.NewReader(bytes.TrimLeft(data, " \t\r\n")))
		}
		out.plaintext, out.err = decryptAge(src, ids)
	case FileSops:
		out.sopsDoc, out.err = sops.Decrypt(data, ids)
	}
}

func decryptAge(src io.Reader, ids []age.Identity) ([]byte, error) {
	r, err := age.Decrypt(src, ids...)
	if err != nil {
		var noMatch *age.NoIdentityMatchError
		if errors.As(err, &noMatch) {
			return nil, errors.New("no identity of this host can decrypt it: it is encrypted to other recipients")
		}
		return nil, err
	}
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(r); err != nil {
		clear(buf.Bytes())
		return nil, fmt.Errorf("decrypting: %w (the file is truncated or corrupted)", err)
	}
	return buf.Bytes(), nil
}

// value extracts one secret's content from its decrypted file.
func (f *decryptedFile) value(s *manifest.Secret) ([]byte, error) {
	if f.kind == FileSops {
		if s.Format != f.sopsFormat {
			return nil, fmt.Errorf("it is a sops %s file, but the secret's format is %s", f.sopsFormat, s.Format)
		}
		return f.sopsDoc.Value(s.Key)
	}
	if s.Format == manifest.FormatBinary {
		return f.plaintext, nil
	}
	doc, ok := f.parsed[s.Format]
	if !ok {
		var err error
		doc, err = structured.Parse(s.Format, f.plaintext)
		if err != nil {
			return nil, fmt.Errorf("plaintext is not valid %s: %w", s.Format, err)
		}
		if f.parsed == nil {
			f.parsed = map[string]*structured.Document{}
		}
		f.parsed[s.Format] = doc
	}
	return doc.Value(s.Key)
}

// secretValues decrypts every secret of m. It fails with every failing secret named, each with
// its file, and returns nothing in that case.
func secretValues(m *manifest.Manifest, ids *identity.Set) (map[string][]byte, func(), error) {
	var paths []string
	users := map[string][]string{}
	for _, s := range m.Secrets {
		if _, seen := users[s.File]; !seen {
			paths = append(paths, s.File)
		}
		users[s.File] = append(users[s.File], s.Name)
	}
	files := decryptFiles(paths, ids)
	wipe := func() {
		for _, f := range files {
			f.wipe()
		}
	}
	var problems []string
	for _, p := range paths {
		if err := files[p].err; err != nil {
			names := users[p]
			who := fmt.Sprintf("secret %q", names[0])
			if len(names) > 1 {
				who += fmt.Sprintf(" (and %d more from the same file)", len(names)-1)
			}
			problems = append(problems, fmt.Sprintf("%s: file %s: %v", who, p, err))
		}
	}
	values := make(map[string][]byte, len(m.Secrets))
	if len(problems) == 0 {
		for i := range m.Secrets {
			s := &m.Secrets[i]
			v, err := files[s.File].value(s)
			if err != nil {
				problems = append(problems, fmt.Sprintf("secret %q: file %s: %v", s.Name, s.File, err))
				continue
			}
			values[s.Name] = v
		}
	}
	if len(problems) > 0 {
		wipe()
		sort.Strings(problems)
		return nil, func() {}, errors.New(strings.Join(problems, "\n"))
	}
	return values, wipe, nil
}

// CheckFile verifies without decrypting that a secret's file exists, is an encrypted file of a
// known kind matching the secret's format, and, for a sops file, holds the secret's key.
func CheckFile(s *manifest.Secret, data []byte) error {
	kind, format, err := DetectFile(data)
	if err != nil {
		return err
	}
	if kind != FileSops {
		return nil
	}
	if s.Format != format {
		return fmt.Errorf("it is a sops %s file, but the secret's format is %s", format, s.Format)
	}
	return sops.HasKey(data, s.Key)
}

// Check verifies m for build time without decrypting: every file exists and is an encrypted
// file of a known kind matching its secret's format, and every sops key exists. With accounts,
// owners and groups are resolved too. It returns every problem found.
func Check(m *manifest.Manifest, accounts Accounts) []string {
	var problems []string
	cache := map[string][]byte{}
	for i := range m.Secrets {
		s := &m.Secrets[i]
		data, ok := cache[s.File]
		if !ok {
			var err error
			data, err = os.ReadFile(s.File)
			if err != nil {
				problems = append(problems, fmt.Sprintf("secret %q: %v", s.Name, err))
				continue
			}
			cache[s.File] = data
		}
		if err := CheckFile(s, data); err != nil {
			problems = append(problems, fmt.Sprintf("secret %q: file %s: %v", s.Name, s.File, err))
		}
	}
	if accounts != nil {
		if _, err := resolveOutputs(m, accounts, false); err != nil {
			problems = append(problems, strings.Split(err.Error(), "\n")...)
		}
	}
	return problems
}
