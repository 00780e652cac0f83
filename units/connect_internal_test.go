package units

import (
	"slices"
	"testing"
)

func TestEndpointsFor(t *testing.T) {
	cases := []struct {
		name             string
		systemBusAddress string
		privateExists    bool
		want             []string
	}{
		{"explicit bus address wins", "unix:path=/tmp/bus", true, []string{"system bus"}},
		{"private socket first", "", true, []string{"systemd private socket " + privateSocket, "system bus"}},
		{"no private socket", "", false, []string{"system bus"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			exists := func(path string) bool { return path == privateSocket && c.privateExists }
			var got []string
			for _, ep := range endpointsFor(c.systemBusAddress, exists) {
				got = append(got, ep.name)
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("endpoints = %q, want %q", got, c.want)
			}
		})
	}
}

func TestPlan(t *testing.T) {
	got := plan(Request{
		Restart: []string{"b.service", "a.service", "b.service"},
		Reload:  []string{"c.service", "a.service", "c.service"},
	})
	want := []Result{
		{Unit: "a.service", Action: ActionTryRestart},
		{Unit: "b.service", Action: ActionTryRestart},
		{Unit: "c.service", Action: ActionReloadOrTryRestart},
	}
	if !slices.Equal(got, want) {
		t.Errorf("plan = %+v, want %+v", got, want)
	}
}

func TestUserEndpointsFor(t *testing.T) {
	const runtime = "/run/user/1000"
	cases := []struct {
		name          string
		sessionBus    string
		privateExists bool
		want          []string
	}{
		{"private socket first", "unix:path=/tmp/bus", true, []string{"user systemd private socket /run/user/1000/systemd/private", "user bus unix:path=/tmp/bus"}},
		{"user bus from the runtime dir", "", false, []string{"user bus unix:path=/run/user/1000/bus"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			exists := func(path string) bool { return path == runtime+"/systemd/private" && c.privateExists }
			var got []string
			for _, ep := range userEndpointsFor(runtime, c.sessionBus, exists) {
				got = append(got, ep.name)
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("endpoints = %q, want %q", got, c.want)
			}
		})
	}
}
