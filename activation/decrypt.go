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
	"github.com/secretd/secretd/ramfs"
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
	// sources are the sourceIDs of the secrets taken from the file, in inputSet order.
	sources []string
}

// inputSet is the encrypted files of a manifest, each with the secrets taken from it.
type inputSet struct {
	paths     []string
	secretsOf map[string][]*manifest.Secret
	// identities is the fingerprint of the host's identities, part of every sourceID.
	identities string
}

func newInputSet(m *manifest.Manifest, identities string) *inputSet {
	in := &inputSet{secretsOf: make(map[string][]*manifest.Secret, len(m.Secrets)), identities: identities}
	for i := range m.Secrets {
		s := &m.Secrets[i]
		if _, seen := in.secretsOf[s.File]; !seen {
			in.paths = append(in.paths, s.File)
		}
		in.secretsOf[s.File] = append(in.secretsOf[s.File], s)
	}
	return in
}

// sources names, for each secret taken from path, what it is taken from.
func (in *inputSet) sources(path string, digest [32]byte) []string {
	secrets := in.secretsOf[path]
	ids := make([]string, len(secrets))
	for i, s := range secrets {
		ids[i] = sourceID(digest, s, in.identities)
	}
	return ids
}

func (f *decryptedFile) wipe() {
	clear(f.plaintext)
}

// decryptFiles decrypts every distinct file in parallel, one worker per core. A file that r
// finds unchanged, by its stamp and then its digest, is neither read nor decrypted.
func decryptFiles(in *inputSet, ids *identity.Set, gnupgHome string, r *reuser, now time.Time) map[string]*decryptedFile {
	results := make(map[string]*decryptedFile, len(in.paths))
	for _, p := range in.paths {
		results[p] = &decryptedFile{}
	}
	// Workers take the next path from a counter: a channel's hand-offs cost more than
	// checking a stamp does.
	var next atomic.Int64
	var wg sync.WaitGroup
	pgp := pgpIdentities(ids, gnupgHome)
	for range min(runtime.NumCPU(), len(in.paths)) {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < len(in.paths); i = int(next.Add(1)) - 1 {
				p := in.paths[i]
				decryptFile(p, in, ids.Identities(), pgp, results[p], r, now)
			}
		})
	}
	wg.Wait()
	return results
}

// pgpIdentities are what opens a sops file's PGP recipients: the RSA identities as OpenPGP keys,
// then the GnuPG home, if any.
func pgpIdentities(ids *identity.Set, gnupgHome string) []sops.PGPIdentity {
	var out []sops.PGPIdentity
	for _, k := range ids.PGPKeys() {
		out = append(out, k)
	}
	if gnupgHome != "" {
		out = append(out, identity.GnuPGHome(gnupgHome))
	}
	return out
}

func decryptFile(path string, in *inputSet, ids []age.Identity, pgp []sops.PGPIdentity, out *decryptedFile, r *reuser, now time.Time) {
	if r != nil {
		var st unix.Stat_t
		if unix.Stat(path, &st) == nil {
			if stamp, ok := r.stamps[path]; ok && stamp.matches(&st) {
				sources := in.sources(path, stamp.Digest)
				if r.unchanged(in.secretsOf[path], sources) {
					out.digest, out.stamp, out.sources, out.reused = stamp.Digest, stamp, sources, true
					return
				}
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
	out.sources = in.sources(path, out.digest)
	if r != nil && r.unchanged(in.secretsOf[path], out.sources) {
		out.reused = true
		return
	}
	if !bytes.HasPrefix(data, ageMagic) && !bytes.HasPrefix(bytes.TrimLeft(data, " \t\r\n"), []byte(armor.Header)) {
		// Not age, so sops or nothing: decrypting parses the file once, where detecting first
		// would parse it twice. Only a failure pays for a second look, to word the error.
		doc, err := sops.Decrypt(data, ids, pgp...)
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
		out.sopsDoc, out.err = sops.Decrypt(data, ids, pgp...)
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

// readInput reads an encrypted file whole, following symlinks as a store path may hold them.
func readInput(path string) ([]byte, *unix.Stat_t, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	return ramfs.ReadWhole(fd, path)
}

// value extracts one secret's content from its decrypted file.
func (f *decryptedFile) value(s *manifest.Secret) ([]byte, error) {
	if f.kind == FileSops {
		doc, err := sops.As(f.sopsDoc, s.Format)
		if err != nil {
			return nil, err
		}
		return doc.Value(s.Key)
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
	prev map[string]*OutputState
	live map[string]liveFile
	// stamps are the encrypted files as last read, by path.
	stamps map[string]InputStamp
}

func newReuser(previous *State, live map[string]liveFile) *reuser {
	r := &reuser{prev: make(map[string]*OutputState, len(previous.Outputs)), live: live,
		stamps: make(map[string]InputStamp, len(previous.Outputs))}
	for i := range previous.Outputs {
		o := &previous.Outputs[i]
		r.prev[o.Name] = o
		if o.Input.File != "" {
			r.stamps[o.Input.File] = o.Input
		}
	}
	return r
}

// unchanged tells whether every one of secrets, taken from sources, has its live file holding
// what decrypting its input would give again.
func (r *reuser) unchanged(secrets []*manifest.Secret, sources []string) bool {
	for i, s := range secrets {
		p, ok := r.prev[s.Name]
		if !ok || p.Kind != KindSecret || p.Ino == 0 || p.Source != sources[i] {
			return false
		}
		l, ok := r.live[s.Name]
		if !ok || l.info.Ino != p.Ino || l.info.Ctime != p.Ctime || int(l.info.Size) != p.Size {
			return false
		}
	}
	return true
}

// secretValues decrypts every secret of m. It fails with every failing secret named, each with
// its file, and returns nothing in that case.
//
// A secret whose live file is unchanged (see reuser) gets no value: it is listed in reused, and
// its content is read back from the live generation only if it is needed.
func secretValues(m *manifest.Manifest, ids *identity.Set, r *reuser, now time.Time) (values map[string][]byte, sources map[string]string, stamps map[string]InputStamp, reused map[string]bool, wipe func(), err error) {
	// A GnuPG home is named by its path only: its keys are gpg's to list.
	in := newInputSet(m, ids.Fingerprint()+m.GnuPGHome)
	files := decryptFiles(in, ids, m.GnuPGHome, r, now)
	wipe = func() {
		for _, f := range files {
			f.wipe()
		}
	}
	var problems []string
	for _, p := range in.paths {
		if err := files[p].err; err != nil {
			users := in.secretsOf[p]
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
	if len(problems) == 0 {
		for _, p := range in.paths {
			f := files[p]
			for i, s := range in.secretsOf[p] {
				sources[s.Name] = f.sources[i]
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
	}
	if len(problems) > 0 {
		wipe()
		sort.Strings(problems)
		return nil, nil, nil, nil, func() {}, errors.New(strings.Join(problems, "\n"))
	}
	stamps = make(map[string]InputStamp, len(in.paths))
	for _, p := range in.paths {
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
	if err := sops.CanRead(format, s.Format); err != nil {
		return err
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
