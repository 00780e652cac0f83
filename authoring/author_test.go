package authoring

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestEncryptKeepsOwner: replacing a file keeps its owner, group and mode, so an edit run as
// root (to decrypt with the host key) leaves a file in a user's checkout that user's.
func TestEncryptKeepsOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("changing a file's owner needs root")
	}
	dir := writeRules(t, "creation_rules:\n  - age: "+alice+"\n")
	file := filepath.Join(dir, "app.yaml")
	if err := os.WriteFile(file, nil, 0o640); err != nil {
		t.Fatal(err)
	}
	const nobody = 65534
	if err := os.Chown(file, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	if err := (&Author{}).Encrypt(file, []byte("a: b\n")); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if st.Uid != nobody || st.Gid != nobody || fi.Mode().Perm() != 0o640 {
		t.Errorf("after Encrypt: %d:%d %04o, want %d:%d 0640", st.Uid, st.Gid, fi.Mode().Perm(), nobody, nobody)
	}
}

// TestRekeyIgnoresRecipientOrder: a sops file encrypted to the rule's recipients in another
// order is up to date, as for `sops updatekeys`.
func TestRekeyIgnoresRecipientOrder(t *testing.T) {
	dir := writeRules(t, "creation_rules:\n  - age: "+alice+","+bob+"\n")
	file := filepath.Join(dir, "app.yaml")
	if err := (&Author{}).Encrypt(file, []byte("a: b\n")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, SopsRulesName), []byte("creation_rules:\n  - age: "+bob+","+alice+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	results, err := (&Author{}).Rekey([]string{file}, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != 1 || results[0].Changed {
		t.Errorf("Rekey: %+v; want the file unchanged", results)
	}
}
