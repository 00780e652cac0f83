package vm

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/secretd/secretd/vmtest/internal/cpio"
)

// Payload is the set of per-run files, each named by its absolute path on the guest's root
// disk. It travels as a second archive appended to the base initramfs, under /payload.
type Payload struct {
	archive *cpio.Archive
}

// NewPayload returns an empty payload.
func NewPayload() *Payload {
	return &Payload{archive: cpio.New()}
}

func inPayload(guestPath string) string {
	return path.Join("payload", guestPath)
}

// File adds a root-owned file.
func (p *Payload) File(guestPath string, mode uint32, data []byte) error {
	return p.archive.AddFile(inPayload(guestPath), mode, data)
}

// Symlink adds a symbolic link.
func (p *Payload) Symlink(guestPath, target string) error {
	return p.archive.AddSymlink(inPayload(guestPath), target)
}

// Dir adds a directory with the given mode.
func (p *Payload) Dir(guestPath string, mode uint32) error {
	return p.archive.AddDir(inPayload(guestPath), mode)
}

// Write writes the payload archive to path.
func (p *Payload) Write(path string) error {
	return writeAtomically(path, p.archive)
}

// Extract writes the payload's files under root, as the initramfs copies them onto the disk
// (modes and owners included), for guests that share the host's kernel.
func (p *Payload) Extract(root string) error {
	for _, e := range p.archive.Entries() {
		rel, ok := strings.CutPrefix(e.Name, "payload/")
		if !ok {
			continue
		}
		dst := filepath.Join(root, rel)
		var err error
		switch e.Kind() {
		case cpio.Dir:
			err = os.MkdirAll(dst, os.FileMode(e.Mode))
			if err == nil {
				err = os.Chmod(dst, os.FileMode(e.Mode))
			}
		case cpio.Symlink:
			os.Remove(dst)
			err = os.Symlink(string(e.Data), dst)
		default:
			err = os.WriteFile(dst, e.Data, os.FileMode(e.Mode))
			if err == nil {
				err = os.Chmod(dst, os.FileMode(e.Mode))
			}
		}
		if err == nil {
			err = os.Lchown(dst, int(e.UID), int(e.GID))
		}
		if err != nil {
			return fmt.Errorf("payload: %s: %w", rel, err)
		}
	}
	return nil
}
