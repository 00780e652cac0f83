package sops

import (
	"fmt"

	"github.com/secretd/secretd/manifest"
	"github.com/secretd/secretd/structured"
)

// As returns doc, a decrypted sops document, read as a secret of format asks for it: as it is
// when the formats agree, and a JSON document as YAML, since JSON is YAML and sops-nix reads a
// JSON sops file with its default format, yaml, as `sops --decrypt --input-type yaml` would:
// values are the same and maps and lists are written as YAML.
func As(doc *structured.Document, format string) (*structured.Document, error) {
	if err := CanRead(doc.Format(), format); err != nil {
		return nil, err
	}
	if doc.Format() == format {
		return doc, nil
	}
	return doc.Reformatted(manifest.FormatYAML)
}

// CanRead reports whether a sops file whose plaintext is fileFormat serves a secret of format.
func CanRead(fileFormat, format string) error {
	if fileFormat == format || fileFormat == manifest.FormatJSON && format == manifest.FormatYAML {
		return nil
	}
	return fmt.Errorf("it is a sops %s file, but the secret's format is %s", fileFormat, format)
}
