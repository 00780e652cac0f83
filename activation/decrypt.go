package activation

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"filippo.io/age"
	"filippo.io/age/armor"
	"golang.org/x/sys/unix"

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
	digest     [32]byte
	// reused is set when every secret of the file is live from the same input: not decrypted.
	reused bool
	stamp  InputStamp
}

func (f *decryptedFile) wipe() {
	clear(f.plaintext)
}

// decryptFiles decrypts every distinct file in parallel, one worker per core. A file that r
// finds unchanged, by its stamp and then its digest, is neither read nor decrypted.
func decryptFiles(paths []string, ids *identity.Set, r *reuser, now time.Time) map[string]*decryptedFile {
	results := make(map[string]*decryptedFile, len(paths))
	for _, p := range paths {
		results[p] = &decryptedFile{}
	}
	// Workers take the next path from a counter: a channel's hand-offs cost more than
	// checking a stamp does.
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(runtime.NumCPU(), len(paths)) {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < len(paths); i = int(next.Add(1)) - 1 {
				decryptFile(paths[i], ids.Identities(), results[paths[i]], r, now)
			}
		})
	}
	wg.Wait()
	return results
}

func decryptFile(path string, ids []age.Identity, out *decryptedFile, r *reuser, now time.Time) {
	if r != nil {
		var st unix.Stat_t
		if unix.Stat(path, &st) == nil {
			if stamp, ok := r.stamps[path]; ok && stamp.matches(&st) && r.fileUnchanged(path, stamp.Digest) {
				out.digest, out.stamp, out.reused = stamp.Digest, stamp, true
				return
			}
		}
	}
	data, st, err := readInput(path)
	if err != nil {
		out.err = err
		return
	}
	out.digest = sha256.Sum256(data)
	out.stamp = stampOf(path, st, out.digest, now)
	if r != nil && r.fileUnchanged(path, out.digest) {
		out.reused = true
		return
	}
	if !bytes.HasPrefix(data, ageMagic) && !bytes.HasPrefix(bytes.TrimLeft(data, " \t\r\n"), []byte(armor.Header)) {
		// Not age, so sops or nothing: decrypting parses the file once, where detecting first
		// would parse it twice. Only a failure pays for a second look, to word the error.
		doc, err := sops.Decrypt(data, ids)
		if err == nil {
			out.kind, out.sopsFormat, out.sopsDoc = FileSops, doc.Format(), doc
			return
		}
		if _, ok := sops.Detect(data); !ok {
			_, _, out.err = DetectFile(data)
			return
		}
		out.kind, out.err = FileSops, err
		return
	}
	out.kind, out.sopsFormat, out.err = DetectFile(data)
	if out.err != nil {
		return
	}
	switch out.kind {
	case FileAge:
		out.plaintext, out.err = decryptAge(data, ids)
	case FileAgeArmored:
		var binary []byte
		if binary, out.err = io.ReadAll(armor.NewReader(bytes.NewReader(bytes.TrimLeft(data, " \t\r\n")))); out.err == nil {
			out.plaintext, out.err = decryptAge(binary, ids)
		}
	case FileSops:
		out.sopsDoc, out.err = sops.Decrypt(data, ids)
	}
}

// decryptAge decrypts a whole age file held in memory. age.DecryptReaderAt allocates about half
// of what the streaming age.Decrypt does for a small file, and a host decrypts a thousand.
func decryptAge(data []byte, ids []age.Identity) ([]byte, error) {
	r, size, err := age.DecryptReaderAt(bytes.NewReader(data), int64(len(data)), ids...)
	if err != nil {
		var noMatch *age.NoIdentityMatchError
		if errors.As(err, &noMatch) {
			return nil, errors.New("no identity of this host can decrypt it: it is encrypted to other recipients")
		}
		return nil, fmt.Errorf("decrypting: %w (the file is truncated or corrupted)", err)
	}
	plaintext := make([]byte, size)
	if n, err := r.ReadAt(plaintext, 0); n != len(plaintext) || err != nil && err != io.EOF {
		clear(plaintext)
		return nil, fmt.Errorf("decrypting: %w (the file is truncated or corrupted)", err)
	}
	return plaintext, nil
}

// readInput reads an encrypted file whole, and says what fstat said of it. It costs four
// syscalls where os.ReadFile spends six, which shows when a host has a thousand of them: a short
// read of a regular file is its end.
func readInput(path string) ([]byte, *unix.Stat_t, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, nil, &os.PathError{Op: "stat", Path: path, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, nil, fmt.Errorf("%s is not a regular file", path)
	}
	// One byte more than the size, so that a file that grew since is still read whole.
	buf := make([]byte, max(st.Size+1, 512))
	total := 0
	for {
		n, err := unix.Read(fd, buf[total:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, nil, &os.PathError{Op: "read", Path: path, Err: err}
		}
		total += n
		if n == 0 || total < len(buf) {
			return buf[:total], &st, nil
		}
		buf = append(buf, make([]byte, len(buf))...)
	}
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
// sourceID names what a secret is taken from: the encrypted file's bytes, format and key, and
// the host's identities — a host whose key changed must prove it can still decrypt.
func sourceID(digest [32]byte, s *manifest.Secret, identities string) string {
	var buf [512]byte
	b := append(append(buf[:0], digest[:]...), identities...)
	b = append(append(append(append(b, 0), s.Format...), 0), s.Key...)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// reuser finds secrets whose input is unchanged since they were written to the live generation
// and whose live file is still the one written then.
type reuser struct {
	identities string
	prev       map[string]OutputState
	live       map[string]liveFile
	// stamps are the encrypted files as last read, by path.
	stamps map[string]InputStamp
	// secretsOf lists the secrets taken from each file.
	secretsOf map[string][]*manifest.Secret
}

func newReuser(previous *State, live map[string]liveFile, identities string) *reuser {
	r := &reuser{identities: identities, prev: make(map[string]OutputState, len(previous.Outputs)), live: live,
		stamps: make(map[string]InputStamp, len(previous.Outputs))}
	for _, o := range previous.Outputs {
		r.prev[o.Name] = o
		if o.Input.File != "" {
			r.stamps[o.Input.File] = o.Input
		}
	}
	return r
}

// fileUnchanged tells whether every secret taken from path is live from the same input.
func (r *reuser) fileUnchanged(path string, digest [32]byte) bool {
	for _, s := range r.secretsOf[path] {
		if !r.unchanged(s, digest) {
			return false
		}
	}
	return true
}

// unchanged tells whether s's live file holds what decrypting its input would give again.
func (r *reuser) unchanged(s *manifest.Secret, digest [32]byte) bool {
	if r == nil {
		return false
	}
	p, ok := r.prev[s.Name]
	if !ok || p.Kind != KindSecret || p.Ino == 0 || p.Source != sourceID(digest, s, r.identities) {
		return false
	}
	l, ok := r.live[s.Name]
	return ok && l.info.Ino == p.Ino && l.info.Ctime == p.Ctime && int(l.info.Size) == p.Size
}

// A secret whose live file is unchanged (see reuser) gets no value: it is listed in reused, and
// its content is read back from the live generation only if it is needed.
func secretValues(m *manifest.Manifest, ids *identity.Set, r *reuser, now time.Time) (values map[string][]byte, sources map[string]string, stamps map[string]InputStamp, reused map[string]bool, wipe func(), err error) {
	var paths []string
	secretsOf := make(map[string][]*manifest.Secret, len(m.Secrets))
	for i := range m.Secrets {
		s := &m.Secrets[i]
		if _, seen := secretsOf[s.File]; !seen {
			paths = append(paths, s.File)
		}
		secretsOf[s.File] = append(secretsOf[s.File], s)
	}
	if r != nil {
		r.secretsOf = secretsOf
	}
	files := decryptFiles(paths, ids, r, now)
	wipe = func() {
		for _, f := range files {
			f.wipe()
		}
	}
	var problems []string
	for _, p := range paths {
		if err := files[p].err; err != nil {
			users := secretsOf[p]
			who := fmt.Sprintf("secret %q", users[0].Name)
			if len(users) > 1 {
				who += fmt.Sprintf(" (and %d more from the same file)", len(users)-1)
			}
			problems = append(problems, fmt.Sprintf("%s: file %s: %v", who, p, err))
		}
	}
	values = make(map[string][]byte, len(m.Secrets))
	sources = make(map[string]string, len(m.Secrets))
	reused = make(map[string]bool, len(m.Secrets))
	fingerprint := ids.Fingerprint()
	if len(problems) == 0 {
		for i := range m.Secrets {
			s := &m.Secrets[i]
			f := files[s.File]
			sources[s.Name] = sourceID(f.digest, s, fingerprint)
			if f.reused {
				reused[s.Name] = true
				continue
			}
			v, err := f.value(s)
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
		return nil, nil, nil, nil, func() {}, errors.New(strings.Join(problems, "\n"))
	}
	stamps = make(map[string]InputStamp, len(paths))
	for _, p := range paths {
		stamps[p] = files[p].stamp
	}
	return values, sources, stamps, reused, wipe, nil
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
