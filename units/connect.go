package units

import (
	"context"
	"errors"
	"fmt"
	"os"

	sdbus "github.com/coreos/go-systemd/v22/dbus"
	"github.com/godbus/dbus/v5"
)

// ErrNoSystemd means no systemd manager could be reached, as in a container or a test without
// systemd as init. Callers can log it once and carry on without signalling units.
var ErrNoSystemd = errors.New("systemd is not reachable over D-Bus")

// IsUnavailable reports whether err means that no systemd manager could be reached.
func IsUnavailable(err error) bool {
	return errors.Is(err, ErrNoSystemd)
}

// Where systemd listens.
const (
	// privateSocket is systemd's direct socket, open to root only and served from the first
	// moments of boot, before any message bus runs.
	privateSocket = "/run/systemd/private"
	// systemBusEnv overrides the system bus address, as libdbus and godbus honour it.
	systemBusEnv = "DBUS_SYSTEM_BUS_ADDRESS"
)

// Signaller asks systemd to restart and reload units. It holds one connection to the manager.
type Signaller struct {
	conn *sdbus.Conn
	// closeConn ends the lifetime the connection was dialled with.
	closeConn context.CancelFunc
}

// endpoint is one way to reach systemd.
type endpoint struct {
	name string
	dial func(ctx context.Context) (*sdbus.Conn, error)
}

// endpointsFor picks, in order, where to look for systemd. An explicit system bus address wins,
// so tests and unusual setups can point elsewhere. Otherwise the private socket comes first, as
// systemctl does for root: it works before the system bus is up, and unlike the bus socket it
// cannot be a socket-activation placeholder whose broker is itself waiting for secretd to
// finish, which would block the connection.
func endpointsFor(systemBusAddress string, exists func(path string) bool) []endpoint {
	privateEndpoint := endpoint{name: "systemd private socket " + privateSocket, dial: sdbus.NewSystemdConnectionContext}
	systemBusEndpoint := endpoint{name: "system bus", dial: sdbus.NewSystemConnectionContext}
	if systemBusAddress != "" {
		return []endpoint{systemBusEndpoint}
	}
	if exists(privateSocket) {
		return []endpoint{privateEndpoint, systemBusEndpoint}
	}
	return []endpoint{systemBusEndpoint}
}

func pathExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// Connect reaches the system's systemd: over $DBUS_SYSTEM_BUS_ADDRESS when set, else over
// systemd's private socket, else over the system bus. ctx bounds connecting only; the connection
// lasts until Close. When systemd cannot be reached the error satisfies IsUnavailable.
func Connect(ctx context.Context) (*Signaller, error) {
	var errs []error
	for _, ep := range endpointsFor(os.Getenv(systemBusEnv), pathExists) {
		s, err := connect(ctx, ep.dial)
		if err == nil {
			return s, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", ep.name, err))
	}
	return nil, fmt.Errorf("%w: %w", ErrNoSystemd, errors.Join(errs...))
}

// ConnectAddress reaches systemd through the D-Bus message bus at address, such as
// "unix:path=/run/dbus/system_bus_socket". ctx bounds connecting only. When systemd cannot be
// reached the error satisfies IsUnavailable.
func ConnectAddress(ctx context.Context, address string) (*Signaller, error) {
	s, err := connect(ctx, func(life context.Context) (*sdbus.Conn, error) {
		return sdbus.NewConnection(func() (*dbus.Conn, error) {
			return dialBus(life, address)
		})
	})
	if err != nil {
		return nil, fmt.Errorf("%w: bus %s: %w", ErrNoSystemd, address, err)
	}
	return s, nil
}

// dialBus opens an authenticated bus connection, as go-systemd does for the system bus.
func dialBus(ctx context.Context, address string) (*dbus.Conn, error) {
	conn, err := dialPeer(ctx, address)
	if err != nil {
		return nil, err
	}
	if err := conn.Hello(); err != nil {
		conn.Close()
		return nil, fmt.Errorf("greeting the bus: %w", err)
	}
	return conn, nil
}

// connect dials with dial and checks that a systemd manager answers.
//
// godbus closes a connection when the context it was dialled with ends, so the connection gets
// its own lifetime, ended by Close; ctx only aborts connecting (including a blocked
// authentication) while it is under way.
func connect(ctx context.Context, dial func(life context.Context) (*sdbus.Conn, error)) (*Signaller, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	life, closeConn := context.WithCancel(context.WithoutCancel(ctx))
	stopWatching := context.AfterFunc(ctx, closeConn)

	conn, err := dial(life)
	if err == nil {
		// A bus without systemd on it accepts the connection; only a call shows that nobody
		// owns the manager's name.
		if _, err = conn.SystemStateContext(ctx); err != nil {
			conn.Close()
			err = fmt.Errorf("asking the manager for its state: %w", err)
		}
	}
	if !stopWatching() && err == nil {
		// ctx ended as the connection came up, and took the connection with it.
		conn.Close()
		err = ctx.Err()
	}
	if err != nil {
		closeConn()
		return nil, err
	}
	return &Signaller{conn: conn, closeConn: closeConn}, nil
}

// Close closes the connection to systemd. Jobs already queued still run.
func (s *Signaller) Close() {
	s.conn.Close()
	s.closeConn()
}
