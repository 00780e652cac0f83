// Package cpio writes "newc" cpio archives, the format the Linux kernel unpacks as an
// initramfs. Only what an initramfs needs is supported: directories, regular files and
// symlinks, all owned by root unless said otherwise.
package cpio

import (
	"bufio"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
)

const (
	typeDir     = 0o040000
	typeRegular = 0o100000
	typeSymlink = 0o120000
)

// Entry is one file of an archive. Name is relative to the archive root, without a leading
// slash.
type Entry struct {
	Name     string
	Mode     uint32 // permission bits only; the type comes from the kind of entry
	UID, GID uint32
	Data     []byte // file content, or the target of a symlink
	kind     uint32
}

// Archive collects entries and writes them with every parent directory listed before its
// children, as the kernel does not create missing parents while unpacking.
type Archive struct {
	entries map[string]*Entry
}

// New returns an empty archive.
func New() *Archive {
	return &Archive{entries: map[string]*Entry{}}
}

// AddDir adds a directory (and any missing parents, with mode 0755).
func (a *Archive) AddDir(name string, mode uint32) error {
	return a.add(&Entry{Name: name, Mode: mode, kind: typeDir})
}

// AddFile adds a regular file owned by root.
func (a *Archive) AddFile(name string, mode uint32, data []byte) error {
	return a.add(&Entry{Name: name, Mode: mode, Data: data, kind: typeRegular})
}

// AddFileOwned adds a regular file with an explicit owner.
func (a *Archive) AddFileOwned(name string, mode, uid, gid uint32, data []byte) error {
	return a.add(&Entry{Name: name, Mode: mode, UID: uid, GID: gid, Data: data, kind: typeRegular})
}

// AddSymlink adds a symbolic link pointing at target.
func (a *Archive) AddSymlink(name, target string) error {
	return a.add(&Entry{Name: name, Mode: 0o777, Data: []byte(target), kind: typeSymlink})
}

func (a *Archive) add(e *Entry) error {
	name, err := clean(e.Name)
	if err != nil {
		return err
	}
	e.Name = name
	if e.Mode&^0o7777 != 0 {
		return fmt.Errorf("cpio: %s: mode %o has bits beyond 07777", name, e.Mode)
	}
	if prev, ok := a.entries[name]; ok {
		if prev.kind == typeDir && e.kind == typeDir {
			prev.Mode = e.Mode
			return nil
		}
		return fmt.Errorf("cpio: %s added twice", name)
	}
	for dir := path.Dir(name); dir != "."; dir = path.Dir(dir) {
		prev, ok := a.entries[dir]
		if !ok {
			a.entries[dir] = &Entry{Name: dir, Mode: 0o755, kind: typeDir}
			continue
		}
		if prev.kind != typeDir {
			return fmt.Errorf("cpio: %s needs %s to be a directory", name, dir)
		}
	}
	a.entries[name] = e
	return nil
}

func clean(name string) (string, error) {
	trimmed := strings.TrimPrefix(name, "/")
	c := path.Clean(trimmed)
	if trimmed == "" || c == "." || c == ".." || strings.HasPrefix(c, "../") {
		return "", fmt.Errorf("cpio: %q is not a name inside the archive", name)
	}
	return c, nil
}

// Kind tells what an entry is.
type Kind int

// Kinds of entries.
const (
	Dir Kind = iota
	Regular
	Symlink
)

// Kind returns what the entry is.
func (e *Entry) Kind() Kind {
	switch e.kind {
	case typeDir:
		return Dir
	case typeSymlink:
		return Symlink
	}
	return Regular
}

// Entries returns the entries with every parent before its children, as they are written.
func (a *Archive) Entries() []*Entry {
	names := make([]string, 0, len(a.entries))
	for name := range a.entries {
		names = append(names, name)
	}
	// Sorting by path segments puts "a" before "a/b" and keeps the output reproducible.
	sort.Slice(names, func(i, j int) bool {
		return strings.ReplaceAll(names[i], "/", "\x00") < strings.ReplaceAll(names[j], "/", "\x00")
	})
	out := make([]*Entry, len(names))
	for i, name := range names {
		out[i] = a.entries[name]
	}
	return out
}

// WriteTo writes the archive, parents before children, followed by the trailer.
func (a *Archive) WriteTo(w io.Writer) (int64, error) {
	cw := &countingWriter{w: bufio.NewWriter(w)}
	for i, e := range a.Entries() {
		if err := writeEntry(cw, uint32(i+1), e); err != nil {
			return cw.n, err
		}
	}
	if err := writeEntry(cw, 0, &Entry{Name: "TRAILER!!!"}); err != nil {
		return cw.n, err
	}
	return cw.n, cw.w.Flush()
}

func writeEntry(cw *countingWriter, ino uint32, e *Entry) error {
	nlink := uint32(1)
	if e.kind == typeDir {
		nlink = 2
	}
	nameSize := len(e.Name) + 1
	header := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		ino, e.kind|e.Mode, e.UID, e.GID, nlink, 0, len(e.Data), 0, 0, 0, 0, nameSize, 0)
	if _, err := io.WriteString(cw, header); err != nil {
		return fmt.Errorf("cpio: %s: %w", e.Name, err)
	}
	if _, err := io.WriteString(cw, e.Name+"\x00"); err != nil {
		return fmt.Errorf("cpio: %s: %w", e.Name, err)
	}
	if err := cw.pad(); err != nil {
		return err
	}
	if _, err := cw.Write(e.Data); err != nil {
		return fmt.Errorf("cpio: %s: %w", e.Name, err)
	}
	return cw.pad()
}

type countingWriter struct {
	w *bufio.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// pad aligns the stream to four bytes, as newc requires after each header+name and after
// each body.
func (c *countingWriter) pad() error {
	if rem := c.n % 4; rem != 0 {
		_, err := c.Write(make([]byte, 4-rem))
		return err
	}
	return nil
}
