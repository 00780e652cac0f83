package sops

import (
	"strconv"
	"strings"
)

// The YAML parser spends nearly all its time scanning the long base64 of encrypted values, one
// character at a time. Before parsing, each complete ENC[AES256_GCM,...] token is swapped for a
// short placeholder made of the same kinds of characters ("ENC[@7]"), and swapped back in
// every scalar afterwards. A token never spans a line and its replacement keeps the characters
// YAML cares about ("[", "]", letters, digits), so the document's structure is unchanged.

// shrunk is a document whose encrypted tokens were replaced by placeholders.
type shrunk struct {
	data []byte
	// marker starts every placeholder; it occurs nowhere in the original document.
	marker string
	tokens []string
}

func shrinkEncrypted(data []byte) *shrunk {
	text := string(data)
	if !strings.Contains(text, encPrefix) {
		return &shrunk{data: data}
	}
	marker := "ENC[@"
	for strings.Contains(text, marker) {
		marker += "@"
	}
	s := &shrunk{marker: marker, tokens: make([]string, 0, strings.Count(text, encPrefix))}
	out := make([]byte, 0, len(data)/4)
	done := 0 // text[:done] is already in out
	for from := 0; ; {
		i := strings.Index(text[from:], encPrefix)
		if i < 0 {
			break
		}
		i += from
		n := encryptedTokenLen(text[i:])
		// Only a token standing alone (after a line start, a space or a quote, and followed
		// by the end of the line, a space or a quote) is replaced: one glued to an anchor, a
		// tag or an alias keeps its characters' meaning that way.
		if n == 0 || !tokenBoundary(text, i-1) || !tokenBoundary(text, i+n) {
			from = i + len(encPrefix)
			continue
		}
		out = append(out, text[done:i]...)
		out = append(out, marker...)
		out = strconv.AppendInt(out, int64(len(s.tokens)), 10)
		out = append(out, ']')
		s.tokens = append(s.tokens, text[i:i+n])
		done = i + n
		from = done
	}
	s.data = append(out, text[done:]...)
	return s
}

// tokenBoundary reports whether position i (just before or after a token) separates it from
// its neighbours.
func tokenBoundary(text string, i int) bool {
	if i < 0 || i >= len(text) {
		return true
	}
	switch text[i] {
	case ' ', '\t', '\n', '\r', '"', '\'':
		return true
	}
	return false
}

// encryptedTokenLen returns the length of the ENC[AES256_GCM,data:…,iv:…,tag:…,type:…] token
// at the start of b, or 0 if there is none.
func encryptedTokenLen(b string) int {
	pos := len(encPrefix)
	for i, field := range [...]string{"data:", ",iv:", ",tag:", ",type:"} {
		if !strings.HasPrefix(b[pos:], field) {
			return 0
		}
		pos += len(field)
		start := pos
		for pos < len(b) && isTokenChar(b[pos], i == 3) {
			pos++
		}
		if pos == start {
			return 0
		}
	}
	if pos >= len(b) || b[pos] != ']' {
		return 0
	}
	return pos + 1
}

// base64Chars and typeChars are the bytes allowed in an encrypted token's fields.
var base64Chars, typeChars = func() (b, t [256]bool) {
	for c := 0; c < 256; c++ {
		lower := c >= 'a' && c <= 'z'
		b[c] = lower || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '+' || c == '/' || c == '='
		t[c] = lower
	}
	return b, t
}()

func isTokenChar(c byte, typeField bool) bool {
	if typeField {
		return typeChars[c]
	}
	return base64Chars[c]
}

// restore puts the original tokens back into a scalar's text.
func (s *shrunk) restore(text string) string {
	if s.marker == "" || !strings.Contains(text, s.marker) {
		return text
	}
	if idx, ok := s.placeholderIndex(text); ok {
		return s.tokens[idx]
	}
	var b strings.Builder
	for {
		i := strings.Index(text, s.marker)
		if i < 0 {
			b.WriteString(text)
			return b.String()
		}
		b.WriteString(text[:i])
		rest := text[i+len(s.marker):]
		end := strings.IndexByte(rest, ']')
		idx, err := strconv.Atoi(rest[:max(end, 0)])
		if end < 0 || err != nil || idx < 0 || idx >= len(s.tokens) {
			// Not one of ours; impossible as the marker is absent from the original.
			b.WriteString(s.marker)
			text = rest
			continue
		}
		b.WriteString(s.tokens[idx])
		text = rest[end+1:]
	}
}

// placeholderIndex recognises a text that is exactly one placeholder, the common case.
func (s *shrunk) placeholderIndex(text string) (int, bool) {
	rest, ok := strings.CutPrefix(text, s.marker)
	if !ok || !strings.HasSuffix(rest, "]") {
		return 0, false
	}
	idx, err := strconv.Atoi(rest[:len(rest)-1])
	if err != nil || idx < 0 || idx >= len(s.tokens) || strconv.Itoa(idx) != rest[:len(rest)-1] {
		return 0, false
	}
	return idx, true
}
