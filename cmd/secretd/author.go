package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"

	"filippo.io/age"
	"filippo.io/age/plugin"
	"golang.org/x/sys/unix"
	"golang.org/x/term"

	"github.com/secretd/secretd/authoring"
	"github.com/secretd/secretd/identity"
)

const authorUsage = `
authoring commands (files are encrypted to the recipients their .sops.yaml or secrets.nix names):
  recipients [--format sops|agenix] [FILE|-]
           print the recipients of OpenSSH public keys (.pub, authorized_keys, ssh-keyscan)
  edit     [--rules PATH] [-i IDENTITY]... FILE
           decrypt FILE (or start it empty) into a private tmpfs file, run $EDITOR, re-encrypt
  encrypt  [--rules PATH] FILE
           encrypt standard input into FILE
  decrypt  [-i IDENTITY]... [--key a/b] FILE
           print FILE's plaintext, or one value of a sops file
  rekey    [--rules PATH] [-i IDENTITY]... [--dry-run] [FILE...]
           re-encrypt files (default: all the rules name) to the recipients named now
`

// authorCommand runs the authoring commands; ok is false for any other command.
func authorCommand(args []string, stdin io.Reader, stdout, stderr io.Writer) (code int, ok bool) {
	cmds := map[string]func([]string, io.Reader, io.Writer, io.Writer) int{
		"recipients": recipients, "edit": edit, "encrypt": encrypt, "decrypt": decrypt, "rekey": rekey,
	}
	cmd, ok := cmds[args[0]]
	if !ok {
		return 0, false
	}
	return cmd(args[1:], stdin, stdout, stderr), true
}

// listFlag collects a repeatable flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// authorFlags are the flags every authoring command that touches files takes.
type authorFlags struct {
	fs         *flag.FlagSet
	rules      string
	identities listFlag
}

func newAuthorFlags(name string, stderr io.Writer) *authorFlags {
	f := &authorFlags{fs: newFlags(name, stderr)}
	f.fs.StringVar(&f.rules, "rules", "", "rule file (.sops.yaml or secrets.nix) to use instead of the nearest one above each file")
	f.fs.Var(&f.identities, "i", "identity file to decrypt with (repeatable); default: $SOPS_AGE_KEY_FILE, $SOPS_AGE_KEY, ~/.config/sops/age/keys.txt, ~/.ssh/id_ed25519, ~/.ssh/id_rsa")
	return f
}

// parse accepts flags before and after the file names.
func (f *authorFlags) parse(args []string) ([]string, bool) {
	var positional []string
	for {
		if err := f.fs.Parse(args); err != nil {
			return nil, false
		}
		if f.fs.NArg() == 0 {
			return positional, true
		}
		positional = append(positional, f.fs.Arg(0))
		args = f.fs.Args()[1:]
	}
}

func (f *authorFlags) author(stderr io.Writer) *authoring.Author {
	home, _ := os.UserHomeDir()
	ui := terminalUI(stderr)
	return &authoring.Author{
		RulesPath: f.rules,
		UI:        ui,
		Identities: func() ([]age.Identity, error) {
			env := authoring.Environment{Getenv: os.Getenv, Home: home, UI: ui}
			return authoring.FindIdentities(f.identities, env, func(note string) { fmt.Fprintln(stderr, "secretd:", note) })
		},
	}
}

// terminalUI lets age plugins talk to the user on the controlling terminal: messages on
// stderr, questions (a PIN, a confirmation) read from /dev/tty, secrets without echo.
func terminalUI(stderr io.Writer) *plugin.ClientUI {
	ask := func(prompt string, secret bool) (string, error) {
		tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
		if err != nil {
			return "", fmt.Errorf("an age plugin asks %q, and there is no terminal to answer on", prompt)
		}
		defer tty.Close()
		fmt.Fprintf(tty, "%s ", prompt)
		if secret {
			b, err := term.ReadPassword(int(tty.Fd()))
			fmt.Fprintln(tty)
			return string(b), err
		}
		line, err := bufio.NewReader(tty).ReadString('\n')
		return strings.TrimSpace(line), err
	}
	return &plugin.ClientUI{
		DisplayMessage: func(name, message string) error {
			fmt.Fprintf(stderr, "%s: %s\n", name, message)
			return nil
		},
		RequestValue: func(name, prompt string, secret bool) (string, error) {
			return ask(name+": "+prompt, secret)
		},
		Confirm: func(name, prompt, yes, no string) (bool, error) {
			choices := "[" + yes + "]"
			if no != "" {
				choices = "[" + yes + "/" + no + "]"
			}
			answer, err := ask(name+": "+prompt+" "+choices, false)
			return err == nil && (answer == "" || answer == yes), err
		},
		WaitTimer: func(name string) {
			fmt.Fprintf(stderr, "%s: waiting on the plugin (touch your key?)\n", name)
		},
	}
}

func fail(stderr io.Writer, err error) int {
	fmt.Fprintln(stderr, "secretd:", err)
	return exitFailed
}

func recipients(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := newFlags("recipients", stderr)
	format := fs.String("format", "", "print a snippet for .sops.yaml (sops) or secrets.nix (agenix)")
	if err := fs.Parse(args); err != nil || fs.NArg() > 1 || (*format != "" && *format != "sops" && *format != "agenix") {
		fmt.Fprintln(stderr, "usage: secretd recipients [--format sops|agenix] [FILE|-]")
		return exitUsage
	}
	var data []byte
	var err error
	if fs.NArg() == 0 || fs.Arg(0) == "-" {
		data, err = io.ReadAll(stdin)
	} else {
		data, err = os.ReadFile(fs.Arg(0))
	}
	if err != nil {
		return fail(stderr, err)
	}
	all, err := identity.ParsePublicKeys(data)
	if err != nil {
		return fail(stderr, err)
	}
	var keys []identity.PublicKey
	for _, k := range all {
		if k.Unusable != "" {
			fmt.Fprintf(stderr, "secretd: %s: skipped: %s\n", k.Name, k.Unusable)
			continue
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return fail(stderr, errors.New("no key age can encrypt to (ed25519 or RSA)"))
	}
	switch *format {
	case "sops":
		printSopsSnippet(stdout, keys)
	case "agenix":
		printAgenixSnippet(stdout, keys)
	default:
		for _, k := range keys {
			if k.Name != "" {
				fmt.Fprintf(stdout, "# %s\n", k.Name)
			}
			fmt.Fprintln(stdout, k.SSH)
			if k.Age != "" {
				fmt.Fprintln(stdout, k.Age)
			}
		}
	}
	return exitOK
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9_-]+`)

// keyName names a key in a snippet: its host (the comment after any "user@"), made a valid
// YAML anchor and Nix identifier.
func keyName(k identity.PublicKey, i int) string {
	host := k.Name
	if at := strings.LastIndexByte(host, '@'); at >= 0 {
		host = host[at+1:]
	}
	name := strings.Trim(unsafeName.ReplaceAllString(host, "_"), "_")
	if name == "" || (name[0] >= '0' && name[0] <= '9') || name[0] == '-' {
		name = fmt.Sprintf("key%d", i+1)
	}
	return name
}

// keyNames names every key, unique: a host's second key (its RSA key, say) gets a suffix.
func keyNames(keys []identity.PublicKey) []string {
	seen := map[string]bool{}
	var names []string
	for i, k := range keys {
		name := keyName(k, i)
		for n := 2; seen[name]; n++ {
			name = fmt.Sprintf("%s_%d", keyName(k, i), n)
		}
		seen[name] = true
		names = append(names, name)
	}
	return names
}

func printSopsSnippet(w io.Writer, keys []identity.PublicKey) {
	fmt.Fprintln(w, "keys:")
	var used []string
	for i, name := range keyNames(keys) {
		// An RSA key has no age1… form; sops 3.12 takes its ssh-rsa line.
		recipient := keys[i].Age
		if recipient == "" {
			recipient = strconv.Quote(keys[i].SSH)
		}
		used = append(used, name)
		fmt.Fprintf(w, "  - &%s %s\n", name, recipient)
	}
	fmt.Fprintln(w, "creation_rules:")
	fmt.Fprintln(w, "  - path_regex: secrets/[^/]+\\.(yaml|json|env|ini)$")
	fmt.Fprintln(w, "    key_groups:")
	fmt.Fprintln(w, "      - age:")
	for _, n := range used {
		fmt.Fprintf(w, "          - *%s\n", n)
	}
}

func printAgenixSnippet(w io.Writer, keys []identity.PublicKey) {
	names := keyNames(keys)
	fmt.Fprintln(w, "let")
	for i, name := range names {
		fmt.Fprintf(w, "  %s = %q;\n", name, keys[i].SSH)
	}
	fmt.Fprintln(w, "in")
	fmt.Fprintln(w, "{")
	fmt.Fprintf(w, "  \"secret.age\".publicKeys = [ %s ];\n", strings.Join(names, " "))
	fmt.Fprintln(w, "}")
}

func decrypt(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	f := newAuthorFlags("decrypt", stderr)
	key := f.fs.String("key", "", "print only the value at this key of a sops file (a/b/0)")
	files, ok := f.parse(args)
	if !ok || len(files) != 1 {
		fmt.Fprintln(stderr, "usage: secretd decrypt [-i IDENTITY]... [--key a/b] FILE")
		return exitUsage
	}
	plain, err := f.author(stderr).Decrypt(files[0], *key)
	if err != nil {
		return fail(stderr, err)
	}
	stdout.Write(plain)
	clear(plain)
	return exitOK
}

func encrypt(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	f := newAuthorFlags("encrypt", stderr)
	files, ok := f.parse(args)
	if !ok || len(files) != 1 {
		fmt.Fprintln(stderr, "usage: secretd encrypt [--rules PATH] FILE < plaintext")
		return exitUsage
	}
	plain, err := io.ReadAll(stdin)
	if err != nil {
		return fail(stderr, err)
	}
	defer clear(plain)
	if err := f.author(stderr).Encrypt(files[0], plain); err != nil {
		return fail(stderr, err)
	}
	return exitOK
}

func rekey(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	f := newAuthorFlags("rekey", stderr)
	dryRun := f.fs.Bool("dry-run", false, "list what would change and write nothing")
	files, ok := f.parse(args)
	if !ok {
		return exitUsage
	}
	results, err := f.author(stderr).Rekey(files, *dryRun)
	for _, r := range results {
		switch {
		case !r.Changed:
			fmt.Fprintf(stdout, "unchanged  %s\n", r.File)
		case *dryRun:
			fmt.Fprintf(stdout, "would rekey  %s\n", r.File)
		default:
			fmt.Fprintf(stdout, "rekeyed  %s\n", r.File)
		}
	}
	if err != nil {
		return fail(stderr, err)
	}
	return exitOK
}

func edit(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	f := newAuthorFlags("edit", stderr)
	files, ok := f.parse(args)
	if !ok || len(files) != 1 {
		fmt.Fprintln(stderr, "usage: secretd edit [--rules PATH] [-i IDENTITY]... FILE")
		return exitUsage
	}
	scratch, err := memoryDir()
	if err != nil {
		return fail(stderr, err)
	}
	editor := os.Getenv("EDITOR")
	if editor == "" {
		editor = "vi"
	}
	// An interrupt ends the editor and lets Edit remove the plaintext before exiting.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	runEditor := func(ctx context.Context, path string) error {
		// exec: the process killed on an interrupt is the editor itself, not a shell around it.
		cmd := exec.CommandContext(ctx, "/bin/sh", "-c", "exec "+editor+` "$1"`, "sh", path)
		cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, stdout, stderr
		return cmd.Run()
	}
	err = f.author(stderr).Edit(ctx, files[0], scratch, runEditor, offerAgain(stdin, stderr))
	switch {
	case errors.Is(err, authoring.ErrUnchanged):
		fmt.Fprintf(stderr, "secretd: %s unchanged\n", files[0])
	case err != nil:
		return fail(stderr, err)
	}
	return exitOK
}

// offerAgain asks, on a terminal only, whether to reopen the editor on a plaintext that cannot
// be encrypted.
func offerAgain(stdin io.Reader, stderr io.Writer) func(error) bool {
	f, ok := stdin.(*os.File)
	if !ok {
		return nil
	}
	if _, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS); err != nil {
		return nil
	}
	return func(err error) bool {
		fmt.Fprintf(stderr, "secretd: %v\nPress Enter to edit again, or Ctrl-D to give up the changes: ", err)
		// A terminal hands out one line per read; all of it is the answer, none of it is left
		// for the editor to take as keystrokes.
		var line [4096]byte
		n, _ := f.Read(line[:])
		return n > 0
	}
}

// memoryDir is where edit keeps plaintext: $XDG_RUNTIME_DIR or /dev/shm, whichever is a memory
// file system; never a disk.
func memoryDir() (string, error) {
	var tried []string
	for _, dir := range []string{os.Getenv("XDG_RUNTIME_DIR"), "/dev/shm"} {
		if dir == "" {
			continue
		}
		var st unix.Statfs_t
		if err := unix.Statfs(dir, &st); err == nil && (st.Type == unix.TMPFS_MAGIC || st.Type == unix.RAMFS_MAGIC) {
			return filepath.Clean(dir), nil
		}
		tried = append(tried, dir)
	}
	return "", fmt.Errorf("no memory-backed directory for the plaintext (tried %s): set XDG_RUNTIME_DIR to a tmpfs", strings.Join(tried, ", "))
}
