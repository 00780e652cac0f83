// Package logging builds secretd's zap logger: structured fields to the systemd journal when
// stderr is connected to it, a readable console format on stderr otherwise.
package logging

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"unicode"

	"github.com/coreos/go-systemd/v22/journal"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// New returns the logger for this process. Under systemd (JOURNAL_STREAM set and the journal
// socket present) entries go to the journal with each field as a journal field.
func New(stderr io.Writer, debug bool) *zap.Logger {
	level := zap.InfoLevel
	if debug {
		level = zap.DebugLevel
	}
	if os.Getenv("JOURNAL_STREAM") != "" && journal.Enabled() {
		return zap.New(&journalCore{level: level})
	}
	cfg := zap.NewDevelopmentEncoderConfig()
	cfg.TimeKey = ""
	cfg.CallerKey = ""
	cfg.StacktraceKey = ""
	enc := zapcore.NewConsoleEncoder(cfg)
	return zap.New(zapcore.NewCore(enc, zapcore.AddSync(stderr), level))
}

// journalCore sends entries to journald. The message text carries the fields too, so
// `journalctl -u secretd` alone says everything.
type journalCore struct {
	level  zapcore.Level
	fields []zapcore.Field
}

func (c *journalCore) Enabled(l zapcore.Level) bool { return l >= c.level }

func (c *journalCore) With(fields []zapcore.Field) zapcore.Core {
	return &journalCore{level: c.level, fields: append(append([]zapcore.Field{}, c.fields...), fields...)}
}

func (c *journalCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c *journalCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range append(append([]zapcore.Field{}, c.fields...), fields...) {
		f.AddTo(enc)
	}
	vars := map[string]string{"SYSLOG_IDENTIFIER": "secretd"}
	keys := make([]string, 0, len(enc.Fields))
	for k := range enc.Fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var text strings.Builder
	text.WriteString(e.Message)
	for _, k := range keys {
		v := fmt.Sprint(enc.Fields[k])
		vars["SECRETD_"+journalName(k)] = v
		fmt.Fprintf(&text, " %s=%s", k, v)
	}
	return journal.Send(text.String(), priority(e.Level), vars)
}

func (c *journalCore) Sync() error { return nil }

// journalName makes a journal field name: upper case letters, digits and underscores.
func journalName(key string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z':
			return unicode.ToUpper(r)
		case r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
			return r
		}
		return '_'
	}, key)
}

func priority(l zapcore.Level) journal.Priority {
	switch {
	case l >= zapcore.ErrorLevel:
		return journal.PriErr
	case l == zapcore.WarnLevel:
		return journal.PriWarning
	case l == zapcore.DebugLevel:
		return journal.PriDebug
	}
	return journal.PriInfo
}
