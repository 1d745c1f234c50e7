// Package emutest starts the emulator for a test: the default scenario (changed as the test needs),
// listening on kernel-chosen ports, closed when the test ends, with the cloud endpoints that
// emulator.json describes and the IDs and credentials a test signs in with.
package emutest

import (
	"context"
	"testing"
	"time"

	"inkorg/internal/cloud"
	"inkorg/internal/emulator"
	"inkorg/internal/emulator/scenario"
	"inkorg/internal/settings"
)

// Emulator is a running emulator and its cloud.
type Emulator struct {
	*emulator.Emulator
	Cloud cloud.Endpoints
}

// Start starts the emulator with scenario.Default, passed through edit first when edit is not nil.
func Start(t testing.TB, edit func(*scenario.Scenario)) *Emulator {
	t.Helper()
	sc := scenario.Default(time.Now())
	if edit != nil {
		edit(sc)
	}
	emu, err := emulator.New(emulator.Config{Dir: t.TempDir(), Scenario: sc})
	if err != nil {
		t.Fatal(err)
	}
	if err := emu.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { emu.Close() })
	c, err := cloud.Load(emu.InfoFile())
	if err != nil {
		t.Fatal(err)
	}
	return &Emulator{Emulator: emu, Cloud: c}
}

// App is the scenario's first confidential (public=false) or public (public=true) app.
func (e *Emulator) App(public bool) emulator.InfoApp {
	for _, a := range e.Info().Apps {
		if a.PublicClient == public {
			return a
		}
	}
	panic("emutest: the scenario has no such app")
}

// Password is a user's password in this run.
func (e *Emulator) Password(upn string) settings.Secret {
	for _, u := range e.Info().Users {
		if u.UPN == upn {
			return settings.NewSecret(u.Password)
		}
	}
	panic("emutest: no user " + upn)
}

// ClientSecretSystem is the system settings an administrator enters for the Client secret flow.
func (e *Emulator) ClientSecretSystem() settings.System {
	a := e.App(false)
	return settings.System{EmailMethod: settings.MethodExchangeOnline, ClientID: a.ClientID, TenantID: e.Info().TenantID,
		AuthFlow: settings.FlowClientSecret, ClientSecret: settings.NewSecret(a.ClientSecret)}
}
