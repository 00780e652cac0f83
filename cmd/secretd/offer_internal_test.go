package main

import (
	"errors"
	"io"
	"os"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"
)

// openPTY opens a pseudo-terminal: the side a user types into, and the terminal a program reads.
func openPTY(t *testing.T) (user, terminal *os.File) {
	t.Helper()
	user, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { user.Close() })
	if err := unix.IoctlSetPointerInt(int(user.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(user.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	terminal, err = os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { terminal.Close() })
	return user, terminal
}

// TestOfferAgainTakesTheWholeLine: what the user types before Enter answers the question and
// is not left for the editor, which would take it as keystrokes into the plaintext.
func TestOfferAgainTakesTheWholeLine(t *testing.T) {
	user, terminal := openPTY(t)
	again := offerAgain(terminal, io.Discard)
	if again == nil {
		t.Fatal("no offer on a terminal")
	}
	if _, err := user.WriteString("yes\nnext\n"); err != nil {
		t.Fatal(err)
	}
	if !again(errors.New("malformed YAML")) {
		t.Fatal("a typed line did not reopen the editor")
	}
	buf := make([]byte, 64)
	n, err := terminal.Read(buf)
	if err != nil || string(buf[:n]) != "next\n" {
		t.Errorf("the editor would read %q (%v); want only the next line", buf[:n], err)
	}
}
