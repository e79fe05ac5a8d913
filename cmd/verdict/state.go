package main

import (
	"context"

	"github.com/verdictpdp/verdict/internal/app"
)

// state is the durable state the keys and client commands work on, with the
// audit log of the changes they make.
type state struct {
	*app.State
	// audit records the CLI's state changes.
	audit auditLog
	// cfg is the configuration the state was opened with.
	cfg app.Config
}

// openState opens the state for commands that change it (app.OpenState).
func openState(ctx context.Context, cfg app.Config) (*state, error) {
	st, err := app.OpenState(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return &state{State: st}, nil
}

// openStateReadOnly opens the state for listings (app.OpenStateReadOnly).
func openStateReadOnly(ctx context.Context, cfg app.Config) (*state, error) {
	st, err := app.OpenStateReadOnly(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return &state{State: st}, nil
}
