package units

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	sdbus "github.com/coreos/go-systemd/v22/dbus"
	"github.com/godbus/dbus/v5"
)

// sessionBusEnv is the user bus address that systemd --user and dbus set for a user's services.
const sessionBusEnv = "DBUS_SESSION_BUS_ADDRESS"

// userEndpointsFor picks, in order, where to look for the user's systemd instance: its private
// socket, which systemctl --user also tries first, then the user bus. Nothing is tried that
// could reach the system's manager.
func userEndpointsFor(runtimeDir, sessionBusAddress string, exists func(path string) bool) []endpoint {
	var eps []endpoint
	private := filepath.Join(runtimeDir, "systemd", "private")
	if exists(private) {
		eps = append(eps, endpoint{name: "user systemd private socket " + private, dial: func(life context.Context) (*sdbus.Conn, error) {
			return sdbus.NewConnection(func() (*dbus.Conn, error) { return dialPeer(life, "unix:path="+private) })
		}})
	}
	bus := sessionBusAddress
	if bus == "" {
		bus = "unix:path=" + filepath.Join(runtimeDir, "bus")
	}
	eps = append(eps, endpoint{name: "user bus " + bus, dial: func(life context.Context) (*sdbus.Conn, error) {
		return sdbus.NewConnection(func() (*dbus.Conn, error) { return dialBus(life, bus) })
	}})
	return eps
}

// ConnectUser reaches the calling user's own systemd instance (systemd --user), whose runtime
// directory is runtimeDir: over its private socket when it exists, else over the user bus
// ($DBUS_SESSION_BUS_ADDRESS, else runtimeDir/bus). When it cannot be reached the error
// satisfies IsUnavailable.
func ConnectUser(ctx context.Context, runtimeDir string) (*Signaller, error) {
	var errs []error
	for _, ep := range userEndpointsFor(runtimeDir, os.Getenv(sessionBusEnv), pathExists) {
		s, err := connect(ctx, ep.dial)
		if err == nil {
			return s, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", ep.name, err))
	}
	return nil, fmt.Errorf("%w: %w", ErrNoSystemd, errors.Join(errs...))
}

// dialPeer opens an authenticated connection without greeting a bus: a manager's private
// socket has no bus to greet.
func dialPeer(ctx context.Context, address string) (*dbus.Conn, error) {
	conn, err := dbus.Dial(address, dbus.WithContext(ctx))
	if err != nil {
		return nil, err
	}
	// EXTERNAL with the numeric uid needs no user database lookup.
	if err := conn.Auth([]dbus.Auth{dbus.AuthExternal(strconv.Itoa(os.Getuid()))}); err != nil {
		conn.Close()
		return nil, fmt.Errorf("authenticating: %w", err)
	}
	return conn, nil
}
