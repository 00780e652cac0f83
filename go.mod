module github.com/secretd/secretd

go 1.26.0

require (
	filippo.io/age v1.3.2
	filippo.io/edwards25519 v1.2.0
	github.com/ProtonMail/go-crypto v1.4.1
	github.com/coreos/go-systemd/v22 v22.7.0
	github.com/getsops/sops/v3 v3.12.2
	github.com/go-json-experiment/json v1.27.2
	github.com/godbus/dbus/v5 v5.2.4
	github.com/rogpeppe/go-internal v1.16.0
	go.uber.org/zap v1.28.0
	go.yaml.in/yaml/v3 v3.0.6
	golang.org/x/crypto v0.55.0
	golang.org/x/sys v0.50.0
	golang.org/x/term v0.45.0
)

require (
	filippo.io/hpke v0.4.0 // indirect
	github.com/cloudflare/circl v1.6.3 // indirect
	go.uber.org/multierr v1.10.0 // indirect
	golang.org/x/tools v0.49.0 // indirect
)
