package activation_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"go.uber.org/zap/zapcore"
	"golang.org/x/sys/unix"

	"github.com/secretd/secretd/activation"
	"github.com/secretd/secretd/internal/interop"
	"github.com/secretd/secretd/manifest"
	"github.com/secretd/secretd/ramfs"
)

// scanForPlaintext walks root, not following symlinks and skipping the directories in skip,
// and lists the regular files holding any of the plaintexts.
func scanForPlaintext(t *testing.T, root string, plaintexts [][]byte, skip ...string) (scanned int, found []string) {
	t.Helper()
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		for _, s := range skip {
			if p == s {
				return filepath.SkipDir
			}
		}
		if !d.Type().IsRegular() {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return nil
		}
		scanned++
		for i, s := range plaintexts {
			if s = bytes.TrimSpace(s); len(s) >= 4 && bytes.Contains(data, s) {
				found = append(found, fmt.Sprintf("%s holds plaintext #%d", p, i))
			}
		}
		return nil
	})
	return scanned, found
}

// Every corpus age file, and secrets of the corpus' sops files, go through Activate; no
// plaintext may reach the log, an error, the printed plan or status, or any file outside the
// ramfs.
func TestNoPlaintextOutsideTheRamfs(t *testing.T) {
	f := newFixture(t)
	tmpBefore, _ := os.ReadDir(os.TempDir())

	covered := map[string]bool{"wrong-recipient.age": true}
	var secrets []manifest.Secret
	var plaintexts [][]byte
	for _, c := range ageCases {
		covered[c.file] = true
		secrets = append(secrets, manifest.Secret{Name: c.name, File: interop.Enc(t, c.file), Path: filepath.Join(f.dir, "links", c.name)})
		plaintexts = append(plaintexts, interop.Expected(t, c.expected))
	}
	all, _ := filepath.Glob(filepath.Join(interop.Dir(t), "enc", "*.age"))
	for _, p := range all {
		if !covered[filepath.Base(p)] {
			t.Errorf("corpus file %s is not covered: add it to ageCases", filepath.Base(p))
		}
	}
	// sops files, to the ssh-to-age recipient of the host key, each key its own secret.
	for _, c := range []struct{ name, file, format, key, expected string }{
		{"sops/yaml/github", "secrets.sops.yaml", "yaml", "github/oauth_token", "yaml.github.oauth_token"},
		{"sops/yaml/tailscale", "secrets.sops.yaml", "yaml", "tailscale/authkey", "yaml.tailscale.authkey"},
		{"sops/yaml/npmrc", "secrets.sops.yaml", "yaml", "npmrc", "yaml.npmrc"},
		{"sops/json/api", "secrets.sops.json", "json", "api_key", "json.api_key"},
		{"sops/json/db", "secrets.sops.json", "json", "db/password", "json.db.password"},
		{"sops/dotenv", "app.sops.env", "dotenv", "DB_PASSWORD", "dotenv.DB_PASSWORD"},
		{"sops/blob", "blob.sops.json", "binary", "", "sops-binary.blob"},
	} {
		secrets = append(secrets, manifest.Secret{Name: c.name, File: interop.Enc(t, c.file), Format: c.format, Key: c.key})
		plaintexts = append(plaintexts, interop.Expected(t, c.expected))
	}
	m := f.manifest(secrets...)
	m.Placeholders = map[string]string{"token": "<SECRETD:token>"}
	m.Templates = []manifest.Template{{Name: "t.conf", Content: "x=<SECRETD:token>\n"}}

	// A failing run first: its error and log must be clean too.
	failing := f.manifest(append(secrets[:len(secrets):len(secrets)], manifest.Secret{Name: "wrong", File: interop.Enc(t, "wrong-recipient.age")})...)
	_, err := f.activate(failing, activation.Options{})
	if err == nil {
		t.Fatal("a secret encrypted to another recipient was accepted")
	}
	plan := f.mustActivate(m, activation.Options{})
	// Change every file's mode so the plan describes changes, then print everything.
	for i := range m.Secrets {
		m.Secrets[i].Mode = "0440"
	}
	plan2 := f.mustActivate(m, activation.Options{})
	var printed bytes.Buffer
	plan.Print(&printed)
	plan2.Print(&printed)
	planJSON, _ := json.Marshal([]*activation.Plan{plan, plan2})
	status := activation.ReadStatus(f.mountPoint)
	status.Print(&printed)
	statusJSON, _ := json.Marshal(status)
	state, _ := os.ReadFile(filepath.Join(f.mountPoint, activation.StateFile))
	record, _ := os.ReadFile(filepath.Join(f.mountPoint, "state.record"))
	if len(record) == 0 {
		t.Error("no compact state record written")
	}
	f.noPlaintextIn(plaintexts, err.Error(), printed.String(), string(planJSON), string(statusJSON), string(state), string(record))

	// The files are where they belong.
	for i, s := range secrets {
		got, _, err := ramfs.ReadFile(f.secretsDir+"/", s.Name)
		if err != nil || !bytes.Equal(got, plaintexts[i]) {
			t.Errorf("%s: missing or content mismatch: %v", s.Name, err)
		}
	}
	// And nowhere else: not under the test's directory outside the mount point, nor in any
	// file that appeared in the temporary directory meanwhile.
	scanned, found := scanForPlaintext(t, f.dir, plaintexts, f.mountPoint)
	for _, p := range found {
		t.Error(p)
	}
	known := map[string]bool{}
	for _, e := range tmpBefore {
		known[e.Name()] = true
	}
	tmpAfter, _ := os.ReadDir(os.TempDir())
	for _, e := range tmpAfter {
		if known[e.Name()] {
			continue
		}
		n, found := scanForPlaintext(t, filepath.Join(os.TempDir(), e.Name()), plaintexts, f.mountPoint)
		scanned += n
		for _, p := range found {
			t.Error(p)
		}
	}
	t.Logf("%d age files and %d sops secrets activated; %d files outside the ramfs scanned, none holds plaintext", len(ageCases), len(secrets)-len(ageCases), scanned)
}

// finalModes maps each output name of m to its declared owner and mode.
func finalModes(t *testing.T, m *manifest.Manifest) map[string]wantFile {
	t.Helper()
	plan, err := activation.Activate(t.Context(), m, activation.Options{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	final := map[string]wantFile{}
	for _, o := range plan.Outputs {
		final[o.Name] = wantFile{uid: o.UID, gid: o.GID, mode: o.Mode}
	}
	return final
}

// buildingDir returns the generation being written, if one is.
func buildingDir(mountPoint string) (string, bool) {
	matches, _ := filepath.Glob(filepath.Join(mountPoint, ".building-*"))
	if len(matches) != 1 {
		return "", false
	}
	return matches[0], true
}

// Files are created with their final owner and mode before any content. The hook after each
// write, and the finished generation, see every file as declared; meanwhile a scanner
// looks at the generation as fast as it can, and must never find a file more permissive than
// its final mode, nor content in a file without its final owner and mode.
func TestFilesNeverMorePermissiveThanFinal(t *testing.T) {
	f := newFixture(t)
	owners := []manifest.Ownership{
		{Owner: "nobody", Group: "nogroup", Mode: "0440"},
		{Owner: "root", Group: "nogroup", Mode: "0040"},
		{UID: intp(4242), GID: intp(4343), Mode: "0600"},
		{Owner: "root", Group: "root", Mode: "0444"},
		{Owner: "nobody", Group: "root", Mode: "0400"},
	}
	files := []string{f.encrypt("a", []byte("alpha-secret-value")), f.encrypt("b", []byte("bravo-secret-value"))}
	var secrets []manifest.Secret
	for i := range 200 {
		secrets = append(secrets, manifest.Secret{Name: fmt.Sprintf("dir%d/sub/s%d", i%7, i), File: files[i%2], Ownership: owners[i%len(owners)]})
	}
	m := f.normalize(f.manifest(secrets...))
	final := finalModes(t, m)

	check := func(dir string, stat func(rel string) (ramfs.FileInfo, error), strict bool) []string {
		var problems []string
		filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || p == dir {
				return nil
			}
			rel, _ := filepath.Rel(dir, p)
			if d.IsDir() {
				// Every directory holds outputs of several owners, one readable by all: it ends
				// root:root 0551 and is root's alone (0700) until then.
				var st unix.Stat_t
				if err := unix.Lstat(p, &st); err == nil && (st.Uid != 0 || st.Gid != 0 ||
					st.Mode&0o7777 != 0o551 && (strict || st.Mode&0o7777 != 0o700)) {
					problems = append(problems, fmt.Sprintf("directory %s: %d:%d mode %04o", rel, st.Uid, st.Gid, st.Mode&0o7777))
				}
				return nil
			}
			info, err := stat(rel)
			if err != nil {
				return nil // renamed away by the commit meanwhile
			}
			w, ok := final[rel]
			switch {
			case !ok:
				problems = append(problems, rel+": not declared")
			case !info.Regular:
				problems = append(problems, rel+": not a regular file")
			case strict && (info.UID != w.uid || info.GID != w.gid || info.Mode != w.mode):
				problems = append(problems, fmt.Sprintf("%s: %d:%d %04o after its write, want %d:%d %04o", rel, info.UID, info.GID, info.Mode, w.uid, w.gid, w.mode))
			case info.Mode&^w.mode != 0:
				problems = append(problems, fmt.Sprintf("%s: mode %04o is more permissive than its final %04o", rel, info.Mode, w.mode))
			case (info.Mode != 0 || info.Size > 0) && (info.UID != w.uid || info.GID != w.gid):
				problems = append(problems, fmt.Sprintf("%s: mode %04o, %d bytes while owned by %d:%d, not %d:%d", rel, info.Mode, info.Size, info.UID, info.GID, w.uid, w.gid))
			case info.Size > 0 && info.Mode != w.mode:
				problems = append(problems, fmt.Sprintf("%s: content written before its final mode", rel))
			}
			return nil
		})
		return problems
	}

	var (
		mu           sync.Mutex
		problems     []string
		hookChecks   int
		scans, seen  atomic.Int64
		done         = make(chan struct{})
		scannerEnded = make(chan struct{})
	)
	go func() {
		defer close(scannerEnded)
		for {
			select {
			case <-done:
				return
			default:
			}
			dir, ok := buildingDir(f.mountPoint)
			if !ok {
				continue
			}
			scans.Add(1)
			p := check(dir, func(rel string) (ramfs.FileInfo, error) {
				seen.Add(1)
				var st unix.Stat_t
				if err := unix.Fstatat(unix.AT_FDCWD, filepath.Join(dir, rel), &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
					return ramfs.FileInfo{}, err
				}
				return ramfs.FileInfo{UID: int(st.Uid), GID: int(st.Gid), Mode: st.Mode & 0o7777, Size: st.Size,
					Regular: st.Mode&unix.S_IFMT == unix.S_IFREG}, nil
			}, false)
			if len(p) > 0 {
				mu.Lock()
				problems = append(problems, p...)
				mu.Unlock()
			}
		}
	}()
	_, err := activation.Activate(t.Context(), m, activation.Options{Log: f.log, Hook: func(point string) {
		if point != "write" {
			return
		}
		dir, ok := buildingDir(f.mountPoint)
		if !ok {
			t.Error("no unfinished generation during the writes")
			return
		}
		hookChecks++
		// Files are written on every core: another one may be half made, so only the rules
		// that hold at every instant apply here; the final state is checked whole below.
		p := check(dir, func(rel string) (ramfs.FileInfo, error) { return ramfs.Stat(dir, rel) }, false)
		mu.Lock()
		problems = append(problems, p...)
		mu.Unlock()
	}})
	close(done)
	<-scannerEnded
	if err != nil {
		t.Fatal(err)
	}
	liveDir := ramfs.Store{Root: f.mountPoint}.Dir(f.live())
	problems = append(problems, check(liveDir, func(rel string) (ramfs.FileInfo, error) { return ramfs.Stat(liveDir, rel) }, true)...)
	for i, p := range problems {
		if i == 20 {
			t.Errorf("and %d more", len(problems)-20)
			break
		}
		t.Error(p)
	}
	t.Logf("%d files: checked after each of %d writes; concurrently %d scans looked at %d files", len(secrets), hookChecks, scans.Load(), seen.Load())
}

// victim is a file outside the mount point that a followed symlink would overwrite.
type victim struct {
	path    string
	content string
}

func plantVictim(t *testing.T, dir, name string) victim {
	t.Helper()
	v := victim{path: filepath.Join(dir, name), content: "victim file " + name}
	os.MkdirAll(dir, 0o755)
	if err := os.WriteFile(v.path, []byte(v.content), 0o644); err != nil {
		t.Fatal(err)
	}
	return v
}

func (v victim) intact(t *testing.T) {
	t.Helper()
	fi, err := os.Lstat(v.path)
	if err != nil || !fi.Mode().IsRegular() {
		t.Errorf("%s was replaced or removed: %v", v.path, err)
		return
	}
	if data, _ := os.ReadFile(v.path); string(data) != v.content || fi.Mode().Perm() != 0o644 {
		t.Errorf("%s was written to (mode %04o)", v.path, fi.Mode().Perm())
	}
}

func entriesOf(t *testing.T, dir string) []string {
	t.Helper()
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// Symlinks planted where secretd writes — an unfinished generation, the temporary names of the
// symlink swaps and of the state file — are removed or refused, never followed.
func TestPlantedSymlinksAreNotFollowed(t *testing.T) {
	f := newFixture(t)
	outside := filepath.Join(f.dir, "outside")
	victims := []victim{
		plantVictim(t, outside, "token"), plantVictim(t, outside, "state"),
		plantVictim(t, outside, "link"), plantVictim(t, filepath.Join(outside, "dir"), "inner"),
	}
	link := filepath.Join(f.dir, "home", "alice", "token")
	s := manifest.Secret{Name: "token", File: f.encrypt("t1", []byte("first-token-value")), Path: link}
	nested := manifest.Secret{Name: "dir/inner", File: f.encrypt("n1", []byte("nested-secret-value"))}
	f.mustActivate(f.manifest(s, nested), activation.Options{})
	next := f.live() + 1

	plant := func(target, at string) {
		t.Helper()
		os.MkdirAll(filepath.Dir(at), 0o755)
		if err := os.Symlink(target, at); err != nil {
			t.Fatal(err)
		}
	}
	building := filepath.Join(f.mountPoint, fmt.Sprintf(".building-%d", next))
	os.Mkdir(building, 0o700)
	plant(victims[0].path, filepath.Join(building, "token"))
	plant(filepath.Join(outside, "dir"), filepath.Join(building, "dir"))
	plant(outside, filepath.Join(f.mountPoint, fmt.Sprintf(".building-%d", next+1)))
	plant(victims[1].path, filepath.Join(f.mountPoint, ".secretd-tmp-"+activation.StateFile))
	plant(outside, filepath.Join(filepath.Dir(f.secretsDir), ".secretd-tmp-"+filepath.Base(f.secretsDir)))
	newLink := filepath.Join(f.dir, "home", "alice", "token2")
	plant(victims[2].path, filepath.Join(filepath.Dir(newLink), ".secretd-tmp-token2"))
	before := entriesOf(t, outside)

	s.File, s.Path = f.encrypt("t2", []byte("second-token-value")), newLink
	nested.File = f.encrypt("n2", []byte("nested-secret-value-2"))
	f.mustActivate(f.manifest(s, nested), activation.Options{})
	f.expectFile("token", []byte("second-token-value"), 0, 0, 0o400)
	f.expectFile("dir/inner", []byte("nested-secret-value-2"), 0, 0, 0o400)
	if data, err := os.ReadFile(newLink); err != nil || string(data) != "second-token-value" {
		t.Errorf("path %s does not resolve to the new token: %v", newLink, err)
	}
	for _, v := range victims {
		v.intact(t)
	}
	if after := entriesOf(t, outside); strings.Join(after, ",") != strings.Join(before, ",") {
		t.Errorf("entries outside went from %v to %v", before, after)
	}
	if st := activation.ReadStatus(f.mountPoint); !st.Healthy {
		t.Errorf("status: %v", st.Problems)
	}
}

// A symlink appearing inside the unfinished generation while it is written (only root could
// do that, but the writer must not trust its own directory) stops the run instead of being
// followed.
func TestSymlinkRaceInsideGenerationRefused(t *testing.T) {
	for _, tc := range []struct{ name, plant string }{
		{"file", "b"},
		{"directory", "c"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			outside := filepath.Join(f.dir, "outside")
			v := plantVictim(t, outside, "b")
			a := manifest.Secret{Name: "a", File: f.encrypt("a", []byte("alpha-value"))}
			f.mustActivate(f.manifest(a), activation.Options{})
			before := f.live()

			b := manifest.Secret{Name: "b", File: f.encrypt("b", []byte("bravo-value"))}
			c := manifest.Secret{Name: "c/d", File: f.encrypt("c", []byte("charlie-value"))}
			planted := false
			_, err := f.activate(f.manifest(a, b, c), activation.Options{Hook: func(point string) {
				dir, ok := buildingDir(f.mountPoint)
				if point != "write" || planted || !ok {
					return
				}
				planted = true
				target := v.path
				if tc.plant == "c" {
					target = outside
				}
				if err := os.Symlink(target, filepath.Join(dir, tc.plant)); err != nil {
					t.Error(err)
				}
			}})
			if !planted {
				t.Fatal("no write hook ran")
			}
			if err == nil {
				t.Fatal("the activation went through the planted symlink without an error")
			}
			if want := `secret "` + map[string]string{"b": "b", "c": "c/d"}[tc.plant] + `"`; !strings.Contains(err.Error(), want) {
				t.Errorf("error does not name %s: %v", want, err)
			}
			v.intact(t)
			if names := entriesOf(t, outside); strings.Join(names, ",") != "b" {
				t.Errorf("outside now holds %v", names)
			}
			if f.live() != before {
				t.Error("the live generation moved")
			}
			if l := leftovers(f.dir); len(l) > 0 {
				t.Errorf("left behind: %v", l)
			}
		})
	}
}

// A path symlink's directory replaced by a symlink after the checks (as the owner of a home
// directory can do at any time) must not make secretd replace a file elsewhere.
func TestPathParentSwappedForSymlinkAfterChecks(t *testing.T) {
	f := newFixture(t)
	outside := filepath.Join(f.dir, "etc")
	v := plantVictim(t, outside, "token")
	home := filepath.Join(f.dir, "home", "alice")
	if err := os.MkdirAll(filepath.Join(home, "config"), 0o755); err != nil {
		t.Fatal(err)
	}
	s := manifest.Secret{Name: "token", File: f.encrypt("t", []byte("token-value-1")), Path: filepath.Join(home, "config", "token")}
	swapped := false
	_, err := f.activate(f.manifest(s), activation.Options{Hook: func(point string) {
		if point != "swap" || swapped {
			return
		}
		swapped = true
		os.RemoveAll(filepath.Join(home, "config"))
		// The home directory's owner makes the symlink, so it is theirs, not root's.
		if err := os.Symlink(outside, filepath.Join(home, "config")); err != nil {
			t.Error(err)
		}
		if err := os.Lchown(filepath.Join(home, "config"), 65534, 65534); err != nil {
			t.Error(err)
		}
	}})
	if !swapped {
		t.Fatal("no swap hook ran")
	}
	v.intact(t)
	t.Logf("activation: %v", err)
}

// An identity file others can read is used, with a warning naming it.
func TestReadableIdentityWarns(t *testing.T) {
	key, err := os.ReadFile(interop.Key(t, "age.key"))
	if err != nil {
		t.Fatal(err)
	}
	for _, mode := range []os.FileMode{0o600, 0o400, 0o640, 0o604, 0o644} {
		t.Run(fmt.Sprintf("%04o", mode), func(t *testing.T) {
			f := newFixture(t)
			p := filepath.Join(f.dir, "keys", "age.key")
			os.MkdirAll(filepath.Dir(p), 0o700)
			if err := os.WriteFile(p, key, 0o600); err != nil {
				t.Fatal(err)
			}
			os.Chmod(p, mode)
			m := f.manifest(manifest.Secret{Name: "token", File: f.encrypt("t", []byte("token-value"))})
			m.Identities = []string{p}
			f.mustActivate(m, activation.Options{})
			var warned bool
			for _, e := range f.logs.FilterLevelExact(zapcore.WarnLevel).All() {
				if strings.Contains(e.Message, "readable by group or others") && e.ContextMap()["identity"] == p {
					warned = true
				}
			}
			if want := mode&0o077 != 0; warned != want {
				t.Errorf("identity mode %04o: warned %v, want %v", mode, warned, want)
			}
		})
	}
}

// secretd activate locks its memory so plaintext never reaches swap; as root that succeeds and
// locks the pages already touched.
func TestMlockallAsRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("the tests run as root")
	}
	if err := unix.Mlockall(unix.MCL_CURRENT | unix.MCL_FUTURE | unix.MCL_ONFAULT); err != nil {
		t.Fatalf("mlockall: %v", err)
	}
	defer unix.Munlockall()
	locked := vmLocked(t)
	if locked == 0 {
		t.Fatal("VmLck is 0 kB after mlockall")
	}
	t.Logf("VmLck %d kB", locked)
}

func vmLocked(t *testing.T) int {
	file, err := os.Open("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	scanner := bufio.NewScanner(file)
	for scanner.Scan() {
		var kb int
		if n, _ := fmt.Sscanf(scanner.Text(), "VmLck: %d kB", &kb); n == 1 {
			return kb
		}
	}
	t.Fatal("no VmLck in /proc/self/status")
	return 0
}
