package sops

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/secretd/secretd/structured"
)

// defaultUnencryptedSuffix applies when a file names no encryption rule, as in sops.
const defaultUnencryptedSuffix = "_unencrypted"

// ageKey is one age recipient of the data key.
type ageKey struct {
	recipient string
	enc       string
}

// pgpKey is one OpenPGP recipient of the data key: its fingerprint and the armored message.
type pgpKey struct {
	fp  string
	enc string
}

// keyGroup is the recipients that each hold the data key, or one Shamir share of it.
type keyGroup struct {
	age []ageKey
	pgp []pgpKey
}

// masterKeyTypes lists the master key types sops knows, in the order they are reported.
func masterKeyTypes() []string {
	return []string{"age", "pgp", "kms", "gcp_kms", "azure_kv", "hc_vault", "hckms"}
}

// metadata is the part of a file's sops metadata that decryption needs.
type metadata struct {
	// groups are the key groups' age recipients: one group, or several that each hold a
	// Shamir share of the data key, shamirThreshold of which recover it.
	groups          []keyGroup
	shamirThreshold int
	// keyTypes are the master key types present (masterKeyTypes order), age included.
	keyTypes []string

	lastModified string
	mac          string

	rule             rule
	macOnlyEncrypted bool
}

// ageKeys lists the age recipients of every key group.
func (md *metadata) ageKeys() []ageKey {
	var out []ageKey
	for _, g := range md.groups {
		out = append(out, g.age...)
	}
	return out
}

// rule decides which values sops encrypted. At most one of its fields is set.
type rule struct {
	unencryptedSuffix       string
	encryptedSuffix         string
	unencryptedRegex        *regexp.Regexp
	encryptedRegex          *regexp.Regexp
	unencryptedCommentRegex *regexp.Regexp
	encryptedCommentRegex   *regexp.Regexp
}

// byComments reports whether the rule looks at comments rather than keys.
func (r *rule) byComments() bool {
	return r.unencryptedCommentRegex != nil || r.encryptedCommentRegex != nil
}

func parseMetadata(m *structured.Node) (*metadata, error) {
	md := &metadata{}
	str := func(name string) (string, error) {
		n := field(m, name)
		if n == nil || n.Kind == structured.Null {
			return "", nil
		}
		if !n.IsScalar() {
			return "", fmt.Errorf("sops metadata %q is a %s, not a string", name, n.Kind)
		}
		return n.Text, nil
	}
	var err error
	if md.lastModified, err = str("lastmodified"); err != nil {
		return nil, err
	}
	if md.mac, err = str("mac"); err != nil {
		return nil, err
	}

	// Only one rule may be set; with none, sops leaves "_unencrypted" keys in cleartext.
	var ruleNames []string
	for _, name := range []string{"unencrypted_suffix", "encrypted_suffix", "unencrypted_regex", "encrypted_regex", "unencrypted_comment_regex", "encrypted_comment_regex"} {
		v, err := str(name)
		if err != nil {
			return nil, err
		}
		if v == "" {
			continue
		}
		ruleNames = append(ruleNames, name)
		switch name {
		case "unencrypted_suffix":
			md.rule.unencryptedSuffix = v
		case "encrypted_suffix":
			md.rule.encryptedSuffix = v
		case "unencrypted_regex":
			md.rule.unencryptedRegex = compileRule(v)
		case "encrypted_regex":
			md.rule.encryptedRegex = compileRule(v)
		case "unencrypted_comment_regex":
			md.rule.unencryptedCommentRegex = compileRule(v)
		case "encrypted_comment_regex":
			md.rule.encryptedCommentRegex = compileRule(v)
		}
	}
	switch len(ruleNames) {
	case 0:
		md.rule.unencryptedSuffix = defaultUnencryptedSuffix
	case 1:
	default:
		return nil, fmt.Errorf("sops metadata sets %s; sops allows only one of them", strings.Join(ruleNames, ", "))
	}
	if v, err := str("mac_only_encrypted"); err != nil {
		return nil, err
	} else if v != "" {
		b, perr := strconv.ParseBool(v)
		if perr != nil {
			return nil, fmt.Errorf("sops metadata mac_only_encrypted is not a boolean")
		}
		md.macOnlyEncrypted = b
	}

	if v, err := str("shamir_threshold"); err != nil {
		return nil, err
	} else if v != "" {
		t, perr := strconv.Atoi(v)
		if perr != nil || t < 0 {
			return nil, fmt.Errorf("sops metadata shamir_threshold is not a count")
		}
		md.shamirThreshold = t
	}
	if err := md.readKeys(m); err != nil {
		return nil, err
	}
	return md, nil
}

// compileRule compiles a rule's regular expression. sops ignores a regular expression that
// does not compile (it never matches), and so must we to agree on which values are encrypted.
func compileRule(expr string) *regexp.Regexp {
	re, err := regexp.Compile(expr)
	if err != nil {
		return regexp.MustCompile(`$.^`)
	}
	return re
}

// readKeys collects the master keys: the top-level lists form the only key group; without
// them, key_groups lists the groups.
func (md *metadata) readKeys(m *structured.Node) error {
	present := map[string]bool{}
	topLevel := false
	types := masterKeyTypes()
	for _, t := range types {
		if l := field(m, t); l != nil && l.Kind == structured.List && len(l.Items) > 0 {
			topLevel = true
		}
	}
	groups := []*structured.Node{m}
	if !topLevel {
		if kg := field(m, "key_groups"); kg != nil && kg.Kind == structured.List && len(kg.Items) > 0 {
			groups = kg.Items
		}
	}
	for _, g := range groups {
		var group keyGroup
		if g.Kind != structured.Map {
			return fmt.Errorf("sops metadata key group is a %s, not a map", g.Kind)
		}
		for _, t := range types {
			l := field(g, t)
			if l == nil || l.Kind == structured.Null {
				continue
			}
			if l.Kind != structured.List {
				return fmt.Errorf("sops metadata %q is a %s, not a list", t, l.Kind)
			}
			if len(l.Items) > 0 {
				present[t] = true
			}
			if t != "age" && t != "pgp" {
				continue
			}
			for _, item := range l.Items {
				if item.Kind != structured.Map {
					return fmt.Errorf("sops metadata %s entry is a %s, not a map", t, item.Kind)
				}
				text := func(name string) string {
					if n := field(item, name); n != nil && n.IsScalar() {
						return n.Text
					}
					return ""
				}
				if t == "age" {
					group.age = append(group.age, ageKey{recipient: text("recipient"), enc: text("enc")})
				} else {
					group.pgp = append(group.pgp, pgpKey{fp: text("fp"), enc: text("enc")})
				}
			}
		}
		md.groups = append(md.groups, group)
	}
	for _, t := range types {
		if present[t] {
			md.keyTypes = append(md.keyTypes, t)
		}
	}
	return nil
}

// macAAD is the associated data the MAC is encrypted with: lastmodified as sops re-formats it.
func (md *metadata) macAAD() (string, error) {
	t, err := time.Parse(time.RFC3339, md.lastModified)
	if err != nil {
		return "", fmt.Errorf("sops metadata lastmodified is not an RFC 3339 time")
	}
	return t.Format(time.RFC3339), nil
}

// shouldBeEncrypted mirrors sops: key rules look at every key on the path to a value, comment
// rules at the comments before the value and before each map entry or list item enclosing it.
func (r *rule) shouldBeEncrypted(path []string, comments [][]string) bool {
	anyComment := func(re *regexp.Regexp) bool {
		for _, level := range comments {
			for _, c := range level {
				if re.MatchString(c) {
					return true
				}
			}
		}
		return false
	}
	switch {
	case r.unencryptedSuffix != "":
		for _, p := range path {
			if strings.HasSuffix(p, r.unencryptedSuffix) {
				return false
			}
		}
		return true
	case r.encryptedSuffix != "":
		for _, p := range path {
			if strings.HasSuffix(p, r.encryptedSuffix) {
				return true
			}
		}
		return false
	case r.unencryptedRegex != nil:
		for _, p := range path {
			if r.unencryptedRegex.MatchString(p) {
				return false
			}
		}
		return true
	case r.encryptedRegex != nil:
		for _, p := range path {
			if r.encryptedRegex.MatchString(p) {
				return true
			}
		}
		return false
	case r.unencryptedCommentRegex != nil:
		return !anyComment(r.unencryptedCommentRegex)
	case r.encryptedCommentRegex != nil:
		return anyComment(r.encryptedCommentRegex)
	}
	return true
}
